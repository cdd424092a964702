"""The simulator: its fake Graph API refuses what WhatsApp refuses, and its webhooks are Meta's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.addons.whatsapp.inbound.signature import signature_matches
from simulator.server import Item, Simulator, SimulatorConfig, create_app
from simulator.validation import validate_message
from tests.support.stack import free_port
from tests.whatsapp_fixtures import fixture, fixture_names

INVALID = json.loads(
    (Path(__file__).parent / "data" / "simulator" / "invalid_bodies.json").read_text(
        encoding="utf-8"
    )
)
SECRET, TOKEN = "sim-app-secret", "sim-access-token"
VOICE_NOTE = (Path(__file__).resolve().parent / "data" / "voice" / "bom_dia.ogg").read_bytes()


@pytest.mark.parametrize("case", INVALID, ids=[c["rule"] for c in INVALID])
def test_a_body_breaking_a_rule_is_refused_with_metas_code(case: dict[str, Any]) -> None:
    violations = validate_message(case["body"])
    assert violations, f"accepted: {case['rule']}"
    assert violations[0].code == case["code"]


@pytest.mark.parametrize("name", fixture_names("outbound_"))
def test_every_recorded_outbound_body_is_accepted(name: str) -> None:
    assert validate_message(fixture(name)) == []


@dataclass
class Channel:
    """Stands in for the real channel: records the webhooks the simulator sends."""

    received: list[tuple[bytes, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.read(), request.headers.get("X-Hub-Signature-256", "")))
        return web.json_response({"status": "ok"})

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw, _ in self.received]


@dataclass
class Running:
    url: str
    channel: Channel
    http: aiohttp.ClientSession


@pytest.fixture
async def sim() -> AsyncIterator[Running]:
    channel = Channel()
    channel_app = web.Application()
    channel_app.router.add_post("/webhook", channel.handle)
    runners = []
    channel_port, sim_port = free_port(), free_port()
    config = SimulatorConfig(
        webhook_url=f"http://127.0.0.1:{channel_port}/webhook",
        app_secret=SECRET,
        access_token=TOKEN,
        public_url=f"http://127.0.0.1:{sim_port}",
        status_delay=0.01,
    )
    for app, port in ((channel_app, channel_port), (create_app(config), sim_port)):
        runner = web.AppRunner(app, access_log=None)  # its lines would carry phone numbers
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    async with aiohttp.ClientSession() as http:
        yield Running(f"http://127.0.0.1:{sim_port}", channel, http)
    for runner in reversed(runners):
        await runner.cleanup()


def shape(value: Any) -> Any:
    """The keys of a JSON value, recursively: compares structure, not ids or times."""
    if isinstance(value, dict):
        return {
            k: shape(v)
            for k, v in value.items()
            if k not in ("sha256", "url", "caption", "description", "name", "address", "context")
        }
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__ if not isinstance(value, (int, float)) else "number"


@pytest.mark.parametrize(
    ("action", "recorded"),
    [
        ({"kind": "text", "text": "oi"}, "inbound_text"),
        (
            {"kind": "button_reply", "id": "/affirm", "title": "Sim"},
            "inbound_interactive_button_reply",
        ),
        (
            {"kind": "list_reply", "id": "/menu", "title": "Menu", "description": "d"},
            "inbound_interactive_list_reply",
        ),
        ({"kind": "location", "latitude": -15.79, "longitude": -47.88}, "inbound_location_current"),
        (
            {"kind": "image", "media_id": "100000000000499", "mime_type": "image/png"},
            "inbound_image_no_url",
        ),
        (
            {"kind": "audio", "media_id": "100000000000500", "mime_type": "audio/ogg"},
            "inbound_audio_voice",
        ),
    ],
)
async def test_each_user_action_becomes_a_signed_meta_webhook(
    sim: Running, action: dict[str, Any], recorded: str
) -> None:
    answer = await sim.http.post(
        f"{sim.url}/api/send", json={"from": "5561999990001", "name": "Maria", **action}
    )
    assert answer.status == 200
    ((raw, signature),) = sim.channel.received
    assert signature_matches(SECRET, raw, signature)
    sent = json.loads(raw)
    expected = fixture(recorded)
    expected_message = expected["entry"][0]["changes"][0]["value"]["messages"][0]
    expected["entry"][0]["changes"][0]["value"]["messages"][0] = {
        k: v for k, v in expected_message.items() if k != "context"
    }
    assert shape(sent) == shape(expected)
    message = sent["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["from"] == "5561999990001" and message["id"].startswith("wamid.")


async def post_message(
    sim: Running, body: dict[str, Any], token: str = TOKEN
) -> aiohttp.ClientResponse:
    return await sim.http.post(
        f"{sim.url}/v21.0/100000000000002/messages",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_the_fake_api_answers_like_meta(sim: Running) -> None:
    ok = await post_message(sim, fixture("outbound_text") | {"to": "+5561999990001"})
    assert ok.status == 200
    body = await ok.json()
    assert (
        body["messages"][0]["id"].startswith("wamid.")
        and body["contacts"][0]["wa_id"] == "5561999990001"
    )
    bad_token = await post_message(sim, fixture("outbound_text"), token="wrong")
    assert bad_token.status == 401 and (await bad_token.json())["error"]["code"] == 190
    wrong_number = await sim.http.post(
        f"{sim.url}/v21.0/999/messages",
        json=fixture("outbound_text"),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert (
        wrong_number.status == 400 and (await wrong_number.json())["error"]["error_subcode"] == 33
    )


async def test_a_refused_body_is_shown_in_the_conversation_with_the_rule(sim: Running) -> None:
    case = next(c for c in INVALID if c["rule"] == "four reply buttons")
    refused = await post_message(sim, case["body"])
    assert refused.status == 400
    error = (await refused.json())["error"]
    assert error["code"] == 131009 and "4 reply buttons" in error["error_data"]["details"]
    conversation = await (
        await sim.http.get(f"{sim.url}/api/messages", params={"number": "5561999990001"})
    ).json()
    (item,) = conversation["messages"]
    assert item["status"] == "failed" and "4 reply buttons" in item["errors"][0]


async def test_accepted_messages_get_signed_status_webhooks(sim: Running) -> None:
    await post_message(sim, fixture("outbound_text") | {"to": "+5561999990001"})
    for _ in range(100):
        if len(sim.channel.received) == 3:
            break
        await asyncio.sleep(0.02)
    statuses = [
        b["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] for b in sim.channel.bodies()
    ]
    assert statuses == ["sent", "delivered", "read"]
    assert all(signature_matches(SECRET, raw, sig) for raw, sig in sim.channel.received)


async def test_mark_read_turns_the_users_ticks_blue_and_numbers_do_not_mix(sim: Running) -> None:
    for number, text in (("5561999990001", "oi"), ("5561999990002", "olá")):
        await sim.http.post(
            f"{sim.url}/api/send", json={"from": number, "kind": "text", "text": text}
        )
    first = await (
        await sim.http.get(f"{sim.url}/api/messages", params={"number": "5561999990001"})
    ).json()
    (mine,) = first["messages"]
    assert mine["body"]["text"]["body"] == "oi" and mine["status"] == "delivered"
    read = await post_message(
        sim,
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": mine["id"],
            "typing_indicator": {"type": "text"},
        },
    )
    assert read.status == 200 and await read.json() == {"success": True}
    first = await (
        await sim.http.get(f"{sim.url}/api/messages", params={"number": "5561999990001"})
    ).json()
    second = await (
        await sim.http.get(f"{sim.url}/api/messages", params={"number": "5561999990002"})
    ).json()
    assert first["messages"][0]["status"] == "read" and first["typing"] is True
    assert [m["body"]["text"]["body"] for m in second["messages"]] == ["olá"]
    assert second["messages"][0]["status"] == "delivered"


JOANA = "BR.8730419265518204"


async def test_a_designer_chats_as_a_citizen_with_a_username_and_no_phone(sim: Running) -> None:
    answer = await sim.http.post(
        f"{sim.url}/api/send",
        json={
            "from": JOANA,
            "name": "Joana",
            "username": "@joana.lima",
            "kind": "text",
            "text": "oi",
        },
    )
    assert answer.status == 200
    sent = sim.channel.bodies()[0]
    expected = fixture("inbound_text_bsuid_only")
    assert shape(sent) == shape(expected)
    value = sent["entry"][0]["changes"][0]["value"]
    assert value["messages"][0]["from_user_id"] == JOANA and "from" not in value["messages"][0]
    reply = fixture("outbound_text_to_bsuid")
    ok = await post_message(sim, reply)
    assert ok.status == 200
    assert (await ok.json())["contacts"] == [{"input": JOANA, "user_id": JOANA}]
    conversation = await (
        await sim.http.get(f"{sim.url}/api/messages", params={"number": JOANA})
    ).json()
    assert [m["direction"] for m in conversation["messages"]] == ["in", "out"]
    for _ in range(100):
        if len(sim.channel.received) == 4:
            break
        await asyncio.sleep(0.02)
    status = sim.channel.bodies()[1]["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["recipient_user_id"] == JOANA and "recipient_id" not in status


async def test_the_fake_api_refuses_no_recipient_and_a_bsuid_in_to(sim: Running) -> None:
    text = {k: v for k, v in fixture("outbound_text").items() if k != "to"}
    for body in (text, text | {"to": JOANA}):
        refused = await post_message(sim, body)
        assert refused.status == 400


async def test_typing_stops_when_the_reply_is_already_there(sim: Running) -> None:
    await sim.http.post(
        f"{sim.url}/api/send", json={"from": "5561999990001", "kind": "text", "text": "oi"}
    )
    (mine,) = (
        await (
            await sim.http.get(f"{sim.url}/api/messages", params={"number": "5561999990001"})
        ).json()
    )["messages"]
    # The reply overtakes the read receipt (both leave the channel at once).
    assert (await post_message(sim, fixture("outbound_text") | {"to": "+5561999990001"})).ok
    read = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": mine["id"],
        "typing_indicator": {"type": "text"},
    }
    assert (await post_message(sim, read)).status == 200
    after = await (
        await sim.http.get(f"{sim.url}/api/messages", params={"number": "5561999990001"})
    ).json()
    assert after["typing"] is False


def test_typing_lasts_25_seconds_at_most() -> None:
    sim = Simulator(SimulatorConfig("http://127.0.0.1:9", app_secret="s", access_token="t"))
    now = [1000.0]
    sim.clock = lambda: now[0]
    item = Item("wamid.IN", "in", {})
    sim._typing_after_read("5561999990001", [item], item)
    now[0] += 24.9
    assert sim.typing_on("5561999990001")
    now[0] += 0.2
    assert not sim.typing_on("5561999990001")


async def test_an_uploaded_audio_file_is_sent_as_a_voice_note_the_channel_can_download(
    sim: Running,
) -> None:
    ogg = VOICE_NOTE
    upload = await sim.http.post(
        f"{sim.url}/api/upload", data=ogg, headers={"Content-Type": "audio/ogg"}
    )
    media_id = (await upload.json())["id"]
    answer = await sim.http.post(
        f"{sim.url}/api/send",
        json={
            "from": "5561999990001",
            "kind": "audio",
            "media_id": media_id,
            "mime_type": "audio/ogg",
        },
    )
    assert answer.status == 200
    ((raw, _signature),) = sim.channel.received
    message = json.loads(raw)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["type"] == "audio"
    assert message["audio"] == {
        "mime_type": "audio/ogg",
        "sha256": "SIMULATED",
        "id": media_id,
        "voice": True,
    }
    auth = {"Authorization": f"Bearer {TOKEN}"}
    info = await (await sim.http.get(f"{sim.url}/v26.0/{media_id}", headers=auth)).json()
    assert info["mime_type"] == "audio/ogg"
    download = await sim.http.get(
        info["url"].replace("http://localhost:5100", sim.url), headers=auth
    )
    assert await download.read() == ogg
