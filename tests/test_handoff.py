"""Handoff to a human agent through Chatwoot, over real HTTP: the channel in a Sanic app as
Rasa mounts it, Rasa's own in-memory tracker and lock stores, the fake Graph API and the
fake Chatwoot (``tests/fakes/chatwoot.py``) posting its webhooks back to the channel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rasa.core.channels.channel import UserMessage, register
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from sanic import Sanic

from bot.addons.whatsapp.channel import WhatsAppInput
from bot.addons.whatsapp.handoff.client import ChatwootClient, ChatwootError, ChatwootSettings
from bot.addons.whatsapp.handoff.webhook import AgentReply, Attachment, Resolved, read_event
from bot.addons.whatsapp.inbound.signature import sign
from tests.channel_harness import APP_SECRET, settings
from tests.fakes.chatwoot import FakeChatwoot, running_chatwoot
from tests.fakes.graph import FakeGraph, running_graph
from tests.support.stack import free_port

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "chatwoot"
SECRET = "test-chatwoot-url-secret"
WA_ID = "5561999990001"
NOTE = "Conversa com o assistente virtual (últimas mensagens):\nCidadão: quero um atendente"


class RasaLikeAgent:
    """Stands in for Rasa's agent with Rasa's real tracker and lock stores: logs each user
    message, answers nothing when the tracker is paused (as Rasa's processor does), asks
    for a handoff on "atendente", and answers the channel's handoff intents."""

    def __init__(self) -> None:
        domain = Domain.load(str(ROOT / "domain.yml"))
        self.tracker_store = InMemoryTrackerStore(domain)
        self.lock_store = InMemoryLockStore()
        self.texts: list[str] = []

    async def paused(self, wa_id: str = WA_ID) -> bool:
        tracker = await self.tracker_store.retrieve(wa_id)
        return tracker is not None and tracker.is_paused()

    async def handle_message(self, message: UserMessage) -> None:
        sender = message.sender_id or ""
        async with self.lock_store.lock(sender):
            tracker = await self.tracker_store.get_or_create_tracker(sender)
            tracker.update(UserUttered(message.text, message_id=message.message_id))
            await self.tracker_store.save(tracker)
            if tracker.is_paused():
                return
        text = message.text or ""
        self.texts.append(text)
        out = message.output_channel
        if "atendente" in text:
            await out.send_response(sender, {"custom": {"handoff": {"note": NOTE}}})
        elif text.startswith("/handoff_started"):
            await out.send_response(sender, {"text": "Transferindo para um atendente."})
        elif text.startswith("/handoff_ended"):
            outcome = json.loads(text[len("/handoff_ended") :])["handoff_outcome"]
            await out.send_response(sender, {"text": f"De volta ao robô ({outcome})."})
        else:
            await out.send_response(sender, {"text": f"eco: {text}"})


@dataclass
class Stack:
    url: str
    channel: WhatsAppInput
    agent: RasaLikeAgent
    graph: FakeGraph
    chatwoot: FakeChatwoot
    http: aiohttp.ClientSession
    wamids: Any

    async def citizen(self, text: str, wamid: str | None = None) -> None:
        await self.send({"type": "text", "text": {"body": text}}, wamid)

    async def send(self, fields: dict[str, Any], wamid: str | None = None) -> None:
        """One WhatsApp message of the citizen (``fields``: its type and content)."""
        wamid = wamid or f"wamid.IN{next(self.wamids)}"
        payload = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"phone_number_id": "100000000000002"},
                                "contacts": [{"profile": {"name": "Maria"}, "wa_id": WA_ID}],
                                "messages": [
                                    {
                                        "from": WA_ID,
                                        "id": wamid,
                                        "timestamp": str(int(time.time())),
                                        **fields,
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
        body = json.dumps(payload).encode()
        headers = {"X-Hub-Signature-256": sign(APP_SECRET, body)}
        async with self.http.post(
            f"{self.url}/webhooks/whatsapp/webhook", data=body, headers=headers
        ) as answer:
            assert answer.status == 200, await answer.text()
        await self.settle()

    async def settle(self) -> None:
        for _ in range(500):
            await self.chatwoot.settle()
            chains = list(self.channel.handoff._chains.values())
            if self.channel.sink.depth == 0 and not chains:
                return
            await asyncio.gather(*chains, return_exceptions=True)
            await asyncio.sleep(0.01)
        raise AssertionError("the stack did not settle")

    def whatsapp_texts(self) -> list[str]:
        return [body["text"]["body"] for body in self.graph.sent if body.get("type") == "text"]

    def conversation(self) -> int:
        assert len(self.chatwoot.conversations) == 1, self.chatwoot.conversations
        return next(iter(self.chatwoot.conversations))


@asynccontextmanager
async def stack(**overrides: Any) -> AsyncIterator[Stack]:
    async with running_graph() as graph, running_chatwoot() as chatwoot:
        port = free_port()
        values: dict[str, Any] = {
            "api_base_url": graph.url,
            "chatwoot_url": chatwoot.url,
            "chatwoot_account_id": str(chatwoot.account_id),
            "chatwoot_inbox_id": chatwoot.inbox_id,
            "chatwoot_api_token": chatwoot.token,
            "chatwoot_webhook_secret": SECRET,
            "mark_read": False,
        }
        values.update(overrides)
        channel = WhatsAppInput(settings(**values))
        chatwoot.webhook_url = f"http://127.0.0.1:{port}/webhooks/whatsapp/chatwoot/{SECRET}"
        agent = RasaLikeAgent()
        app = Sanic(f"handoff_test_{port}", configure_logging=False)
        app.ctx.agent = agent
        register([channel], app, route="/webhooks/")
        server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
        assert server is not None
        await server.startup()
        await server.before_start()
        await server.after_start()
        http = aiohttp.ClientSession()
        try:
            yield Stack(
                f"http://127.0.0.1:{port}", channel, agent, graph, chatwoot, http, iter(range(1000))
            )
        finally:
            await http.close()
            await server.before_stop()
            await server.close()
            await server.after_stop()


async def handed_off(s: Stack) -> int:
    await s.citizen("quero um atendente")
    assert await s.agent.paused()
    return s.conversation()


async def test_handoff_opens_one_conversation_with_the_transcript_and_pauses_the_bot() -> None:
    async with stack() as s:
        conversation = await handed_off(s)
        contact = next(iter(s.chatwoot.contacts.values()))
        assert (contact["identifier"], contact["name"], contact["phone_number"]) == (
            WA_ID,
            "Maria",
            f"+{WA_ID}",
        )
        assert [
            (m["content"], m["message_type"], m["private"])
            for m in s.chatwoot.messages(conversation)
        ] == [(NOTE, "outgoing", True)]
        assert s.whatsapp_texts() == ["Transferindo para um atendente."]
        assert s.channel.metrics.handoffs == {"started": 1}


async def test_a_second_handoff_reuses_the_open_conversation() -> None:
    async with stack() as s:
        conversation = await handed_off(s)
        await s.channel.handoff.resume(WA_ID, "citizen", tell_chatwoot=False)
        await s.citizen("outro atendente, por favor")
        assert s.conversation() == conversation
        assert len(s.chatwoot.contacts) == 1


async def test_paused_messages_reach_chatwoot_in_order_once_and_the_bot_stays_quiet() -> None:
    async with stack() as s:
        conversation = await handed_off(s)
        await s.citizen("primeira", wamid="wamid.A")
        await s.citizen("segunda", wamid="wamid.B")
        await s.citizen("primeira", wamid="wamid.A")  # Meta redelivers
        await s.citizen("terceira", wamid="wamid.C")
        incoming = [
            m["content"]
            for m in s.chatwoot.messages(conversation)
            if m["message_type"] == "incoming"
        ]
        assert incoming == ["primeira", "segunda", "terceira"]
        assert s.agent.texts == [
            "quero um atendente",
            '/handoff_started{"handoff_position":"1"}',
        ]
        assert s.whatsapp_texts() == ["Transferindo para um atendente."]


async def test_agent_text_and_attachment_reach_whatsapp_in_order_once() -> None:
    async with stack() as s:
        conversation = await handed_off(s)
        photo = "https://chatwoot.example/rails/active_storage/blobs/redirect/x/mapa.jpg"
        await s.chatwoot.agent_reply(conversation, "Olá, Maria! Sou a Ana.")
        await s.chatwoot.agent_reply(conversation, "Veja o mapa:", attachments=[photo])
        await s.chatwoot.redeliver_last()  # Chatwoot retries a delivery
        await s.settle()
        assert s.graph.sent[1:] == [
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": f"+{WA_ID}",
                "type": "text",
                "text": {"body": "Olá, Maria! Sou a Ana.", "preview_url": False},
            },
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": f"+{WA_ID}",
                "type": "text",
                "text": {"body": "Veja o mapa:", "preview_url": False},
            },
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": f"+{WA_ID}",
                "type": "image",
                "image": {"link": photo},
            },
        ]
        assert s.channel.metrics.handoff_wait_count == 1
        assert "whatsapp_handoff_wait_seconds_count 1" in s.channel.metrics.render()


