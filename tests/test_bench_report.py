"""The benchmark's report: it says which channel settings a run changed, never a secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bench.report as report
from bench.__main__ import rasa_env
from bench.report import conversion, markdown, measure_conversion, tuning
from tests.support.stack import ROOT


def test_a_run_names_the_settings_it_changed_and_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WPP_TURN_THREAD", "false")
    monkeypatch.setenv("WPP_APP_SECRET", "test-app-secret")
    monkeypatch.setenv("WPP_AUTHORIZATION_TOKEN", "test-access-token")
    monkeypatch.delenv("WPP_MAX_CONCURRENCY", raising=False)
    assert tuning() == {"WPP_TURN_THREAD": "false"}


@pytest.mark.parametrize(
    ("settings", "shown"),
    [
        ({}, "Channel settings: defaults."),
        ({"WPP_TURN_THREAD": "false"}, "Channel settings: WPP_TURN_THREAD=false."),
    ],
)
def test_the_table_header_shows_the_settings(settings: dict[str, str], shown: str) -> None:
    results = json.loads((ROOT / "bench" / "results" / "results.json").read_text("utf-8"))
    header = markdown({**results, "settings": settings}).splitlines()[0]
    assert f"{shown} Run time: " in header


@pytest.mark.parametrize(
    ("direct", "shown"),
    [(False, "Webhooks: the ingress, relaying to `rasa run`."), (True, "straight to `rasa run`")],
)
def test_the_table_header_names_what_received_the_webhooks(direct: bool, shown: str) -> None:
    results = json.loads((ROOT / "bench" / "results" / "results.json").read_text("utf-8"))
    assert shown in markdown({**results, "direct": direct}).splitlines()[0]


def test_behind_the_ingress_rasa_runs_turns_in_place_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WPP_TURN_THREAD", raising=False)
    assert rasa_env({"A": "1"}, direct=False) == {"WPP_TURN_THREAD": "false", "A": "1"}
    assert rasa_env({"A": "1"}, direct=True) == {"A": "1"}
    monkeypatch.setenv("WPP_TURN_THREAD", "true")
    assert rasa_env({"A": "1"}, direct=False)["WPP_TURN_THREAD"] == "true"


def results_json() -> dict[str, Any]:
    return dict(json.loads((ROOT / "bench" / "results" / "results.json").read_text("utf-8")))


def test_labels_are_derived_from_the_run_not_written_in() -> None:
    results = results_json()
    results["e2e"]["users"] = 3
    results["overload"]["rate_per_s"] = 5 * results["overload"]["sustainable_per_s"]
    results["machine"]["cores"] = 4
    table = markdown(results)
    assert ", 3 users, A-B-B-A" in table
    assert f"(5.0× {results['overload']['sustainable_per_s']}/s)" in table
    assert "(reported; both share 4 cores)" in table
    assert "8 users" not in table and "10×" not in table and "ceiling" not in table


CONVERSION_JSON = {
    "datetime": "2026-11-01T10:00:00.000000",
    "benchmarks": [
        {"name": "test_conversion[text]", "param": "text", "stats": {"median": 8e-6}},
        {"name": "test_serialisation_alone[text]", "param": "text", "stats": {"median": 4e-6}},
    ],
}


def test_conversion_figures_say_where_they_come_from(tmp_path: Path) -> None:
    path = tmp_path / "conversion.json"
    path.write_text(json.dumps(CONVERSION_JSON), encoding="utf-8")
    earlier = conversion(path, measured_here=False)
    assert earlier == {
        "source": "conversion.json, measured 2026-11-01T10:00:00.000000",
        "figures": {"text": {"convert_us": 8.0, "serialise_us": 4.0, "ratio": 2.0}},
    }
    table = markdown({**results_json(), "conversion": earlier})
    assert (
        "| Conversion: text (conversion.json, measured 2026-11-01T10:00:00.000000) | 8.0 µs |"
        in table
    )
    here = markdown({**results_json(), "conversion": conversion(path, measured_here=True)})
    assert "| Conversion: text | 8.0 µs |" in here


def test_a_run_never_reports_a_conversion_file_an_earlier_run_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "conversion.json"
    stale.write_text(json.dumps(CONVERSION_JSON), encoding="utf-8")
    ran: list[list[str]] = []
    # The benchmark itself is not run here (it takes the CPU for a while): only its argv.
    monkeypatch.setattr(report.subprocess, "run", lambda argv, **_: ran.append(list(argv)))
    path = measure_conversion(tmp_path)
    assert not path.exists()  # the earlier file is gone before measuring
    assert f"--benchmark-json={path}" in ran[0]
    assert ran[0][-5:] == [
        str(ROOT / "bench" / "test_conversion.py"),
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={path}",
    ]


def burst(sent: int, rate: float, p50: float, p99: float, peak: float) -> dict[str, Any]:
    return {
        "sent": sent,
        "rate_per_s": rate,
        "statuses": {"200": sent},
        "timeouts": 0,
        "accepted": sent,
        "unanswered": 0,
        "ack_p50_ms": p50,
        "ack_p99_ms": p99,
        "ack_max_ms": peak,
    }


def ack_in_rounds(ratios: list[float]) -> dict[str, Any]:
    """Rounds of 2000 at 200/s against an idle p99 of 4 ms, at these busy/idle ratios."""
    rounds = [
        {
            "idle": burst(100, 10, 1.0, 4.0, 5.0),
            "busy": burst(2000, 200, 1.5, 4.0 * r, 4.0 * r + 1),
            "p99_ratio": r,
        }
        for r in ratios
    ]
    return {"timed_by": "acker", "rounds": rounds}


def test_the_ack_figure_holds_only_if_every_round_holds() -> None:
    steady = {**results_json(), "ack": ack_in_rounds([1.1, 1.3, 1.0])}
    assert report.check(steady)["ack p99 busy/idle < 2 in every round"]
    assert report.check(steady)["ack p99 under burst < 15 ms in every round"]
    one_bad = {**results_json(), "ack": ack_in_rounds([1.1, 2.1, 1.0])}
    assert not report.check(one_bad)["ack p99 busy/idle < 2 in every round"]
    assert report.check(one_bad)["ack p99 under burst < 15 ms in every round"]
    slow = {**results_json(), "ack": ack_in_rounds([1.1, 4.0, 1.0])}  # 16 ms in round 2
    assert not report.check(slow)["ack p99 under burst < 15 ms in every round"]


def test_the_ack_row_shows_every_round_and_the_worst_ratio() -> None:
    row = report.ack_row(ack_in_rounds([1.1, 2.1, 1.0]))
    assert row == (
        "| Webhook ack under a burst (3 rounds of 2000 at 200/s, bot saturated; acks timed by a"
        " process that only sends) | p99 4.4, 8.4, 4 ms (p50 1.5, 1.5, 1.5 ms; max 9.4 ms) |"
        " idle p99 4, 4, 4 ms | busy/idle p99 **2.1** worst (rounds: 1.1, 2.1, 1.0) |"
        " p99 < 15 ms, ratio < 2 in every round |"
    )


def test_a_run_from_before_the_rounds_reads_as_one_round() -> None:
    direct = (ROOT / "bench" / "results" / "direct.json").read_text("utf-8")
    legacy = json.loads(direct)["ack"]
    assert "rounds" not in legacy  # the committed --direct run predates the rounds
    row = report.ack_row(legacy)
    assert row.startswith(
        f"| Webhook ack under a burst (1 round of {legacy['busy']['sent']} at"
        f" {legacy['busy']['rate_per_s']:g}/s, bot saturated) |"
    )
    assert f"busy/idle p99 **{legacy['p99_ratio']:g}** | p99 < 15 ms, ratio < 2 |" in row
