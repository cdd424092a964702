"""Rasa's turns on their own thread, so the webhook answers in milliseconds under load.

Rasa runs NLU and policy prediction synchronously inside its coroutines: on the server's
event loop, each turn blocks everything else for tens of milliseconds, and with a queue
of turns a webhook waited seconds for its 200 (measured: p99 4.2 s at 100 webhooks/s).
``TurnThread`` runs each ``agent.handle_message`` on a second event loop in one worker
thread. The server's loop keeps answering webhooks, ``/health`` and ``/metrics`` and does
all WhatsApp I/O (the output channel hops back to it to send); only Rasa's own work runs
on the worker. One thread, so turns are no more concurrent than before.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TurnThread:
    """An event loop in a daemon thread that runs coroutines submitted from elsewhere."""

    def __init__(self, name: str = "rasa-turns") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        ready.wait(10)

    @property
    def running(self) -> bool:
        return self._loop is not None

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` on the worker loop and wait for it from the caller's loop."""
        if self._loop is None:
            return await awaitable  # not started (WPP_TURN_THREAD=false): run in place

        async def turn() -> T:
            return await awaitable

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(turn(), self._loop))

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop, self._thread = None, None


async def on_loop(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on ``loop``, waiting from whichever loop is running now."""
    if asyncio.get_running_loop() is loop:
        return await coroutine
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))
