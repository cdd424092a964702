"""Hostile webhook requests over real HTTP, against both front doors: the channel as
``rasa run`` mounts it (Sanic) and the ingress (aiohttp). Each is refused with a 4xx and
a reason, never a 5xx, and costs the server no more than its size limit."""

from __future__ import annotations

import gzip
import json

from bot.addons.whatsapp.inbound.signature import sign
from tests.channel_harness import APP_SECRET, serve_channel
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
