"""What the agent gets in Chatwoot while the bot is paused (media as files it can open,
locations as a map link), the citizen's place in Chatwoot's queue in the transfer, and the
satisfaction answers counted: over real HTTP, the same stack as ``test_handoff.py``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from rasa.shared.core.events import ConversationResumed

from bot.addons.whatsapp.handoff.describe import rating_of
from bot.addons.whatsapp.handoff.forward import file_of
from bot.addons.whatsapp.inbound.events import InboundMessage, MessageType
from tests.test_handoff import WA_ID, Stack, handed_off, stack

JPEG = b"\xff\xd8\xff\xe0" + b"foto do buraco" * 50
PDF = b"%PDF-1.4 comprovante"


def incoming(s: Stack, conversation: int) -> list[dict[str, Any]]:
    return [m for m in s.chatwoot.messages(conversation) if m["message_type"] == "incoming"]


async def opened(url: str) -> tuple[int, bytes, str]:
    """What the agent's browser gets for an attachment's link (no token)."""
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        return answer.status, await answer.read(), answer.content_type


async def test_a_photo_and_a_document_reach_the_agent_as_files_it_can_open() -> None:
    async with stack() as s:
        s.graph.media["MEDIA.PHOTO"] = (JPEG, "image/jpeg")
        s.graph.media["MEDIA.PDF"] = (PDF, "application/pdf")
        conversation = await handed_off(s)
        photo = {"id": "MEDIA.PHOTO", "mime_type": "image/jpeg", "caption": "o buraco"}
        await s.send({"type": "image", "image": photo}, wamid="wamid.PHOTO1")
        document = {"id": "MEDIA.PDF", "mime_type": "application/pdf", "filename": "iptu.pdf"}
        await s.send({"type": "document", "document": document})
        messages = incoming(s, conversation)
        assert [(m["content"], [a["file_type"] for a in m["attachments"]]) for m in messages] == [
            ("[imagem] o buraco", ["image"]),
            ("[documento]", ["file"]),
        ]
        first, second = (m["attachments"][0] for m in messages)
        assert first["data_url"].endswith("/image-wamid.PHOTO1.jpg")
        assert second["data_url"].endswith("/iptu.pdf")
        assert await opened(first["data_url"]) == (200, JPEG, "image/jpeg")
        assert await opened(second["data_url"]) == (200, PDF, "application/pdf")
        assert s.agent.texts == ["quero um atendente", '/handoff_started{"handoff_position":"1"}']


async def test_a_file_over_the_limit_or_not_downloadable_arrives_as_a_description() -> None:
    async with stack(handoff_attachment_max_bytes=100) as s:
        s.graph.media["MEDIA.PHOTO"] = (JPEG, "image/jpeg")
        conversation = await handed_off(s)
        photo = {"id": "MEDIA.PHOTO", "mime_type": "image/jpeg"}
        await s.send({"type": "image", "image": photo})
        gone = {"id": "MEDIA.GONE", "mime_type": "audio/ogg; codecs=opus", "voice": True}
        await s.send({"type": "audio", "audio": gone})
        assert [(m["content"], m["attachments"]) for m in incoming(s, conversation)] == [
            (
                "[imagem] (WhatsApp media id MEDIA.PHOTO, image/jpeg)\n"
                "(Arquivo grande demais para anexar: 0.0 MB, acima do limite de 0.0 MB.)",
                [],
            ),
            (
                "[áudio] (WhatsApp media id MEDIA.GONE, audio/ogg; codecs=opus)\n"
                "(O arquivo não pôde ser baixado do WhatsApp.)",
                [],
            ),
        ]
        assert s.channel.metrics.handoffs == {"started": 1}  # still handed off


async def test_a_location_reaches_the_agent_as_text_with_a_map_link() -> None:
    async with stack() as s:
        conversation = await handed_off(s)
        place = {"latitude": -15.79, "longitude": -47.88, "name": "Praça Central"}
        await s.send({"type": "location", "location": place})
        assert [(m["content"], m["attachments"]) for m in incoming(s, conversation)] == [
            (
                "📍 Localização: -15.79, -47.88 (Praça Central)\n"
                "https://www.google.com/maps?q=-15.79,-47.88",
                [],
            )
        ]


def _waiting(s: Stack, count: int, assigned: int) -> None:
    """Other citizens' open conversations in the inbox, ``assigned`` of them taken."""
    for n in range(count):
        s.chatwoot.conversations[n + 1] = {
            "id": n + 1,
            "contact_id": 0,
            "source_id": "",
            "status": "open",
            "messages": [],
        }
        if n < assigned:
            s.chatwoot.assigned.add(n + 1)


