"""The turn's side of the journal: what a turn reports as it goes (each reply sent), how it
ends (finished), and whether it is still this process's to answer (:mod:`.journal`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bot.addons.whatsapp.inbound.events import InboundMessage

if TYPE_CHECKING:
    from bot.addons.whatsapp.delivery.dedup import DedupStore

logger = logging.getLogger(__name__)

T = TypeVar("T")


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
