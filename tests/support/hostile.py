"""Hostile webhook requests, built once: the chaos tests send them one at a time and the
benchmark's flood (``python -m bench.flood``) sends them at the ingress's maximum rate.

Standard library only: ``make test-ingress`` imports this on the ingress's own interpreter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import zlib

WEBHOOK_PATH = "/webhooks/whatsapp/webhook"


def gzip_bomb(expanded_mib: int) -> bytes:
    """``expanded_mib`` MiB of zeros, gzipped (about 1/1000 of that), built in chunks."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    chunk = bytes(1024 * 1024)
    parts = [packer.compress(chunk) for _ in range(expanded_mib)]
    return b"".join(parts) + packer.flush()


def nested_json(depth: int) -> bytes:
    """``depth`` nested JSON arrays: valid JSON that ``json.loads`` cannot parse without
    recursing ``depth`` times."""
    return b"[" * depth + b"]" * depth


def post_head(body: bytes, *extra: bytes, path: str = WEBHOOK_PATH) -> bytes:
    """The head of an HTTP/1.1 POST of ``body`` (no trailing blank line), ``extra`` header
    lines included as they are (a header aiohttp's client would refuse to send)."""
    lines = [
        f"POST {path} HTTP/1.1".encode(),
        b"Host: localhost",
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(body)).encode(),
        *extra,
    ]
    return b"\r\n".join(lines)


def raw_post(body: bytes, *extra: bytes) -> bytes:
    """A whole request: head, blank line, body."""
    return post_head(body, *extra) + b"\r\n\r\n" + body


def forged_signature(body: bytes) -> bytes:
    """An ``X-Hub-Signature-256`` header well formed but signed with a key that is not the
    app secret (what anyone without the secret can send)."""
    digest = hmac.new(b"not-the-app-secret", body, hashlib.sha256).hexdigest()
    return b"X-Hub-Signature-256: sha256=" + digest.encode()


def text_payload(sender: str, wamid: str, text: str) -> bytes:
    """A WhatsApp Cloud API text-message webhook body, as Meta sends it."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "100000000000002"},
        "contacts": [{"profile": {"name": "Hostile"}, "wa_id": sender}],
        "messages": [
            {
                "from": sender,
                "id": wamid,
                "timestamp": "1700000000",
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(payload).encode()


def hostile_requests(oversize_bytes: int) -> dict[str, bytes]:
    """One whole raw request of each hostile kind, by name: none is signed with the app
    secret (an attacker does not have it), each must get its 4xx.

    Args:
        oversize_bytes: the body size of the oversized request (over the webhook's limit).
    """
    plain = text_payload("5561900000099", "wamid.HOSTILE", "oi")
    compressed = gzip_bomb(16)
    nested = nested_json(100_000)
    oversized = b"{" + b" " * (oversize_bytes - 2) + b"}"
    return {
        "compressed": raw_post(compressed, b"Content-Encoding: gzip", forged_signature(compressed)),
        "unsigned": raw_post(plain),
        "bad_signature": raw_post(plain, forged_signature(plain)),
        "oversized": raw_post(oversized, forged_signature(oversized)),
        "nested": raw_post(nested, forged_signature(nested)),
    }
