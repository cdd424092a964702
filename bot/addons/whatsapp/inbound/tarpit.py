"""Refusals before authentication are answered late: a flood pays in time, not our CPU.

Meta and Serpro sign (or carry the token on) every webhook, send plain JSON, and never send
more than Meta's 3 MB. A request refused for one of those reasons (401, 403, 413, 415) did
not come from them, or came from a deployment whose secret is wrong, where a late 401
changes nothing: the provider redelivers either way. Answering such a request at once lets
a client send the next one at once, and on a small machine the ingress's CPU spent refusing
thousands a second is CPU ``rasa run`` needed (the chaos bench measured 2,685 refusals a
second costing citizens' acks 2.6× and throughput 0.81×).

So each refusal is held before it is answered, and its connection then closed:

- at least about ``WPP_REFUSAL_DELAY_MS`` (1 s; drawn between half and one and a half times
  it, so refusals sent together do not come back in step), so a client gets at most about
  as many refusals a second as it holds connections;
- and no more than ``WPP_REFUSAL_RATE`` (20) refusals are answered a second in all, each
  in its own slot: however many connections a flood holds, refusing it costs a bounded
  share of a core (about 0.5 ms of CPU each, so about 1 % at 20 a second).

A held refusal costs one sleeping coroutine, and a correct webhook is never held. At most
``WPP_REFUSAL_HOLD_MAX`` are held at once; beyond that a refusal is answered at once (and
still closed), so a client with thousands of connections cannot pile up memory: the
per-client connection limit at the edge (``deploy/nginx.conf``) is what bounds it there.
"""

from __future__ import annotations

import asyncio
import random
import time

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.metrics import Metrics

# Statuses of a request refused before (or instead of) authentication. 400 (a signed body
# that is not JSON) and 503 (overload, shutdown: the provider must retry soon) are not.
UNAUTHENTICATED = frozenset({401, 403, 413, 415})


class Tarpit:
    """Holds refusals of unauthenticated requests for about ``delay`` seconds (0.5 to 1.5
    times it) and answers at most ``rate`` of them a second (0: no such bound), with at
    most ``hold_max`` held at once."""

    def __init__(self, delay: float, hold_max: int, metrics: Metrics, rate: float = 0) -> None:
        self.delay = delay
        self.hold_max = hold_max
        self.rate = rate
        self.metrics = metrics
        self.held = 0
        self._next_slot = 0.0  # monotonic time of the next free answer slot

    @classmethod
    def configured(cls, settings: WhatsAppSettings, metrics: Metrics) -> Tarpit:
        """From ``WPP_REFUSAL_DELAY_MS``, ``WPP_REFUSAL_HOLD_MAX`` and ``WPP_REFUSAL_RATE``."""
        delay = settings.refusal_delay_ms / 1000
        return cls(delay, settings.refusal_hold_max, metrics, rate=settings.refusal_rate)

    @property
    def closes(self) -> bool:
        """Whether a refusal's connection is closed after it (whenever the tarpit is on)."""
        return self.delay > 0

    def applies(self, status: int) -> bool:
        return status in UNAUTHENTICATED

    async def hold(self) -> None:
        """Wait for this refusal's slot; at once when ``hold_max`` refusals are already held."""
        if self.delay <= 0:
            return
        if self.held >= self.hold_max:
            self.metrics.refusals_delayed["at_once"] += 1
            return
        now = time.monotonic()
        answer_at = now + self.delay * random.uniform(0.5, 1.5)
        if self.rate > 0:
            answer_at = max(answer_at, self._next_slot)
            self._next_slot = answer_at + 1 / self.rate
        self.held += 1
        try:
            await asyncio.sleep(answer_at - now)
        finally:
            self.held -= 1
        self.metrics.refusals_delayed["delayed"] += 1
