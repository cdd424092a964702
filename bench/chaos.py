"""The chaos figure: citizens' ack p99 and answer throughput while a flood of hostile
requests hits the ingress, against the same measured calm, in the same stage.

A stack of its own (``rasa run`` and the ingress in front of it, as deployed). Segments
alternate calm ▸ flood ▸ flood ▸ calm (smoke: calm ▸ flood); in each, the acker (a process
that only sends webhooks and times their acks) sends citizens' messages at a fixed rate,
then the load generator runs a closed loop of citizens for the answer throughput. During a
flood segment a third process (``python -m bench.flood``) keeps connections to the ingress
busy with hostile requests (compressed, unsigned, forged signature, oversized, deeply
nested), each sent as soon as the last one was answered: the ingress's maximum rate. The
ingress answers each of them about ``WPP_REFUSAL_DELAY_MS`` (1 s) late
(``inbound/tarpit.py``) and at most ``WPP_REFUSAL_RATE`` (20) a second in all, so that rate
is about 20 a second; 64 connections is what one address can hold through
``deploy/nginx.conf`` (``limit_conn``).

The flood process runs at ``nice 10``: in production the attacker's CPU is not the server's,
so here its own work must not take the CPU the stack needs; what the ingress spends on
refusing it does, and that is what the figure measures.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.drive import TEXT, acked, call, metrics_of
from bench.loadgen import percentile
from tests.support.stack import (
    ROOT,
    VENV_BIN,
    Proc,
    free_port,
    start_ingress,
    start_process,
    start_rasa,
)

if TYPE_CHECKING:
    from bench.stages import Context

TARGET = 1.2  # flood/calm ack p99 at most, calm/flood throughput at most
FLOOD_CONNECTIONS = 64  # what deploy/nginx.conf lets one address hold
FLOOD_NICE = 10


@dataclass(frozen=True)
class Size:
    rounds: int  # of calm ▸ flood ▸ flood ▸ calm
    ack_rate: float
    ack_count: int
    users: int
    messages: int


FULL = Size(rounds=2, ack_rate=20, ack_count=200, users=8, messages=120)
SMOKE = Size(rounds=1, ack_rate=10, ack_count=20, users=4, messages=10)


def order(smoke: bool) -> tuple[bool, ...]:
    """One round's segments, True for a flood: A-B-B-A, so drift hits both alike."""
    return (False, True) if smoke else (False, True, True, False)


def start_flood(target: str, out: Path, env: dict[str, str]) -> tuple[Proc, Path]:
    """The flood process, once it is flooding; where it writes its counts when stopped."""
    counts = out / "flood.json"
    counts.unlink(missing_ok=True)
    argv = ["nice", "-n", str(FLOOD_NICE), str(VENV_BIN / "python"), "-m", "bench.flood"]
    argv += ["--target", target, "--connections", str(FLOOD_CONNECTIONS), "--out", str(counts)]
    proc = start_process("bench-flood", argv, env=env)
    deadline = time.monotonic() + 60
    while "flooding" not in proc.log_text():
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"the flood did not start:\n{proc.log_text()[-3000:]}")
        time.sleep(0.1)
    time.sleep(1.0)  # every connection busy before the citizens come
    return proc, counts


def stop_flood(proc: Proc, counts: Path) -> dict[str, Any]:
    proc.stop()  # SIGTERM: it finishes the requests in flight and writes its counts
    if not counts.exists():
        raise RuntimeError(f"the flood wrote no counts:\n{proc.log_text()[-3000:]}")
    result: dict[str, Any] = json.loads(counts.read_text(encoding="utf-8"))
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def segment(ctx: Context, door: Proc, size: Size, flood: bool) -> dict[str, Any]:
    """Citizens' acks at a fixed rate, then a closed loop of citizens; under a flood or not;
    and the CPU the server at the door (the ingress) used meanwhile."""
    target = door.url
    flooder = start_flood(target, ctx.out, ctx.env) if flood else None
    started, used = time.monotonic(), cpu_seconds(door.popen.pid)
    try:
        acks = acked(ctx.acker, ctx.loadgen, target, size.ack_rate, size.ack_count, raw=True)
        spec = {"scenario": "closed", "target": target, "channel": "whatsapp", "text": TEXT}
        loop = call(ctx.loadgen, {**spec, "users": size.users, "messages": size.messages})
    finally:
        used = cpu_seconds(door.popen.pid) - used
        seconds = time.monotonic() - started
        hostile = stop_flood(*flooder) if flooder else None
    door_cpu = {"cpu_s": round(used, 3), "seconds": round(seconds, 2)}
    return {"flood": hostile, "acks": acks, "closed": loop, "door": door_cpu}


