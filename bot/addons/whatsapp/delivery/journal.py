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
  (:class:`TurnProgress`);
* **finish** — when the turn is over, the entry leaves the journal (the claim stays, so
  a redelivery is still a duplicate);
* **lease and adoption** — each process renews a lease (:mod:`.lease`, one loop for
  ``rasa run`` and the ingress); when a lease expires, exactly one ``rasa run`` process
  adopts the dead one's journal and finishes its turns, skipping turns Rasa's tracker
  already holds (:meth:`Journal.already_answered`); a process whose turn was adopted
  while it stalled stops that turn (:meth:`Journal.still_ours`).

Without Redis there is no journal: :class:`Journal` and the lease then do nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bot.addons.whatsapp.inbound.events import InboundMessage, message_from_record
from bot.addons.whatsapp.redis_client import redis_client

if TYPE_CHECKING:
    from bot.addons.whatsapp.delivery.dedup import DedupStore

logger = logging.getLogger(__name__)

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
redis.call('DEL', KEYS[2], KEYS[5])
return #entries / 2
"""


class RedisDedupStore:
    """Claims shared by every process on one Redis, with a journal per process.

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
                await self._adopt(keys=keys, args=[])
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
        await self._redis.close()


@dataclass
class TurnProgress:
    """Counts the WhatsApp messages delivered for one turn, so that a turn run again by
    another process (after this one was killed) skips what the user already received."""

    record_sent: Callable[[], Awaitable[None]]
    skip: int = 0  # messages of this turn delivered before
    still_ours: Callable[[], Awaitable[bool]] | None = None
    taken: bool = False  # another process adopted the turn: this one sends no more

    async def deliver(self, messages: Sequence[T], send: Callable[[T], Awaitable[object]]) -> None:
        """Send ``messages`` one by one, skipping those delivered before, counting each,
        and stopping for good if another process adopted the turn meanwhile."""
        for message in messages:
            if self.skip > 0:
                self.skip -= 1
                continue
            if self.taken or (self.still_ours is not None and not await self.still_ours()):
                self.taken = True
                return
            await send(message)
            await self.record_sent()


class Journal:
    """The turn side of the journal in ``rasa run``: progress, finish, and the check that
    an adopted message was not answered already."""

    def __init__(self, store: DedupStore) -> None:
        self.store = store

    def progress(self, wamid: str, already_sent: int = 0) -> TurnProgress | None:
        """What the turn of ``wamid`` reports as it sends (None without a journal)."""
        if not self.store.journaled:
            return None

        async def record_sent() -> None:
            try:
                await self.store.count_sent(wamid)
            except Exception as exc:
                logger.warning("Could not count a reply to %s: %s", wamid, exc)

        async def still_ours() -> bool:
            return await self.still_ours(wamid)

        return TurnProgress(record_sent, already_sent, still_ours)

    async def still_ours(self, wamid: str) -> bool:
        """Whether this process still holds ``wamid`` (after a Redis outage or a stall
        longer than the lease, another process may have adopted it). Unknown counts as
        ours: a process that cannot reach Redis cannot see an adoption either."""
        try:
            if await self.store.owns(wamid):
                return True
        except Exception as exc:
            logger.warning("Could not check the journal entry of %s: %s", wamid, exc)
            return True
        logger.warning("%s was adopted by another process; this one stops its turn", wamid)
        return False

    async def finish(self, wamid: str) -> None:
        """The turn of ``wamid`` is over, whatever its outcome."""
        try:
            await self.store.finish(wamid)
        except Exception as exc:
            logger.warning("Could not close the journal entry of %s: %s", wamid, exc)

    @staticmethod
    async def already_answered(message: InboundMessage, tracker_store: Any) -> bool:
        """Whether Rasa's tracker already holds this message (its turn was completed by
        the process that died, after its last count)."""
        if tracker_store is None:
            return False
        try:
            tracker = await tracker_store.retrieve(message.wa_id)
        except Exception as exc:
            logger.warning("Could not read the tracker for %s: %s", message.wamid, exc)
            return False
        events = tracker.events if tracker is not None else []
        return any(getattr(event, "message_id", None) == message.wamid for event in events)
