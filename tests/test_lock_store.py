"""Rasa's ticket lock on a real redis-server, hammered by several "processes" at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bot.addons.lock_store import AtomicRedisLockStore
from tests.support.redis import redis_server


def test_concurrent_turns_of_one_conversation_never_overlap_and_never_hang() -> None:
    """Four stores (as four rasa processes), 4 x 60 turns of one conversation: every turn
    gets the lock, one at a time, and the lock is gone at the end (no ticket lost)."""
    active, most, done = 0, 0, 0
    guard = threading.Lock()
    with redis_server() as redis:

        def process() -> None:
            store = AtomicRedisLockStore(port=redis.port, db=0, key_prefix="rasa")
            store.poll_seconds = 0.001

            async def turns() -> None:
                nonlocal active, most, done
                for _ in range(60):
                    async with store.lock("5561999990000", lock_lifetime=30):
                        with guard:
                            active += 1
                            most = max(most, active)
                        await asyncio.sleep(0.001)
                        with guard:
                            active -= 1
                            done += 1

            asyncio.run(asyncio.wait_for(turns(), 60))

        threads = [threading.Thread(target=process) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        store = AtomicRedisLockStore(port=redis.port, db=0, key_prefix="rasa")
        assert (done, most) == (240, 1)
        assert store.get_lock("5561999990000") is None


def test_a_ticket_that_expired_while_waiting_queues_again_instead_of_waiting_for_ever() -> None:
    with redis_server() as redis:
        store = AtomicRedisLockStore(port=redis.port, db=0)
        store.poll_seconds = 0.01
        held = store.issue_ticket("c", lock_lifetime=1)  # a dead process's ticket

        async def turn() -> float:
            started = time.monotonic()
            async with store.lock("c", lock_lifetime=0.5):  # expires before `held` does
                return time.monotonic() - started

        waited = asyncio.run(asyncio.wait_for(turn(), 10))
        assert 0.9 <= waited < 3
        assert held == 0 and store.get_lock("c") is None


@pytest.mark.parametrize("prefix", ["rasa", None])
def test_it_reads_its_settings_from_an_endpoint_config_like_rasa_does(prefix: str | None) -> None:
    from rasa.core.lock_store import LockStore
    from rasa.utils.endpoints import EndpointConfig

    kwargs = {"port": 6390, "db": 3, **({"key_prefix": prefix} if prefix else {})}
    config = EndpointConfig(
        url="cache.internal", type="bot.addons.lock_store.AtomicRedisLockStore", **kwargs
    )
    store = LockStore.create(config)
    assert isinstance(store, AtomicRedisLockStore)
    connection = store.red.connection_pool.connection_kwargs
    assert (connection["host"], connection["port"], connection["db"]) == ("cache.internal", 6390, 3)
    assert store.key_prefix == ("rasa:lock:" if prefix else "lock:")


def test_a_turn_longer_than_the_lock_lifetime_keeps_its_lock_until_it_ends() -> None:
    """A send retried through an outage can outlast TICKET_LOCK_LIFETIME: the held ticket
    is renewed, so another process's turn of the same conversation waits for it."""
    spans: dict[str, tuple[float, float]] = {}
    with redis_server() as redis:

        def process(name: str, start_after: float, hold: float) -> None:
            store = AtomicRedisLockStore(port=redis.port, db=0, key_prefix="rasa")
            store.poll_seconds = 0.01

            async def turn() -> None:
                await asyncio.sleep(start_after)
                async with store.lock("5561999990001", lock_lifetime=1):
                    began = time.monotonic()
                    await asyncio.sleep(hold)
                    spans[name] = (began, time.monotonic())

            asyncio.run(asyncio.wait_for(turn(), 30))

        threads = [
            threading.Thread(target=process, args=("slow", 0.0, 3.5)),
            threading.Thread(target=process, args=("next", 0.3, 0.1)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(40)
        assert sorted(spans) == ["next", "slow"]
        assert spans["next"][0] >= spans["slow"][1]  # never beside the slow turn
