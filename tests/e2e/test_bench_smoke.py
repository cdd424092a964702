"""The benchmark's smoke version: the single-process stages (ack latency in two rounds,
end-to-end, overload, memory; not scale-out, not the conversion benchmark) and the chaos
stage (one calm and one flood segment) run and their results hold up.

The figures themselves are only checked by ``make bench`` (a full run); here the smoke
run must complete, write both reports, answer every acknowledged message, never time
out, keep the dedup store within its bound, and refuse every hostile request.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.stack import ROOT, VENV_BIN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_the_benchmark_smoke_run_completes_and_loses_nothing(
    trained_model: Path, tmp_path: Path
) -> None:
    argv = [str(VENV_BIN / "python"), "-m", "bench", "--smoke", "--out", str(tmp_path)]
    done = subprocess.run(
        [*argv, "--model", str(trained_model)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    markdown = (tmp_path / "results.md").read_text()
    assert "| Webhook ack under a burst (2 rounds of 200 at 100/s" in markdown
    assert results["e2e"]["whatsapp"]["failures"] == results["e2e"]["rest"]["failures"] == 0
    assert results["e2e"]["whatsapp"]["messages"] == results["e2e"]["rest"]["messages"] == 30
    assert results["e2e"]["whatsapp"]["unloaded_turns"] == 10
    ack = results["ack"]
    assert ack["timed_by"] == "acker" and len(ack["rounds"]) == 2
    bursts = [r[which] for r in ack["rounds"] for which in ("idle", "busy")]
    for stage in (*bursts, results["overload"]):
        assert stage["timeouts"] == 0
        assert stage["unanswered"] == 0
        assert stage["accepted"] == stage["statuses"].get("200", 0) > 0
    assert [r["idle"]["statuses"] for r in ack["rounds"]] == [{"200": 20}] * 2
    assert "ack p99 busy/idle < 2 in every round" in results["checks"]
    memory = results["memory"]
    assert memory["messages"] >= 300
    assert 0 < memory["dedup_entries"] <= memory["dedup_max_entries"]
    assert results["checks"]["dedup store bounded"]
    assert results["direct"] is False  # measured through the ingress, as deployed
    assert 0 < memory["ingress_peak_rss_mib"] < memory["peak_rss_mib"]
    chaos = results["chaos"]  # one calm and one flood segment
    assert [s["flood"] is None for s in chaos["segments"]] == [True, False]
    assert chaos["flood"]["requests"] > 0
    assert set(chaos["flood"]["by_kind"][0]) == {
        "compressed",
        "unsigned",
        "bad_signature",
        "oversized",
        "nested",
    }
    assert results["checks"]["chaos: every hostile request refused (4xx, or reset mid-body)"]
    assert results["checks"]["chaos: every citizen's message answered"]
    assert chaos["citizen_statuses"] == {"200": 40}
    assert chaos["calm"]["messages"] == chaos["flood"]["messages"] == 10
    assert "| Chaos: citizens while hostile requests flood the ingress" in markdown
