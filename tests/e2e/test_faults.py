"""Faults a real `rasa run` survives: WhatsApp down for 30 s, SIGTERM with messages queued."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import cloud_stack
from tests.e2e.test_cloud_e2e import text_webhook
from tests.support.stack import write_endpoints

pytestmark = pytest.mark.e2e


def test_graph_api_down_for_30_seconds_replies_arrive_after_retries_in_order(
    trained_model: Path, tmp_path: Path
) -> None:
    endpoints = write_endpoints(tmp_path / "endpoints.yml", None)
    sender = "5561944443333"
    with cloud_stack(trained_model, endpoints, "rasa-graph-down") as stack:
        stack.graph.down_until = time.monotonic() + 30
        for i, text in enumerate(["oi", "você é um robô?", "tchau"]):
            assert stack.post_webhook(text_webhook(f"wamid.DOWN{i}", text, sender)) == 200
        sent = stack.wait_for_sent(sender, 3, timeout=150)
    assert time.monotonic() >= stack.graph.down_until
    kinds = [b.get("interactive", {}).get("type") or b["type"] for b in sent]
    assert kinds == ["list", "text", "text"]  # greeting list, bot challenge, goodbye
    assert sent[2]["text"]["body"].startswith("Até logo")
    refused = [r for r in stack.graph.requests if not r["accepted"] and "to" in (r["body"] or {})]
    assert refused, "the outage should have refused the first attempts"


def test_sigterm_drains_the_acknowledged_messages_before_exit(
    trained_model: Path, tmp_path: Path
) -> None:
    endpoints = write_endpoints(tmp_path / "endpoints.yml", None)
    senders = [f"55619222{i:05d}" for i in range(12)]
    with cloud_stack(trained_model, endpoints, "rasa-sigterm") as stack:
        for i, sender in enumerate(senders):
            assert stack.post_webhook(text_webhook(f"wamid.TERM{i}", "oi", sender)) == 200
        stack.rasa.popen.send_signal(signal.SIGTERM)
        code = stack.rasa.popen.wait(timeout=90)
        answered = {str(b["to"]).lstrip("+") for b in stack.graph.sent}
    assert code is not None
    assert answered == set(senders)