async def test_the_transfer_names_the_citizens_place_among_unassigned_conversations() -> None:
    async with stack() as s:
        _waiting(s, 3, assigned=1)
        await s.citizen("quero um atendente")
        assert s.agent.texts[-1] == '/handoff_started{"handoff_position":"3"}'
        assert await s.agent.paused()


async def test_a_slow_queue_count_is_left_out_and_does_not_hold_the_handoff() -> None:
    async with stack() as s:
        s.chatwoot.meta_delay = 10.0
        began = time.monotonic()
        await s.citizen("quero um atendente")
        assert time.monotonic() - began < 6
        assert s.agent.texts[-1] == '/handoff_started{"handoff_position":"0"}'
        assert await s.agent.paused()
        assert s.channel.metrics.handoffs == {"started": 1}


def _button(payload: str) -> dict[str, Any]:
    reply = {"id": payload, "title": "😊 Bom"}
    return {"type": "interactive", "interactive": {"type": "button_reply", "button_reply": reply}}


async def test_satisfaction_answers_are_counted_in_the_metrics() -> None:
    async with stack() as s:
        conversation = await handed_off(s)
        await s.chatwoot.resolve(conversation)
        await s.settle()
        await s.send(_button('/handoff_rating{"handoff_rating": "good"}'))
        await s.send(_button('/handoff_rating{"handoff_rating": "bad"}'))
        await s.send(_button("/menu"))
        assert s.channel.metrics.handoff_ratings == {"good": 1, "bad": 1}
        text = s.channel.metrics.render()
        assert 'whatsapp_handoff_ratings_total{rating="good"} 1' in text
        assert 'whatsapp_handoff_ratings_total{rating="bad"} 1' in text


def _message(kind: MessageType, fields: dict[str, Any], wamid: str = "wamid.X1") -> InboundMessage:
    return InboundMessage(wamid, WA_ID, kind, data={"type": kind.value, kind.value: fields})


def test_a_rating_is_read_only_from_its_own_button() -> None:
    def tapped(payload: str) -> InboundMessage:
        return InboundMessage("wamid.X2", WA_ID, MessageType.INTERACTIVE, data=_button(payload))

    assert rating_of(tapped('/handoff_rating{"handoff_rating": "fair"}')) == "fair"
    assert rating_of(tapped('/handoff_rating{"handoff_rating": "great"}')) is None
    assert rating_of(tapped('/handoff_rating{"handoff_rating"')) is None
    assert rating_of(tapped("/menu")) is None


def test_a_voice_note_without_a_name_is_named_from_its_type() -> None:
    audio = _message(MessageType.AUDIO, {"id": "M1", "mime_type": "audio/ogg; codecs=opus"})
    assert file_of(audio, "audio/ogg; codecs=opus").filename == "audio-wamid.X1.ogg"
    assert file_of(audio, "audio/ogg; codecs=opus").content == "[áudio]"


async def test_a_message_waiting_for_the_lock_while_the_handoff_ends_goes_to_the_bot() -> None:
    async with stack() as s:
        conversation = await handed_off(s)
        async with s.agent.lock_store.lock(WA_ID):  # another replica's turn holds it
            message = asyncio.ensure_future(s.citizen("ainda estou aqui"))
            await asyncio.sleep(0.5)
            assert not message.done()  # read "paused", now waits for the lock
            tracker = await s.agent.tracker_store.get_or_create_tracker(WA_ID)
            tracker.update(ConversationResumed())  # the agent resolved meanwhile
            await s.agent.tracker_store.save(tracker)
        await message
        assert incoming(s, conversation) == []
        assert s.whatsapp_texts()[-1] == "eco: ainda estou aqui"
