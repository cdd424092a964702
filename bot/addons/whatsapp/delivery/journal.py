"""The journal: an acknowledged message is finished once, even if its process dies.

Once a message is acknowledged (the webhook's 200), Meta never sends it again, so a
process killed after the 200 must not take the message with it. This module owns the
message's life from claim to finish:

* **claim** — with Redis, one Lua script claims the ``wamid`` and writes the message to
  its process's journal (``wa:journal:<owner>``) in the same atomic step;
* **take-over** — a message the ingress acknowledged moves from the ingress's journal to
  the ``rasa run`` process that runs its turn, once, however often the relay is retried;
* **sent counts** — each WhatsApp message delivered for the turn is counted
  (``wa:sent:<wamid>``), so a turn run again skips what the citizen already received
  (:class:`~.progress.TurnProgress`);
* **finish** — when the turn is over, the entry leaves the journal (the claim stays, so
  a redelivery is still a duplicate);
* **lease and adoption** — each process renews a lease (:mod:`.lease`, one loop for
  ``rasa run`` and the ingress); when a lease expires, exactly one ``rasa run`` process
  adopts the dead one's journal and finishes its turns, skipping turns Rasa's tracker
  already holds; a process whose turn was adopted while it stalled stops that turn
  (:class:`~.progress.Journal`, the turn's side of all this);
* **unsure outcomes** — a claim or take-over whose answer Redis did not give in time is
  undone in the background, and a redelivery to the same process claims it again.

Without Redis there is no journal: the turn's side and the lease then do nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bot.addons.whatsapp.inbound.events import InboundMessage, message_from_record
from bot.addons.whatsapp.redis_client import redis_client

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

UNDO_ATTEMPTS = 20  # about a minute of retries, 0.1 s doubling to 5 s

T = TypeVar("T")


@dataclass(frozen=True)
class Orphan:
    """A message acknowledged by a process that died before finishing its turn."""

    message: InboundMessage
    already_sent: int  # WhatsApp messages already delivered for this turn


# Claim and journal in one step: a message is never claimed without being journaled. The
# claim renews the lease too, so a journal written just after a Redis restart is never
# mistaken for a dead process's.
_CLAIM = """
local claimed = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
if not claimed and ARGV[6] == '1' and redis.call('GET', KEYS[1]) == ARGV[1] then
  claimed = redis.call('SET', KEYS[1], ARGV[1], 'XX', 'EX', ARGV[2])
end
if claimed then
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[4], ARGV[3])
    redis.call('EXPIRE', KEYS[2], ARGV[2])
    redis.call('SET', KEYS[3], '1', 'EX', ARGV[5])
  end
  return 1
end
return 0
"""

# Take a relayed message over from the ingress's journal into this process's, once.
_TAKE_OVER = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1
   or (ARGV[4] == '1' and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[3])
  return 1
end
return 0
"""

# Undo a claim whose outcome was unknown, if it is still this process's.
_UNCLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], ARGV[2])
end
"""

# Give back a taken-over message whose outcome was unknown, to the journal it came from.
_GIVE_BACK = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
if record then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], record)
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
"""

# Adopt a dead process's journal, once: whoever runs this first moves the entries.
_FINISH = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then redis.call('DEL', KEYS[2]) end
"""

# Adopt a dead process's journal, once: whoever runs this first moves the entries into its
# own journal and into its backlog of adopted messages (``adopted:<owner>``), where they
# stay until handed to a turn (:meth:`RedisDedupStore.forget_adopted`). So a reply lost on
# the way back (a Redis timeout) loses nothing: the next renewal reads the backlog again.
_ADOPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local entries = redis.call('HGETALL', KEYS[2])
for i = 1, #entries, 2 do
  redis.call('HSET', KEYS[3], entries[i], entries[i + 1])
  redis.call('HSET', KEYS[4], entries[i], entries[i + 1])
end
if #entries > 0 then
  redis.call('EXPIRE', KEYS[3], ARGV[1])
  redis.call('EXPIRE', KEYS[4], ARGV[1])
end
redis.call('DEL', KEYS[2], KEYS[5])
return #entries / 2
"""


