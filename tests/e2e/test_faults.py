"""Faults a real `rasa run` survives, webhooks straight to it (no ingress, the turn thread on,
as the default configuration runs it): WhatsApp down for 30 s with its queue full, and
SIGTERM with acknowledged messages still waiting for WhatsApp."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import WhatsAppStack, cloud_stack
from tests.e2e.test_cloud_e2e import text_webhook
from tests.support.stack import write_endpoints

pytestmark = pytest.mark.e2e


def until(check: Any, timeout: float, what: str) -> Any:
    """Call ``check`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen in {timeout:.0f}s")


def answered(stack: WhatsAppStack) -> Counter[str]:
    """How many messages each number received."""
    return Counter(str(b["to"]).lstrip("+") for b in stack.graph.sent)


def test_graph_api_down_for_30_seconds_the_queue_fills_then_replies_arrive_in_order(
    trained_model: Path, tmp_path: Path
) -> None:
    endpoints = write_endpoints(tmp_path / "endpoints.yml", None)
    sender, refused = "5561944443333", "5561944445555"
    settings = {"WPP_QUEUE_SIZE": "3"}  # three turns waiting for WhatsApp fill it
    with cloud_stack(trained_model, endpoints, "rasa-graph-down", settings) as stack:
        stack.graph.down_until = time.monotonic() + 30
        for i, text in enumerate(["oi", "você é um robô?", "tchau"]):
            assert stack.post_webhook(text_webhook(f"wamid.DOWN{i}", text, sender)) == 200
        # The queue is full: a fourth message is refused (503) and Meta redelivers it.
        assert stack.post_webhook(text_webhook("wamid.FULL", "oi", refused)) == 503
        sent = stack.wait_for_sent(sender, 3, timeout=150)
        assert time.monotonic() >= stack.graph.down_until
        # The redelivery is accepted once there is room: the refusal left no claim behind.
        until(
            lambda: stack.post_webhook(text_webhook("wamid.FULL", "oi", refused)) == 200,
            20,
            "the redelivery accepted",
        )
        stack.wait_for_sent(refused, 1)
        time.sleep(3)  # and nothing more arrives
        assert answered(stack) == {sender: 3, refused: 1}
    kinds = [b.get("interactive", {}).get("type") or b["type"] for b in sent]
    assert kinds == ["list", "text", "text"]  # greeting list, bot challenge, goodbye
    assert sent[2]["text"]["body"].startswith("Até logo")
    failed = [r for r in stack.graph.requests if not r["accepted"] and "to" in (r["body"] or {})]
    assert failed, "the outage should have refused the first attempts"


def test_sigterm_refuses_new_webhooks_and_answers_the_acknowledged_before_exit(
    trained_model: Path, tmp_path: Path
) -> None:
    endpoints = write_endpoints(tmp_path / "endpoints.yml", None)
    senders = [f"55619222{i:05d}" for i in range(12)]
    late = "5561922299999"
    with cloud_stack(trained_model, endpoints, "rasa-sigterm") as stack:
        # WhatsApp is down for 5 s: the replies wait in retries, so the drain takes a while.
        stack.graph.down_until = time.monotonic() + 5
        for i, sender in enumerate(senders):
            assert stack.post_webhook(text_webhook(f"wamid.TERM{i}", "oi", sender)) == 200
        stack.rasa.popen.send_signal(signal.SIGTERM)
        _, health = until(
            lambda: (h := stack.health())[0] == 503 and h, 10, "/health 503 while draining"
        )
        assert health["accepting"] is False and health["queue_depth"] > 0
        # Still listening while it drains, but refusing: Meta redelivers to another process.
        assert stack.post_webhook(text_webhook("wamid.LATE", "oi", late)) == 503
        code = stack.rasa.popen.wait(timeout=90)
    assert code == 0
    # All of them, once each; not `late`.
    assert answered(stack) == {sender: 1 for sender in senders}, stack.graph.requests
