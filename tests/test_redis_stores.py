"""Dedup and short-key stores on a real redis-server (started here), and the 503 when it is down."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from bot.addons.whatsapp.dedup import RedisDedupStore
from bot.addons.whatsapp.payloads import RedisPayloadStore
from tests.channel_harness import serve_channel
from tests.support.stack import free_port, wait_for_tcp
from tests.test_webhook_http import text_webhook

REDIS = shutil.which("redis-server")


@pytest.fixture
def redis_url() -> Iterator[str]:
    assert REDIS, "redis-server is required (apt-get install redis-server; .ci/run installs it)"
    port = free_port()
    proc = subprocess.Popen(
        [REDIS, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_tcp("127.0.0.1", port, 10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


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
