"""The simulator's fake Chatwoot over HTTP: Chatwoot's API paths refuse what Chatwoot
refuses, the real client works against them, and the agent pane's answers and resolves
become Chatwoot's signed webhooks, read by the channel's own parser."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.addons.whatsapp.handoff.client import ChatwootClient, ChatwootSettings
from bot.addons.whatsapp.handoff.webhook import (
    AgentReply,
    Attachment,
    Resolved,
    chatwoot_signature,
    read_event,
)
from scripts import devstack
from simulator.chatwoot import FakeChatwoot
from simulator.server import SimulatorConfig, create_app
from tests.support.stack import free_port

DATA = Path(__file__).resolve().parent / "data" / "chatwoot"
ERRORS = json.loads((DATA / "errors.json").read_text(encoding="utf-8"))
TOKEN, SIGNING = "pane-api-token", "pane-signing-secret"
WA_ID = "5561999990001"


@dataclass
class Channel:
    """Stands in for the channel's Chatwoot route: records each delivery."""

    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.read(), dict(request.headers)))
        return web.json_response({"status": "ok"})

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw, _ in self.received]


@dataclass
class Running:
    url: str
    chatwoot: FakeChatwoot
    channel: Channel
    http: aiohttp.ClientSession

    def api(self, path: str) -> str:
        return f"{self.url}/api/v1/accounts/{self.chatwoot.account_id}{path}"

    async def handed_off(self) -> int:
        """What the channel does at handoff, with its own client: a conversation and a note."""
        client = ChatwootClient(ChatwootSettings(self.url, "1", 1, TOKEN))
        try:
            contact = await client.contact(WA_ID, "Maria")
            conversation, _ = await client.open_conversation(contact)
            await client.post(conversation, "Cidadão: quero um atendente", private=True)
        finally:
            await client.close()
        return conversation

    async def pane(self, action: str, body: Any) -> tuple[int, Any]:
        async with self.http.post(f"{self.url}/api/agent/{action}", json=body) as answer:
            return answer.status, await answer.json()

    async def listed(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/api/agent/conversations") as answer:
            assert answer.status == 200
            return dict(await answer.json())


async def serve(fake: FakeChatwoot | None) -> AsyncIterator[Running]:
    channel = Channel()
    channel_app = web.Application()
    channel_app.router.add_post("/webhooks/whatsapp/chatwoot/s3cret", channel.handle)
    channel_port, sim_port = free_port(), free_port()
    if fake is not None:
        fake.webhook_url = f"http://127.0.0.1:{channel_port}/webhooks/whatsapp/chatwoot/s3cret"
    config = SimulatorConfig(
        webhook_url=f"http://127.0.0.1:{channel_port}/unused",
        app_secret="sim-app-secret",
        access_token="sim-access-token",
        public_url=f"http://127.0.0.1:{sim_port}",
    )
    runners = []
    for app, port in ((channel_app, channel_port), (create_app(config, fake), sim_port)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    async with aiohttp.ClientSession() as http:
        try:
            chatwoot = fake or FakeChatwoot(token="")
            yield Running(f"http://127.0.0.1:{sim_port}", chatwoot, channel, http)
        finally:
            for runner in reversed(runners):
                await runner.cleanup()


@pytest.fixture
async def sim() -> AsyncIterator[Running]:
    async for running in serve(
        FakeChatwoot(token=TOKEN, account_id=1, inbox_id=1, signing_secret=SIGNING)
    ):
        yield running


@pytest.fixture
async def sim_without_chatwoot() -> AsyncIterator[Running]:
    async for running in serve(None):
        yield running


# --- Chatwoot's API on the simulator's port --------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "answer"),
    [
        ("GET", "/api/v1/accounts/1/contacts/search?q=5561", {}, None, 401, ERRORS["401"]),
        (
            "GET",
            "/api/v1/accounts/1/contacts/search?q=5561",
            {"api_access_token": "wrong"},
            None,
            401,
            ERRORS["401"],
        ),
        (
            "GET",
            "/api/v1/accounts/2/contacts/search?q=5561",
            {"api_access_token": TOKEN},
            None,
            404,
            ERRORS["404"],
        ),
        (
            "POST",
            "/api/v1/accounts/1/contacts",
            {"api_access_token": TOKEN},
            {"inbox_id": 9, "name": "Maria"},
            404,
            ERRORS["404"],
        ),
        (
            "POST",
            "/api/v1/accounts/1/contacts",
            {"api_access_token": TOKEN},
            {"name": "Maria"},
            422,
            {"message": "Inbox can't be blank", "attributes": ["inbox_id"]},
        ),
        (
            "POST",
            "/api/v1/accounts/1/conversations/4242/messages",
            {"api_access_token": TOKEN},
            {"content": "oi"},
            404,
            ERRORS["404"],
        ),
        (
            "POST",
            "/api/v1/accounts/1/conversations/x/toggle_status",
            {"api_access_token": TOKEN},
            {"status": "resolved"},
            404,
            ERRORS["404"],
        ),
    ],
    ids=[
        "no-token",
        "wrong-token",
        "other-account",
        "unknown-inbox",
        "no-inbox",
        "unknown-conv",
        "bad-id",
    ],
)
async def test_the_simulators_chatwoot_refuses_what_chatwoot_refuses(
    sim: Running,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any,
    status: int,
    answer: dict[str, Any],
) -> None:
    async with sim.http.request(method, sim.url + path, headers=headers, json=body) as got:
        assert (got.status, await got.json()) == (status, answer)
    assert sim.chatwoot.contacts == {} and sim.channel.received == []


async def test_a_message_without_content_is_422_on_a_real_conversation(sim: Running) -> None:
    conversation = await sim.handed_off()
    url = sim.api(f"/conversations/{conversation}/messages")
    async with sim.http.post(url, json={"private": True}, headers={"api_access_token": TOKEN}) as r:
        assert (r.status, await r.json()) == (422, ERRORS["422"])


async def test_without_a_token_every_call_is_refused_even_with_an_empty_header(
    sim_without_chatwoot: Running,
) -> None:
    s = sim_without_chatwoot
    for headers in ({}, {"api_access_token": ""}):
        async with s.http.get(
            f"{s.url}/api/v1/accounts/1/contacts/search?q=1", headers=headers
        ) as answer:
            assert (answer.status, await answer.json()) == (401, ERRORS["401"])
    assert await s.listed() == {"enabled": False, "conversations": []}


# --- the agent pane ---------------------------------------------------------------------


async def test_the_pane_lists_the_handed_off_conversation_with_its_note(sim: Running) -> None:
    conversation = await sim.handed_off()
    await sim.chatwoot.settle()
    listed = await sim.listed()
    assert listed["enabled"] is True
    [item] = listed["conversations"]
    assert (item["id"], item["status"], item["contact"]) == (
        conversation,
        "open",
        {"name": "Maria", "identifier": WA_ID, "phone_number": f"+{WA_ID}"},
    )
    assert [
        (m["content"], m["message_type"], m["private"], m["webhook_status"])
        for m in item["messages"]
    ] == [("Cidadão: quero um atendente", "outgoing", True, 200)]


async def test_an_answer_in_the_pane_is_chatwoots_signed_agent_message(sim: Running) -> None:
    conversation = await sim.handed_off()
    status, _ = await sim.pane("reply", {"conversation_id": conversation, "content": "Olá!"})
    assert status == 200
    await sim.chatwoot.settle()
    raw, headers = sim.channel.received[-1]
    stamp = headers["X-Chatwoot-Timestamp"]
    assert headers["X-Chatwoot-Signature"] == chatwoot_signature(SIGNING, stamp, raw)
    event = json.loads(raw)
    assert event["event"] == "message_created"
    assert event["sender"]["type"] == "user"
    assert read_event(event, 1) == AgentReply(event["id"], conversation, WA_ID, "Olá!")


async def test_a_file_attached_in_the_pane_goes_as_a_link_to_the_simulator(sim: Running) -> None:
    conversation = await sim.handed_off()
    async with sim.http.post(
        f"{sim.url}/api/upload", data=b"\x89PNG-bytes", headers={"Content-Type": "image/png"}
    ) as answer:
        upload = await answer.json()
    status, _ = await sim.pane(
        "reply",
        {"conversation_id": conversation, "attachment_url": upload["url"], "mime": "image/png"},
    )
    assert status == 200
    await sim.chatwoot.settle()
    event = read_event(sim.channel.events()[-1], 1)
    link = f"{sim.url}/media/{upload['id']}"
    assert event == AgentReply(
        sim.channel.events()[-1]["id"], conversation, WA_ID, "", (Attachment("image", link),)
    )
    async with sim.http.get(link) as answer:
        assert await answer.read() == b"\x89PNG-bytes"


async def test_resolve_in_the_pane_is_chatwoots_status_change(sim: Running) -> None:
    conversation = await sim.handed_off()
    assert await sim.pane("resolve", {"conversation_id": conversation}) == (
        200,
        {"id": conversation, "status": "resolved"},
    )
    await sim.chatwoot.settle()
    assert read_event(sim.channel.events()[-1], 1) == Resolved(conversation, WA_ID)
    assert (await sim.listed())["conversations"][0]["status"] == "resolved"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"conversation_id": 4242, "content": "oi"}, 404),
        ({"conversation_id": "x", "content": "oi"}, 400),
        (["not", "an", "object"], 400),
        ({"conversation_id": "CONV", "content": "  "}, 400),
    ],
    ids=["unknown", "bad-id", "not-object", "empty"],
)
async def test_the_pane_refuses_a_bad_answer_with_a_reason(
    sim: Running, body: Any, status: int
) -> None:
    conversation = await sim.handed_off()
    if isinstance(body, dict) and body["conversation_id"] == "CONV":
        body["conversation_id"] = conversation
    got, answer = await sim.pane("reply", body)
    assert got == status and answer["error"]
    await sim.chatwoot.settle()
    assert [e["content"] for e in sim.channel.events()] == ["Cidadão: quero um atendente"]


