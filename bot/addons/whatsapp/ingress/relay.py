"""The ingress's side of the hand-over to ``rasa run``: acknowledged messages, relayed in
arrival order, never dropped.

Why a second process: Rasa runs NLU and policies synchronously on its event loop, in the
process that also answers Meta. With the webhook there, a burst of turns delayed the 200s
(or, with the turns on a thread, cost ~12 % of throughput to the GIL). The ingress
(:mod:`bot.addons.whatsapp.ingress.app`) only authenticates, deduplicates, journals and acks;
:class:`Relay` then posts the messages to ``POST /webhooks/whatsapp/relay`` of ``rasa
run``, which takes them over and runs the turns.

The protocol: a JSON body ``{"owner": <the ingress's journal id, or "">, "messages":
[...]}`` signed with the provider's secret (``X-Relay-Signature``); the answer
``{"accepted": n}`` says the first ``n`` are taken. A 503 (``rasa run`` full or stopping),
a network error or a timeout leaves them queued and they are sent again after a
back-off; a retry of what was already taken is recognised and not run twice. One request
at a time, so one sender's messages reach Rasa in the order they came.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import Any

import aiohttp

from bot.addons.whatsapp.errors import WhatsAppError
from bot.addons.whatsapp.inbound.events import InboundMessage, message_fields
from bot.addons.whatsapp.inbound.signature import RELAY_SIGNATURE_HEADER, relay_signature
from bot.addons.whatsapp.logs import ThrottledLog
from bot.addons.whatsapp.metrics import Metrics

logger = logging.getLogger(__name__)

RELAY_PATH = "/webhooks/whatsapp/relay"


class RelayRefused(WhatsAppError):
    """``rasa run`` answered something other than 200."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class Relay:
    """A bounded FIFO of acknowledged messages and the task that relays them.

    Args:
        rasa_url: base URL of ``rasa run`` (``http://localhost:5005``).
        secret: the provider's secret (``WhatsAppSettings.relay_secret``).
        owner: the ingress's journal id in Redis ("" without Redis).
        metrics: where relayed messages and failures are counted.
        queue_size: how many acknowledged messages may wait; more are refused (503).
        batch_max: messages per request at most.
        timeout: seconds to wait for ``rasa run``'s answer.
    """

    def __init__(
        self,
        rasa_url: str,
        secret: str,
        owner: str,
        metrics: Metrics,
        queue_size: int = 1000,
        batch_max: int = 100,
        timeout: float = 30.0,
        backoff: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        self.url = rasa_url.rstrip("/") + RELAY_PATH
        self._secret = secret
        self._owner = owner
        self._metrics = metrics
        self._queue_size = queue_size
        self._batch_max = batch_max
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._backoff = backoff
        self._queue: deque[dict[str, Any]] = deque()
        self._accepting = True
        self._wake = asyncio.Event()
        self._emptied = asyncio.Event()
        self._emptied.set()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._failures = ThrottledLog(interval=30.0, log=logger)
        self.reachable: bool | None = None  # None until the first attempt

    # --- the intake's sink ----------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def depth(self) -> int:
        return len(self._queue)

    def room(self) -> int:
        return max(0, self._queue_size - len(self._queue)) if self._accepting else 0

    def submit(self, messages: Sequence[InboundMessage], force: bool = False) -> bool:
        if not messages:
            return True
        if not self._accepting or (not force and self.room() < len(messages)):
            return False
        self._queue.extend(message_fields(m) for m in messages)
        self._emptied.clear()
        self._wake.set()
        return True

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._task = asyncio.ensure_future(self._run())

    async def drain(self, timeout: float) -> int:
        """Stop accepting, relay what is queued for up to ``timeout`` s; return how many
        messages are left."""
        self._accepting = False
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._emptied.wait(), timeout)
        return len(self._queue)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- relaying -------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._backoff[0]
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = list(islice(self._queue, self._batch_max))
                try:
                    accepted = await self._post(batch)
                except Exception as exc:  # never let the relay stop: what is queued was acked
                    self._failed(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff[1])
                    continue
                self.reachable = True
                for _ in range(accepted):
                    self._queue.popleft()
                self._metrics.messages_relayed += accepted
                if accepted:
                    delay = self._backoff[0]
                else:  # rasa run took none (full): wait before asking again
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff[1])
            self._emptied.set()

    async def _post(self, batch: list[dict[str, Any]]) -> int:
        assert self._session is not None
        body = json.dumps(
            {"owner": self._owner, "messages": batch}, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            RELAY_SIGNATURE_HEADER: relay_signature(self._secret, body),
        }
        async with self._session.post(self.url, data=body, headers=headers) as answer:
            try:
                content = await answer.json(content_type=None)
            except ValueError:
                content = {}
            if answer.status != 200:
                reason = content.get("error") if isinstance(content, dict) else None
                raise RelayRefused(answer.status, str(reason or answer.reason))
        accepted = content.get("accepted") if isinstance(content, dict) else None
        if not isinstance(accepted, int):
            raise RelayRefused(answer.status, "no accepted count in the answer")
        return max(0, min(accepted, len(batch)))

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, RelayRefused):
            reason = exc.reason if exc.status == 503 else f"http_{exc.status}"
        elif isinstance(exc, asyncio.TimeoutError):
            reason = "timeout"
        elif isinstance(exc, aiohttp.ClientError):
            reason = "unreachable"
        else:
            reason = "error"
        self._metrics.relay_failures[reason] += 1
        if isinstance(exc, RelayRefused) and exc.status == 503:
            self.reachable = True  # full, stopping or without Redis: back-pressure, not a fault
            return
        self.reachable = False
        self._failures.warn(
            reason,
            "Could not relay %d acknowledged message(s) to %s (%s): %s; retrying",
            len(self._queue),
            self.url,
            reason,
            exc,
        )
