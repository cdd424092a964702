"""The load generator: a separate process that plays Meta on both sides.

It serves a fake Graph API (``POST /{version}/{phone_number_id}/messages``) that accepts
every message the bot sends and notes when it arrived, and it sends signed webhooks (or
Rasa REST requests) at the stack under test. The orchestrator (``python -m bench``) drives
it over HTTP: ``POST /run`` with a scenario, answered with its measurements.

Scenarios:

* ``closed``: ``users`` virtual users each send a message and wait for the reply before the
  next one (WhatsApp: the reply reaching the fake Graph API; REST: the HTTP answer), until
  ``messages`` are answered. Throughput and end-to-end latency.
* ``open``: ``count`` webhooks at a fixed ``rate`` whatever the answers (Meta's bursts),
  each from a new sender; time to the webhook's answer, statuses, timeouts, and whether
  every acknowledged message was answered afterwards (``"wait": false``: the senders it
  acknowledged instead, for ``answers`` to wait on).
* ``answers``: wait until every one of ``senders`` was answered; how many were not.

``--role acker`` starts a second process that only sends webhooks and times their acks (the
``open`` scenario with ``"wait": false``): no fake Graph API, so no reply or mark-read the
bot sends during a burst can delay the acks it times on its event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import os
import statistics
import time
from typing import Any

import aiohttp
from aiohttp import web

CONVERSATION_TURNS = 10


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else 0.0,
        "mean_ms": round(statistics.fmean(ms), 2) if ms else 0.0,
    }


class LoadGenerator:
    def __init__(
        self, app_secret: str, token: str, phone_number_id: str, role: str = "loadgen"
    ) -> None:
        self.app_secret = app_secret.encode()
        self.token = token
        self.phone_number_id = phone_number_id
        self.replies: dict[str, int] = {}  # sender ▸ messages received from the bot
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.http: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        # Message ids of their own: the acker's must never be the load generator's duplicates.
        self.wamid_prefix = "wamid.BENCH" if role == "loadgen" else f"wamid.BENCH{role.upper()}"
        self._run_ids = itertools.count(1)

    # --- the fake Graph API ----------------------------------------------------------

    async def graph_messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": {"code": 190, "message": "bad token"}}, status=401)
        if body.get("status") == "read":
            return web.json_response({"success": True})
        to = str(body.get("to", "")).lstrip("+")
        self.replies[to] = self.replies.get(to, 0) + 1
        waiter = self.waiting.pop(to, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(time.monotonic())
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.BENCHOUT{next(self._ids)}"}],
            }
        )

    # --- what the load generator sends -------------------------------------------------

    def webhook(self, sender: str, text: str) -> tuple[bytes, dict[str, str]]:
        payload = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": self.phone_number_id,
                                },
                                "contacts": [{"profile": {"name": "Bench"}, "wa_id": sender}],
                                "messages": [
                                    {
                                        "from": sender,
                                        "id": f"{self.wamid_prefix}{next(self._ids)}",
                                        "timestamp": str(int(time.time())),
                                        "type": "text",
                                        "text": {"body": text},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
        body = json.dumps(payload).encode()
        signature = hmac.new(self.app_secret, body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"}
        return body, headers

    async def _post_webhook(self, target: str, sender: str, text: str) -> int:
        assert self.http is not None
        body, headers = self.webhook(sender, text)
        async with self.http.post(
            f"{target}/webhooks/whatsapp/webhook", data=body, headers=headers
        ) as answer:
            await answer.read()
            return answer.status

    # --- scenarios -----------------------------------------------------------------------

    async def closed(self, spec: dict[str, Any]) -> dict[str, Any]:
        target, channel, text = spec["target"], spec["channel"], spec["text"]
        users, messages = int(spec["users"]), int(spec["messages"])
        run = next(self._run_ids)
        latencies: list[float] = []
        failures = 0
        remaining = itertools.count()

        async def user(index: int) -> None:
            nonlocal failures
            assert self.http is not None
            turns = 0
            while next(remaining) < messages:
                # A new citizen every few turns: conversations as long as real ones (Rasa's
                # cost per turn grows with the conversation's length).
                sender = f"55{run:03d}7{index:03d}{turns // CONVERSATION_TURNS:03d}"
                turns += 1
                started = time.monotonic()
                try:
                    if channel == "rest":
                        async with self.http.post(
                            f"{target}/webhooks/rest/webhook",
                            json={"sender": sender, "message": text},
                        ) as answer:
                            if answer.status != 200 or not await answer.json():
                                failures += 1
                                continue
                            finished = time.monotonic()
                    else:
                        waiter = asyncio.get_running_loop().create_future()
                        self.waiting[sender] = waiter
                        if await self._post_webhook(target, sender, text) != 200:
                            failures += 1
                            self.waiting.pop(sender, None)
                            continue
                        finished = await asyncio.wait_for(waiter, 60)
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    failures += 1
                    continue
                latencies.append(finished - started)

        started = time.monotonic()
        await asyncio.gather(*(user(i) for i in range(users)))
        seconds = time.monotonic() - started
        raw = {"latencies_ms": [round(x * 1000, 3) for x in latencies]} if spec.get("raw") else {}
        return {
            **raw,
            "channel": channel,
            "messages": len(latencies),
            "failures": failures,
            "seconds": round(seconds, 2),
            "throughput_per_s": round(len(latencies) / seconds, 2),
            **summary_ms(latencies),
        }

    async def open(self, spec: dict[str, Any]) -> dict[str, Any]:
        target, text = spec["target"], spec["text"]
        rate, count = float(spec["rate"]), int(spec["count"])
        run = next(self._run_ids)
        # Each process its own digit, so two processes' senders never share a number.
        prefix = str(spec.get("prefix", "8"))
        acks: list[float] = []
        statuses: dict[str, int] = {}
        accepted: list[str] = []
        timeouts = 0

        async def one(index: int) -> None:
            nonlocal timeouts
            sender = f"55{run:03d}{prefix}{index:06d}"
            started = time.monotonic()
            try:
                status = await self._post_webhook(target, sender, text)
            except asyncio.TimeoutError:
                timeouts += 1
                return
            except aiohttp.ClientError as exc:
                statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
                return
            acks.append(time.monotonic() - started)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200:
                accepted.append(sender)

        tasks = []
        started = time.monotonic()
        for index in range(count):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(index)))
        await asyncio.gather(*tasks)
        sent = {
            "sent": count,
            "rate_per_s": rate,
            "send_seconds": round(time.monotonic() - started, 2),
            "statuses": statuses,
            "timeouts": timeouts,
            "accepted": len(accepted),
            **{f"ack_{k}": v for k, v in summary_ms(acks).items()},
        }
        if spec.get("raw"):
            sent["latencies_ms"] = [round(x * 1000, 3) for x in acks]
        if not spec.get("wait", True):
            return {**sent, "accepted_senders": accepted}
        return {**sent, **await self.answers({**spec, "senders": accepted})}

    async def answers(self, spec: dict[str, Any]) -> dict[str, Any]:
        senders: list[str] = spec["senders"]
        started = time.monotonic()
        deadline = started + float(spec.get("answer_timeout", 600))
        while time.monotonic() < deadline:
            if all(self.replies.get(s, 0) >= 1 for s in senders):
                break
            await asyncio.sleep(0.2)
        return {
            "unanswered": sum(1 for s in senders if self.replies.get(s, 0) < 1),
            "answered_after_s": round(time.monotonic() - started, 2),
        }

    async def run(self, request: web.Request) -> web.Response:
        spec = await request.json()
        scenarios = {"closed": self.closed, "open": self.open, "answers": self.answers}
        scenario = scenarios[spec["scenario"]]
        return web.json_response(await scenario(spec))


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def serve(port: int, generator: LoadGenerator, graph_api: bool = True) -> None:
    generator.http = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=10), connector=aiohttp.TCPConnector(limit=0)
    )
    app = web.Application(client_max_size=1024**2)
    if graph_api:
        app.router.add_post("/{version}/{phone_number_id}/messages", generator.graph_messages)
    app.router.add_post("/run", generator.run)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await generator.http.close()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--role",
        choices=("loadgen", "acker"),
        default="loadgen",
        help="acker: only send webhooks and time their acks (no fake Graph API)",
    )
    args = parser.parse_args()
    # The same variables the channel reads, so secrets never go on a command line.
    generator = LoadGenerator(
        os.environ["WPP_APP_SECRET"],
        os.environ["WPP_AUTHORIZATION_TOKEN"],
        os.environ["WPP_PHONE_NUMBER_IDENTIFIER"],
        role=args.role,
    )
    asyncio.run(serve(args.port, generator, graph_api=args.role == "loadgen"))


if __name__ == "__main__":
    main()
