"""Rasa's ``RedisLockStore`` with every change to a lock made atomically.

Rasa's ticket lock keeps one conversation's turns one at a time, in ticket order, across
``rasa run`` processes. Its Redis store reads a lock, changes it in Python and writes it
back; two processes doing that at once lose one write. A lost ticket makes a turn wait
forever (the lock never serves its number) or fail with ``LockError``, which the
scale-out test hit once in a few runs. This subclass keeps Rasa's lock format and logic
and runs each read-modify-write in a Redis transaction (``WATCH``/``MULTI``), so
concurrent changes are retried instead of lost. A ticket that expired while waiting is
replaced by a new one rather than waited on for ever, and waiting turns poll every
50 ms instead of every second.

The held ticket outlives the turn: Rasa gives a ticket a fixed lifetime
(``TICKET_LOCK_LIFETIME``), while one turn can take longer (a send retried through a
WhatsApp outage waits over 90 s with the default retries). An expired ticket is dropped
by the next process that looks, and that process's turn then runs beside this one, out
of order. So a turn starts only once its ticket is confirmed first in line and unexpired
(:meth:`AtomicRedisLockStore._hold`), and the ticket is renewed every third of its
lifetime until the turn ends. The lock's key expires a minute after its last ticket.

Use it in ``endpoints.yml``::

    lock_store:
      type: bot.addons.lock_store.AtomicRedisLockStore
      url: redis-host
      port: 6379
      db: 0
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")


class AtomicRedisLockStore(RedisLockStore):
    """``RedisLockStore`` whose ticket changes cannot overwrite each other."""

    poll_seconds = 0.05

    def __init__(self, endpoint_config: EndpointConfig | None = None, **kwargs: Any) -> None:
        if endpoint_config is not None:
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs}
        super().__init__(**kwargs)

    def _change(
        self, conversation_id: str, change: Callable[[TicketLock | None], tuple[Any, T]]
    ) -> T:
        """Apply ``change`` (lock ▸ new lock or None to delete, result) atomically."""
        key = self.key_prefix + conversation_id
        outcome: list[T] = []

        def transaction(pipe: Any) -> None:
            raw = pipe.get(key)
            lock = TicketLock.from_dict(json.loads(raw)) if raw else None
            new_lock, result = change(lock)
            pipe.multi()
            if new_lock is None:
                pipe.delete(key)
            else:
                # The key names a citizen: it expires a minute after its last ticket, so a
                # process that died holding it leaves nothing behind for ever.
                last = max((t.expires for t in new_lock.tickets), default=time.time())
                pipe.set(key, new_lock.dumps(), ex=max(1, int(last - time.time()) + 60))
            outcome[:] = [result]

        self.red.transaction(transaction, key)
        return outcome[0]

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        def change(lock: TicketLock | None) -> tuple[TicketLock, int]:
            lock = lock or self.create_lock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        try:
            return self._change(conversation_id, change)
        except Exception as exc:
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc

    def update_lock(self, conversation_id: str) -> None:
        def change(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is not None:
                lock.remove_expired_tickets()
            return lock, None

        self._change(conversation_id, change)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self.cleanup(conversation_id, ticket_number)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Remove the ticket, and the lock when nobody else holds a ticket, in one step."""

        def change(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is None:
                return None, None
            lock.remove_ticket_for(ticket_number)
            return (lock if lock.is_someone_waiting() else None), None

        self._change(conversation_id, change)

    def _hold(self, conversation_id: str, ticket_number: int, lifetime: float) -> bool:
        """Extend ``ticket_number`` by ``lifetime`` if it is first in line and unexpired;
        False when it is not (expired and dropped, or not yet served)."""

        def change(lock: TicketLock | None) -> tuple[TicketLock | None, bool]:
            if lock is None:
                return None, False
            ticket = lock._ticket_for_ticket_number(ticket_number)
            if ticket is None or ticket.has_expired() or lock.is_locked(ticket_number):
                return lock, False
            ticket.expires = time.time() + lifetime
            return lock, True

        return self._change(conversation_id, change)

    async def _renew(self, conversation_id: str, ticket_number: int, lifetime: float) -> None:
        while True:
            await asyncio.sleep(lifetime / 3)
            try:
                held = self._hold(conversation_id, ticket_number, lifetime)
            except Exception as exc:  # Redis unreachable: try again at the next tick
                logger.warning("Could not renew the conversation lock: %s", exc)
                continue
            if not held:
                logger.error(
                    "A turn lost its conversation lock (ticket expired); another turn may "
                    "run beside it. Raise TICKET_LOCK_LIFETIME."
                )
                return

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = 1,
    ) -> AsyncGenerator[TicketLock, None]:
        ticket = self.issue_ticket(conversation_id, lock_lifetime)
        try:
            while True:
                lock = self.get_lock(conversation_id)
                if (
                    lock is not None
                    and not lock.is_locked(ticket)
                    and self._hold(conversation_id, ticket, lock_lifetime)
                ):
                    break
                if lock is None or lock._ticket_for_ticket_number(ticket) is None:
                    logger.warning(
                        "A turn waited longer than the lock lifetime (%ss, "
                        "TICKET_LOCK_LIFETIME); it queues again",
                        lock_lifetime,
                    )
                    ticket = self.issue_ticket(conversation_id, lock_lifetime)
                    continue
                await asyncio.sleep(min(wait_time_in_seconds, self.poll_seconds))
                self.update_lock(conversation_id)
            renewal = asyncio.ensure_future(self._renew(conversation_id, ticket, lock_lifetime))
            try:
                yield lock
            finally:
                renewal.cancel()
                await asyncio.gather(renewal, return_exceptions=True)
        finally:
            self.cleanup(conversation_id, ticket)
