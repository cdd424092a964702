"""Webhook authentication: Meta's HMAC signature and shared-token checks, constant-time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

SIGNATURE_HEADER = "X-Hub-Signature-256"
SIGNATURE_PREFIX = "sha256="
RELAY_SIGNATURE_HEADER = "X-Relay-Signature"
# Relay signatures are HMACs of this prefix + the body, so neither kind of signature can
# pass for the other although both use the provider's secret.
_RELAY_DOMAIN = b"whatsapp-relay\n"
# A body up to this size is authenticated on the event loop; a larger one on a worker thread.
INLINE_HMAC_MAX_BYTES = 64 * 1024


def sign(app_secret: str, raw_body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``raw_body``."""
    digest = hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_matches(app_secret: str, raw_body: bytes, header_value: str) -> bool:
    """Check Meta's signature over the raw request bytes, in constant time.

    The body is never re-serialised: the HMAC is over exactly the bytes received.
    """
    given = _as_bytes(header_value.strip())
    if given is None:
        return False
    return hmac.compare_digest(sign(app_secret, raw_body).encode("ascii"), given)


async def body_signature_matches(app_secret: str, raw_body: bytes, header_value: str) -> bool:
    """:func:`signature_matches`, off the event loop for a large body.

    The HMAC of a body over ``INLINE_HMAC_MAX_BYTES`` (~0.4 ms for 200 KB) runs on a worker
    thread, as hashlib releases the GIL: a flood of large forged bodies does not hold up the
    acks of the webhooks around it. Meta's usual webhooks are a few KB, checked inline (a
    thread hop would cost more than their HMAC).
    """
    if len(raw_body) <= INLINE_HMAC_MAX_BYTES:
        return signature_matches(app_secret, raw_body, header_value)
    return await asyncio.to_thread(signature_matches, app_secret, raw_body, header_value)


def relay_signature(secret: str, raw_body: bytes) -> str:
    """The ``X-Relay-Signature`` the ingress puts on what it relays to ``rasa run``."""
    return sign(secret, _RELAY_DOMAIN + raw_body)


def relay_signature_matches(secret: str, raw_body: bytes, header_value: str | None) -> bool:
    if not secret or not header_value:
        return False
    return signature_matches(secret, _RELAY_DOMAIN + raw_body, header_value)


def token_matches(expected: str, given: str | None) -> bool:
    """Compare a shared secret (verify token, Serpro webhook token) in constant time."""
    if not expected or given is None:
        return False
    given_bytes = _as_bytes(given)
    if given_bytes is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given_bytes)


def _as_bytes(value: str) -> bytes | None:
    """The bytes a header (or query value) came as; None when it cannot be a secret.

    Sanic and aiohttp decode a header byte that is not UTF-8 as a lone surrogate
    (``surrogateescape``), which plain ``encode("utf-8")`` refuses with an exception: a
    500 before authentication. Encoded back the same way it is just a wrong value.
    """
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no decoder produced
        return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if that is what it is."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
