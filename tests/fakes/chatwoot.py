"""The fake Chatwoot (``simulator/chatwoot.py``, the simulator's agent pane) on its own
port, for the handoff tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from simulator.chatwoot import FakeChatwoot
from tests.support.stack import free_port

__all__ = ["FakeChatwoot", "running_chatwoot"]


@asynccontextmanager
async def running_chatwoot(fake: FakeChatwoot | None = None) -> AsyncIterator[FakeChatwoot]:
    fake = fake or FakeChatwoot(token="test-chatwoot-token")
    app = web.Application()
    fake.add_routes(app)
    # No access log: the contact search carries the citizen's number in its query string.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    fake.url = f"http://127.0.0.1:{port}"
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
        await runner.cleanup()
