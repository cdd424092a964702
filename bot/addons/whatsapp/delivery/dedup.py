"""Deduplication of webhook deliveries by message id (``wamid``), and the journal of
acknowledged messages.

Meta redelivers anything not acknowledged, to every app subscribed on the account, for up
to 7 days, so the same message can arrive several times, even at once. A message is handled
only by whoever *claims* its id first. Claims expire after a TTL and the in-memory store is
bounded. ``RedisDedupStore`` shares claims between several ``rasa run`` processes.

Once a message is acknowledged, Meta never sends it again, so a process killed after the
200 must not take the message with it. ``RedisDedupStore`` therefore writes each claimed
message to its process's *journal* in the same atomic step as the claim, counts the
WhatsApp messages sent for it, and drops it from the journal when its turn is over. Each
process renews a *lease*; when a lease expires, another process adopts the dead one's
journal and finishes those turns, skipping the replies that were already sent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot.addons.whatsapp.inbound.events import InboundMessage, MessageType
from bot.addons.whatsapp.redis_client import redis_client


@dataclass(frozen=True)
class Orphan:
    """A message acknowledged by a process that died before finishing its turn."""

    message: InboundMessage
    already_sent: int  # WhatsApp messages already delivered for this turn


def message_fields(message: InboundMessage) -> dict[str, Any]:
    """A message as plain JSON values, enough to run its turn again (journal, relay)."""
    return {
        "wamid": message.wamid,
        "wa_id": message.wa_id,
        "type": message.type.value,
        "timestamp": message.timestamp,
        "phone_number_id": message.phone_number_id,
        "profile_name": message.profile_name,
        "data": dict(message.data),
    }


def message_from_fields(data: Mapping[str, Any]) -> InboundMessage:
    """The inverse of :func:`message_fields`; KeyError or ValueError when it is not one."""
    return InboundMessage(
        wamid=data["wamid"],
        wa_id=data["wa_id"],
        type=MessageType(data["type"]),
        timestamp=data.get("timestamp", ""),
        phone_number_id=data.get("phone_number_id", ""),
        profile_name=data.get("profile_name"),
        data=data.get("data") or {},
    )


def message_record(message: InboundMessage) -> str:
    """The journal form of a message (compact JSON)."""
    return json.dumps(message_fields(message), ensure_ascii=False, separators=(",", ":"))


def message_from_record(record: str | bytes) -> InboundMessage:
    return message_from_fields(json.loads(record))


class DedupStore(Protocol):
    """Atomic claim of a key: True for the first caller only, until the TTL expires."""

    journaled: bool  # True when acknowledged messages survive this process
    owner: str  # this process's journal ("" when there is none)

    async def claim(self, key: str, record: str = "") -> bool:
        """Claim ``key`` (and journal ``record``); False when it was already claimed."""

    async def take_over(self, key: str, record: str, owner: str) -> bool:
        """Move ``key`` from the journal of ``owner`` (the ingress that acknowledged it) to
        this process's; False when that journal no longer holds it (already taken over
        or adopted), so a relay sent twice runs its turn once. Without a journal of
        ``owner``, a plain :meth:`claim`."""

    async def release(self, key: str) -> None:
        """Forget a claim (its message was refused, so a redelivery must be handled)."""

    async def finish(self, key: str) -> None:
        """The turn of ``key`` is over: drop it from the journal, keep the claim."""

    async def count_sent(self, key: str) -> None:
        """One more WhatsApp message was delivered for the turn of ``key``."""

    async def keep_alive(self, adopt: bool = True) -> list[Orphan]:
        """Renew this process's lease; adopt and return dead processes' messages."""

    async def retire(self) -> None:
        """Give up the lease at a clean shutdown (what is left is adopted at once)."""

    async def close(self) -> None:
        """Release connections."""


class MemoryDedupStore:
    """In-process claims with a TTL and a maximum size (oldest claims are dropped first).

    Claims happen on the event loop thread without awaiting, so they are atomic for
    concurrent requests of one process. Nothing outlives the process (no journal).
    """

    journaled = False
    owner = ""

    def __init__(
        self,
        ttl_seconds: float = 86400.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    async def claim(self, key: str, record: str = "") -> bool:
        now = self._clock()
        self._evict(now)
        if key in self._expiry:
            return False
        self._expiry[key] = now + self._ttl
        while len(self._expiry) > self._max:
            self._expiry.popitem(last=False)
        return True

    async def take_over(self, key: str, record: str, owner: str) -> bool:
        return await self.claim(key, record)

    async def release(self, key: str) -> None:
        self._expiry.pop(key, None)

    async def finish(self, key: str) -> None:
        return None

    async def count_sent(self, key: str) -> None:
        return None

    async def keep_alive(self, adopt: bool = True) -> list[Orphan]:
        return []

    async def retire(self) -> None:
        return None

    async def close(self) -> None:
        self._expiry.clear()

    def _evict(self, now: float) -> None:
        # Insertion order is expiry order (same TTL for all), so expired keys are at the front.
        while self._expiry:
            key, expires = next(iter(self._expiry.items()))
            if expires > now:
                break
            del self._expiry[key]


# Claim and journal in one step: a message is never claimed without being journaled. The
# claim renews the lease too, so a journal written just after a Redis restart is never
# mistaken for a dead process's.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[4], ARGV[3])
    redis.call('SET', KEYS[3], '1', 'EX', ARGV[5])
  end
  return 1
end
return 0
"""