# --- make run wires the channel to it -----------------------------------------------------


def test_make_run_points_the_channels_chatwoot_at_the_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devstack, "RUN_DIR", tmp_path)
    services, _ = devstack.build_services({"SIMULATOR_PORT": "5199", "RASA_PORT": "5198"})
    by_name = {s.name: s for s in services}
    rasa, simulator = by_name["rasa"], by_name["simulator"]
    secret = rasa.env["CHATWOOT_WEBHOOK_SECRET"]
    assert len(secret) > 20 and rasa.env["CHATWOOT_API_TOKEN"]
    assert rasa.env["CHATWOOT_URL"] == "http://localhost:5199"
    hook = simulator.argv[simulator.argv.index("--chatwoot-webhook-url") + 1]
    assert hook == f"http://localhost:5198/webhooks/whatsapp/chatwoot/{secret}"
    again, _ = devstack.build_services({})  # generated once, kept
    assert {s.name: s for s in again}["rasa"].env["CHATWOOT_WEBHOOK_SECRET"] == secret


def test_make_run_keeps_a_configured_chatwoot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devstack, "RUN_DIR", tmp_path)
    env = {"CHATWOOT_URL": "https://chat.example", "CHATWOOT_API_TOKEN": "real"}
    services, _ = devstack.build_services(env)
    by_name = {s.name: s for s in services}
    assert by_name["rasa"].env["CHATWOOT_URL"] == "https://chat.example"
    assert by_name["rasa"].env["CHATWOOT_API_TOKEN"] == "real"
    assert "--chatwoot-webhook-url" not in by_name["simulator"].argv


async def test_the_pane_refuses_an_unknown_conversation_and_a_malformed_body(
    sim: Running,
) -> None:
    conversation = await sim.handed_off()
    before = len(sim.chatwoot.messages(conversation))
    assert await sim.pane("reply", {"conversation_id": 999, "content": "oi"}) == (
        404,
        {"error": "no conversation 999"},
    )
    assert (await sim.pane("resolve", ["not", "an", "object"]))[0] == 400
    assert (await sim.pane("reply", {"conversation_id": "x", "content": "oi"}))[0] == 400
    assert await sim.pane("reply", {"conversation_id": conversation, "content": " "}) == (
        400,
        {"error": "write a reply or attach a file"},
    )
    assert len(sim.chatwoot.messages(conversation)) == before
    assert sim.chatwoot.conversations[conversation]["status"] == "open"
