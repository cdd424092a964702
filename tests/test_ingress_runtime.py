"""The ingress on its own, with no Rasa anywhere: what `make test-ingress` also runs on the
ingress's own interpreter (Python 3.12+, current aiohttp: deploy/ingress/).

A stand-in for ``rasa run``'s relay route checks what the ingress relays exactly as the
channel does (the relay signature over the exact body, ``{"owner", "messages"}``) and
takes everything (``{"accepted": n}``).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bench.flood import Flood, answer_of
from bot.addons.whatsapp import limits
from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.inbound.signature import RELAY_SIGNATURE_HEADER, relay_signature, sign
from bot.addons.whatsapp.ingress.app import Ingress
from tests.support.hostile import forged_signature, post_head
from tests.support.stack import free_port
from tests.whatsapp_fixtures import fixture

SECRET = "runtime-app-secret"
VERIFY = "runtime-verify-token"
ENV = {
    "WPP_AUTHORIZATION_TOKEN": "runtime-access-token",
    "WPP_VERIFY_TOKEN": VERIFY,
    "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
    "WPP_APP_SECRET": SECRET,
}


@dataclass
class RasaStandIn:
    """``POST /webhooks/whatsapp/relay`` as ``rasa run`` serves it, keeping what it took."""

    taken: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    async def relay(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get(RELAY_SIGNATURE_HEADER) != relay_signature(SECRET, body):
            self.refused += 1
            return web.json_response({"error": "relay_signature_invalid"}, status=401)
        messages = json.loads(body)["messages"]
        self.taken.extend(messages)
        return web.json_response({"accepted": len(messages)})


def text_webhook(wamid: str, text: str, sender: str = "15550002222") -> bytes:
    payload = copy.deepcopy(fixture("inbound_text"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"][0].update({"id": wamid, "from": sender, "text": {"body": text}})
    value["contacts"][0]["wa_id"] = sender
    return json.dumps(payload).encode()


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def ingress_before_rasa(
    refusal_delay_ms: int = 1,
) -> AsyncIterator[tuple[str, RasaStandIn, aiohttp.ClientSession]]:
    """The ingress in front of a stand-in for rasa run; refusals before authentication
    held ``refusal_delay_ms`` (1 ms: the tarpit's path at test speed; 0: off)."""
    rasa = RasaStandIn()
    rasa_app = web.Application()
    rasa_app.router.add_post("/webhooks/whatsapp/relay", rasa.relay)
    async with served(rasa_app) as rasa_url:
        env = {**ENV, "WPP_REFUSAL_DELAY_MS": str(refusal_delay_ms), "WPP_REFUSAL_RATE": "0"}
        ingress = Ingress(WhatsAppSettings.from_credentials({}, env), rasa_url)
        async with served(ingress.app()) as url, aiohttp.ClientSession() as http:
            yield url, rasa, http


async def wait_until_taken(rasa: RasaStandIn, count: int) -> None:
    for _ in range(500):
        if len(rasa.taken) >= count:
            await asyncio.sleep(0.05)  # and nothing more
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"rasa took {len(rasa.taken)} of {count}")


async def test_signed_webhooks_are_acknowledged_relayed_signed_in_order_and_once() -> None:
    async with ingress_before_rasa() as (url, rasa, http):
        for i in range(5):
            body = text_webhook(f"wamid.RT{i}", str(i))
            headers = {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(SECRET, body),
            }
            answer = await http.post(f"{url}/webhooks/whatsapp/webhook", data=body, headers=headers)
            assert (answer.status, await answer.json()) == (200, {"status": "ok", "messages": 1})
        again = text_webhook("wamid.RT2", "2")  # Meta's redelivery
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, again)}
        assert (
            await http.post(f"{url}/webhooks/whatsapp/webhook", data=again, headers=headers)
        ).status == 200
        await wait_until_taken(rasa, 5)
        assert [m["wamid"] for m in rasa.taken] == [f"wamid.RT{i}" for i in range(5)]
        assert rasa.refused == 0
        metrics = await (await http.get(f"{url}/webhooks/whatsapp/metrics")).text()
        assert "whatsapp_duplicates_dropped_total 1" in metrics


