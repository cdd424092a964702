"""A flood of hostile webhook requests, as fast as the target answers them, until stopped.

``python -m bench.flood --target http://127.0.0.1:5006 --connections 8 --out flood.json``
keeps ``connections`` connections busy, each sending the next request as soon as the last
one was answered, in turn of the kinds of ``tests/support/hostile.py`` (compressed, unsigned,
forged signature, oversized, deeply nested: none signed with the app secret). On SIGTERM it
writes what it sent and what it got back (per kind, per status, or ``reset`` when the server
closed the connection while the body was still being sent) to ``--out`` and exits.

A process of its own, so the process that times the citizens' acks does not also spend
its event loop on the flood. ``bench.chaos`` starts it at a lower priority: in production
the attacker's CPU is not the server's, and here it must not be the stack's either.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.addons.whatsapp import limits
from tests.support.hostile import hostile_requests

ANSWER_TIMEOUT = 10.0


async def answer_of(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """One HTTP/1.1 response's status, and whether the connection stays open after it."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() != "close"


class Flood:
    def __init__(self, target: str, connections: int) -> None:
        url = urlsplit(target)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.connections = connections
        self.requests = list(hostile_requests(limits.WEBHOOK_BODY_MAX_BYTES + 1).items())
        # (kind, outcome): the status answered, "reset" when the server closed the connection
        # while the body was still being sent (how the ingress refuses a large body),
        # "timeout" when no answer came, "error" for a connection that failed otherwise.
        self.answers: Counter[tuple[str, str]] = Counter()
        self.stopping = asyncio.Event()

    async def connection(self, first: int) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        turn = first
        while not self.stopping.is_set():
            kind, request = self.requests[turn % len(self.requests)]
            turn += 1
            open_after = False  # after a failure, a new connection
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                assert reader is not None
                writer.write(request)
                await writer.drain()
                status, open_after = await asyncio.wait_for(answer_of(reader), ANSWER_TIMEOUT)
                outcome = str(status)
            except asyncio.TimeoutError:
                outcome = "timeout"
            except (ConnectionError, asyncio.IncompleteReadError, RuntimeError):
                outcome = "reset"  # RuntimeError: uvloop's write to a transport closed under it
            except (OSError, ValueError):
                outcome = "error"
            self.answers[(kind, outcome)] += 1
            if not open_after and writer is not None:
                writer.close()
                writer = reader = None
        if writer is not None:
            writer.close()

    async def run(self) -> dict[str, Any]:
        """Flood until ``stopping`` is set; what was sent and answered."""
        started = time.monotonic()
        print(f"flooding {self.host}:{self.port} with {self.connections} connections", flush=True)
        await asyncio.gather(*(self.connection(i) for i in range(self.connections)))
        seconds = time.monotonic() - started
        sent = sum(self.answers.values())
        statuses: dict[str, dict[str, int]] = {}
        for (kind, outcome), count in sorted(self.answers.items()):
            statuses.setdefault(kind, {})[outcome] = count
        result = {
            "connections": self.connections,
            "seconds": round(seconds, 2),
            "requests": sent,
            "rate_per_s": round(sent / seconds, 1) if seconds else 0.0,
            "statuses": statuses,
        }
        print(json.dumps(result), flush=True)
        return result


async def until_signalled(flood: Flood) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, flood.stopping.set)
    return await flood.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="the server's base URL")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True, help="where to write the counts")
    args = parser.parse_args()
    result = asyncio.run(until_signalled(Flood(args.target, args.connections)))
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
