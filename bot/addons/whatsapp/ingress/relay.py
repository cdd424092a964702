"""The ingress's side of the hand-over to ``rasa run``: acknowledged messages, relayed in
arrival order per sender and fairly across senders, never dropped.

Why a second process: Rasa runs NLU and policies synchronously on its event loop, in the
process that also answers Meta. With the webhook there, a burst of turns delayed the 200s
(or, with the turns on a thread, cost ~12 % of throughput to the GIL). The ingress
(:mod:`bot.addons.whatsapp.ingress.app`) only authenticates, deduplicates, journals and acks;
:class:`Relay` then posts the messages to ``POST /webhooks/whatsapp/relay`` of ``rasa
run``, which takes them over and runs the turns.

The protocol: a JSON body ``{"owner": <the ingress's journal id, or "">, "messages":
[...]}`` signed with the provider's secret (``X-Relay-Signature``); the answer
``{"accepted": n, "deferred": [i, …]}`` says the first ``n`` were considered and taken,
but for those at the ``deferred`` indices (their sender's queue in ``rasa run`` is full;
that sender's later messages in the batch are deferred too). A 503 (``rasa run`` full or
stopping), a network error or a timeout leaves them queued and they are sent again after a
back-off; a retry of what was already taken is recognised and not run twice. One request
at a time, so one sender's messages reach Rasa in the order they came; each batch takes
every waiting sender's oldest message first, so a flooding number delays nobody else.

A message that can never be relayed is *set aside* rather than retried for ever ahead of
every later message: one that cannot be encoded, one larger than ``rasa run`` takes, or
one ``rasa run`` refuses as malformed (400, 413; a refused batch is split in halves until
the message is alone). It is logged, counted (``whatsapp_relay_set_aside_total``) and,
with Redis, stays in the ingress's journal for inspection (``HGETALL
wa:journal:<owner>``), where a ``rasa run`` process adopts it once the ingress stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from itertools import islice
from typing import Any

import aiohttp

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.errors import WhatsAppError
from bot.addons.whatsapp.inbound.events import InboundMessage, json_text, message_fields
from bot.addons.whatsapp.inbound.signature import RELAY_SIGNATURE_HEADER, relay_signature
from bot.addons.whatsapp.ingress.fair_queue import FairQueue
from bot.addons.whatsapp.logs import ThrottledLog, mask_phone
from bot.addons.whatsapp.metrics import Metrics

logger = logging.getLogger(__name__)

RELAY_PATH = "/webhooks/whatsapp/relay"
# rasa run's answers about the body itself: the same body can never be taken.
_REFUSED_FOR_GOOD = frozenset({400, 413})


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
        sender_queue_size: how many of one sender's messages may wait; more are refused
            (503), so one flooding number cannot fill the queue for everyone.
        batch_max: messages per request at most.
        timeout: seconds to wait for ``rasa run``'s answer.
        body_max: bytes per request at most (``rasa run`` refuses larger ones unread).
    """

    def __init__(
        self,
        rasa_url: str,
        secret: str,
        owner: str,
        metrics: Metrics,
        queue_size: int = 1000,
        sender_queue_size: int = 50,
        batch_max: int = 100,
        timeout: float = 30.0,
        backoff: tuple[float, float] = (0.05, 2.0),
        body_max: int = limits.REQUEST_BODY_MAX_BYTES,
    ) -> None:
        self.url = rasa_url.rstrip("/") + RELAY_PATH
        self._secret = secret
        self._owner = owner
        self._metrics = metrics
        self._queue_size = queue_size
        self._sender_queue_size = sender_queue_size
        self._batch_max = batch_max
        self._limit = batch_max  # smaller while a refused batch is being split
        self._body_max = body_max - 1024  # room for the envelope
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._backoff = backoff
        self._queue: FairQueue[dict[str, Any]] = FairQueue()
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

    def room_for(self, sender: str) -> int:
        return min(self.room(), max(0, self._sender_queue_size - self._queue.count(sender)))

    def submit(self, messages: Sequence[InboundMessage], force: bool = False) -> bool:
        if not messages:
            return True
        if not self._accepting or (not force and self.room() < len(messages)):
            return False
        for message in messages:
            self._queue.push(message.wa_id, message_fields(message))
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
                keys, batch = self._next_batch()
                if not batch:  # its first message was set aside
                    continue
                try:
                    accepted, deferred = await self._post(batch)
                except RelayRefused as exc:
                    if exc.status in _REFUSED_FOR_GOOD:
                        self._refused_for_good(exc, keys[0], len(batch))
                        continue
                    self._failed(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff[1])
                    continue
                except Exception as exc:  # never let the relay stop: what is queued was acked
                    self._failed(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff[1])
                    continue
                self.reachable = True
                self._limit = self._batch_max
                taken = self._take(keys[:accepted], deferred)
                self._metrics.messages_relayed += taken
                if taken:
                    delay = self._backoff[0]
                else:  # rasa run took none (full): wait before asking again
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff[1])
            self._emptied.set()

    def _next_batch(self) -> tuple[list[str], list[bytes]]:
        """The senders and encoded messages of the next request, taken round by round
        across senders (:class:`~.fair_queue.FairQueue`) as long as they fit; empty when
        the first one cannot be relayed (it is set aside)."""
        keys: list[str] = []
        parts: list[bytes] = []
        size = 0
        for key, fields in islice(self._queue.rounds(), self._limit):
            try:
                part = json_text(fields).encode("utf-8")
            except (ValueError, TypeError, RecursionError) as exc:
                if not parts:
                    self._set_aside(key, "unencodable", repr(exc)[:200])
                break
            if size + len(part) > self._body_max:
                if not parts:
                    self._set_aside(key, "too_large", f"{len(part)} bytes")
                break
            keys.append(key)
            parts.append(part)
            size += len(part) + 1
        return keys, parts

    def _take(self, keys: list[str], deferred: set[int]) -> int:
        """Drop what ``rasa run`` took: per sender, its messages up to the first it
        deferred (a sender's later messages wait behind that one, in order)."""
        taken: dict[str, int] = {}
        stopped: set[str] = set()
        for index, key in enumerate(keys):
            if index in deferred or key in stopped:
                stopped.add(key)
            else:
                taken[key] = taken.get(key, 0) + 1
        for key, count in taken.items():
            self._queue.drop_heads(key, count)
        return sum(taken.values())

    def _refused_for_good(self, exc: RelayRefused, first: str, size: int) -> None:
        """rasa run refused the body itself: split the batch until the message it refuses
        is alone, then set that one aside."""
        self.reachable = True
        self._metrics.relay_failures[f"http_{exc.status}"] += 1
        if size > 1:
            self._limit = max(1, size // 2)
        else:
            self._set_aside(first, f"http_{exc.status}", exc.reason)

    def _set_aside(self, key: str, reason: str, detail: str) -> None:
        fields = next(item for k, item in self._queue.rounds() if k == key)
        self._queue.drop_heads(key)
        self._metrics.relay_set_aside[reason] += 1
        kept = (
            f"it stays in the journal wa:journal:{self._owner} for inspection"
            if self._owner
            else "it is dropped (without REDIS_URL there is no journal to keep it)"
        )
        logger.error(
            "Relay set aside message %s from %s (%s: %s); %s",
            fields.get("wamid"),
            mask_phone(str(fields.get("wa_id") or "")),
            reason,
            detail,
            kept,
        )

    async def _post(self, batch: list[bytes]) -> tuple[int, set[int]]:
        assert self._session is not None
        body = b"".join(
            (
                b'{"owner":',
                json.dumps(self._owner).encode("utf-8"),
                b',"messages":[',
                b",".join(batch),
                b"]}",
            )
        )
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
        deferred = content.get("deferred") or []
        if not isinstance(deferred, list) or not all(isinstance(i, int) for i in deferred):
            raise RelayRefused(answer.status, "deferred is not a list of indices")
        return max(0, min(accepted, len(batch))), set(deferred)

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
