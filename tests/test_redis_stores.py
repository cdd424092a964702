"""Dedup, journal and short-key stores on a real redis-server (started here); the channel
while Redis is down and after it restarts; a killed process's messages taken over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bot.addons.whatsapp.delivery.journal import RedisDedupStore
from bot.addons.whatsapp.inbound.events import InboundMessage, message_record
from bot.addons.whatsapp.inbound.parse import cloud_values, parse_values
from bot.addons.whatsapp.outbound.short_keys import RedisPayloadStore
from tests.channel_harness import FakeAgent, serve_channel
from tests.support.redis import RedisServer, redis_server
from tests.support.stack import free_port
from tests.test_ingress import serve_ingress
from tests.test_webhook_http import text_webhook


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis: RedisServer) -> str:
    return redis.url


@pytest.fixture
async def dedup(redis_url: str) -> AsyncIterator[RedisDedupStore]:
    store = RedisDedupStore(redis_url, ttl_seconds=60)
    yield store
    await store.close()


async def test_a_key_is_claimed_once_even_concurrently(
    dedup: RedisDedupStore, redis_url: str
) -> None:
    other_process = RedisDedupStore(redis_url, ttl_seconds=60)
    claims = await asyncio.gather(*(s.claim("wamid.X") for s in [dedup, other_process] * 10))
    await other_process.close()
    assert claims.count(True) == 1


async def test_a_released_key_can_be_claimed_again(dedup: RedisDedupStore) -> None:
    assert await dedup.claim("wamid.Y")
    await dedup.release("wamid.Y")
    assert await dedup.claim("wamid.Y")


async def test_claims_expire_after_the_ttl(redis_url: str) -> None:
    store = RedisDedupStore(redis_url, ttl_seconds=60)
    assert await store.claim("wamid.Z")
    ttl = await store._redis.ttl("wa:dedup:wamid.Z")
    await store.close()
    assert 0 < ttl <= 60


async def test_short_keys_resolve_in_any_process(redis_url: str) -> None:
    writer, reader = RedisPayloadStore(redis_url), RedisPayloadStore(redis_url)
    await writer.remember({"~k:abc": '/choose{"x":1}'})
    assert await reader.resolve("~k:abc") == '/choose{"x":1}'
    assert await reader.resolve("/plain") == "/plain"
    await writer.close()
    await reader.close()


async def test_the_webhook_answers_503_while_redis_is_down_and_nothing_is_lost() -> None:
    port = free_port()  # nothing listens here: Redis is "down"
    dead = RedisDedupStore(f"redis://127.0.0.1:{port}/0")
    async with serve_channel(dedup=dead) as s:
        answer = await s.post(text_webhook("wamid.R1", "oi"))
        assert answer.status == 503
        assert (await answer.json()) == {"error": "dedup_unavailable"}
        await s.settle()
        assert s.agent.messages == []


def inbound(wamid: str, text: str, sender: str = "15550002222") -> InboundMessage:
    events = parse_values(cloud_values(text_webhook(wamid, text, sender))).events
    message = events[0]
    assert isinstance(message, InboundMessage)
    return message


async def journal(store: RedisDedupStore) -> dict[Any, Any]:
    return dict(await store._redis.hgetall(f"wa:journal:{store.owner}"))


async def test_a_claimed_message_stays_in_the_journal_until_its_turn_is_over(
    redis_url: str,
) -> None:
    store = RedisDedupStore(redis_url, lease_seconds=5)
    message = inbound("wamid.J1", "oi")
    assert await store.claim(message.wamid, message_record(message))
    assert not await store.claim(message.wamid, message_record(message))
    assert list(await journal(store)) == [b"wamid.J1"]
    await store.finish(message.wamid)
    assert await journal(store) == {}
    assert not await store.claim(message.wamid, message_record(message))  # still deduplicated
    refused = inbound("wamid.J2", "oi")
    assert await store.claim(refused.wamid, message_record(refused))
    await store.release(refused.wamid)
    assert await journal(store) == {}
    assert await store.claim(refused.wamid, message_record(refused))  # a redelivery is handled
    await store.close()


async def test_a_dead_process_journal_is_adopted_once_with_what_it_had_sent(
    redis_url: str,
) -> None:
    dead = RedisDedupStore(redis_url, lease_seconds=1)
    assert await dead.keep_alive() == []
    first, second = inbound("wamid.D1", "oi"), inbound("wamid.D2", "quero iptu")
    for message in (first, second):
        assert await dead.claim(message.wamid, message_record(message))
    await dead.count_sent(first.wamid)
    survivors = [RedisDedupStore(redis_url, lease_seconds=5) for _ in range(3)]
    assert [await s.keep_alive() for s in survivors] == [[], [], []]  # the lease still holds
    await asyncio.sleep(1.5)  # the lease expires: the process is presumed dead
    adopted = await asyncio.gather(*(s.keep_alive() for s in survivors))
    winners = [orphans for orphans in adopted if orphans]
    assert len(winners) == 1
    by_id = {orphan.message.wamid: orphan for orphan in winners[0]}
    assert sorted(by_id) == ["wamid.D1", "wamid.D2"]
    assert by_id["wamid.D1"].already_sent == 1 and by_id["wamid.D2"].already_sent == 0
    assert by_id["wamid.D2"].message == second
    assert by_id["wamid.D2"].message.data == second.data
    winner = survivors[adopted.index(winners[0])]
    assert sorted(await journal(winner)) == [b"wamid.D1", b"wamid.D2"]
    assert await dead._redis.exists(f"wa:journal:{dead.owner}") == 0
    for store in (dead, *survivors):
        await store.close()


async def test_the_channel_finishes_what_a_killed_process_acknowledged(redis_url: str) -> None:
    dead = RedisDedupStore(redis_url, lease_seconds=1)
    await dead.keep_alive()
    half_done = inbound("wamid.K1", "primeira", "5561900000001")
    answered = inbound("wamid.K2", "segunda", "5561900000002")
    untouched = inbound("wamid.K3", "terceira", "5561900000003")
    for message in (half_done, answered, untouched):
        assert await dead.claim(message.wamid, message_record(message))
    await dead.count_sent(half_done.wamid)  # the echo went out before the kill
    agent = FakeAgent(also_say=["mais alguma coisa?"], answered={answered.wamid})
    await asyncio.sleep(1.2)
    survivor = RedisDedupStore(redis_url, lease_seconds=1)
    async with serve_channel(agent, dedup=survivor, lease_seconds=1) as s:
        for _ in range(300):
            if {m.message_id for m in agent.messages} >= {half_done.wamid, untouched.wamid}:
                break
            await asyncio.sleep(0.01)
        await s.settle()
        redelivered = await s.post(text_webhook(half_done.wamid, "primeira", half_done.wa_id))
        assert redelivered.status == 200
        await s.settle()
        sent = [(to, getattr(m, "body", m)) for to, m in s.provider.sent]
        assert sorted(sent) == [
            ("5561900000001", "mais alguma coisa?"),
            ("5561900000003", "eco: terceira"),
            ("5561900000003", "mais alguma coisa?"),
        ]
        assert sorted(m.message_id for m in agent.messages) == ["wamid.K1", "wamid.K3"]
        assert s.channel.metrics.messages_adopted == 3
        assert await journal(survivor) == {}


async def test_the_channel_answers_503_while_redis_restarts_then_reconnects(
    redis: RedisServer,
) -> None:
    async with serve_channel(dedup=RedisDedupStore(redis.url), lease_seconds=1) as s:
        assert (await s.post(text_webhook("wamid.RS1", "antes"))).status == 200
        redis.stop()
        down = await s.post(text_webhook("wamid.RS2", "durante"))
        assert down.status == 503 and (await down.json()) == {"error": "dedup_unavailable"}
        redis.start()
        assert (await s.post(text_webhook("wamid.RS2", "durante"))).status == 200  # redelivery
        assert (await s.post(text_webhook("wamid.RS3", "depois"))).status == 200
        await s.settle()
        assert [m.text for m in s.agent.messages] == ["antes", "durante", "depois"]


async def test_a_relayed_message_moves_from_the_ingress_journal_to_rasas_once(
    redis_url: str,
) -> None:
    ingress, rasa = (RedisDedupStore(redis_url, lease_seconds=5) for _ in range(2))
    message = inbound("wamid.T1", "oi")
    assert await ingress.claim(message.wamid, message_record(message))
    assert await rasa.take_over(message.wamid, message_record(message), ingress.owner)
    assert (await journal(ingress), list(await journal(rasa))) == ({}, [b"wamid.T1"])
    assert not await rasa.take_over(message.wamid, message_record(message), ingress.owner)
    assert not await rasa.take_over(message.wamid, message_record(message), "")  # a plain claim
    for store in (ingress, rasa):
        await store.close()


async def test_through_the_ingress_on_redis_every_journal_is_empty_once_answered(
    redis_url: str,
) -> None:
    rasa_store = RedisDedupStore(redis_url, lease_seconds=5)
    ingress_store = RedisDedupStore(redis_url, lease_seconds=5)
    async with (
        serve_channel(dedup=rasa_store, lease_seconds=5) as rasa,
        serve_ingress(rasa.url, dedup=ingress_store) as front,
    ):
        for i in range(5):
            answer = await front.post(text_webhook(f"wamid.RJ{i}", str(i)))
            assert answer.status == 200
        assert (await front.post(text_webhook("wamid.RJ0", "0"))).status == 200
        for _ in range(500):
            if len(rasa.provider.sent) == 5 and not await journal(rasa_store):
                break
            await asyncio.sleep(0.01)
        assert [m.text for m in rasa.agent.messages] == ["0", "1", "2", "3", "4"]
        assert await journal(ingress_store) == {} and await journal(rasa_store) == {}