async def test_what_is_not_meta_is_refused_before_anything_is_relayed() -> None:
    async with ingress_before_rasa() as (url, rasa, http):
        webhook = f"{url}/webhooks/whatsapp/webhook"
        body = text_webhook("wamid.RTX", "oi")
        unsigned = await http.post(webhook, data=body, headers={"Content-Type": "application/json"})
        assert (unsigned.status, await unsigned.json()) == (401, {"error": "signature_missing"})
        forged = {"Content-Type": "application/json", "X-Hub-Signature-256": sign("guess", body)}
        assert (await http.post(webhook, data=body, headers=forged)).status == 403
        gzipped = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "X-Hub-Signature-256": sign(SECRET, body),
        }
        assert (await http.post(webhook, data=body, headers=gzipped)).status == 415
        handshake = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "7"}
        ok = await http.get(webhook, params=handshake)
        assert (ok.status, await ok.text()) == (200, "7")
        wrong = await http.get(webhook, params={**handshake, "hub.verify_token": "nope"})
        assert wrong.status == 403
        await asyncio.sleep(0.1)
        assert rasa.taken == []


async def test_a_flood_of_every_hostile_kind_gets_its_4xx_on_the_head_or_signature() -> None:
    """The benchmark's flood (``bench.flood``: compressed, unsigned, forged, oversized and
    nested bodies, as fast as they are answered) on the ingress's own aiohttp."""
    async with ingress_before_rasa() as (url, rasa, _):
        flood = Flood(url, connections=2)
        running = asyncio.create_task(flood.run())
        for _ in range(3000):
            if len({kind for kind, _ in flood.answers}) == 5:
                break
            await asyncio.sleep(0.01)
        flood.stopping.set()
        result = await running
        outcomes = {kind: set(by) for kind, by in result["statuses"].items()}
        # A body too large to read: the connection is closed, maybe before the 413 is read.
        assert outcomes.pop("oversized") <= {"413", "reset"}
        assert outcomes == {
            "compressed": {"415"},
            "unsigned": {"401"},
            "bad_signature": {"403"},
            "nested": {"403"},
        }
        assert rasa.taken == []


async def test_a_body_declared_over_the_limit_is_refused_before_it_is_sent() -> None:
    declared = limits.WEBHOOK_BODY_MAX_BYTES + 1
    head = post_head(b"", forged_signature(b"")).replace(
        b"Content-Length: 0", f"Content-Length: {declared}".encode()
    )
    async with ingress_before_rasa() as (url, _, _):
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head + b"\r\n\r\n" + b" " * 1024)  # 1 kB of the declared 3 MiB
        answer = await asyncio.wait_for(reader.read(65536), 5.0)
        assert answer.startswith(b"HTTP/1.1 413 "), answer
        assert answer.endswith(b'{"error": "body_too_large"}'), answer
        # Not waiting for the rest only to discard it: closed at once, and said so.
        assert b"\r\nConnection: close\r\n" in answer, answer
        assert await asyncio.wait_for(reader.read(), 2.0) == b""
        writer.close()


async def test_with_the_tarpit_off_a_small_refused_body_is_read_past_and_the_connection_kept() -> (
    None
):
    unsigned = text_webhook("wamid.RTK", "oi")
    request = post_head(unsigned) + b"\r\n\r\n" + unsigned
    async with ingress_before_rasa(refusal_delay_ms=0) as (url, rasa, _):
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        for _ in range(2):  # the second on the same connection
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            assert head.startswith(b"HTTP/1.1 401 "), head
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert await reader.readexactly(length) == b'{"error": "signature_missing"}'
        writer.close()
        assert rasa.taken == []


async def test_a_forged_webhook_is_held_then_closed_and_a_signed_one_is_not() -> None:
    forged_body = text_webhook("wamid.RTF", "oi")
    forged = post_head(forged_body, forged_signature(forged_body)) + b"\r\n\r\n" + forged_body
    async with ingress_before_rasa(refusal_delay_ms=600) as (url, rasa, http):
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.write(forged)
        refusal = asyncio.create_task(answer_of(reader))
        await asyncio.sleep(0.05)
        body = text_webhook("wamid.RTS", "oi")
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, body)}
        signed = await http.post(f"{url}/webhooks/whatsapp/webhook", data=body, headers=headers)
        assert signed.status == 200 and not refusal.done()  # never behind a held refusal
        assert await refusal == (403, False)  # then answered, "Connection: close"
        assert loop.time() - started >= 0.3  # held 0.5 to 1.5 times the delay
        assert await reader.read() == b""  # and closed
        writer.close()
        await wait_until_taken(rasa, 1)
        assert [m["wamid"] for m in rasa.taken] == ["wamid.RTS"]
