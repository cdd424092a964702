"""Per-sender FIFO queues: one sender's messages one at a time, in arrival order;
different senders concurrently, up to a limit. Bounded, so a full queue can be refused
(the webhook then answers 503 and Meta redelivers) instead of growing without end.

:class:`DispatchSink` is the webhook's sink inside ``rasa run``: accepted messages become
:class:`Queued` turns in a :class:`Dispatcher`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from bot.addons.whatsapp.inbound import quiet
from bot.addons.whatsapp.inbound.events import InboundMessage, MessageType
from bot.addons.whatsapp.logs import mask_phone

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Dispatcher(Generic[T]):
    """Runs ``handler(item)`` for queued items, serialised per key.

    Args:
        handler: the coroutine run for each item; its exceptions are logged, never raised.
        key: the item's sender (items with the same key run one at a time, in order).
        max_concurrency: how many senders are handled at the same time.
        queue_size: how many items may wait or run at once; more are refused.
        key_queue_size: how many items of one key may wait or run at once; more are
            refused, so one flooding sender cannot take the whole queue.
    """

    def __init__(
        self,
        handler: Callable[[T], Awaitable[None]],
        key: Callable[[T], str],
        max_concurrency: int = 32,
        queue_size: int = 1000,
        key_queue_size: int = 50,
    ) -> None:
        self._handler = handler
        self._key = key
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._queue_size = queue_size
        self._key_queue_size = key_queue_size
        self._queues: dict[str, deque[T]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._depth = 0
        self._accepting = True
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def depth(self) -> int:
        """Items accepted and not yet finished (waiting or running)."""
        return self._depth

    @property
    def accepting(self) -> bool:
        return self._accepting

    def room(self) -> int:
        """How many more items fit now (0 once stopping)."""
        return max(0, self._queue_size - self._depth) if self._accepting else 0

    def room_for(self, key: str) -> int:
        """How many more items of ``key`` fit now."""
        queue = self._queues.get(key)
        held = len(queue) if queue is not None else 0
        return min(self.room(), max(0, self._key_queue_size - held))

    def submit(self, items: Sequence[T], force: bool = False) -> bool:
        """Queue every item, or none: False when stopping or when they do not all fit.
        ``force`` queues them over the size bound (still never once stopping)."""
        if not items:
            return True
        if not self._accepting or (not force and self.room() < len(items)):
            return False
        for item in items:
            sender = self._key(item)
            self._queues.setdefault(sender, deque()).append(item)
            self._depth += 1
            if sender not in self._workers:
                self._workers[sender] = asyncio.create_task(self._run(sender))
        self._idle.clear()
        return True

    def revise(self, key: str, change: Callable[[T], T | None]) -> bool:
        """Replace the first waiting item of ``key`` that ``change`` changes (it returns
        None for the items it leaves alone); False when none was changed.

        The item at the front of the queue is left alone: it may be running already.
        """
        queue = self._queues.get(key)
        for index in range(1, len(queue) if queue else 0):
            assert queue is not None
            changed = change(queue[index])
            if changed is not None:
                queue[index] = changed
                return True
        return False

    async def _run(self, sender: str) -> None:
        queue = self._queues[sender]
        try:
            while queue:
                item = queue[0]
                try:
                    async with self._semaphore:
                        await self._handler(item)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("Handling a message from %s failed", mask_phone(sender))
                finally:
                    queue.popleft()
                    self._depth -= 1
        finally:
            del self._workers[sender]
            if not queue:
                del self._queues[sender]
            if not self._workers:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Stop accepting and wait up to ``timeout`` s for what was accepted to finish.

        Returns:
            True when everything finished; False when the timeout cut it short (the rest
            is cancelled and logged).
        """
        self._accepting = False
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            logger.error("Shutdown: %d acknowledged message(s) not finished in time", self._depth)
            for task in list(self._workers.values()):
                task.cancel()
            return False


@dataclass(frozen=True)
class Queued:
    """A message accepted by the webhook, waiting for its turn."""

    message: InboundMessage
    received_at: float
    adopted: bool = False  # taken over from a process that died before finishing it
    already_sent: int = 0  # replies that process had delivered
    # A deletion or an edit that already did its work on the message it names, which was
    # still waiting (:func:`settle_on_waiting`): its own turn only finishes it.
    settled: bool = False
    revoked: bool = False  # the citizen deleted this message before its turn: not handled


def settle_on_waiting(
    item: Queued, earlier: list[Queued], revise: Callable[[Callable[[Queued], Queued | None]], bool]
) -> Queued:
    """A deletion or an edit applied to the message it names, if that one still waits.

    A deleted message that waits (in ``earlier``, the same batch, or through ``revise``,
    the sender's queue) is marked ``revoked``; an edited one takes the edit's content, so
    the correction is what gets answered. Either way the deletion or edit comes back
    ``settled``; any other item, or one whose message was handled already, comes back as
    it was.
    """
    target = quiet.original_id(item.message)
    if not target:
        return item
    is_edit = item.message.type is MessageType.EDIT

    def change(waiting: Queued) -> Queued | None:
        if waiting.message.wamid != target or waiting.settled:
            return None
        if waiting.revoked:  # a redelivered deletion: its work is done already
            return None if is_edit else waiting
        if is_edit:
            return replace(waiting, message=quiet.as_edited(waiting.message, item.message))
        return replace(waiting, revoked=True)

    for index, waiting in enumerate(earlier):
        changed = change(waiting)
        if changed is not None:
            earlier[index] = changed
            return replace(item, settled=True)
    if revise(change):
        return replace(item, settled=True)
    return item


class DispatchSink:
    """The intake's sink inside ``rasa run``: the per-sender dispatcher of turns."""

    def __init__(self) -> None:
        self.dispatcher: Dispatcher[Queued] | None = None

    @property
    def accepting(self) -> bool:
        return self.dispatcher is not None and self.dispatcher.accepting

    @property
    def depth(self) -> int:
        return self.dispatcher.depth if self.dispatcher is not None else 0

    def room(self) -> int:
        return self.dispatcher.room() if self.dispatcher is not None else 0

    def room_for(self, sender: str) -> int:
        return self.dispatcher.room_for(sender) if self.dispatcher is not None else 0

    def submit(self, messages: Sequence[InboundMessage], force: bool = False) -> bool:
        if self.dispatcher is None:
            return False
        now = time.monotonic()
        dispatcher = self.dispatcher
        items: list[Queued] = []
        for message in messages:
            revise = functools.partial(dispatcher.revise, message.wa_id)
            items.append(settle_on_waiting(Queued(message, now), items, revise))
        return dispatcher.submit(items, force=force)

    def adopt(self, message: InboundMessage, already_sent: int) -> bool:
        """Queue a message adopted from a dead process; False when there is no room now."""
        if self.dispatcher is None:
            return False
        item = Queued(message, time.monotonic(), adopted=True, already_sent=already_sent)
        return self.dispatcher.submit([item])
