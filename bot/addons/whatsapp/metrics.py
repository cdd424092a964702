"""Counters and a latency histogram, rendered in Prometheus' text format for ``/metrics``.

Hand-written to keep the channel free of a metrics dependency; label values are never
phone numbers or secrets, only kinds, states and error codes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Metrics:
    """Everything ``/metrics`` reports. ``queue_depth`` is read when rendering.

    ``ingress`` is True in the webhook ingress process: it reports what it received and
    relayed, and none of the turn and sending families, which belong to ``rasa run``.
    """

    events_received: Counter[str] = field(default_factory=Counter)
    duplicates_dropped: int = 0
    messages_handled: int = 0
    handling_errors: int = 0
    silent_turns: int = 0
    messages_adopted: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    rejected_requests: Counter[str] = field(default_factory=Counter)
    messages_sent: int = 0
    send_retries: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_count: int = 0
    latency_sum: float = 0.0
    messages_relayed: int = 0
    relay_failures: Counter[str] = field(default_factory=Counter)
    queue_depth: Callable[[], int] = lambda: 0
    dedup_entries: Callable[[], int] = lambda: 0
    ingress: bool = False

    def observe_latency(self, seconds: float) -> None:
        self.latency_count += 1
        self.latency_sum += seconds
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency_buckets[index] += 1

    def failure(self, code: int | str) -> None:
        self.failures[str(code)] += 1

    def render(self) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        family("whatsapp_events_received_total", "counter", "Webhook events received by kind.")
        for kind, count in sorted(self.events_received.items()):
            lines.append(f'whatsapp_events_received_total{{kind="{kind}"}} {count}')
        family("whatsapp_duplicates_dropped_total", "counter", "Redelivered messages dropped.")
        lines.append(f"whatsapp_duplicates_dropped_total {self.duplicates_dropped}")
        family("whatsapp_statuses_total", "counter", "Delivery statuses received by state.")
        for state, count in sorted(self.statuses.items()):
            lines.append(f'whatsapp_statuses_total{{status="{state}"}} {count}')
        family("whatsapp_failures_total", "counter", "Failures by WhatsApp error code.")
        for code, count in sorted(self.failures.items()):
            lines.append(f'whatsapp_failures_total{{code="{code}"}} {count}')
        family("whatsapp_webhook_rejected_total", "counter", "Webhook requests refused by reason.")
        for reason, count in sorted(self.rejected_requests.items()):
            lines.append(f'whatsapp_webhook_rejected_total{{reason="{reason}"}} {count}')
        family("whatsapp_queue_depth", "gauge", "Acknowledged messages not yet handled.")
        lines.append(f"whatsapp_queue_depth {self.queue_depth()}")
        family("whatsapp_dedup_entries", "gauge", "Message ids held in memory for dedup.")
        lines.append(f"whatsapp_dedup_entries {self.dedup_entries()}")
        if self.ingress:
            family(
                "whatsapp_messages_relayed_total",
                "counter",
                "Acknowledged messages handed to rasa run by the ingress.",
            )
            lines.append(f"whatsapp_messages_relayed_total {self.messages_relayed}")
            family(
                "whatsapp_relay_failures_total", "counter", "Relay attempts that failed, by reason."
            )
            for reason, count in sorted(self.relay_failures.items()):
                lines.append(f'whatsapp_relay_failures_total{{reason="{reason}"}} {count}')
        else:
            family("whatsapp_messages_handled_total", "counter", "User messages handed to Rasa.")
            lines.append(f"whatsapp_messages_handled_total {self.messages_handled}")
            family("whatsapp_handling_errors_total", "counter", "User messages whose turn failed.")
            lines.append(f"whatsapp_handling_errors_total {self.handling_errors}")
            family("whatsapp_silent_turns_total", "counter", "Turns with no bot response.")
            lines.append(f"whatsapp_silent_turns_total {self.silent_turns}")
            family(
                "whatsapp_messages_adopted_total",
                "counter",
                "Acknowledged messages taken over from a process that stopped.",
            )
            lines.append(f"whatsapp_messages_adopted_total {self.messages_adopted}")
            family("whatsapp_messages_sent_total", "counter", "Messages accepted by the provider.")
            lines.append(f"whatsapp_messages_sent_total {self.messages_sent}")
            family("whatsapp_send_retries_total", "counter", "Send attempts retried.")
            lines.append(f"whatsapp_send_retries_total {self.send_retries}")
            family(
                "whatsapp_handling_latency_seconds",
                "histogram",
                "Time from webhook receipt to the end of the bot's turn.",
            )
            for bound, count in zip(LATENCY_BUCKETS, self.latency_buckets, strict=True):
                lines.append(f'whatsapp_handling_latency_seconds_bucket{{le="{bound}"}} {count}')
            lines.append(
                f'whatsapp_handling_latency_seconds_bucket{{le="+Inf"}} {self.latency_count}'
            )
            lines.append(f"whatsapp_handling_latency_seconds_sum {self.latency_sum:.6f}")
            lines.append(f"whatsapp_handling_latency_seconds_count {self.latency_count}")
        return "\n".join(lines) + "\n"
