"""A TCP proxy that can hold back the server's replies: a Redis that applies a command but
answers after the client gave up (a slow disk, a stalled network, a busy server)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from tests.support.stack import free_port


@dataclass
class SlowReplies:
    """Forwards ``127.0.0.1:port`` to ``upstream_port``; replies wait ``delay`` seconds."""

    upstream_port: int
    port: int = 0
    delay: float = 0.0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slow: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if slow and self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        for task in (
            asyncio.ensure_future(self._pipe(client_r, server_w, slow=False)),
            asyncio.ensure_future(self._pipe(server_r, client_w, slow=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


@asynccontextmanager
async def slow_replies(upstream_port: int) -> AsyncIterator[SlowReplies]:
    proxy = SlowReplies(upstream_port, free_port())
    server = await asyncio.start_server(proxy._serve, "127.0.0.1", proxy.port)
    try:
        yield proxy
    finally:
        server.close()
        for task in list(proxy._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*proxy._tasks, return_exceptions=True)
        await server.wait_closed()
