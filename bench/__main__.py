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
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import yaml

from bench.drive import TEXT, acked, call, metrics_of
from bench.loadgen import percentile
from bench.report import check, conversion, markdown, measure_conversion, tuning
from bench.stages import FULL, SMOKE, STAGES, Context, Plan
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


def metric(proc: Proc, name: str) -> int:
    match = re.search(rf"^{name} (\d+)$", metrics_of(proc.url), re.MULTILINE)
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
