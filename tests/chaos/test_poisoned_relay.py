"""A message that cannot be relayed must not stop the relay: the ones after it are
answered. The ingress and the channel over real HTTP (and a real redis-server)."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any

import pytest
from aiohttp import web

from bot.addons.whatsapp.inbound.events import (
    InboundMessage,
    MessageType,
    message_from_record,
    message_record,
)
from bot.addons.whatsapp.ingress.relay import Relay
from bot.addons.whatsapp.metrics import Metrics
from tests.channel_harness import serve_channel
from tests.support.redis import RedisServer, redis_server
from tests.support.stack import free_port
from tests.test_ingress import eventually, serve_ingress
from tests.test_webhook_http import text_webhook

SENDER = "5561955550001"
TRUNCATED_EMOJI = "oi \ud83d"  # a lone high surrogate: half of 😀, as JSON "\ud83d"


def batch_of(*texts: tuple[str, str]) -> dict[str, Any]:
    """One webhook carrying several text messages of SENDER, in order."""
    payload = text_webhook(texts[0][0], texts[0][1], SENDER)
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    for wamid, text in texts[1:]:
        message = copy.deepcopy(messages[0])
        message.update({"id": wamid, "text": {"body": text}})
        messages.append(message)
    return payload


def test_a_journal_record_keeps_a_lone_surrogate_and_is_valid_utf8() -> None:
    message = InboundMessage(
        "wamid.P", SENDER, MessageType.TEXT, data={"text": {"body": TRUNCATED_EMOJI + " é"}}
    )
    record = message_record(message)
    record.encode("utf-8")  # what Redis and the relay need
    assert message_from_record(record).data == {"text": {"body": TRUNCATED_EMOJI + " é"}}
    plain = InboundMessage("wamid.Q", SENDER, MessageType.TEXT, data={"text": {"body": "é"}})
    assert "é" in message_record(plain)  # compact when it can be


def redis_or_not(request: pytest.FixtureRequest) -> AbstractContextManager[RedisServer | None]:
    return redis_server() if request.param == "redis" else nullcontext()


@pytest.fixture(params=["memory", "redis"])
def redis(request: pytest.FixtureRequest) -> Iterator[RedisServer | None]:
    with redis_or_not(request) as server:
        yield server


async def test_a_truncated_emoji_does_not_stop_the_messages_after_it(
    redis: RedisServer | None,
) -> None:
    store: dict[str, Any] = {"redis_url": redis.url} if redis else {}
    async with serve_channel(**store) as rasa, serve_ingress(rasa.url, **store) as ingress:
        first = await ingress.post(batch_of(("wamid.P1", TRUNCATED_EMOJI), ("wamid.P2", "um")))
        second = await ingress.post(batch_of(("wamid.P3", "dois")))
        assert (first.status, second.status) == (200, 200)
        await eventually(lambda: len(rasa.agent.messages) == 3)
        assert [m.text for m in rasa.agent.messages] == [TRUNCATED_EMOJI, "um", "dois"]
        # Each reply leaves when its turn ends (a text is held for joining: outbound/join.py).
        await eventually(lambda: len(rasa.provider.sent) == 3)
        assert [to for to, _ in rasa.provider.sent] == [SENDER] * 3
        assert ingress.ingress.relay.depth == 0


# --- what cannot be relayed is set aside, the rest goes on ---------------------------


@asynccontextmanager
async def fake_rasa_refusing(wamid: str) -> AsyncIterator[tuple[str, list[str]]]:
    """A relay endpoint that takes every batch except one holding ``wamid`` (400, as
    rasa run refuses a relay it cannot read)."""
    taken: list[str] = []

    async def relay(request: web.Request) -> web.Response:
        ids = [m["wamid"] for m in json.loads(await request.read())["messages"]]
        if wamid in ids:
            return web.json_response({"error": "invalid_relay"}, status=400)
        taken.extend(ids)
        return web.json_response({"status": "ok", "accepted": len(ids)})

    app = web.Application()
    app.router.add_post("/webhooks/whatsapp/relay", relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", taken
    finally:
        await runner.cleanup()


def text_message(wamid: str, data: Any = None) -> InboundMessage:
    return InboundMessage(wamid, SENDER, MessageType.TEXT, data=data or {"text": {"body": "oi"}})


def nested(depth: int) -> Any:
    value: Any = "fundo"
    for _ in range(depth):
        value = [value]
    return value


async def test_messages_that_can_never_be_relayed_are_set_aside_and_the_rest_relayed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    metrics = Metrics(ingress=True)
    async with fake_rasa_refusing("wamid.REFUSED") as (url, taken):
        relay = Relay(url, "secret", "owner1", metrics, batch_max=8, backoff=(0.01, 0.05))
        messages = [text_message(f"wamid.A{i}") for i in range(5)]
        messages.insert(2, text_message("wamid.REFUSED"))
        messages.insert(4, text_message("wamid.DEEP", {"text": {"body": nested(100_000)}}))
        relay.start()
        try:
            assert relay.submit(messages)
            await eventually(lambda: relay.depth == 0, timeout=5)
            await asyncio.sleep(0.05)
        finally:
            await relay.close()
    assert taken == [f"wamid.A{i}" for i in range(5)]
    assert metrics.relay_set_aside == {"http_400": 1, "unencodable": 1}
    assert metrics.messages_relayed == 5
    rendered = metrics.render()
    assert 'whatsapp_relay_set_aside_total{reason="http_400"} 1' in rendered
    assert 'whatsapp_relay_set_aside_total{reason="unencodable"} 1' in rendered
    assert "Relay set aside message wamid.REFUSED from 55*********01 (http_400" in caplog.text
    assert "wa:journal:owner1 for inspection" in caplog.text
