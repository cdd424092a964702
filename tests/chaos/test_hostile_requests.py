"""Hostile webhook requests over real HTTP, against both front doors: the channel as
``rasa run`` mounts it (Sanic) and the ingress (aiohttp). Each is refused with a 4xx and
a reason, never a 5xx, and costs the server no more than its size limit."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.inbound.signature import RELAY_SIGNATURE_HEADER, relay_signature, sign
from tests.channel_harness import APP_SECRET, serve_channel
from tests.support.hostile import nested_json, post_head
from tests.test_ingress import serve_ingress
from tests.test_webhook_http import text_webhook


async def test_a_compressed_webhook_is_refused_by_rasa_runs_route() -> None:
    body = gzip.compress(json.dumps(text_webhook("wamid.GZ", "oi")).encode())
    async with serve_channel() as rasa:
        answer = await rasa.post(None, raw=body, headers={"Content-Encoding": "gzip"})
        assert answer.status == 415
        assert await answer.json() == {"error": "content_encoding_refused"}
        identity = await rasa.post(
            text_webhook("wamid.ID", "oi"), headers={"Content-Encoding": "identity"}
        )
        assert identity.status == 200
        await rasa.settle()
        assert [m.text for m in rasa.agent.messages] == ["oi"]


async def test_a_signed_compressed_webhook_is_refused_by_the_ingress() -> None:
    body = gzip.compress(json.dumps(text_webhook("wamid.GZ", "oi")).encode())
    async with serve_channel() as rasa, serve_ingress(rasa.url) as ingress:
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "X-Hub-Signature-256": sign(APP_SECRET, body),
        }
        answer = await ingress.http.post(
            f"{ingress.url}/webhooks/whatsapp/webhook", data=body, headers=headers
        )
        assert answer.status == 415
        assert await answer.json() == {"error": "content_encoding_refused"}
        assert rasa.agent.messages == []


async def raw_request(url: str, head: bytes, body: bytes = b"", wait: float = 5.0) -> bytes:
    """Send bytes as they are (a header aiohttp's client would refuse to send) and read the
    answer; ``b""`` when none came within ``wait`` seconds."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + b"\r\n\r\n" + body)
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.read(65536), wait)
        except asyncio.TimeoutError:
            return b""
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer else 0


@asynccontextmanager
async def both_front_doors(**overrides: Any) -> AsyncIterator[list[str]]:
    """The channel as rasa run serves it, and the ingress in front of it."""
    async with serve_channel(**overrides) as rasa, serve_ingress(rasa.url, **overrides) as ingress:
        yield [rasa.url, ingress.url]


async def test_a_signature_header_that_is_not_utf8_is_refused_with_403() -> None:
    body = json.dumps(text_webhook("wamid.B", "oi")).encode()
    async with both_front_doors() as urls:
        for url in urls:
            answer = await raw_request(
                url, post_head(body, b"X-Hub-Signature-256: sha256=\xff\xfe\xc3"), body
            )
            assert status_of(answer) == 403, answer
            assert answer.endswith(b'{"error":"signature_invalid"}') or answer.endswith(
                b'{"error": "signature_invalid"}'
            ), answer


async def test_a_serpro_token_that_is_not_utf8_is_refused_with_403() -> None:
    body = json.dumps({"messages": []}).encode()
    async with both_front_doors(provider="serpro") as urls:
        for url in urls:
            answer = await raw_request(
                url, post_head(body, b"Authorization: Bearer t\xff\xfe"), body
            )
            assert status_of(answer) == 403, answer
            assert b"token_invalid" in answer


async def test_a_deeply_nested_body_is_refused_with_400() -> None:
    body = nested_json(100_000)
    async with both_front_doors() as urls:
        for url in urls:
            answer = await raw_request(
                url,
                post_head(body, b"X-Hub-Signature-256: " + sign(APP_SECRET, body).encode()),
                body,
            )
            assert status_of(answer) == 400, answer[:300]
            assert b"invalid_json" in answer


async def test_a_deeply_nested_relay_is_refused_with_400() -> None:
    body = b'{"owner":"","messages":' + nested_json(100_000) + b"}"
    async with serve_channel() as rasa:
        answer = await rasa.http.post(
            f"{rasa.url}/webhooks/whatsapp/relay",
            data=body,
            headers={RELAY_SIGNATURE_HEADER: relay_signature(APP_SECRET, body)},
        )
        assert answer.status == 400
        assert await answer.json() == {"error": "invalid_relay"}


async def test_rasa_runs_route_refuses_a_body_over_the_limit_without_reading_it() -> None:
    declared = limits.REQUEST_BODY_MAX_BYTES + 1
    head = post_head(b"").replace(b"Content-Length: 0", f"Content-Length: {declared}".encode())
    async with serve_channel() as rasa:
        # Only 1 kB of the declared body is sent: the answer must not wait for the rest.
        answer = await raw_request(rasa.url, head, b"{" * 1024, wait=5.0)
        assert status_of(answer) == 413, answer