async def test_resolving_in_chatwoot_resumes_the_bot_once() -> None:
    async with stack() as s:
        conversation = await handed_off(s)
        await s.chatwoot.resolve(conversation)
        await s.settle()
        await s.chatwoot.redeliver_last()
        await s.settle()
        assert not await s.agent.paused()
        assert s.whatsapp_texts()[1:] == ["De volta ao robô (resolved)."]
        await s.citizen("oi")
        assert s.whatsapp_texts()[-1] == "eco: oi"
        assert s.channel.metrics.handoffs == {"started": 1, "resolved": 1}


async def test_a_resume_word_hands_back_to_the_bot_and_closes_the_chatwoot_conversation() -> None:
    async with stack() as s:
        conversation = await handed_off(s)
        await s.citizen("Menu")
        assert not await s.agent.paused()
        assert s.chatwoot.conversations[conversation]["status"] == "resolved"
        # Chatwoot's own conversation_status_changed came back: no second resume.
        assert s.whatsapp_texts()[1:] == ["De volta ao robô (citizen)."]
        assert s.channel.metrics.handoffs == {"started": 1, "citizen": 1}


async def test_no_agent_within_the_timeout_resumes_the_bot() -> None:
    async with stack(handoff_agent_timeout=1.0) as s:
        conversation = await handed_off(s)
        for _ in range(100):
            if not await s.agent.paused():
                break
            await asyncio.sleep(0.05)
        await s.settle()
        assert not await s.agent.paused()
        assert s.whatsapp_texts()[1:] == ["De volta ao robô (timeout)."]
        assert s.chatwoot.conversations[conversation]["status"] == "resolved"
        assert s.channel.metrics.handoffs == {"started": 1, "timeout": 1}