# Take a relayed message over from the ingress's journal into this process's, once.
_TAKE_OVER = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[3])
  return 1
end
return 0
"""

# Adopt a dead process's journal, once: whoever runs this first moves the entries.
_ADOPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local entries = redis.call('HGETALL', KEYS[2])
for i = 1, #entries, 2 do redis.call('HSET', KEYS[3], entries[i], entries[i + 1]) end
redis.call('DEL', KEYS[2])
return entries
"""


class RedisDedupStore:
    """Claims shared by every process on one Redis, with a journal per process.

    Keys (``prefix`` = ``wa:``): ``dedup:<wamid>`` the claim (``SET NX EX``);
    ``journal:<owner>`` a hash of the owner's unfinished messages; ``sent:<wamid>`` how
    many replies went out; ``alive:<owner>`` the owner's lease.

    Raises ``redis.exceptions.RedisError`` when Redis is unreachable; the channel then
    answers 503 so Meta redelivers, rather than acknowledging what it cannot protect.
    """

    journaled = True

    def __init__(
        self,
        url: str,
        ttl_seconds: float = 86400.0,
        prefix: str = "wa:",
        lease_seconds: float = 15.0,
        owner: str | None = None,
    ) -> None:
        self._redis: Any = redis_client(url)
        self._ttl = max(1, int(ttl_seconds))
        self._prefix = prefix
        self._lease = max(1, int(lease_seconds))
        self.owner = owner or uuid.uuid4().hex
        self._journal = f"{prefix}journal:{self.owner}"
        self._alive = f"{prefix}alive:{self.owner}"
        self._claim = self._redis.register_script(_CLAIM)
        self._adopt = self._redis.register_script(_ADOPT)
        self._take_over = self._redis.register_script(_TAKE_OVER)

    async def claim(self, key: str, record: str = "") -> bool:
        keys = [self._prefix + "dedup:" + key, self._journal, self._alive]
        args = [self.owner, self._ttl, record, key, self._lease]
        return bool(await self._claim(keys=keys, args=args))

    async def take_over(self, key: str, record: str, owner: str) -> bool:
        if not owner:
            return await self.claim(key, record)
        keys = [f"{self._prefix}journal:{owner}", self._journal, self._alive]
        return bool(await self._take_over(keys=keys, args=[key, record, self._lease]))

    async def release(self, key: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._prefix + "dedup:" + key)
            pipe.hdel(self._journal, key)
            await pipe.execute()

    async def finish(self, key: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._journal, key)
            pipe.delete(self._prefix + "sent:" + key)
            await pipe.execute()

    async def count_sent(self, key: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._prefix + "sent:" + key)
            pipe.expire(self._prefix + "sent:" + key, self._ttl)
            await pipe.execute()

    async def keep_alive(self, adopt: bool = True) -> list[Orphan]:
        await self._redis.set(self._alive, b"1", ex=self._lease)
        orphans: list[Orphan] = []
        if not adopt:
            return orphans
        journal_prefix = self._prefix + "journal:"
        async for raw_key in self._redis.scan_iter(match=journal_prefix + "*", count=100):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            dead = key[len(journal_prefix) :]
            if dead == self.owner:
                continue
            entries = await self._adopt(
                keys=[self._prefix + "alive:" + dead, key, self._journal], args=[]
            )
            for record in entries[1::2]:
                message = message_from_record(record)
                sent = await self._redis.get(self._prefix + "sent:" + message.wamid)
                orphans.append(Orphan(message, int(sent or 0)))
        return orphans

    async def retire(self) -> None:
        await self._redis.delete(self._alive)

    async def close(self) -> None:
        await self._redis.close()


def create_dedup_store(
    redis_url: str, ttl_seconds: float, max_entries: int, lease_seconds: float = 15.0
) -> DedupStore:
    """Redis when ``redis_url`` is set, memory otherwise."""
    if redis_url:
        return RedisDedupStore(redis_url, ttl_seconds, lease_seconds=lease_seconds)
    return MemoryDedupStore(ttl_seconds, max_entries)
