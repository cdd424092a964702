"""Driving the load generator's processes from the orchestrator and from its stages
(``bench/<name>.py`` cannot import ``bench.__main__``: run as ``python -m bench`` it is
``__main__``, and importing it again would run a second copy)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from tests.support.stack import Proc

TEXT = "você é um robô?"  # one intent, one text reply: the same turn on every channel
ACKER_PREFIX = "6"  # the acker's senders: 55<run>6<index>, never one of the load generator's
SILENT = ("latencies_ms", "accepted_senders")  # too long to print


def metrics_of(url: str) -> str:
    """The channel's ``/metrics`` page served at ``url`` (``rasa run`` or the ingress)."""
    with urllib.request.urlopen(f"{url}/webhooks/whatsapp/metrics", timeout=10) as answer:
        return str(answer.read().decode("utf-8"))


def call(proc: Proc, spec: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario on a load generator process (``POST /run``); its measurements."""
    request = urllib.request.Request(
        f"{proc.url}/run",
        data=json.dumps(spec).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=1800) as answer:
        result: dict[str, Any] = json.loads(answer.read())
    shown = {k: v for k, v in result.items() if k not in SILENT}
    print(f"  {spec['scenario']:>6} {spec.get('channel', '')}: {shown}", flush=True)
    return result


def acked(
    acker: Proc,
    loadgen: Proc,
    target: str,
    rate: float,
    count: int,
    text: str = TEXT,
    raw: bool = False,
) -> dict[str, Any]:
    """``count`` webhooks at ``rate`` to ``target``, their acks timed by the acker (a process
    that does nothing else), then the load generator's word (it is the Graph API the bot
    answers on) on whether each acknowledged message was answered. ``raw``: every ack's
    time too (``latencies_ms``), to pool several runs."""
    spec = {"scenario": "open", "target": target, "text": text, "rate": rate, "count": count}
    sent = call(acker, {**spec, "wait": False, "prefix": ACKER_PREFIX, "raw": raw})
    senders = sent.pop("accepted_senders")
    answers = {"scenario": "answers", "senders": senders, "answer_timeout": 900}
    return {**sent, **call(loadgen, answers)}
