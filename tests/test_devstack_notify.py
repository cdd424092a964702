"""`make run` wires the simulator's notification trigger: one notify token, generated once
for the development stack, for both rasa run and the simulator, and the bot's notify URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import devstack


def test_make_run_gives_rasa_and_the_simulator_one_notify_token_and_the_notify_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(devstack, "RUN_DIR", tmp_path)
    # A development stack started before the trigger existed: its secrets had no notify token.
    (tmp_path / "dev-secrets.env").write_text(
        "WPP_AUTHORIZATION_TOKEN=a\nWPP_VERIFY_TOKEN=b\nWPP_APP_SECRET=c\n", encoding="utf-8"
    )
    services, _ = devstack.build_services({"RASA_PORT": "5998"})
    by_name = {s.name: s for s in services}
    simulator, rasa = by_name["simulator"], by_name["rasa"]
    token = simulator.env["WPP_NOTIFY_TOKEN"]
    assert len(token) >= 24
    assert rasa.env["WPP_NOTIFY_TOKEN"] == token
    at = simulator.argv.index("--notify-url")
    assert simulator.argv[at + 1] == "http://localhost:5998/webhooks/whatsapp/notify"
    assert token not in simulator.argv  # secrets never on a command line

    again, _ = devstack.build_services({})
    assert {s.name: s for s in again}["rasa"].env["WPP_NOTIFY_TOKEN"] == token  # kept
