"""``make bench``: the channel measured on a real stack, each figure against a baseline
taken in the same run (so the ratios hold on a noisy machine).

Starts the load generator (a separate process that is both Meta's webhook sender and a
fake Graph API) and the acker (a second one that only sends webhooks and times their acks,
so that nothing else on its event loop delays them), ``rasa run`` with the trained model
and both the WhatsApp and Rasa's REST channel, the webhook ingress in front of it (the
deployment docker-compose.yml runs; with ``--direct`` webhooks go straight to ``rasa
run``), then — for scale-out — a real redis-server, two such pairs on it and a round-robin
proxy, then each stage of ``STAGES`` (``bench/chaos.py``: the ingress under a hostile
flood). Writes ``results.json`` and ``results.md`` to ``--out``.

The conversion cost is measured in the same run (pytest-benchmark on
``bench/test_conversion.py``, its JSON written to ``--out``); ``--conversion-json FILE``
reports an earlier measurement instead, and the report then says where it comes from.

``python -m bench --smoke`` runs the single-process stages and the stage modules (not
scale-out, not the conversion benchmark) for under a minute of load each (the test suite
does this); the numbers are then only a sanity check.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from bench import billing, campaign, chaos, voice
from bench.drive import TEXT, acked, call
from bench.loadgen import percentile
from scripts.endpoints import write_redis_endpoints
from tests.support.proxy import running_proxy
from tests.support.redis import redis_server
from tests.support.stack import (
    MODEL,
    ROOT,
    VENV_BIN,
    Proc,
    free_port,
    start_ingress,
    start_process,
    start_rasa,
    wait_ready,
)
from tests.support.threaded import InThread


@dataclass(frozen=True)
class Context:
    """What a stage gets: the load generator (Meta's webhook sender and a fake Graph API),
    the acker (a process that only sends webhooks and times their acks: ``bench.drive.
    acked``), the base environment of the stack, the output directory, the model, and the
    plan."""

    loadgen: Proc
    acker: Proc
    env: dict[str, str]
    out: Path
    model: Path
    smoke: bool
    direct: bool


class Stage(Protocol):
    """One figure of ``make bench`` in its own module (``bench/<name>.py``): it starts the
    stack it needs, measures against a baseline taken in the same stage, and reports."""

    name: str  # the key of its results in results.json

    def run(self, ctx: Context) -> dict[str, Any]: ...

    def checks(self, result: dict[str, Any]) -> dict[str, bool]: ...

    def rows(self, result: dict[str, Any]) -> list[str]: ...  # rows of results.md's table


# Each stage module exposes ``STAGE``; they run in this order after the single-process and
# scale-out stages, in full and smoke plans alike (a stage sizes itself by ``ctx.smoke``).
STAGES: list[Stage] = [chaos.STAGE, billing.STAGE, campaign.STAGE, voice.STAGE]


@dataclass(frozen=True)
class Plan:
    warmup: int
    users: int
    e2e_rounds: int
    e2e_messages: int
    latency_blocks: int
    latency_block_messages: int
    ack_rounds: int
    idle_rate: float
    idle_count: int
    burst_rate: float
    burst_count: int
    overload_factor: float
    overload_seconds: float
    memory_messages: int
    scale_messages: int


FULL = Plan(20, 8, 4, 150, 4, 25, 3, 10, 100, 200, 2000, 10, 30, 10_000, 400)
SMOKE = Plan(5, 4, 1, 15, 1, 5, 2, 10, 20, 100, 200, 10, 2, 300, 0)


ACKER = ("--role", "acker")  # the load generator's code, sending only


def ack_rounds(plan: Plan, acker: Proc, loadgen: Proc, target: str) -> dict[str, Any]:
    """Idle, then a burst that saturates the bot, ``plan.ack_rounds`` times: each round's
    p99s and their ratio, so the spread shows (one round can be one unlucky moment of a
    shared machine; the target holds in every round or not at all)."""
    rounds = []
    for _ in range(plan.ack_rounds):
        idle = acked(acker, loadgen, target, plan.idle_rate, plan.idle_count)
        busy = acked(acker, loadgen, target, plan.burst_rate, plan.burst_count)
        ratio = round(busy["ack_p99_ms"] / max(idle["ack_p99_ms"], 0.01), 2)
        rounds.append({"idle": idle, "busy": busy, "p99_ratio": ratio})
    return {"timed_by": "acker", "rounds": rounds}


def rounds_of(ack: dict[str, Any]) -> list[dict[str, Any]]:
    """The ack figure's rounds; a run from before there were rounds is its one round."""
    return list(ack.get("rounds") or [ack])


def metric(proc: Proc, name: str) -> int:
    with urllib.request.urlopen(f"{proc.url}/webhooks/whatsapp/metrics", timeout=10) as answer:
        text = answer.read().decode()
    match = re.search(rf"^{name} (\d+)$", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def memory_kib(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match, f"{field} not in /proc/{pid}/status"
    return int(match.group(1))


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    import rasa

    return {
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(total.group(1)) / 1024**2, 1) if total else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "rasa": rasa.__version__,
    }


def bench_credentials(out: Path) -> Path:
    """credentials.yml (the WhatsApp channel) plus Rasa's REST channel, the baseline."""
    credentials = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))
    credentials["rest"] = None
    path = out / "credentials.yml"
    path.write_text(yaml.safe_dump(credentials), encoding="utf-8")
    return path