@pytest.mark.parametrize("how", ["down", "unreachable"])
async def test_chatwoot_down_at_handoff_gives_the_contact_text_and_nothing_hangs(how: str) -> None:
    overrides = {"chatwoot_url": f"http://127.0.0.1:{free_port()}"} if how == "unreachable" else {}
    async with stack(**overrides) as s:
        s.chatwoot.down = True
        await s.citizen("quero um atendente")
        assert not await s.agent.paused()
        assert s.whatsapp_texts() == ["De volta ao robô (unavailable)."]
        assert s.channel.metrics.handoffs == {"unavailable": 1}


async def test_forged_chatwoot_webhooks_are_refused() -> None:
    async with stack(chatwoot_signing_secret="signing") as s:
        conversation = await handed_off(s)
        body = json.loads((DATA / "message_created.json").read_text())
        body.update(message_type="outgoing", id=999)
        body["conversation"].update(id=conversation, inbox_id=s.chatwoot.inbox_id)
        body["conversation"]["meta"]["sender"]["identifier"] = WA_ID
        raw = json.dumps(body).encode()
        base = f"{s.url}/webhooks/whatsapp/chatwoot/"
        stamp = str(int(time.time()))
        from bot.addons.whatsapp.handoff.webhook import chatwoot_signature

        cases = [
            (base + "wrong-secret", {}, 403),
            (base + SECRET, {}, 401),
            (
                base + SECRET,
                {"X-Chatwoot-Timestamp": stamp, "X-Chatwoot-Signature": "sha256=00"},
                403,
            ),
            (
                base + SECRET,
                {
                    "X-Chatwoot-Timestamp": str(int(time.time()) - 3600),
                    "X-Chatwoot-Signature": chatwoot_signature(
                        "signing", str(int(time.time()) - 3600), raw
                    ),
                },
                403,
            ),
        ]
        statuses = []
        for url, headers, _ in cases:
            async with s.http.post(url, data=raw, headers=headers) as answer:
                statuses.append(answer.status)
        assert statuses == [status for *_, status in cases]
        await s.settle()
        assert s.whatsapp_texts() == ["Transferindo para um atendente."]
        signed = {
            "X-Chatwoot-Timestamp": stamp,
            "X-Chatwoot-Signature": chatwoot_signature("signing", stamp, raw),
        }
        async with s.http.post(base + SECRET, data=raw, headers=signed) as answer:
            assert answer.status == 200
        await s.settle()
        assert s.whatsapp_texts()[-1] == "hi"