@pytest.mark.parametrize(
    "declared", [limits.WEBHOOK_BODY_MAX_BYTES + 1, limits.REQUEST_BODY_MAX_BYTES + 1]
)
async def test_the_ingress_refuses_a_body_over_the_limit_on_its_declared_length(
    declared: int,
) -> None:
    """aiohttp reads a body up to ``client_max_size`` before refusing it: a flood of 6 MiB
    bodies would have the ingress copy each one. The declared length is enough to refuse."""
    head = post_head(b"").replace(b"Content-Length: 0", f"Content-Length: {declared}".encode())
    async with serve_channel() as rasa, serve_ingress(rasa.url) as ingress:
        # Only 1 kB of the declared body is sent: the answer must not wait for the rest.
        answer = await raw_request(ingress.url, head, b"{" * 1024, wait=5.0)
        assert status_of(answer) == 413, answer
        assert answer.endswith(b'{"error": "body_too_large"}'), answer
        metrics = await (await ingress.http.get(f"{ingress.url}/webhooks/whatsapp/metrics")).text()
        assert 'whatsapp_webhook_rejected_total{reason="body_too_large"} 1' in metrics


@pytest.mark.parametrize(
    ("provider", "auth", "refusal"),
    [
        ("cloud", b"X-Request: unsigned", b'{"error": "signature_missing"}'),
        ("serpro", b"X-Request: no token", b'{"error": "token_missing"}'),
        ("serpro", b"Authorization: Bearer wrong", b'{"error": "token_invalid"}'),
    ],
)
async def test_the_ingress_refuses_a_request_that_cannot_authenticate_before_reading_it(
    provider: str, auth: bytes, refusal: bytes
) -> None:
    """Meta's signature missing, or Serpro's token missing or wrong, whatever the body: a
    flood of such requests costs the ingress their heads, not their bodies."""
    head = post_head(b"", auth).replace(b"Content-Length: 0", b"Content-Length: 200000")
    async with serve_channel(provider=provider) as rasa:
        async with serve_ingress(rasa.url, provider=provider) as ingress:
            # Only 1 kB of the declared body is sent: the answer must not wait for the rest.
            answer = await raw_request(ingress.url, head, b"[" * 1024, wait=5.0)
            assert status_of(answer) in (401, 403), answer
            assert answer.endswith(refusal), answer
        assert rasa.agent.messages == []


async def test_a_webhook_of_3_mb_as_meta_documents_is_accepted() -> None:
    payload = text_webhook("wamid.BIG", "oi")
    payload["entry"][0]["padding"] = "x" * (3 * 1000 * 1000 - 1000)  # extra keys are tolerated
    async with both_front_doors() as urls:
        for i, url in enumerate(urls):
            payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = f"wamid.BIG{i}"
            body = json.dumps(payload).encode()
            assert len(body) > 2_990_000
            head = post_head(body, b"X-Hub-Signature-256: " + sign(APP_SECRET, body).encode())
            assert status_of(await raw_request(url, head, body)) == 200


async def test_a_large_bodys_signature_is_checked_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The HMAC of a body over INLINE_HMAC_MAX_BYTES (~0.4 ms for 200 KB) runs on a worker
    thread, so a flood of large forged bodies does not hold up other webhooks' acks; a
    usual webhook's is checked on the loop (a thread hop would cost more than its HMAC)."""
    from bot.addons.whatsapp.inbound import signature

    threads: list[tuple[int, bool]] = []
    real = signature.signature_matches

    def recording(secret: str, body: bytes, header: str) -> bool:
        threads.append((len(body), threading.get_ident() == loop_thread))
        return real(secret, body, header)

    monkeypatch.setattr(signature, "signature_matches", recording)
    loop_thread = threading.get_ident()
    small = json.dumps(text_webhook("wamid.SMALL", "oi")).encode()
    large = b"[" * 100_000 + b"]" * 100_000
    async with serve_channel() as rasa, serve_ingress(rasa.url) as ingress:
        for body in (small, large):
            forged = {"Content-Type": "application/json", "X-Hub-Signature-256": sign("x", body)}
            answer = await ingress.http.post(
                f"{ingress.url}/webhooks/whatsapp/webhook", data=body, headers=forged
            )
            assert answer.status == 403
        signed = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(APP_SECRET, small),
        }
        answer = await ingress.http.post(
            f"{ingress.url}/webhooks/whatsapp/webhook", data=small, headers=signed
        )
        assert answer.status == 200
    # Then rasa run checks the relay's signature (small, inline) on what was relayed.
    assert threads[:3] == [(len(small), True), (len(large), False), (len(small), True)]
    assert len(large) > signature.INLINE_HMAC_MAX_BYTES >= len(small)
