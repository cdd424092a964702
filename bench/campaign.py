"""``make bench``'s campaign figure: the campaign command's throughput against its limit,
and what a running campaign does to the replies of citizens who are chatting.

The real campaign command (``python -m bot.addons.whatsapp.proactive.campaign send``, a
separate process on a real redis-server) sends a template to a CSV at
``WPP_CAMPAIGN_RATE_PER_SECOND`` to a fake Graph API that notes when each message arrived
(this process, in a thread). The throughput is measured there, from the arrivals: first to
last, and the busiest one-second window. Meanwhile citizens chat with the bot in a closed
loop (the load generator; webhooks through the ingress to ``rasa run``, each reply waited
for at the load generator's fake Graph API), and their reply latency is compared with the
same loop without a campaign, run before and after it (A-B-A, so drift hits both).
"""

from __future__ import annotations

import bisect
import json
import os
import resource
import time
import urllib.request
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bench.loadgen import percentile
from tests.fakes.graph import FakeGraph, running_graph
from tests.support.redis import redis_server
from tests.support.stack import (
    VENV_BIN,
    Proc,
    free_port,
    start_ingress,
    start_process,
    start_rasa,
)
from tests.support.threaded import InThread

if TYPE_CHECKING:
    from bench.stages import Context

TEXT = "você é um robô?"  # the same turn as the other chat figures
RATE = 40.0  # messages/s: the campaign's configured limit
USERS = 4  # citizens chatting at once


@dataclass(frozen=True)
class Size:
    recipients: int  # at RATE: 15 s in full, 3 s in smoke
    baseline_messages: int  # chat turns without a campaign, before and again after


FULL = Size(600, 60)
SMOKE = Size(120, 12)


@dataclass
class ArrivalGraph(FakeGraph):
    """The fake Graph API, noting when each accepted template message arrived."""

    arrivals: list[float] = field(default_factory=list)

    async def messages(self, request: web.Request) -> web.Response:
        arrived = time.time()
        answer = await super().messages(request)
        if answer.status == 200 and self.requests[-1]["body"].get("type") == "template":
            self.arrivals.append(arrived)
        return answer


def throughput(arrivals: list[float], rate: float) -> dict[str, Any]:
    """Messages/s from first to last arrival, its ratio to ``rate``, and the most that
    arrived in any one second (a sliding window, not calendar seconds)."""
    times = sorted(arrivals)
    if len(times) < 2:
        return {"sent": len(times), "seconds": 0.0, "per_s": 0.0, "ratio": 0.0, "busiest_1s": 0}
    seconds = times[-1] - times[0]
    per_s = (len(times) - 1) / seconds
    busiest = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    return {
        "sent": len(times),
        "seconds": round(seconds, 2),
        "per_s": round(per_s, 2),
        "ratio": round(per_s / rate, 3),
        "busiest_1s": busiest,
    }