def pooled(segments: list[dict[str, Any]]) -> dict[str, Any]:
    """Ack p99 over every ack of these segments, and throughput over their closed loops."""
    acks = [ms for s in segments for ms in s["acks"]["latencies_ms"]]
    messages = sum(s["closed"]["messages"] for s in segments)
    return {
        "acks": len(acks),
        "ack_p99_ms": round(percentile(acks, 99), 2),
        "messages": messages,
        "throughput_per_s": round(messages / sum(s["closed"]["seconds"] for s in segments), 2),
    }


def ratios(calm: dict[str, Any], flooded: dict[str, Any]) -> tuple[float, float]:
    """flood/calm ack p99, flood/calm throughput."""
    ack = round(flooded["ack_p99_ms"] / max(calm["ack_p99_ms"], 0.01), 3)
    return ack, round(flooded["throughput_per_s"] / calm["throughput_per_s"], 3)


def summary(segments: list[dict[str, Any]], per_round: int) -> dict[str, Any]:
    calm = pooled([s for s in segments if s["flood"] is None])
    flooded = pooled([s for s in segments if s["flood"] is not None])
    floods = [s["flood"] for s in segments if s["flood"] is not None]
    statuses: Counter[str] = Counter()
    for hostile in floods:
        for by_status in hostile["statuses"].values():
            statuses.update(by_status)
    rounds = [segments[i : i + per_round] for i in range(0, len(segments), per_round)]
    round_ratios = [
        ratios(
            pooled([s for s in r if s["flood"] is None]),
            pooled([s for s in r if s["flood"] is not None]),
        )
        for r in rounds
    ]
    ack_ratio, throughput_ratio = ratios(calm, flooded)
    for condition, group in ((calm, False), (flooded, True)):
        doors = [s["door"] for s in segments if (s["flood"] is not None) is group and "door" in s]
        if doors:  # the door's CPU, as a share of one core
            condition["door_cpu"] = round(
                sum(d["cpu_s"] for d in doors) / sum(d["seconds"] for d in doors), 3
            )
    return {
        "calm": calm,
        "flood": {
            **flooded,
            "connections": FLOOD_CONNECTIONS,
            "nice": FLOOD_NICE,
            "requests": sum(h["requests"] for h in floods),
            "rate_per_s": round(
                sum(h["requests"] for h in floods) / sum(h["seconds"] for h in floods), 1
            ),
            "statuses": dict(sorted(statuses.items())),
            "by_kind": [h["statuses"] for h in floods],
        },
        "ack_p99_ratio": ack_ratio,
        "throughput_ratio": throughput_ratio,
        "round_ack_ratios": [a for a, _ in round_ratios],
        "round_throughput_ratios": [t for _, t in round_ratios],
        "unanswered": sum(s["acks"]["unanswered"] for s in segments),
        "failures": sum(s["closed"]["failures"] for s in segments),
        "citizen_statuses": dict(
            sum((Counter(s["acks"]["statuses"]) for s in segments), Counter())
        ),
    }


def refusals(url: str) -> dict[str, int]:
    """How the server answered its refusals before authentication (``delayed`` by the
    tarpit, or ``at_once`` beyond its hold limit), from its ``/metrics``."""
    text = metrics_of(url)
    found = re.findall(r'^whatsapp_webhook_refusals_total\{answered="(\w+)"\} (\d+)$', text, re.M)
    return {answered: int(count) for answered, count in found}