# --- pure: the recorded payloads ------------------------------------------------------


def _recorded(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def test_an_incoming_message_is_not_an_agent_reply() -> None:
    assert read_event(_recorded("message_created.json"), 1) == "not an agent's public message"


def test_an_agents_message_with_an_attachment_is_read_whole() -> None:
    payload = _recorded("message_created.json")
    payload.update(message_type="outgoing", attachments=[_recorded("attachment.json")])
    payload["conversation"]["meta"]["sender"]["phone_number"] = "+5561999990001"
    assert read_event(payload, 1) == AgentReply(
        118,
        10,
        "5561999990001",
        "hi",
        (Attachment("image", _recorded("attachment.json")["data_url"]),),
    )


def test_private_notes_and_other_inboxes_are_ignored() -> None:
    payload = _recorded("message_created.json")
    payload.update(message_type="outgoing", private=True)
    assert read_event(payload, 1) == "not an agent's public message"
    assert read_event(_recorded("message_created.json"), 2) == "another inbox"


def test_a_resolved_conversation_is_read_with_its_contact() -> None:
    payload = _recorded("conversation_status_changed.json")
    payload["meta"]["sender"]["identifier"] = WA_ID
    assert read_event(payload, 1) == Resolved(10, WA_ID)
    payload["status"] = "open"
    assert read_event(payload, 1) == "status open"


# --- the fake refuses what Chatwoot refuses --------------------------------------------


@pytest.mark.parametrize(
    ("change", "status"),
    [({"token": "wrong"}, 401), ({"inbox_id": 999}, 404), ({"account_id": "999"}, 404)],
)
async def test_the_client_reports_what_chatwoot_refuses(
    change: dict[str, Any], status: int
) -> None:
    async with running_chatwoot() as fake:
        values: dict[str, Any] = {
            "url": fake.url,
            "account_id": str(fake.account_id),
            "inbox_id": fake.inbox_id,
            "token": fake.token,
        }
        values.update(change)
        client = ChatwootClient(ChatwootSettings(**values))
        try:
            with pytest.raises(ChatwootError) as raised:
                await client.contact(WA_ID, "Maria")
        finally:
            await client.close()
        assert raised.value.status == status


async def test_the_fake_answers_422_to_a_message_without_content() -> None:
    async with running_chatwoot() as fake, aiohttp.ClientSession() as http:
        client = ChatwootClient(
            ChatwootSettings(fake.url, str(fake.account_id), fake.inbox_id, fake.token)
        )
        conversation, new = await client.open_conversation(await client.contact(WA_ID, "Maria"))
        await client.close()
        url = f"{fake.url}/api/v1/accounts/{fake.account_id}/conversations/{conversation}/messages"
        async with http.post(
            url, json={"private": True}, headers={"api_access_token": fake.token}
        ) as answer:
            assert (answer.status, await answer.json()) == (422, _recorded("errors.json")["422"])
        assert new