def rasa_env(env: dict[str, str], direct: bool) -> dict[str, str]:
    """Behind the ingress, ``rasa run`` runs turns on its own loop (WPP_TURN_THREAD=false,
    as docker-compose.yml sets it) unless this run's environment says otherwise."""
    if direct:
        return env
    return {"WPP_TURN_THREAD": os.environ.get("WPP_TURN_THREAD", "false"), **env}


def fronted(rasa: Proc, env: dict[str, str], direct: bool, name: str) -> Any:
    """What Meta calls: the ingress relaying to ``rasa``, or ``rasa`` itself (--direct)."""
    if direct:
        return nullcontext(rasa)
    return start_ingress(free_port(), rasa.url, env, name=name)


def single_process(
    plan: Plan,
    loadgen: Proc,
    acker: Proc,
    env: dict[str, str],
    out: Path,
    model: Path,
    direct: bool = False,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with (
        start_rasa(
            free_port(),
            rasa_env(env, direct),
            credentials=bench_credentials(out),
            model=model,
            name="bench-rasa",
        ) as rasa,
        fronted(rasa, env, direct, "bench-ingress") as front,
    ):

        def closed(
            channel: str, messages: int, users: int = plan.users, raw: bool = False
        ) -> dict[str, Any]:
            target = rasa.url if channel == "rest" else front.url
            spec = {"scenario": "closed", "target": target, "channel": channel, "text": TEXT}
            return call(loadgen, {**spec, "users": users, "messages": messages, "raw": raw})

        def burst(rate: float, count: int) -> dict[str, Any]:  # statuses, not latencies
            spec = {"scenario": "open", "target": front.url, "text": TEXT, "answer_timeout": 900}
            return call(loadgen, {**spec, "rate": rate, "count": count})

        print("warm-up", flush=True)
        closed("whatsapp", plan.warmup)
        closed("rest", plan.warmup)
        closed("whatsapp", 100 - 2 * plan.warmup)
        rss_100 = memory_kib(rasa.popen.pid, "VmRSS")
        front_rss_100 = memory_kib(front.popen.pid, "VmRSS")

        print("end-to-end: WhatsApp channel vs Rasa's REST channel, alternating", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {"whatsapp": [], "rest": []}
        round_ratios = []
        for _ in range(plan.e2e_rounds):  # A B B A, so drift hits both channels alike
            for channel in ("whatsapp", "rest", "rest", "whatsapp"):
                runs[channel].append(closed(channel, plan.e2e_messages))
            last = {c: runs[c][-2:] for c in runs}
            rates = {
                c: sum(p["messages"] for p in last[c]) / sum(p["seconds"] for p in last[c])
                for c in last
            }
            round_ratios.append(round(rates["whatsapp"] / rates["rest"], 3))
        e2e: dict[str, Any] = {}
        for channel, parts in runs.items():
            messages = sum(p["messages"] for p in parts)
            e2e[channel] = {
                "messages": messages,
                "failures": sum(p["failures"] for p in parts),
                "throughput_per_s": round(messages / sum(p["seconds"] for p in parts), 2),
                "loaded_p50_ms": round(sum(p["p50_ms"] for p in parts) / len(parts), 2),
            }
        e2e["throughput_ratio"] = round(
            e2e["whatsapp"]["throughput_per_s"] / e2e["rest"]["throughput_per_s"], 3
        )
        e2e["round_ratios"] = round_ratios
        e2e["users"] = plan.users

        # Added latency: one user at a time (no queueing), so the difference is the channel's.
        latencies: dict[str, list[float]] = {"whatsapp": [], "rest": []}
        for _ in range(plan.latency_blocks):
            for channel in ("whatsapp", "rest", "rest", "whatsapp"):
                run = closed(channel, plan.latency_block_messages, users=1, raw=True)
                latencies[channel] += run["latencies_ms"]
        for channel, values in latencies.items():
            e2e[channel]["p50_ms"] = round(percentile(values, 50), 2)
            e2e[channel]["unloaded_turns"] = len(values)
        e2e["added_p50_ms"] = round(e2e["whatsapp"]["p50_ms"] - e2e["rest"]["p50_ms"], 2)
        results["e2e"] = e2e

        print("webhook ack latency, timed by the acker: idle, then a burst, in rounds", flush=True)
        results["ack"] = ack_rounds(plan, acker, loadgen, front.url)

        sustainable = e2e["whatsapp"]["throughput_per_s"]
        rate = round(plan.overload_factor * sustainable, 1)
        print(
            f"overload: {rate}/s ({plan.overload_factor:g}x {sustainable}/s)"
            f" for {plan.overload_seconds}s",
            flush=True,
        )
        results["overload"] = {
            "sustainable_per_s": sustainable,
            **burst(rate, int(rate * plan.overload_seconds)),
        }

        handled = metric(rasa, "whatsapp_messages_handled_total")
        remaining = max(0, plan.memory_messages - handled)
        print(f"memory: {remaining} more messages to reach {plan.memory_messages}", flush=True)
        if remaining:
            closed("whatsapp", remaining, users=16)
        peak = memory_kib(rasa.popen.pid, "VmHWM")
        results["memory"] = {
            "messages": metric(rasa, "whatsapp_messages_handled_total"),
            "rss_after_100_mib": round(rss_100 / 1024, 1),
            "peak_rss_mib": round(peak / 1024, 1),
            "ratio": round(peak / rss_100, 3),
            "dedup_entries": max(
                metric(rasa, "whatsapp_dedup_entries"), metric(front, "whatsapp_dedup_entries")
            ),
            "dedup_max_entries": int(env["WPP_DEDUP_MAX_ENTRIES"]),
        }
        if not direct:
            front_peak = memory_kib(front.popen.pid, "VmHWM")
            results["memory"]["ingress_rss_after_100_mib"] = round(front_rss_100 / 1024, 1)
            results["memory"]["ingress_peak_rss_mib"] = round(front_peak / 1024, 1)
            results["memory"]["ingress_ratio"] = round(front_peak / front_rss_100, 3)
    return results


def scale_out(
    plan: Plan, loadgen: Proc, env: dict[str, str], out: Path, model: Path, direct: bool = False
) -> dict[str, Any]:
    with redis_server() as redis:
        endpoints = write_redis_endpoints(out / "endpoints.redis.yml", redis.url, None)
        redis_env = {**env, "REDIS_URL": redis.url}
        rasas = [
            start_rasa(
                free_port(),
                rasa_env(redis_env, direct),
                credentials=ROOT / "credentials.yml",
                endpoints=endpoints,
                model=model,
                name=f"bench-rasa-redis-{i}",
                wait=False,
            )
            for i in range(2)
        ]
        fronts: list[Proc] = []
        try:
            for index, rasa in enumerate(rasas):
                wait_ready(rasa)
                if not direct:
                    name = f"bench-ingress-redis-{index}"
                    fronts.append(start_ingress(free_port(), rasa.url, redis_env, name=name))
            result: dict[str, Any] = {}
            for count in (1, 2):
                upstreams = [r.url for r in (fronts or rasas)[:count]]
                with InThread(lambda u=upstreams: running_proxy(u)) as proxy:  # type: ignore[misc]
                    spec: dict[str, Any] = {"scenario": "closed", "channel": "whatsapp"}
                    spec.update({"target": proxy.url, "text": TEXT, "users": 16})
                    spec["messages"] = plan.scale_messages
                    call(loadgen, {**spec, "messages": 40})  # warm this configuration up
                    result[f"processes_{count}"] = call(loadgen, spec)
            result["throughput_ratio"] = round(
                result["processes_2"]["throughput_per_s"]
                / result["processes_1"]["throughput_per_s"],
                3,
            )
            return result
        finally:
            for proc in (*fronts, *rasas):
                proc.stop()


def measure_conversion(out: Path) -> Path:
    """Run the conversion benchmark now (pytest-benchmark); its JSON file."""
    path = out / "conversion.json"
    path.unlink(missing_ok=True)  # never report a figure an earlier run left here
    argv = [str(VENV_BIN / "python"), "-m", "pytest", str(ROOT / "bench" / "test_conversion.py")]
    argv += ["-q", "-p", "no:cacheprovider", f"--benchmark-json={path}"]
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return path


def conversion(path: Path, measured_here: bool) -> dict[str, Any]:
    """pytest-benchmark's JSON ▸ µs per response, the ratio to serialisation alone, and
    where the figures come from (this run, or an earlier file and when it was measured)."""
    data = json.loads(path.read_text())
    means: dict[str, dict[str, float]] = {}
    for bench in data["benchmarks"]:
        kind = bench["param"]
        which = "convert" if bench["name"].startswith("test_conversion") else "serialise"
        means.setdefault(kind, {})[which] = bench["stats"]["median"] * 1e6
    return {
        "source": "this run" if measured_here else f"{path.name}, measured {data['datetime']}",
        "figures": {
            kind: {
                "convert_us": round(m["convert"], 1),
                "serialise_us": round(m["serialise"], 1),
                "ratio": round(m["convert"] / m["serialise"], 2),
            }
            for kind, m in means.items()
            if {"convert", "serialise"} <= set(m)
        },
    }


def check(results: dict[str, Any]) -> dict[str, bool]:
    """Each target ▸ met or not."""
    rounds = rounds_of(results["ack"])
    checks = {
        "ack p99 under burst < 15 ms in every round": all(
            r["busy"]["ack_p99_ms"] < 15 for r in rounds
        ),
        "ack p99 busy/idle < 2 in every round": all(r["p99_ratio"] < 2 for r in rounds),
        "throughput WhatsApp/REST >= 0.95": results["e2e"]["throughput_ratio"] >= 0.95,
        "added p50 latency < 3 ms": results["e2e"]["added_p50_ms"] < 3,
        "peak RSS 10k / 100 messages < 1.2": results["memory"]["ratio"] < 1.2,
        "dedup store bounded": results["memory"]["dedup_entries"]
        <= results["memory"]["dedup_max_entries"],
        "overload: no timeouts": results["overload"]["timeouts"] == 0,
        "overload: every acknowledged message answered": results["overload"]["unanswered"] == 0,
        "overload: load shed with 503": results["overload"]["statuses"].get("503", 0) > 0,
    }
    for stage in STAGES:
        if stage.name in results:
            checks.update(stage.checks(results[stage.name]))
    return checks


TUNING = (
    "WPP_TURN_THREAD",
    "WPP_MAX_CONCURRENCY",
    "WPP_QUEUE_SIZE",
    "WPP_MARK_READ",
    "WPP_TYPING_INDICATOR",
    "WPP_SEND_RATE_PER_SECOND",
)


def tuning() -> dict[str, str]:
    """The channel settings this run changed from their defaults (``WPP_TURN_THREAD=false
    make bench`` measures the other side of a trade-off); never a secret."""
    return {name: os.environ[name] for name in TUNING if name in os.environ}


def users(results: dict[str, Any]) -> str:
    """The closed loop's size: as the run recorded it, else its plan's setting."""
    plan = FULL if results.get("plan") == "full" else SMOKE
    return f"{results['e2e'].get('users', plan.users)} users"


def ack_row(ack: dict[str, Any]) -> str:
    rounds = rounds_of(ack)
    busy = rounds[0]["busy"]
    timer = "; acks timed by a process that only sends" if ack.get("timed_by") == "acker" else ""

    def listed(key: str, which: str = "busy") -> str:
        return ", ".join(f"{r[which][key]:g}" for r in rounds)

    many = len(rounds) > 1
    return (
        f"| Webhook ack under a burst ({len(rounds)} round{'s' if many else ''} of"
        f" {busy['sent']} at {busy['rate_per_s']:g}/s, bot saturated{timer}) |"
        f" p99 {listed('ack_p99_ms')} ms (p50 {listed('ack_p50_ms')} ms; max"
        f" {max(r['busy']['ack_max_ms'] for r in rounds):g} ms) |"
        f" idle p99 {listed('ack_p99_ms', 'idle')} ms |"
        f" busy/idle p99 **{max(r['p99_ratio'] for r in rounds):g}**"
        + (f" worst (rounds: {', '.join(str(r['p99_ratio']) for r in rounds)})" if many else "")
        + " | p99 < 15 ms, ratio < 2"
        + (" in every round |" if many else " |")
    )


def markdown(results: dict[str, Any]) -> str:
    m, e2e, ov, mem = (
        results["machine"],
        results["e2e"],
        results["overload"],
        results["memory"],
    )
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; "
        f"Python {m['python']}, Rasa {m['rasa']}. Plan: {results['plan']}. Webhooks: "
        + (
            "straight to `rasa run` (--direct)"
            if results.get("direct")
            else "the ingress, relaying to `rasa run`"
        )
        + ". Channel settings: "
        + (", ".join(f"{k}={v}" for k, v in results.get("settings", {}).items()) or "defaults")
        + "."
        + (f" Run time: {results['seconds'] / 60:.1f} min." if "seconds" in results else ""),
        "",
        "| Figure | Measured | Baseline (same run) | Result | Target |",
        "|---|---|---|---|---|",
        ack_row(results["ack"]),
        f"| End-to-end throughput ({e2e['whatsapp']['messages']} turns per channel,"
        f" {users(results)}, A-B-B-A) | {e2e['whatsapp']['throughput_per_s']}/s | REST channel"
        f" {e2e['rest']['throughput_per_s']}/s | **{e2e['throughput_ratio']}** (rounds:"
        f" {', '.join(str(r) for r in e2e['round_ratios'])}) | ≥ 0.95 |",
        f"| End-to-end p50 latency, one user ({e2e['whatsapp']['unloaded_turns']} turns) |"
        f" {e2e['whatsapp']['p50_ms']} ms | REST channel {e2e['rest']['p50_ms']} ms |"
        f" added **{e2e['added_p50_ms']} ms** | < 3 ms |",
    ]
    converted = results.get("conversion") or {}
    for kind, c in converted.get("figures", {}).items():
        source = "" if converted["source"] == "this run" else f" ({converted['source']})"
        lines.append(
            f"| Conversion: {kind}{source} | {c['convert_us']} µs | json.dumps alone"
            f" {c['serialise_us']} µs | {c['ratio']}× | (reported) |"
        )
    scale = results.get("scale_out")
    if scale:
        lines.append(
            f"| Scale-out on Redis, 2 vs 1 `rasa run` | {scale['processes_2']['throughput_per_s']}"
            f"/s | 1 process {scale['processes_1']['throughput_per_s']}/s |"
            f" **{scale['throughput_ratio']}** | (reported; both share {m['cores']} cores) |"
        )
    for stage in STAGES:
        if stage.name in results:
            lines += stage.rows(results[stage.name])
    lines += [
        f"| Memory: peak RSS after {mem['messages']} messages | {mem['peak_rss_mib']} MiB |"
        f" after 100: {mem['rss_after_100_mib']} MiB | **{mem['ratio']}**; dedup"
        f" {mem['dedup_entries']}/{mem['dedup_max_entries']} ids"
        + (
            f"; ingress {mem['ingress_peak_rss_mib']} MiB ({mem['ingress_ratio']})"
            if "ingress_peak_rss_mib" in mem
            else ""
        )
        + " | < 1.2, bounded |",
        f"| Overload: {ov['rate_per_s']}/s"
        f" ({ov['rate_per_s'] / ov['sustainable_per_s']:.1f}× {ov['sustainable_per_s']}/s) for"
        f" {ov['send_seconds']} s | {ov['statuses']}, {ov['timeouts']} timeouts |"
        f" {ov['accepted']} acknowledged | {ov['unanswered']} unanswered after"
        f" {ov['answered_after_s']} s | 503s, no timeouts, all answered |",
        "",
        "Targets: "
        + ", ".join(f"{name} {'✔' if ok else '✘'}" for name, ok in results["checks"].items()),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="under a minute of load")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--conversion-json",
        type=Path,
        default=None,
        help="report this earlier pytest-benchmark JSON (labelled so) instead of measuring",
    )
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument(
        "--direct", action="store_true", help="webhooks straight to rasa run, no ingress"
    )
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not args.model.exists():
        print(f"No trained model at {args.model}: run `make train` first.", file=sys.stderr)
        return 2
    env = {
        "WPP_AUTHORIZATION_TOKEN": secrets.token_urlsafe(24),
        "WPP_APP_SECRET": secrets.token_urlsafe(24),
        "WPP_VERIFY_TOKEN": secrets.token_urlsafe(12),
        "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
        "WPP_DEDUP_MAX_ENTRIES": "1000",  # small, to show it stays bounded
    }
    started = time.monotonic()
    port, acker_port = free_port(), free_port()
    with (
        start_process(
            "bench-loadgen",
            [str(VENV_BIN / "python"), "-m", "bench.loadgen", "--port", str(port)],
            env=env,
            ready_url=f"http://127.0.0.1:{port}/health",
            port=port,
        ) as loadgen,
        start_process(
            "bench-acker",
            [str(VENV_BIN / "python"), "-m", "bench.loadgen", "--port", str(acker_port), *ACKER],
            env=env,
            ready_url=f"http://127.0.0.1:{acker_port}/health",
            port=acker_port,
        ) as acker,
    ):
        env["WPP_API_BASE_URL"] = loadgen.url
        results: dict[str, Any] = {
            "machine": machine(),
            "plan": "smoke" if args.smoke else "full",
            "direct": args.direct,
            "settings": tuning(),
        }
        results.update(single_process(plan, loadgen, acker, env, out, args.model, args.direct))
        if plan.scale_messages:
            print("scale-out: 1 then 2 rasa processes on Redis behind a proxy", flush=True)
            results["scale_out"] = scale_out(plan, loadgen, env, out, args.model, args.direct)
        ctx = Context(loadgen, acker, dict(env), out, args.model, args.smoke, args.direct)
        for stage in STAGES:
            print(f"{stage.name}", flush=True)
            results[stage.name] = stage.run(ctx)
    if args.conversion_json is not None:
        results["conversion"] = conversion(args.conversion_json, measured_here=False)
    elif not args.smoke:
        results["conversion"] = conversion(measure_conversion(out), measured_here=True)
    results["checks"] = check(results)
    results["seconds"] = round(time.monotonic() - started, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (out / "results.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
