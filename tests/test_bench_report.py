"""The benchmark's report: it says which channel settings a run changed, never a secret."""

from __future__ import annotations

import json

import pytest

from bench.__main__ import markdown, rasa_env, tuning
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
    [({}, "Channel settings: defaults."), ({"WPP_TURN_THREAD": "false"}, "WPP_TURN_THREAD=false.")],
)
def test_the_table_header_shows_the_settings(settings: dict[str, str], shown: str) -> None:
    results = json.loads((ROOT / "bench" / "results" / "results.json").read_text("utf-8"))
    header = markdown({**results, "settings": settings}).splitlines()[0]
    assert header.endswith(shown)


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
