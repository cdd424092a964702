"""Refusals before authentication are answered late: a flood pays in time, not our CPU.

Meta and Serpro sign (or carry the token on) every webhook, send plain JSON, and never send
more than Meta's 3 MB. A request refused for one of those reasons (401, 403, 413, 415) did
not come from them, or came from a deployment whose secret is wrong, where a late 401
changes nothing: the provider redelivers either way. Answering such a request at once lets
a client send the next one at once, and on a small machine the ingress's CPU spent refusing
thousands a second is CPU ``rasa run`` needed (the chaos bench measured 2,685 refusals a
second costing citizens' acks 2.6× and throughput 0.81×).

So each refusal is held about ``WPP_REFUSAL_DELAY_MS`` (1 s) before it is answered, and its
connection is then closed: a client gets as many refusals a second as it holds connections,
each held refusal costs one sleeping coroutine, and a correct webhook is never delayed. The
hold is drawn between half and one and a half times the delay: refusals sent together do
not come back together, so a flood's reconnections spread over the second instead of
arriving in step (in the chaos bench, in-step bursts of 64 put citizens' ack p99 at 1.23×
calm in one round). At
most ``WPP_REFUSAL_HOLD_MAX`` are held at once; beyond that a refusal is answered at once
(and still closed), so a client with thousands of connections cannot pile up memory: the
per-client connection limit at the edge (``deploy/nginx.conf``) is what bounds it there.
"""

from __future__ import annotations

import asyncio
import random

from bot.addons.whatsapp.metrics import Metrics

# Statuses of a request refused before (or instead of) authentication. 400 (a signed body
# that is not JSON) and 503 (overload, shutdown: the provider must retry soon) are not.
UNAUTHENTICATED = frozenset({401, 403, 413, 415})


class Tarpit:
    """Holds refusals of unauthenticated requests for about ``delay`` seconds (0.5 to 1.5
    times it), ``hold_max`` at once."""

    def __init__(self, delay: float, hold_max: int, metrics: Metrics) -> None:
        self.delay = delay
        self.hold_max = hold_max
        self.metrics = metrics
        self.held = 0

    @property
    def closes(self) -> bool:
        """Whether a refusal's connection is closed after it (whenever the tarpit is on)."""
        return self.delay > 0

    def applies(self, status: int) -> bool:
        return status in UNAUTHENTICATED

    async def hold(self) -> None:
        """Wait out the delay; at once when ``hold_max`` refusals are already held."""
        if self.delay <= 0:
            return
        if self.held >= self.hold_max:
            self.metrics.refusals_delayed["at_once"] += 1
            return
        self.held += 1
        try:
            await asyncio.sleep(self.delay * random.uniform(0.5, 1.5))
        finally:
            self.held -= 1
        self.metrics.refusals_delayed["delayed"] += 1