def refused(statuses: dict[str, int]) -> bool:
    """Every hostile request got a 4xx or, for a body too large to read, a closed connection
    while it was still being sent; none was taken (2xx), failed the server (5xx) or went
    unanswered (timeout)."""
    return any(s.isdigit() and 400 <= int(s) < 500 for s in statuses) and all(
        s == "reset" or (s.isdigit() and 400 <= int(s) < 500) for s in statuses
    )


class Chaos:
    name = "chaos"

    def run(self, ctx: Context) -> dict[str, Any]:
        size = SMOKE if ctx.smoke else FULL
        # As in the other stages: behind the ingress, rasa run runs turns on its own loop.
        turn_thread = os.environ.get("WPP_TURN_THREAD", "false")
        rasa_env = ctx.env if ctx.direct else {"WPP_TURN_THREAD": turn_thread, **ctx.env}
        with start_rasa(
            free_port(),
            rasa_env,
            credentials=ROOT / "credentials.yml",
            model=ctx.model,
            name="bench-chaos-rasa",
        ) as rasa:
            front = (
                nullcontext(rasa)
                if ctx.direct
                else start_ingress(free_port(), rasa.url, ctx.env, name="bench-chaos-ingress")
            )
            with front as door:
                spec = {"scenario": "closed", "target": door.url, "channel": "whatsapp"}
                call(ctx.loadgen, {**spec, "text": TEXT, "users": size.users, "messages": 20})
                segments = [
                    segment(ctx, door, size, flood)
                    for _ in range(size.rounds)
                    for flood in order(ctx.smoke)
                ]
                held = refusals(door.url)
        result = summary(segments, len(order(ctx.smoke)))
        result["flood"]["refusals"] = held
        for s in segments:
            s["acks"].pop("latencies_ms")  # pooled in the summary; too long for results.json
        result["rounds"] = size.rounds
        result["segments"] = segments
        return result

    def checks(self, result: dict[str, Any]) -> dict[str, bool]:
        statuses = result["flood"]["statuses"]
        return {
            f"chaos: ack p99 under the flood <= {TARGET}x calm": result["ack_p99_ratio"] <= TARGET,
            f"chaos: throughput under the flood >= calm/{TARGET}": result["throughput_ratio"]
            >= 1 / TARGET,
            "chaos: every hostile request refused (4xx, or reset mid-body)": refused(statuses),
            "chaos: every refusal held by the tarpit, none at once": set(
                result["flood"].get("refusals", {})
            )
            == {"delayed"},
            "chaos: every citizen's message answered": result["unanswered"] == 0
            and result["failures"] == 0,
        }

    def rows(self, result: dict[str, Any]) -> list[str]:
        calm, flood = result["calm"], result["flood"]
        outcomes = ", ".join(f"{n} × {status}" for status, n in flood["statuses"].items())
        held = ", ".join(f"{n} {how}" for how, n in sorted(flood.get("refusals", {}).items()))
        door = (
            f"; the ingress's CPU: {calm['door_cpu']:.1%} of a core calm,"
            f" {flood['door_cpu']:.1%} flooded"
            if "door_cpu" in calm and "door_cpu" in flood
            else ""
        )
        return [
            f"| Chaos: citizens while hostile requests flood the ingress ({flood['rate_per_s']:g}/s"
            f" of compressed, unsigned, forged, oversized and nested bodies, {outcomes};"
            f" {flood['connections']} connections at nice {flood['nice']}; each refusal held"
            f" by the ingress's tarpit: {held}; calm and flood alternating{door}) |"
            f" ack p99 {flood['ack_p99_ms']} ms, {flood['throughput_per_s']}/s |"
            f" calm: ack p99 {calm['ack_p99_ms']} ms, {calm['throughput_per_s']}/s |"
            f" ack p99 **{result['ack_p99_ratio']}** (rounds:"
            f" {', '.join(str(r) for r in result['round_ack_ratios'])}); throughput"
            f" **{result['throughput_ratio']}** (rounds:"
            f" {', '.join(str(r) for r in result['round_throughput_ratios'])}) |"
            f" ack ≤ {TARGET}×, throughput ≥ 1/{TARGET} |"
        ]


STAGE = Chaos()
