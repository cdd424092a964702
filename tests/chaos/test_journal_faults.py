"""Faults around the journal, on a real redis-server: a process that stalled past its lease
while its turns were adopted, a short-key lookup that fails mid-turn, an adoption whose
answer is lost on the way back (issue "Never lose", items 7 and 8)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import pytest

from bot.addons.whatsapp.delivery.journal import Orphan, RedisDedupStore
from bot.addons.whatsapp.delivery.lease import Lease
from bot.addons.whatsapp.inbound.events import message_record
from bot.addons.whatsapp.metrics import Metrics
from bot.addons.whatsapp.outbound.short_keys import RedisPayloadStore
from tests.channel_harness import FakeAgent, serve_channel
from tests.support.redis import RedisServer, redis_server
from tests.support.slow_tcp import slow_replies
from tests.support.stack import free_port
from tests.test_redis_stores import inbound, journal
from tests.test_webhook_http import text_webhook
from tests.whatsapp_fixtures import fixture


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_a_turn_adopted_while_its_process_stalled_sends_nothing_there(
    redis: RedisServer,
) -> None:
    """A stall longer than the lease lets another process adopt a live process's journal;
    the stalled process must then neither send the adopted turn's replies nor run its
    queued turns, or the citizen is answered twice."""
    gate = asyncio.Event()
    agent = FakeAgent(gate=gate)
    stalled = RedisDedupStore(redis.url, lease_seconds=1)
    async with serve_channel(agent, dedup=stalled, lease_seconds=1) as s:
        first = await s.post(text_webhook("wamid.ST1", "primeira", "5561900000011"))
        second = await s.post(text_webhook("wamid.ST2", "segunda", "5561900000011"))
        assert (first.status, second.status) == (200, 200)
        await wait_for(lambda: agent.active.get("5561900000011") == 1)
        await s.channel.lease.stop()  # the stall: no renewal, the lease lapses
        adopter = RedisDedupStore(redis.url, lease_seconds=5)
        adopted = await adopter.keep_alive()
        assert sorted(o.message.wamid for o in adopted) == ["wamid.ST1", "wamid.ST2"]
        gate.set()  # the stalled turn wakes up and tries to answer
        await s.settle()
        assert s.provider.sent == []  # neither the echo nor a silence fallback
        assert [m.message_id for m in agent.messages] == ["wamid.ST1"]  # ST2 never ran here
        assert sorted(await journal(adopter)) == [b"wamid.ST1", b"wamid.ST2"]
        assert await journal(stalled) == {}
        await adopter.close()


async def test_a_short_key_lookup_that_fails_still_answers_and_finishes_the_entry(
    redis: RedisServer,
) -> None:
    """Redis for short keys unreachable while a tapped button is resolved: the citizen
    gets the fallback message instead of silence, and the journal entry is finished."""
    payload = copy.deepcopy(fixture("inbound_interactive_button_reply"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = "wamid.SK1"
    message["interactive"]["button_reply"]["id"] = "~k:0123456789abcdef"
    unreachable = RedisPayloadStore(f"redis://127.0.0.1:{free_port()}")
    store = RedisDedupStore(redis.url, lease_seconds=5)
    async with serve_channel(dedup=store, payloads=unreachable) as s:
        assert (await s.post(payload)).status == 200
        await s.settle()
        assert [getattr(m, "body", m) for _, m in s.provider.sent] == [
            s.channel.settings.silence_fallback
        ]
        assert s.agent.messages == []
        assert await journal(store) == {}


async def test_an_adoption_whose_answer_was_lost_is_still_handed_over(
    redis: RedisServer,
) -> None:
    """The adoption script ran but its answer never came back (a Redis timeout): the
    messages are already in the adopter's journal, and the next renewal must still queue
    them, once each."""
    dead = RedisDedupStore(redis.url, lease_seconds=1)
    await dead.keep_alive()
    messages = [inbound("wamid.AL1", "um"), inbound("wamid.AL2", "dois")]
    for m in messages:
        assert await dead.claim(m.wamid, message_record(m))
    await dead.count_sent("wamid.AL1")
    await asyncio.sleep(1.2)
    adopter = RedisDedupStore(redis.url, lease_seconds=5)
    await adopter.keep_alive()  # adopted, but this answer is "lost": nothing was queued
    queued: list[Orphan] = []

    def hand_over(orphan: Orphan) -> bool:
        queued.append(orphan)
        return True

    lease = Lease(adopter, 5, Metrics(), hand_over=hand_over)
    await lease._renew(adopt=True)
    await lease._renew(adopt=True)  # a later renewal queues nothing again
    assert [(o.message.wamid, o.already_sent) for o in queued] == [
        ("wamid.AL1", 1),
        ("wamid.AL2", 0),
    ]
    assert sorted(await journal(adopter)) == [b"wamid.AL1", b"wamid.AL2"]
    assert await adopter._redis.exists(f"wa:adopted:{adopter.owner}") == 0
    for store in (dead, adopter):
        await store.close()


async def test_a_claim_redis_answered_too_late_does_not_turn_the_redelivery_into_a_duplicate(
    redis: RedisServer,
) -> None:
    """Redis applies the claim but answers after the client's 2 s timeout: the webhook
    answers 503, and Meta's redelivery must then be handled, by this process or (once the
    claim is undone in the background) by another one — never dropped as a duplicate."""
    async with slow_replies(redis.port) as slow:
        store = RedisDedupStore(slow.url, lease_seconds=5)
        other = RedisDedupStore(redis.url, lease_seconds=5)
        async with serve_channel(dedup=store) as s, serve_channel(dedup=other) as t:
            # Load the scripts first: a late answer to the first EVALSHA (NOSCRIPT) would
            # mean the claim never ran, which proves nothing.
            assert await store.claim("wamid.WARM")
            await store.release("wamid.WARM")
            slow.delay = 2.5
            late = await s.post(text_webhook("wamid.SL1", "primeira", "5561900000021"))
            assert late.status == 503
            slow.delay = 0.0
            again = await s.post(text_webhook("wamid.SL1", "primeira", "5561900000021"))
            assert again.status == 200
            await s.settle()
            assert [m.message_id for m in s.agent.messages] == ["wamid.SL1"]

            slow.delay = 2.5
            late = await s.post(text_webhook("wamid.SL2", "segunda", "5561900000022"))
            assert late.status == 503
            slow.delay = 0.0
            await wait_for(lambda: not store._unsure, timeout=15)  # undone in the background
            elsewhere = await t.post(text_webhook("wamid.SL2", "segunda", "5561900000022"))
            assert elsewhere.status == 200
            await t.settle()
            assert [m.message_id for m in t.agent.messages] == ["wamid.SL2"]
            assert [m.message_id for m in s.agent.messages] == ["wamid.SL1"]
        for each in (store, other):
            await each.close()


async def test_a_take_over_answered_too_late_runs_when_the_relay_retries(
    redis: RedisServer,
) -> None:
    """The same for the relay: the move from the ingress's journal was applied but its
    answer came too late, so the ingress relays again; that retry must run the turn."""
    ingress = RedisDedupStore(redis.url, lease_seconds=5)
    message = inbound("wamid.TL1", "oi")
    assert await ingress.claim(message.wamid, message_record(message))
    async with slow_replies(redis.port) as slow:
        rasa = RedisDedupStore(slow.url, lease_seconds=5)
        warm = inbound("wamid.TL0", "aquecer")  # load the script (see the test above)
        assert await ingress.claim(warm.wamid, message_record(warm))
        assert await rasa.take_over(warm.wamid, message_record(warm), ingress.owner)
        await rasa.finish(warm.wamid)
        slow.delay = 2.5
        with pytest.raises(Exception):  # noqa: B017 - redis-py's timeout error
            await rasa.take_over(message.wamid, message_record(message), ingress.owner)
        slow.delay = 0.0
        assert await rasa.take_over(message.wamid, message_record(message), ingress.owner)
        assert list(await journal(rasa)) == [b"wamid.TL1"]
        assert await journal(ingress) == {}
        await rasa.close()
    await ingress.close()
