"""This process's lease on its journal, and the hand-over of what it adopts.

One loop for ``rasa run`` and the ingress: the lease is renewed every third of its
length so a live process's journal is never adopted; in ``rasa run`` each renewal also
adopts the journals of processes whose lease expired (:mod:`.journal`) and queues their
messages for their turns, oldest first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.addons.whatsapp.delivery.journal import Orphan
from bot.addons.whatsapp.logs import ThrottledLog
from bot.addons.whatsapp.metrics import Metrics

if TYPE_CHECKING:
    from bot.addons.whatsapp.delivery.dedup import DedupStore

logger = logging.getLogger(__name__)


class Lease:
    """This process's lease on its journal, renewed every third of ``seconds``.

    In ``rasa run`` (``hand_over`` given) each renewal also adopts the journals of
    processes whose lease expired and hands the orphans to ``hand_over``, which returns
    False when it has no room now (they wait for the next renewal). The ingress only
    renews: turns are ``rasa run``'s to adopt.
    """

    def __init__(
        self,
        store: DedupStore,
        seconds: float,
        metrics: Metrics,
        hand_over: Callable[[Orphan], bool] | None = None,
    ) -> None:
        self.store = store
        self.interval = seconds / 3
        self.metrics = metrics
        self.hand_over = hand_over
        self._handed: set[str] = set()  # queued, not yet cleared from the backlog
        self._task: asyncio.Task[None] | None = None
        self._log = ThrottledLog(interval=30.0, log=logger)

    @property
    def running(self) -> bool:
        return self._task is not None

    async def hold(self) -> None:
        """Take the lease before the first claim, without adopting anything yet."""
        if self.store.journaled:
            await self._renew(adopt=False)

    def start(self) -> None:
        """Renew (and adopt) from now on, until :meth:`stop`."""
        if self.store.journaled and self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        """Stop renewing and give the lease up: what is left is adopted at once."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        try:
            await self.store.retire()
        except Exception as exc:
            logger.warning("Could not give up the lease: %s", exc)

    async def _loop(self) -> None:
        while True:
            await self._renew(adopt=self.hand_over is not None)
            await asyncio.sleep(self.interval)

    async def _renew(self, adopt: bool) -> None:
        try:
            orphans = await self.store.keep_alive(adopt=adopt)
        except Exception as exc:
            self._log.warn("lease", "Could not renew the lease on Redis: %s", exc)
            return
        handed = []
        for orphan in orphans:
            if orphan.message.wamid in self._handed:
                continue
            if self.hand_over is None or not self.hand_over(orphan):
                break  # no room now: the rest wait in the backlog, in order
            handed.append(orphan.message.wamid)
        if handed:
            logger.warning(
                "Taking over %d message(s) acknowledged by a process that stopped", len(handed)
            )
            self.metrics.messages_adopted += len(handed)
            self._handed.update(handed)
        if self._handed:
            try:
                await self.store.forget_adopted(sorted(self._handed))
                self._handed.clear()
            except Exception as exc:  # they stay in the backlog; _handed keeps them single
                self._log.warn("lease", "Could not clear the adoption backlog: %s", exc)
