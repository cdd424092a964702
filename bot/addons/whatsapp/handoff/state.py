"""Who is talking to an agent: Rasa's tracker (paused, and the Chatwoot conversation), and
who still waits for an agent's first reply.

The pause is Rasa's own ``ConversationPaused``/``ConversationResumed`` events, with the
Chatwoot conversation id in the slot ``handoff_conversation``, written under Rasa's lock
store: every ``rasa run`` replica on the same tracker store sees the same state, and the
pause shows in the conversation's history like any other event.

:class:`Waiting` holds when each handoff started until an agent first answers, for the
wait-time histogram and the "no agent answered" timeout. With Redis it is one hash shared
by every replica (``HDEL`` decides which replica acts on an entry); without Redis, a dict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from rasa.shared.core.events import ConversationPaused, ConversationResumed, SlotSet

from bot.addons.whatsapp.redis_client import redis_client

SLOT = "handoff_conversation"
WAITING_KEY = "wa:handoff:waiting"


@dataclass(frozen=True)
class Paused:
    """A paused conversation; ``conversation_id`` is None when something else paused it
    (an operator through Rasa's HTTP API): the bot stays silent and nothing is forwarded."""

    conversation_id: int | None


class TrackerState:
    """Reads and writes the pause in Rasa's tracker store, under Rasa's lock store.

    Args:
        agent: Rasa's agent once it is loaded (its ``tracker_store`` and ``lock_store``).
    """

    def __init__(self, agent: Callable[[], Any]) -> None:
        self.agent = agent

    async def paused(self, wa_id: str) -> Paused | None:
        tracker = await self.agent().tracker_store.retrieve(wa_id)
        if tracker is None or not tracker.is_paused():
            return None
        conversation = tracker.get_slot(SLOT)
        return Paused(int(conversation) if conversation else None)

    def locked(self, wa_id: str) -> AbstractAsyncContextManager[Any]:
        """Rasa's own lock for the conversation (a ticket lock on Redis across replicas)."""
        return self.agent().lock_store.lock(wa_id)

    async def pause(self, wa_id: str, conversation_id: int) -> None:
        await self._update(
            wa_id, lambda tracker: [SlotSet(SLOT, str(conversation_id)), ConversationPaused()]
        )

    async def resume(self, wa_id: str) -> Paused | None:
        """Resume; what was paused, or None when it was not (already resumed)."""
        was: list[Paused] = []

        def events(tracker: Any) -> list[Any]:
            if not tracker.is_paused():
                return []
            conversation = tracker.get_slot(SLOT)
            was.append(Paused(int(conversation) if conversation else None))
            return [ConversationResumed(), SlotSet(SLOT, None)]

        await self._update(wa_id, events)
        return was[0] if was else None

    async def _update(self, wa_id: str, events: Callable[[Any], list[Any]]) -> None:
        agent = self.agent()
        async with agent.lock_store.lock(wa_id):
            tracker = await agent.tracker_store.get_or_create_tracker(wa_id)
            new = events(tracker)
            if not new:
                return
            for event in new:
                tracker.update(event)
            await agent.tracker_store.save(tracker)


class Waiting:
    """Handoffs no agent has answered yet: ``wa_id`` -> when the handoff started.

    Entries leave when an agent answers or the wait times out; on Redis the hash also
    expires ``retention_seconds`` after the last handoff started, so an entry nobody claims
    (every replica down for longer than the timeout) is not kept beyond the retention.
    """

    def __init__(
        self,
        redis_url: str = "",
        key: str = WAITING_KEY,
        retention_seconds: float = 90 * 86400.0,
    ) -> None:
        self._redis: Any = redis_client(redis_url) if redis_url else None
        self._key = key
        self._ttl = max(1, int(retention_seconds))
        self._local: dict[str, float] = {}

    async def start(self, wa_id: str, at: float | None = None) -> None:
        at = time.time() if at is None else at
        if self._redis is None:
            self._local[wa_id] = at
        else:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._key, wa_id, repr(at))
                pipe.expire(self._key, self._ttl)
                await pipe.execute()

    async def started(self, wa_id: str) -> float | None:
        """When ``wa_id``'s handoff started, if it still waits for an agent."""
        if self._redis is None:
            return self._local.get(wa_id)
        value = await self._redis.hget(self._key, wa_id)
        return float(value) if value is not None else None

    async def take(self, wa_id: str) -> float | None:
        """Remove ``wa_id``; when it started, if this call is the one that removed it."""
        if self._redis is None:
            return self._local.pop(wa_id, None)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(self._key, wa_id)
            pipe.hdel(self._key, wa_id)
            started, removed = await pipe.execute()
        return float(started) if removed and started is not None else None

    async def expired(self, timeout: float, now: float | None = None) -> list[str]:
        """The handoffs waiting longer than ``timeout``, each claimed by one caller only."""
        now = time.time() if now is None else now
        if self._redis is None:
            late = [wa_id for wa_id, at in self._local.items() if now - at > timeout]
            return [wa_id for wa_id in late if self._local.pop(wa_id, None) is not None]
        entries = await self._redis.hgetall(self._key)
        claimed = []
        for raw, at in entries.items():
            wa_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            if now - float(at) > timeout and await self._redis.hdel(self._key, wa_id):
                claimed.append(wa_id)
        return claimed

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