def chat(loadgen: Proc, target: str, messages: int) -> dict[str, Any]:
    """A closed loop of ``USERS`` citizens through the WhatsApp channel, raw latencies."""
    spec: dict[str, Any] = {"scenario": "closed", "target": target, "channel": "whatsapp"}
    spec["text"] = TEXT
    spec.update({"users": USERS, "messages": messages, "raw": True})
    request = urllib.request.Request(
        f"{loadgen.url}/run",
        data=json.dumps(spec).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as answer:
        result: dict[str, Any] = json.loads(answer.read())
    return result


def latency(runs: list[dict[str, Any]]) -> dict[str, Any]:
    values = [v for run in runs for v in run["latencies_ms"]]
    return {
        "turns": len(values),
        "failures": sum(run["failures"] for run in runs),
        "p50_ms": round(percentile(values, 50), 2),
        "p99_ms": round(percentile(values, 99), 2),
    }


def write_csv(path: Path, count: int) -> Path:
    lines = ["recipient,nome"] + [f"556198{i:07d},Cidadão {i}" for i in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class CampaignStage:
    name = "campaign"

    def run(self, ctx: Context) -> dict[str, Any]:
        size = SMOKE if ctx.smoke else FULL
        work = ctx.out / "campaign"
        work.mkdir(parents=True, exist_ok=True)
        for old in work.glob("*.db"):
            old.unlink()  # a fresh campaign and conversation store each run
        rasa_env = {**ctx.env, "WPP_PROACTIVE_DB_URL": f"sqlite:///{work / 'rasa.db'}"}
        if not ctx.direct:  # as bench/__main__.py runs rasa behind the ingress
            rasa_env = {"WPP_TURN_THREAD": os.environ.get("WPP_TURN_THREAD", "false"), **rasa_env}
        token = ctx.env["WPP_AUTHORIZATION_TOKEN"]
        with (
            redis_server() as redis,
            InThread(lambda: running_graph(ArrivalGraph(token=token))) as graph,
            start_rasa(free_port(), rasa_env, model=ctx.model, name="bench-campaign-rasa") as rasa,
            (
                nullcontext(rasa)
                if ctx.direct
                else start_ingress(free_port(), rasa.url, rasa_env, name="bench-campaign-ingress")
            ) as front,
        ):
            assert isinstance(graph, ArrivalGraph)
            chat(ctx.loadgen, front.url, 2 * USERS)  # warm-up
            before = chat(ctx.loadgen, front.url, size.baseline_messages)
            campaign_env = {
                **ctx.env,
                "WPP_API_BASE_URL": graph.url,
                "REDIS_URL": redis.url,
                "WPP_PROACTIVE_DB_URL": f"sqlite:///{work / 'campaign.db'}",
                "WPP_CAMPAIGN_RATE_PER_SECOND": f"{RATE:g}",
                "WPP_DAILY_RECIPIENT_LIMIT": str(10 * size.recipients),
            }
            argv = [str(VENV_BIN / "python"), "-m", "bot.addons.whatsapp.proactive.campaign"]
            argv += ["send", "--id", "bench", "--template", "lembrete_vacina"]
            argv += ["--settle", "0", "--quiet", str(write_csv(work / "r.csv", size.recipients))]
            during: list[dict[str, Any]] = []
            # Its CPU time: the children reaped from here on are the campaign process alone.
            reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
            with start_process("bench-campaign", argv, env=campaign_env) as process:
                deadline = time.monotonic() + 120
                while not graph.arrivals and process.popen.poll() is None:
                    assert time.monotonic() < deadline, "the campaign sent nothing"
                    time.sleep(0.02)
                chat_started = time.time()
                # Short closed loops until the campaign ends, so every turn meets it.
                while process.popen.poll() is None:
                    during.append(chat(ctx.loadgen, front.url, 2 * USERS))
                chat_ended = time.time()
                exit_status = process.popen.wait(timeout=60)
                used = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = used.ru_utime + used.ru_stime - reaped.ru_utime - reaped.ru_stime
            after = chat(ctx.loadgen, front.url, size.baseline_messages)
            arrivals = list(graph.arrivals)
        sent = throughput(arrivals, RATE)
        first, last = (min(arrivals), max(arrivals)) if arrivals else (0.0, 0.0)
        overlap = max(0.0, min(chat_ended, last) - max(chat_started, first))
        without, with_ = latency([before, after]), latency(during)
        return {
            "rate_limit_per_s": RATE,
            "recipients": size.recipients,
            "exit_status": exit_status,
            "campaign_cpu_s": round(cpu, 2),  # the campaign process's own CPU time
            **sent,
            "chat": {
                "users": USERS,
                "without_campaign": without,
                "with_campaign": with_,
                "in_campaign_share": round(overlap / max(chat_ended - chat_started, 1e-9), 3),
                "p50_ratio": round(with_["p50_ms"] / max(without["p50_ms"], 0.01), 2),
                "p99_ratio": round(with_["p99_ms"] / max(without["p99_ms"], 0.01), 2),
            },
        }

    def checks(self, result: dict[str, Any]) -> dict[str, bool]:
        chat = result["chat"]
        return {
            "campaign: every recipient sent": result["exit_status"] == 0
            and result["sent"] == result["recipients"],
            "campaign: 0.9 <= msgs/s / limit <= 1.02": 0.9 <= result["ratio"] <= 1.02,
            "campaign: no second over the limit": result["busiest_1s"]
            <= result["rate_limit_per_s"],
            "campaign: chat replies none lost": chat["with_campaign"]["failures"]
            == chat["without_campaign"]["failures"]
            == 0,
            "campaign: chat p99 with/without < 2": chat["p99_ratio"] < 2,
        }

    def rows(self, result: dict[str, Any]) -> list[str]:
        chat = result["chat"]
        with_, without = chat["with_campaign"], chat["without_campaign"]
        return [
            f"| Campaign throughput ({result['sent']} templates, the campaign command on Redis)"
            f" | {result['per_s']}/s, busiest second {result['busiest_1s']} |"
            f" limit {result['rate_limit_per_s']:g}/s | **{result['ratio']}** |"
            " 0.9–1.02, no second over the limit |",
            f"| Chat replies during that campaign ({chat['users']} users,"
            f" {with_['turns']} turns) | p50 {with_['p50_ms']} ms, p99 {with_['p99_ms']} ms |"
            f" no campaign ({without['turns']} turns, before and after): p50"
            f" {without['p50_ms']} ms, p99 {without['p99_ms']} ms | p50 **{chat['p50_ratio']}**,"
            f" p99 **{chat['p99_ratio']}** (the campaign process: {result['campaign_cpu_s']} s"
            f" CPU in {result['seconds']} s) | none lost, p99 < 2 |",
        ]


STAGE = CampaignStage()
