"""``make bench``'s report: each target met or not, and ``results.md``'s table; and the
conversion benchmark (pytest-benchmark on ``bench/test_conversion.py``) it reports."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from bench.stages import FULL, SMOKE, STAGES
from tests.support.stack import ROOT, VENV_BIN


def rounds_of(ack: dict[str, Any]) -> list[dict[str, Any]]:
    """The ack figure's rounds; a run from before there were rounds is its one round."""
    return list(ack.get("rounds") or [ack])


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
