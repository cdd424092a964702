"""Run an async test server on its own event loop in a thread, for tests of real processes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class InThread(Generic[T]):
    """``with InThread(lambda: running_x(fake)) as fake:`` serves until the block ends."""

    def __init__(self, serve: Callable[[], AbstractAsyncContextManager[T]]) -> None:
        self._serve = serve
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._value: T | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            async with self._serve() as value:
                self._value = value
                self._ready.set()
                await self._stop.wait()

        self._loop.run_until_complete(main())

    def __enter__(self) -> T:
        self._thread.start()
        if not self._ready.wait(10) or self._value is None:
            raise RuntimeError("the test server did not start")
        return self._value

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def call(self, coroutine: Coroutine[Any, Any, R], timeout: float = 30) -> R:
        """Run ``coroutine`` on the server's loop (e.g. a fake's agent acting) and wait."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)
