"""A round-robin HTTP load balancer for several ``rasa run`` processes, like nginx's default.

Each request goes to the next upstream. An upstream that refuses the connection is skipped
(nginx's ``proxy_next_upstream error``); one that dies after receiving the request gets the
caller a 502, as nginx does for a POST, and the caller (Meta) delivers it again.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.stack import free_port

FORWARDED_HEADERS = ("Content-Type", "X-Hub-Signature-256", "Authorization", "X-Relay-Signature")


@dataclass
class RoundRobinProxy:
    upstreams: list[str]
    url: str = ""
    forwarded: Counter[str] = field(default_factory=Counter)
    _turn: Any = field(default_factory=itertools.count)
    _session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        for _ in self.upstreams:
            upstream = self.upstreams[next(self._turn) % len(self.upstreams)]
            try:
                async with self._session.request(
                    request.method, upstream + request.path_qs, data=body, headers=headers
                ) as answer:
                    content = await answer.read()
                    self.forwarded[upstream] += 1
                    return web.Response(
                        body=content, status=answer.status, content_type=answer.content_type
                    )
            except aiohttp.ClientConnectorError:
                continue  # refused: try the next upstream
            except (aiohttp.ClientError, TimeoutError):
                return web.Response(status=502, text="upstream failed")
        return web.Response(status=502, text="no upstream available")


@asynccontextmanager
async def running_proxy(upstreams: list[str]) -> AsyncIterator[RoundRobinProxy]:
    proxy = RoundRobinProxy(list(upstreams))
    proxy._session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30),
        connector=aiohttp.TCPConnector(limit=0),
    )
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    proxy.url = f"http://127.0.0.1:{port}"
    try:
        yield proxy
    finally:
        await runner.cleanup()
        await proxy._session.close()
