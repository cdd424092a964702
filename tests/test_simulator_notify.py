"""The simulator's notification trigger: its routes relay to the bot's notify API with the
bearer token the page never sees, and relay the answers back as they are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from simulator.notify import NotifyConfig, domain_options
from simulator.server import SimulatorConfig, create_app
from tests.support.stack import free_port

TOKEN = "notify-token-for-tests"
DOMAIN = """
version: "3.1"
responses:
  utter_greet:
  - text: Olá
  utter_lembrete_iptu:
  - custom:
      whatsapp:
        type: template
        template:
          name: lembrete_iptu
          language: {code: pt_BR}
"""


@dataclass
class Bot:
    """Stands in for rasa run's notify API: records what reached it, answers as it does."""

    calls: list[tuple[str, str, Any, str]] = field(default_factory=list)
    answer: tuple[int, dict[str, Any]] = (200, {"id": "n1", "status": "sent", "wamids": ["w1"]})

    async def post(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(("POST", request.path, body, request.headers.get("Authorization", "")))
        status, answer = self.answer
        return web.json_response(answer, status=status)

    async def get(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        self.calls.append(("GET", request.path, None, auth))
        record = {"id": request.match_info["id"], "status": "read", "wamid": "w1", "error": None}
        return web.json_response(record)


@dataclass
class Running:
    url: str
    bot: Bot
    http: aiohttp.ClientSession


async def serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def sim(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    token = getattr(request, "param", TOKEN)
    bot = Bot()
    bot_app = web.Application()
    bot_app.router.add_post("/webhooks/whatsapp/notify", bot.post)
    bot_app.router.add_get("/webhooks/whatsapp/notify/{id}", bot.get)
    bot_port, sim_port = free_port(), free_port()
    domain = tmp_path / "domain.yml"
    domain.write_text(DOMAIN, encoding="utf-8")
    config = SimulatorConfig(
        webhook_url=f"http://127.0.0.1:{bot_port}/webhooks/whatsapp/webhook",
        app_secret="s",
        access_token="t",
        notify=NotifyConfig(f"http://127.0.0.1:{bot_port}/webhooks/whatsapp/notify", token, domain),
    )
    runners = [await serve(bot_app, bot_port), await serve(create_app(config), sim_port)]
    async with aiohttp.ClientSession() as http:
        yield Running(f"http://127.0.0.1:{sim_port}", bot, http)
    for runner in reversed(runners):
        await runner.cleanup()


TEMPLATE_REQUEST = {
    "recipient": "5561999990001",
    "template": {"name": "lembrete_iptu", "language": "pt_BR", "params": ["10/03"]},
}


async def test_a_trigger_reaches_the_bots_notify_api_with_the_token_and_its_answer_comes_back(
    sim: Running,
) -> None:
    async with sim.http.post(f"{sim.url}/api/notify", json=TEMPLATE_REQUEST) as answer:
        assert (answer.status, await answer.json()) == (
            200,
            {"id": "n1", "status": "sent", "wamids": ["w1"]},
        )
    async with sim.http.get(f"{sim.url}/api/notify/n1") as answer:
        assert (answer.status, await answer.json()) == (
            200,
            {"id": "n1", "status": "read", "wamid": "w1", "error": None},
        )
    assert sim.bot.calls == [
        ("POST", "/webhooks/whatsapp/notify", TEMPLATE_REQUEST, f"Bearer {TOKEN}"),
        ("GET", "/webhooks/whatsapp/notify/n1", None, f"Bearer {TOKEN}"),
    ]


async def test_the_bots_refusal_reaches_the_page_with_its_status_and_reason(sim: Running) -> None:
    refusal = {"error": "outside_service_window", "detail": "last message 30 h ago"}
    sim.bot.answer = (409, refusal)
    body = {"recipient": "5561999990001", "response": "utter_greet"}
    async with sim.http.post(f"{sim.url}/api/notify", json=body) as answer:
        assert (answer.status, await answer.json()) == (409, refusal)


async def test_a_body_that_is_not_a_json_object_is_refused_without_calling_the_bot(
    sim: Running,
) -> None:
    async with sim.http.post(f"{sim.url}/api/notify", data=b"[1, 2") as answer:
        assert (answer.status, await answer.json()) == (
            400,
            {"error": "invalid_json", "detail": "the body must be a JSON object"},
        )
    assert sim.bot.calls == []


@pytest.mark.parametrize("sim", [""], indirect=True)
async def test_without_a_notify_token_the_trigger_is_off_and_says_how_to_turn_it_on(
    sim: Running,
) -> None:
    async with sim.http.post(f"{sim.url}/api/notify", json=TEMPLATE_REQUEST) as answer:
        assert (answer.status, await answer.json()) == (
            503,
            {
                "error": "notify_disabled",
                "detail": "set WPP_NOTIFY_TOKEN for the bot and the simulator (make run does)",
            },
        )
    async with sim.http.get(f"{sim.url}/api/notify/options") as answer:
        assert (await answer.json())["enabled"] is False
    assert sim.bot.calls == []


async def test_the_form_offers_the_domains_responses_and_its_templates(sim: Running) -> None:
    async with sim.http.get(f"{sim.url}/api/notify/options") as answer:
        assert await answer.json() == {
            "enabled": True,
            "responses": ["utter_greet", "utter_lembrete_iptu"],
            "templates": [
                {"response": "utter_lembrete_iptu", "name": "lembrete_iptu", "language": "pt_BR"}
            ],
        }


async def test_an_id_that_could_leave_the_notify_path_is_not_relayed(sim: Running) -> None:
    async with sim.http.get(f"{sim.url}/api/notify/..%2F..%2Fstatus") as answer:
        assert answer.status == 404
    assert sim.bot.calls == []


def test_a_template_response_without_a_language_is_listed_with_an_empty_language() -> None:
    domain = {"responses": {"utter_t": [{"custom": {"whatsapp": {"type": "template"}}}]}}
    assert domain_options(domain) == {
        "responses": ["utter_t"],
        "templates": [{"response": "utter_t", "name": "", "language": ""}],
    }
