"""Chatwoot's Application API, the calls a handoff needs, on one pooled aiohttp session.

Every call sends the ``api_access_token`` header (an agent's or an agent bot's access
token) and has a timeout. Sources (recorded in ``tests/data/chatwoot/SOURCES.md``):
Chatwoot's OpenAPI files ``swagger/paths/application/contacts/*.yml``,
``swagger/definitions/request/contact/create_payload.yml``,
``swagger/definitions/request/conversation/create_payload.yml`` and
``create_message_payload.yml``.

* ``GET  /api/v1/accounts/{a}/contacts/search?q=`` ▸ ``{"payload": [contact]}``
* ``POST /api/v1/accounts/{a}/contacts`` ``{inbox_id, name, phone_number, identifier}``
  ▸ ``{"payload": {"contact": {...}, "contact_inbox": {"source_id"}}}``
* ``POST /api/v1/accounts/{a}/contacts/{id}/contact_inboxes`` ``{inbox_id}`` ▸ ``{source_id}``
* ``GET  /api/v1/accounts/{a}/contacts/{id}/conversations`` ▸ ``{"payload": [conversation]}``
* ``POST /api/v1/accounts/{a}/conversations`` ``{source_id, inbox_id, contact_id, status}``
  ▸ conversation (``id``)
* ``POST /api/v1/accounts/{a}/conversations/{id}/messages``
  ``{content, message_type, private}`` ▸ message (``id``)
* ``POST /api/v1/accounts/{a}/conversations/{id}/messages`` as ``multipart/form-data``
  ``content, message_type, private, attachments[]`` (a file) ▸ message with ``attachments``
* ``GET  /api/v1/accounts/{a}/conversations/meta?status=open&inbox_id=&assignee_type=
  unassigned`` ▸ ``{"meta": {"unassigned_count", "mine_count", "assigned_count",
  "all_count"}}`` (``swagger/paths/application/conversation/meta.yml``)
* ``POST /api/v1/accounts/{a}/conversations/{id}/toggle_status`` ``{status}``
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

OPEN_STATUSES = ("open", "pending")
# The queue is a nicety in the transfer message: never worth holding the handoff up for.
QUEUE_TIMEOUT_SECONDS = 2.0


class ChatwootError(Exception):
    """Chatwoot could not be used: network error, timeout, or an HTTP error (``status``)."""

    def __init__(self, reason: str, status: int = 0) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class ChatwootSettings:
    url: str
    account_id: str
    inbox_id: int
    token: str = field(repr=False)
    timeout: float = 5.0


@dataclass(frozen=True)
class Contact:
    id: int
    source_id: str  # the contact's id in our API inbox (its contact inbox)


class ChatwootClient:
    """The calls a handoff needs; one session per process, created on first use."""

    def __init__(self, settings: ChatwootSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    @property
    def _account(self) -> str:
        return f"{self.settings.url}/api/v1/accounts/{self.settings.account_id}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        form: aiohttp.FormData | None = None,
        timeout: float | None = None,
        **params: str,
    ) -> Any:
        timeout = self.settings.timeout if timeout is None else timeout
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"api_access_token": self.settings.token},
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            )
        try:
            async with self._session.request(
                method,
                self._account + path,
                json=body if form is None else None,
                data=form,
                params=params or None,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise ChatwootError(
                        f"{method} {path}: HTTP {response.status} {text[:200]}", response.status
                    )
        except asyncio.TimeoutError as exc:
            raise ChatwootError(f"{method} {path}: timeout after {timeout}s") from exc
        except aiohttp.ClientError as exc:
            raise ChatwootError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise ChatwootError(f"{method} {path}: the answer is not JSON") from exc

    async def contact(self, wa_id: str, name: str | None) -> Contact:
        """The citizen's contact in our inbox, found by identifier (the ``wa_id``) or created."""
        found = await self._call("GET", "/contacts/search", q=wa_id)
        for item in found.get("payload") or []:
            if str(item.get("identifier") or "") != wa_id:
                continue
            for inbox in item.get("contact_inboxes") or []:
                if int((inbox.get("inbox") or {}).get("id") or 0) == self.settings.inbox_id:
                    return Contact(int(item["id"]), str(inbox["source_id"]))
            made = await self._call(
                "POST",
                f"/contacts/{item['id']}/contact_inboxes",
                {"inbox_id": self.settings.inbox_id},
            )
            return Contact(int(item["id"]), str(made["source_id"]))
        created = await self._call(
            "POST",
            "/contacts",
            {
                "inbox_id": self.settings.inbox_id,
                "name": name or f"+{wa_id}",
                "phone_number": f"+{wa_id}",
                "identifier": wa_id,
            },
        )
        payload = created["payload"]
        return Contact(int(payload["contact"]["id"]), str(payload["contact_inbox"]["source_id"]))

    async def open_conversation(self, contact: Contact) -> tuple[int, bool]:
        """The contact's open conversation in our inbox, or a new one; and whether it is new."""
        listed = await self._call("GET", f"/contacts/{contact.id}/conversations")
        for item in listed.get("payload") or []:
            if (
                int(item.get("inbox_id") or 0) == self.settings.inbox_id
                and item.get("status") in OPEN_STATUSES
            ):
                return int(item["id"]), False
        created = await self._call(
            "POST",
            "/conversations",
            {
                "source_id": contact.source_id,
                "inbox_id": self.settings.inbox_id,
                "contact_id": contact.id,
                "status": "open",
            },
        )
        return int(created["id"]), True

    async def post(self, conversation_id: int, content: str, *, private: bool = False) -> int:
        """Add a message from the citizen (``incoming``) or a private note; its id."""
        body = {"content": content, "message_type": "incoming", "private": private}
        if private:
            body["message_type"] = "outgoing"  # notes are the agents' side of the thread
        made = await self._call("POST", f"/conversations/{conversation_id}/messages", body)
        return int(made["id"])

    async def post_file(
        self, conversation_id: int, content: str, filename: str, mime_type: str, data: bytes
    ) -> int:
        """Add a message from the citizen with ``data`` as its attachment; its id."""
        form = aiohttp.FormData()
        form.add_field("content", content)
        form.add_field("message_type", "incoming")
        form.add_field("private", "false")
        form.add_field("attachments[]", data, filename=filename, content_type=mime_type)
        made = await self._call("POST", f"/conversations/{conversation_id}/messages", form=form)
        return int(made["id"])

    async def queue_position(self) -> int | None:
        """How many open conversations of our inbox wait unassigned (the citizen's own
        included), or None when Chatwoot does not say within a short timeout."""
        try:
            counts = await self._call(
                "GET",
                "/conversations/meta",
                timeout=min(QUEUE_TIMEOUT_SECONDS, self.settings.timeout),
                status="open",
                inbox_id=str(self.settings.inbox_id),
                assignee_type="unassigned",
            )
            count = (counts.get("meta") or {}).get("unassigned_count")
        except (ChatwootError, AttributeError):
            return None
        return count if isinstance(count, int) and count > 0 else None

    async def resolve(self, conversation_id: int) -> None:
        await self._call(
            "POST", f"/conversations/{conversation_id}/toggle_status", {"status": "resolved"}
        )
