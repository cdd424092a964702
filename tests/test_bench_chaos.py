"""The chaos figure's parts: the flood gets a 4xx for every hostile kind from a real
ingress, and the figure is computed from the run's own segments."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from bench.chaos import FLOOD_CONNECTIONS, STAGE, summary
from bench.flood import Flood
from tests.channel_harness import serve_channel
from tests.support.stack import ROOT
from tests.test_ingress import eventually, serve_ingress

KINDS = {"compressed", "unsigned", "bad_signature", "oversized", "nested"}


async def test_the_flood_gets_its_4xx_for_every_kind_and_nothing_reaches_rasa() -> None:
    async with serve_channel() as rasa, serve_ingress(rasa.url) as ingress:
        flood = Flood(ingress.url, connections=2)
        running = asyncio.create_task(flood.run())
        await eventually(lambda: {kind for kind, _ in flood.answers} == KINDS, 30.0)
        flood.stopping.set()
        result = await running
        await asyncio.sleep(0.1)
        assert rasa.agent.messages == []
    outcomes = {kind: set(by) for kind, by in result["statuses"].items()}
    # A body too large to read: the connection is closed, maybe before the 413 is read.
    assert outcomes.pop("oversized") <= {"413", "reset"}
    assert outcomes == {
        "compressed": {"415"},
        "unsigned": {"401"},
        "bad_signature": {"403"},
        "nested": {"403"},
    }
    assert result["requests"] == sum(n for s in result["statuses"].values() for n in s.values())


def segment(flood: bool, p99: float, seconds: float, hostile: int = 0) -> dict[str, Any]:
    """20 acks (19 of 1 ms and one of ``p99``) and 100 answers in ``seconds``."""
    counts = {"requests": hostile, "seconds": 10.0, "statuses": {"nested": {"403": hostile}}}
    return {
        "flood": counts if flood else None,
        "acks": {"latencies_ms": [1.0] * 19 + [p99], "unanswered": 0, "statuses": {"200": 20}},
        "closed": {"messages": 100, "seconds": seconds, "failures": 0},
    }


def test_the_figure_pools_each_condition_and_reports_each_round() -> None:
    segments = [
        segment(False, 4.0, 2.0),
        segment(True, 4.4, 2.2, hostile=3000),
        segment(True, 4.8, 2.0, hostile=3000),
        segment(False, 4.0, 2.0),
        segment(False, 4.0, 2.0),
        segment(True, 6.0, 2.0, hostile=3000),
        segment(True, 4.0, 2.0, hostile=3000),
        segment(False, 4.0, 2.0),
    ]
    result = summary(segments, per_round=4)
    result["flood"]["refusals"] = {"delayed": 12000}  # read from the ingress's /metrics
    assert result["calm"] == {
        "acks": 80,
        "ack_p99_ms": 4.0,
        "messages": 400,
        "throughput_per_s": 50.0,
    }
    assert result["flood"]["ack_p99_ms"] == 6.0 and result["flood"]["messages"] == 400
    assert result["flood"]["rate_per_s"] == 300.0 and result["flood"]["statuses"] == {"403": 12000}
    assert result["ack_p99_ratio"] == 1.5
    assert result["throughput_ratio"] == round(400 / 8.2 / 50, 3)
    assert result["round_ack_ratios"] == [1.2, 1.5]
    assert result["round_throughput_ratios"] == [round(200 / 4.2 / 50, 3), 1.0]
    checks = STAGE.checks(result)
    assert checks == {
        "chaos: ack p99 under the flood <= 1.2x calm": False,
        "chaos: throughput under the flood >= calm/1.2": True,
        "chaos: every hostile request refused (4xx, or reset mid-body)": True,
        "chaos: every refusal held by the tarpit, none at once": True,
        "chaos: every citizen's message answered": True,
    }
    [row] = STAGE.rows(result)
    assert "each refusal held by the ingress's tarpit: 12000 delayed;" in row
    assert (
        "(300/s of compressed, unsigned, forged, oversized and nested bodies, 12000 × 403;" in row
    )
    assert (
        "| ack p99 **1.5** (rounds: 1.2, 1.5); throughput **0.976** (rounds: 0.952, 1.0) |" in row
    )


REFUSED = "chaos: every hostile request refused (4xx, or reset mid-body)"


def test_a_hostile_request_taken_failed_or_unanswered_fails_the_figure() -> None:
    for outcome, holds in (("413", True), ("reset", True), ("500", False), ("200", False)):
        flooded = segment(True, 1.0, 2.0, hostile=10)
        flooded["flood"]["statuses"]["oversized"] = {"413": 9, outcome: 1}
        result = summary([segment(False, 1.0, 2.0), flooded], per_round=2)
        assert STAGE.checks(result)[REFUSED] is holds, outcome
    for outcome in ("timeout", "error"):
        flooded = segment(True, 1.0, 2.0, hostile=10)
        flooded["flood"]["statuses"]["oversized"] = {"413": 9, outcome: 1}
        result = summary([segment(False, 1.0, 2.0), flooded], per_round=2)
        assert STAGE.checks(result)[REFUSED] is False, outcome
    only_resets = segment(True, 1.0, 2.0, hostile=10)
    only_resets["flood"]["statuses"] = {"oversized": {"reset": 10}}
    result = summary([segment(False, 1.0, 2.0), only_resets], per_round=2)
    assert STAGE.checks(result)[REFUSED] is False  # the ingress must have answered something


TARPIT = "chaos: every refusal held by the tarpit, none at once"


def test_refusals_answered_at_once_or_not_counted_fail_the_figure() -> None:
    result = summary([segment(False, 1.0, 2.0), segment(True, 1.0, 2.0, hostile=10)], 2)
    assert STAGE.checks(result)[TARPIT] is False  # no count read from the ingress
    result["flood"]["refusals"] = {"delayed": 8, "at_once": 2}
    assert STAGE.checks(result)[TARPIT] is False
    result["flood"]["refusals"] = {"delayed": 10}
    assert STAGE.checks(result)[TARPIT] is True


def test_the_flood_has_as_many_connections_as_nginx_lets_one_address_hold() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    limit = re.search(r"limit_conn webhook_clients (\d+);", conf)
    assert limit is not None and int(limit.group(1)) == FLOOD_CONNECTIONS
