"""The benchmark's smoke version: the single-process stages (ack latency in two rounds,
end-to-end, overload, memory; not scale-out, not the conversion benchmark) and the stages
of ``bench/`` (chaos: one calm and one flood segment; billing: three knowledge questions,
joined and not; campaign: the real command at its limit while citizens chat; voice: a
couple of voice and typed turns) run and their results hold up.

The figures themselves are only checked by ``make bench`` (a full run); here the smoke
run must complete, write both reports, answer every acknowledged message, never time
out, keep the dedup store within its bound, refuse every hostile request, and send a
whole campaign, never over its limit, while citizens chat.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.stack import ROOT, VENV_BIN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_the_benchmark_smoke_run_completes_and_loses_nothing(
    trained_model: Path, tmp_path: Path
) -> None:
    argv = [str(VENV_BIN / "python"), "-m", "bench", "--smoke", "--out", str(tmp_path)]
    done = subprocess.run(
        [*argv, "--model", str(trained_model)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
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
    # Voice notes: the dev dependencies hold the Whisper test model, so it is measured here.
    voice = results["voice"]
    assert voice["measured"] is True
    assert voice["rtf"]["clips"] == 3 and voice["rtf"]["median"] > 0
    assert voice["rtf"]["transcripts"]["bom_dia"] == voice["turns"]["text"] == "Bom dia!"
    assert voice["turns"]["voice_answered"] == voice["turns"]["text_answered"] == 2
    assert voice["turns"]["voice_p50_ms"] > voice["turns"]["text_p50_ms"] > 0
    assert results["checks"]["voice: every voice turn answered"]
    assert (
        "| Voice: turn latency, one citizen (2 voice + 2 typed turns"
        in (tmp_path / "results.md").read_text()
    )
    # Billing: each answered question is one message (answer + feedback buttons joined),
    # two with WPP_MERGE_TEXT_BUTTONS=false, measured on the same questions in the same run.
    billing = results["billing"]
    assert billing["after"] == {"asked": 3, "answered": 3, "messages": 3, "per_answered": 1.0}
    assert billing["before"] == {"asked": 3, "answered": 3, "messages": 6, "per_answered": 2.0}
    assert results["checks"]["billing: fewer billable messages per answered question"]
    assert "| Billable messages per answered question" in (tmp_path / "results.md").read_text()
    # The campaign stage: the real campaign command at its limit while citizens chat.
    campaign = results["campaign"]
    assert campaign["exit_status"] == 0
    assert campaign["sent"] == campaign["recipients"] == 120
    assert 0 < campaign["ratio"] <= 1.02  # never over the limit, first to last arrival
    assert campaign["busiest_1s"] <= campaign["rate_limit_per_s"] + 2  # a shared machine's jitter
    chat = campaign["chat"]
    assert chat["with_campaign"]["failures"] == chat["without_campaign"]["failures"] == 0
    assert chat["with_campaign"]["turns"] > 0 and chat["without_campaign"]["turns"] == 24
    assert chat["in_campaign_share"] > 0.5  # the chat measured with a campaign met one
    assert "| Campaign throughput" in (tmp_path / "results.md").read_text()
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
    # Every refusal held by the ingress's tarpit (64 connections, under its hold limit).
    assert set(chaos["flood"]["refusals"]) == {"delayed"}
    assert results["checks"]["chaos: every refusal held by the tarpit, none at once"]
    assert chaos["citizen_statuses"] == {"200": 40}
    assert chaos["calm"]["messages"] == chaos["flood"]["messages"] == 10
    assert "| Chaos: citizens while hostile requests flood the ingress" in markdown