class RedisDedupStore:
    """Claims shared by every process on one Redis, with a journal per process.

    Every key expires (the journals and backlogs too, ``ttl_seconds`` after their last
    write: a citizen's message is not kept beyond the dedup window even by a process that
    died with nobody to adopt its journal).
    Keys (``prefix`` = ``wa:``): ``dedup:<wamid>`` the claim (``SET NX EX``);
    ``journal:<owner>`` a hash of the owner's unfinished messages; ``sent:<wamid>`` how
    many replies went out; ``alive:<owner>`` the owner's lease; ``adopted:<owner>`` the
    messages it adopted and has not yet queued. Redis Cluster is not supported: the
    scripts touch keys of several processes, which need not share a slot.

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
        self._finish = self._redis.register_script(_FINISH)
        self._adopted = f"{prefix}adopted:{self.owner}"
        self._take_over = self._redis.register_script(_TAKE_OVER)
        self._unclaim = self._redis.register_script(_UNCLAIM)
        self._give_back = self._redis.register_script(_GIVE_BACK)
        self._unsure: dict[str, asyncio.Lock] = {}
        self._undoing: set[asyncio.Task[None]] = set()

    # A claim or take-over whose answer did not come back (a Redis timeout) may have been
    # applied: the provider got a 503 and redelivers, and that redelivery must not be
    # dropped as a duplicate of a claim nobody acted on. So the key is marked unsure
    # here: a redelivery to this process claims it again, and meanwhile the claim is
    # undone in the background (only if still ours), so a redelivery to another process
    # is handled there.

    async def claim(self, key: str, record: str = "") -> bool:
        again = await self._settle(key)
        keys = [self._prefix + "dedup:" + key, self._journal, self._alive]
        args = [self.owner, self._ttl, record, key, self._lease, "1" if again else ""]
        try:
            return bool(await self._claim(keys=keys, args=args))
        except Exception:
            self._unsure_of(key, self._unclaim_once)
            raise

    async def take_over(self, key: str, record: str, owner: str) -> bool:
        if not owner:
            return await self.claim(key, record)
        again = await self._settle(key)
        keys = [f"{self._prefix}journal:{owner}", self._journal, self._alive]
        args = [key, record, self._lease, "1" if again else "", self._ttl]
        try:
            return bool(await self._take_over(keys=keys, args=args))
        except Exception:
            self._unsure_of(
                key, lambda k: self._give_back(keys=[self._journal, keys[0]], args=[k, self._ttl])
            )
            raise

    async def release(self, key: str) -> None:
        try:
            await self._unclaim_once(key)
        except Exception:
            self._unsure_of(key, self._unclaim_once)
            raise

    async def _unclaim_once(self, key: str) -> None:
        await self._unclaim(
            keys=[self._prefix + "dedup:" + key, self._journal], args=[self.owner, key]
        )

    async def _settle(self, key: str) -> bool:
        """True when ``key`` was unsure (claim it again); stops its background undo."""
        if key not in self._unsure:
            return False
        async with self._unsure[key]:  # an undo attempt in flight finishes first
            return self._unsure.pop(key, None) is not None

    def _unsure_of(self, key: str, undo: Callable[[str], Awaitable[object]]) -> None:
        if key in self._unsure:
            return
        self._unsure[key] = asyncio.Lock()
        task = asyncio.ensure_future(self._undo(key, undo))
        self._undoing.add(task)
        task.add_done_callback(self._undoing.discard)

    async def _undo(self, key: str, undo: Callable[[str], Awaitable[object]]) -> None:
        delay = 0.1
        for _ in range(UNDO_ATTEMPTS):
            lock = self._unsure.get(key)
            if lock is None:
                return  # claimed again meanwhile: nothing to undo
            async with lock:
                if self._unsure.get(key) is not lock:
                    return
                try:
                    await undo(key)
                except Exception as exc:
                    logger.warning("Could not yet undo the unsure claim of %s: %s", key, exc)
                else:
                    del self._unsure[key]
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        logger.error("Gave up undoing the unsure claim of %s; a redelivery here still runs", key)

    async def finish(self, key: str) -> None:
        # Only if the entry is still ours: the count of a turn another process adopted
        # is that process's to keep.
        await self._finish(keys=[self._journal, self._prefix + "sent:" + key], args=[key])

    async def count_sent(self, key: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._prefix + "sent:" + key)
            pipe.expire(self._prefix + "sent:" + key, self._ttl)
            await pipe.execute()

    async def keep_alive(self, adopt: bool = True) -> list[Orphan]:
        await self._redis.set(self._alive, b"1", ex=self._lease)
        if not adopt:
            return []
        journal_prefix = self._prefix + "journal:"
        async for raw_key in self._redis.scan_iter(match=journal_prefix + "*", count=100):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            dead = key[len(journal_prefix) :]
            if dead != self.owner:
                keys = [
                    self._prefix + "alive:" + dead,
                    key,
                    self._journal,
                    self._adopted,
                    self._prefix + "adopted:" + dead,
                ]
                await self._adopt(keys=keys, args=[self._ttl])
        return await self.adopted()

    async def adopted(self) -> list[Orphan]:
        """The adopted messages not yet handed to a turn, with what was sent for each."""
        entries = await self._redis.hgetall(self._adopted)
        orphans = []
        for record in entries.values():
            message = message_from_record(record)
            sent = await self._redis.get(self._prefix + "sent:" + message.wamid)
            orphans.append(Orphan(message, int(sent or 0)))
        return sorted(orphans, key=lambda o: (o.message.timestamp, o.message.wamid))

    async def forget_adopted(self, keys: Sequence[str]) -> None:
        """These adopted messages are queued for their turns (they stay in the journal)."""
        if keys:
            await self._redis.hdel(self._adopted, *keys)

    async def owns(self, key: str) -> bool:
        """Whether ``key`` is still in this process's journal (not adopted by another)."""
        return bool(await self._redis.hexists(self._journal, key))

    async def retire(self) -> None:
        await self._redis.delete(self._alive, self._adopted)

    async def close(self) -> None:
        for task in self._undoing:
            task.cancel()
        await asyncio.gather(*self._undoing, return_exceptions=True)
        await self._redis.close()
