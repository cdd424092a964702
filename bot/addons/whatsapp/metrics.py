"""Counters and a latency histogram, rendered in Prometheus' text format for ``/metrics``.

Hand-written to keep the channel free of a metrics dependency; label values are never
phone numbers or secrets, only kinds, states and error codes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def label(value: object) -> str:
    """A label value from a webhook, reduced to safe characters (never breaks the format)."""
    return _LABEL_UNSAFE.sub("_", str(value))[:64]


LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A citizen's wait for an agent's first reply: seconds to an hour.
HANDOFF_WAIT_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


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
    # Refusals before authentication by how they were answered: "delayed" (held
    # WPP_REFUSAL_DELAY_MS) or "at_once" (WPP_REFUSAL_HOLD_MAX already held).
    refusals_delayed: Counter[str] = field(default_factory=Counter)
    messages_sent: int = 0
    send_retries: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_count: int = 0
    latency_sum: float = 0.0
    messages_relayed: int = 0
    relay_failures: Counter[str] = field(default_factory=Counter)
    relay_set_aside: Counter[str] = field(default_factory=Counter)
    webhook_fields: Counter[str] = field(default_factory=Counter)
    not_answered: Counter[str] = field(default_factory=Counter)
    quiet_events: Counter[str] = field(default_factory=Counter)
    reactions: Counter[str] = field(default_factory=Counter)
    reaction_feedback: Counter[str] = field(default_factory=Counter)
    handovers: Counter[str] = field(default_factory=Counter)
    preferences: Counter[tuple[str, str]] = field(default_factory=Counter)
    operator_alerts: Counter[tuple[str, str]] = field(default_factory=Counter)
    pricing: Counter[tuple[str, str, bool]] = field(default_factory=Counter)
    handoffs: Counter[str] = field(default_factory=Counter)
    handoff_ratings: Counter[str] = field(default_factory=Counter)
    handoff_wait_buckets: list[int] = field(default_factory=lambda: [0] * len(HANDOFF_WAIT_BUCKETS))
    handoff_wait_count: int = 0
    handoff_wait_sum: float = 0.0
    # Voice notes by outcome (transcribed, confirm, too_long, undecodable, no_speech,
    # timeout, unavailable, download), and the seconds of audio and of transcription
    # (their ratio is the real-time factor).
    voice_notes: Counter[str] = field(default_factory=Counter)
    voice_audio_seconds: float = 0.0
    voice_transcribe_seconds: float = 0.0
    queue_depth: Callable[[], int] = lambda: 0
    dedup_entries: Callable[[], int] = lambda: 0
    ingress: bool = False

    def observe_latency(self, seconds: float) -> None:
        self.latency_count += 1
        self.latency_sum += seconds
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency_buckets[index] += 1

    def observe_handoff_wait(self, seconds: float) -> None:
        self.handoff_wait_count += 1
        self.handoff_wait_sum += seconds
        for index, bound in enumerate(HANDOFF_WAIT_BUCKETS):
            if seconds <= bound:
                self.handoff_wait_buckets[index] += 1

    def failure(self, code: int | str) -> None:
        self.failures[str(code)] += 1

    def render(self) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        def single(name: str, kind: str, help_text: str, value: int) -> None:
            family(name, kind, help_text)
            lines.append(f"{name} {value}")

        def by_label(name: str, help_text: str, label_name: str, counts: Counter[str]) -> None:
            family(name, "counter", help_text)
            for key, count in sorted(counts.items()):
                lines.append(f'{name}{{{label_name}="{label(key)}"}} {count}')

        by_label(
            "whatsapp_events_received_total",
            "Webhook events received by kind.",
            "kind",
            self.events_received,
        )
        single(
            "whatsapp_duplicates_dropped_total",
            "counter",
            "Redelivered messages dropped.",
            self.duplicates_dropped,
        )
        by_label(
            "whatsapp_statuses_total",
            "Delivery statuses received by state.",
            "status",
            self.statuses,
        )
        by_label(
            "whatsapp_failures_total", "Failures by WhatsApp error code.", "code", self.failures
        )
        by_label(
            "whatsapp_webhook_rejected_total",
            "Webhook requests refused by reason.",
            "reason",
            self.rejected_requests,
        )
        by_label(
            "whatsapp_webhook_refusals_total",
            "Webhook refusals before authentication by how they were answered (delayed, at_once).",
            "answered",
            self.refusals_delayed,
        )
        by_label(
            "whatsapp_webhook_fields_total",
            "Webhook changes of fields other than messages, by field.",
            "field",
            self.webhook_fields,
        )
        by_label(
            "whatsapp_messages_not_answered_total",
            "User messages deliberately not answered, by reason.",
            "reason",
            self.not_answered,
        )
        by_label(
            "whatsapp_quiet_events_total",
            "Events a person would not answer (no reply), by what became of them.",
            "event",
            self.quiet_events,
        )
        by_label(
            "whatsapp_handovers_total",
            "Conversation routing handovers, by type.",
            "type",
            self.handovers,
        )
        family(
            "whatsapp_user_preferences_total",
            "counter",
            "user_preferences updates, by category and value.",
        )
        for (category, choice), count in sorted(self.preferences.items()):
            lines.append(
                f'whatsapp_user_preferences_total{{category="{label(category)}",'
                f'value="{label(choice)}"}} {count}'
            )
        family(
            "whatsapp_operator_alerts_total",
            "counter",
            "Template status and account updates, by field and event.",
        )
        for (alert_field, event), count in sorted(self.operator_alerts.items()):
            lines.append(
                f'whatsapp_operator_alerts_total{{field="{label(alert_field)}",'
                f'event="{label(event)}"}} {count}'
            )
        family(
            "whatsapp_priced_messages_total",
            "counter",
            "Delivered or read messages by Meta's pricing category, type and billable flag.",
        )
        for (category, kind, billable), count in sorted(self.pricing.items()):
            labels = (
                f'category="{label(category)}",type="{label(kind)}",'
                f'billable="{str(billable).lower()}"'
            )
            lines.append(f"whatsapp_priced_messages_total{{{labels}}} {count}")
        single(
            "whatsapp_queue_depth",
            "gauge",
            "Acknowledged messages not yet handled.",
            self.queue_depth(),
        )
        single(
            "whatsapp_dedup_entries",
            "gauge",
            "Message ids held in memory for dedup.",
            self.dedup_entries(),
        )
        if self.ingress:
            single(
                "whatsapp_messages_relayed_total",
                "counter",
                "Acknowledged messages handed to rasa run by the ingress.",
                self.messages_relayed,
            )
            by_label(
                "whatsapp_relay_failures_total",
                "Relay attempts that failed, by reason.",
                "reason",
                self.relay_failures,
            )
            by_label(
                "whatsapp_relay_set_aside_total",
                "Acknowledged messages the relay set aside, by reason (they stay in the "
                "journal, with Redis, for inspection).",
                "reason",
                self.relay_set_aside,
            )
            return "\n".join(lines) + "\n"
        by_label(
            "whatsapp_reactions_total",
            "Reactions from citizens, by sentiment (positive, negative, other, removed).",
            "sentiment",
            self.reactions,
        )
        by_label(
            "whatsapp_reaction_feedback_total",
            "Reactions that answered the feedback question, by answer.",
            "feedback",
            self.reaction_feedback,
        )
        for name, help_text, value in (
            ("messages_handled", "User messages handed to Rasa.", self.messages_handled),
            ("handling_errors", "User messages whose turn failed.", self.handling_errors),
            ("silent_turns", "Turns with no bot response.", self.silent_turns),
            (
                "messages_adopted",
                "Acknowledged messages taken over from a process that stopped.",
                self.messages_adopted,
            ),
            ("messages_sent", "Messages accepted by the provider.", self.messages_sent),
            ("send_retries", "Send attempts retried.", self.send_retries),
        ):
            single(f"whatsapp_{name}_total", "counter", help_text, value)
        family(
            "whatsapp_handling_latency_seconds",
            "histogram",
            "Time from webhook receipt to the end of the bot's turn.",
        )
        for bound, count in zip(LATENCY_BUCKETS, self.latency_buckets, strict=True):
            lines.append(f'whatsapp_handling_latency_seconds_bucket{{le="{bound}"}} {count}')
        lines.append(f'whatsapp_handling_latency_seconds_bucket{{le="+Inf"}} {self.latency_count}')
        lines.append(f"whatsapp_handling_latency_seconds_sum {self.latency_sum:.6f}")
        lines.append(f"whatsapp_handling_latency_seconds_count {self.latency_count}")
        by_label(
            "whatsapp_handoffs_total",
            "Handoffs to a human agent by outcome (started, unavailable, resolved, "
            "citizen, timeout, forward_failed).",
            "outcome",
            self.handoffs,
        )
        by_label(
            "whatsapp_handoff_ratings_total",
            "Answers to the satisfaction question after a handoff (good, fair, bad).",
            "rating",
            self.handoff_ratings,
        )
        by_label(
            "whatsapp_voice_notes_total",
            "Voice notes by outcome (transcribed, confirm, too_long, undecodable, no_speech, "
            "timeout, unavailable, download).",
            "outcome",
            self.voice_notes,
        )
        family(
            "whatsapp_voice_audio_seconds_total", "counter", "Seconds of voice notes transcribed."
        )
        lines.append(f"whatsapp_voice_audio_seconds_total {self.voice_audio_seconds:.3f}")
        family("whatsapp_voice_transcribe_seconds_total", "counter", "Seconds spent transcribing.")
        lines.append(f"whatsapp_voice_transcribe_seconds_total {self.voice_transcribe_seconds:.3f}")
        name = "whatsapp_handoff_wait_seconds"
        family(name, "histogram", "Time from a handoff to the agent's first reply.")
        for bound, count in zip(HANDOFF_WAIT_BUCKETS, self.handoff_wait_buckets, strict=True):
            lines.append(f'{name}_bucket{{le="{bound}"}} {count}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.handoff_wait_count}')
        lines.append(f"{name}_sum {self.handoff_wait_sum:.6f}")
        lines.append(f"{name}_count {self.handoff_wait_count}")
        return "\n".join(lines) + "\n"
