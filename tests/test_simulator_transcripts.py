"""The simulator shows what the bot heard in a voice note, read from Rasa's tracker.

Rasa's side is a local fake of its HTTP API (``GET /conversations/{id}/tracker``, the
``token`` query parameter of ``--auth-token``, 401 without it) serving a tracker Rasa
itself serialises; tests/e2e/test_browser_voice.py runs it against a real ``rasa run``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity

from scripts import devstack
from simulator.server import SimulatorConfig, create_app
from simulator.transcripts import Transcript, transcripts
from tests.support.stack import free_port

RASA_TOKEN = "rasa-api-token"
SENDER = "5561999990001"


def voice(media_id: str, text: str | None, confidence: float | None, problem: str | None) -> Any:
    whatsapp = {"transcript": text, "confidence": confidence, "media_id": media_id}
    return UserUttered(
        text or f'/voice_failed{{"voice_problem":"{problem}"}}',
        metadata={"whatsapp": {**whatsapp, "voice_problem": problem}},
    )


def tracker_json(sender: str) -> dict[str, Any]:
    """A conversation as Rasa's API serialises it: a typed turn, a heard voice note, one
    it could not hear, and a picture (media, but no voice)."""
    events = [
        ActionExecuted("action_listen"),
        UserUttered("oi", metadata={"whatsapp": {"message_id": "wamid.1"}}),
        BotUttered("Olá!"),
        voice("100000000000500", "Bom dia!", 0.41, None),
        voice("100000000000501", None, None, "too_long"),
        UserUttered("/send_media", metadata={"whatsapp": {"media_id": "100000000000502"}}),
    ]
    tracker = DialogueStateTracker.from_events(sender, events)
    return dict(tracker.current_state(EventVerbosity.ALL))


@dataclass
class FakeRasa:
    """Rasa's ``GET /conversations/{id}/tracker`` behind ``--auth-token``."""

    asked: list[str] = field(default_factory=list)

    async def tracker(self, request: web.Request) -> web.Response:
        self.asked.append(request.match_info["sender"])
        if request.query.get("token") != RASA_TOKEN:
            return web.json_response(
                {"version": "3.6", "status": "failure", "reason": "NotAuthenticated"}, status=401
            )
        return web.json_response(tracker_json(request.match_info["sender"]))


@dataclass
class Served:
    url: str
    rasa: FakeRasa
    http: aiohttp.ClientSession


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    """The simulator pointed at the fake Rasa with the token given by the test's param."""
    token: str = getattr(request, "param", RASA_TOKEN)
    rasa = FakeRasa()
    rasa_app = web.Application()
    rasa_app.router.add_get("/conversations/{sender}/tracker", rasa.tracker)
    rasa_port, sim_port = free_port(), free_port()
    config = SimulatorConfig(
        webhook_url="http://127.0.0.1:9/webhook",
        app_secret="s",
        access_token="t",
        rasa_url=f"http://127.0.0.1:{rasa_port}",
        rasa_token=token,
    )
    runners = []
    for app, port in ((rasa_app, rasa_port), (create_app(config), sim_port)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    async with aiohttp.ClientSession() as http:
        yield Served(f"http://127.0.0.1:{sim_port}", rasa, http)
    for runner in reversed(runners):
        await runner.cleanup()


def test_only_voice_notes_are_read_from_a_tracker_by_media_id() -> None:
    assert transcripts(tracker_json(SENDER)) == {
        "100000000000500": Transcript("Bom dia!", 0.41, None),
        "100000000000501": Transcript(None, None, "too_long"),
    }
    assert transcripts({}) == {}
    assert transcripts({"events": "not a list"}) == {}


async def test_the_page_gets_what_the_bot_heard_in_each_voice_note(served: Served) -> None:
    answer = await served.http.get(f"{served.url}/api/transcripts?number=+55 61 99999-0001")
    assert answer.status == 200
    assert await answer.json() == {
        "enabled": True,
        "transcripts": {
            "100000000000500": {"text": "Bom dia!", "confidence": 0.41, "problem": None},
            "100000000000501": {"text": None, "confidence": None, "problem": "too_long"},
        },
    }
    assert served.rasa.asked == [SENDER]  # the page's number is Rasa's sender id


async def test_a_request_without_a_number_is_refused_with_a_reason(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    answer = await served.http.get(f"{served.url}/api/transcripts")
    assert answer.status == 400
    assert await answer.json() == {"error": "'number' is required"}
    assert "GET /api/transcripts without a number" in caplog.text
    assert served.rasa.asked == []


@pytest.mark.parametrize("served", ["wrong-token"], indirect=True)
async def test_rasa_refusing_the_token_is_a_502_naming_its_answer_and_logged_without_it(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    answer = await served.http.get(f"{served.url}/api/transcripts?number={SENDER}")
    assert answer.status == 502
    assert await answer.json() == {"error": "Rasa answered HTTP 401"}
    assert "--enable-api" in caplog.text
    assert "wrong-token" not in caplog.text and SENDER not in caplog.text


async def test_without_rasa_configured_the_page_is_told_transcripts_are_off() -> None:
    port = free_port()
    app = create_app(
        SimulatorConfig(webhook_url="http://127.0.0.1:9/w", app_secret="s", access_token="t")
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            answer = await http.get(f"http://127.0.0.1:{port}/api/transcripts?number={SENDER}")
            assert answer.status == 200
            assert await answer.json() == {"enabled": False, "transcripts": {}}
    finally:
        await runner.cleanup()


def test_make_run_opens_rasas_api_to_the_simulator_only_behind_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devstack, "dev_secrets", lambda: {"WPP_APP_SECRET": "dev"})
    services, _ = devstack.build_services({"RASA_PORT": "5998"})
    by_name = {s.name: s for s in services}
    rasa, simulator = by_name["rasa"], by_name["simulator"]
    token = simulator.env["SIMULATOR_RASA_TOKEN"]
    assert len(token) >= 32
    assert simulator.env["SIMULATOR_RASA_URL"] == "http://localhost:5998"
    assert rasa.argv[-3:] == ["--enable-api", "--auth-token", token]
    assert token not in simulator.argv  # the simulator takes it from its environment

    real = {"WPP_PROVIDER": "serpro", "SERPRO_CLIENT_ID": "1", "SERPRO_CLIENT_SECRET": "s"}
    services, _ = devstack.build_services(real)
    rasa = next(s for s in services if s.name == "rasa")
    assert "--enable-api" not in rasa.argv and "--auth-token" not in rasa.argv
