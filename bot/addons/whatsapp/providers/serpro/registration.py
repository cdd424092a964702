"""Registering the bot's webhook with Serpro, listing and deleting registrations.

Serpro calls the webhook registered for the phone number (``/client/{id}/v2/webhook``).
Registration is tried as JSON ``{"uri", "jwtToken"}`` first; when Serpro refuses that form
the plain-text form (the bare URL) is used, with the token moved into the URL's ``token``
query parameter so Serpro's calls still carry it. The list is read back to confirm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from bot.addons.whatsapp.errors import WhatsAppApiError, WhatsAppError
from bot.addons.whatsapp.providers.serpro.client import SerproProvider


class RegistrationError(WhatsAppError):
    """A registration step failed; ``exit_code`` tells which kind of failure."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


BAD_CREDENTIALS, UNREACHABLE, REFUSED = 3, 4, 5


@dataclass(frozen=True)
class Webhook:
    id: str
    uri: str
    has_token: bool


def with_token(url: str, token: str) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"token": token})))


def _failure(error: WhatsAppApiError, doing: str) -> RegistrationError:
    if error.http_status == 0:
        return RegistrationError(
            f"Serpro is unreachable while {doing}: {error.message}", UNREACHABLE
        )
    if error.http_status in (400, 401, 403) and "client credentials" in error.message:
        return RegistrationError(
            f"Serpro refused the credentials: {error.message}", BAD_CREDENTIALS
        )
    if error.http_status == 401:
        return RegistrationError("Serpro refused the credentials (401)", BAD_CREDENTIALS)
    return RegistrationError(
        f"Serpro refused {doing} (HTTP {error.http_status}): {error.message}", REFUSED
    )


async def list_webhooks(provider: SerproProvider) -> list[Webhook]:
    try:
        _, data, _ = await provider.request("GET", f"{provider.api}/webhook")
    except WhatsAppApiError as error:
        raise _failure(error, "listing webhooks") from error
    items: Any = data.get("data", data) if isinstance(data, dict) else data
    return [
        Webhook(str(item.get("id", "")), str(item.get("uri", "")), bool(item.get("jwtToken")))
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
    ]


async def register(provider: SerproProvider, url: str, token: str) -> tuple[str, Webhook]:
    """Register ``url`` with ``token``; returns the form used and the confirmed registration."""
    form = "json"
    try:
        await provider.request(
            "POST", f"{provider.api}/webhook", json={"uri": url, "jwtToken": token}
        )
        expected = url
    except WhatsAppApiError as error:
        if error.http_status in (0, 401) or error.http_status >= 500:
            raise _failure(error, "the registration") from error
        form = "text"
        expected = with_token(url, token)
        try:
            await provider.request(
                "POST",
                f"{provider.api}/webhook",
                data=expected.encode(),
                headers={"Content-Type": "text/plain"},
            )
        except WhatsAppApiError as second:
            raise _failure(second, "the registration (JSON and plain-text forms)") from second
    for webhook in await list_webhooks(provider):
        if webhook.uri == expected:
            return form, webhook
    raise RegistrationError("Serpro accepted the registration but does not list it", REFUSED)


async def delete_webhook(provider: SerproProvider, webhook_id: str) -> None:
    try:
        await provider.request("DELETE", f"{provider.api}/webhook/{webhook_id}")
    except WhatsAppApiError as error:
        raise _failure(error, f"deleting webhook {webhook_id}") from error
