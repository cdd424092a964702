"""A local fake of Chatwoot's Application API and webhooks: the simulator's agent pane and
the handoff tests' Chatwoot.

Speaks the calls ``bot/addons/whatsapp/handoff/client.py`` makes, answering with the
shapes recorded in ``tests/data/chatwoot/`` (see SOURCES.md there), and refuses what
Chatwoot refuses: no or a wrong ``api_access_token`` ▸ 401, an unknown account, inbox,
contact or conversation ▸ 404, a body missing what the API requires ▸ 422. Every message
created (the citizen's forwarded ones, private notes, an agent's replies) and every status
change is posted to ``webhook_url`` as Chatwoot posts it, signed when ``signing_secret`` is
set. The agent's side (what a person does in Chatwoot's UI: answer, attach, resolve) is
both a Python API (the tests) and a small JSON API under ``/api/agent/`` (the page:
:mod:`simulator.agent_pane`).

A message may also be created as ``multipart/form-data`` with files in ``attachments[]``
(as Chatwoot's API takes them): each becomes an attachment whose ``data_url`` this fake
serves (the agent's "download"); ``GET .../conversations/meta`` counts the open
conversations, as Chatwoot's conversation counts do.

The payloads are read from ``tests/data/chatwoot/``, where they are recorded with their
sources, so the tests and the simulator build on one copy; the simulator runs from the
checkout (``make run``) and is in no image.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.addons.whatsapp.handoff.webhook import chatwoot_signature
from bot.addons.whatsapp.inbound.signature import token_matches
from bot.addons.whatsapp.logs import mask_phone
from simulator.agent_pane import AgentPane

logger = logging.getLogger(__name__)
DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "chatwoot"
ERRORS = json.loads((DATA / "errors.json").read_text(encoding="utf-8"))
STATUSES = ("open", "resolved", "pending", "snoozed")
KEPT = 200
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _template(name: str) -> dict[str, Any]:
    return dict(json.loads((DATA / name).read_text(encoding="utf-8")))


def file_type(mime: str) -> str:
    """Chatwoot's ``file_type`` of an attachment with this MIME type."""
    kind = mime.split("/", 1)[0]
    return kind if kind in ("image", "audio", "video") else "file"


@dataclass
class FakeChatwoot:
    """One Chatwoot account with one API inbox, in memory."""

    token: str = ""  # none: every API call is refused
    account_id: int = 7
    inbox_id: int = 3
    webhook_url: str = ""
    signing_secret: str = ""
    down: bool = False
    url: str = ""
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    conversations: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The latest API calls and webhooks, bounded: the simulator runs all day.
    requests: deque[tuple[str, str, Any]] = field(default_factory=lambda: deque(maxlen=KEPT))
    deliveries: deque[tuple[bytes, dict[str, str]]] = field(
        default_factory=lambda: deque(maxlen=KEPT)
    )
    _ids: Any = field(default_factory=lambda: itertools.count(100))
    # Files uploaded with messages, by the path of their data_url: (bytes, content type);
    # the latest KEPT only.
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    # Conversations an agent took (assigned): they are no longer in the queue.
    assigned: set[int] = field(default_factory=set)
    meta_delay: float = 0.0  # seconds the conversation counts take to answer
    _outbox: asyncio.Queue[tuple[bytes, dict[str, str], dict[str, Any]]] | None = None
    _sender: asyncio.Future[None] | None = None

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start posting webhooks (one at a time, in order, as Chatwoot's job queue)."""
        self._outbox = asyncio.Queue()
        self._sender = asyncio.ensure_future(self._deliver_webhooks())

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)

    # --- what the tests read --------------------------------------------------------

    def messages(self, conversation_id: int) -> list[dict[str, Any]]:
        return list(self.conversations[conversation_id]["messages"])

    # --- the agent's side (what a person does in Chatwoot's UI) ---------------------

    async def agent_reply(
        self,
        conversation_id: int,
        content: str,
        attachments: list[str] | None = None,
        mime: str = "image/jpeg",
    ) -> dict[str, Any]:
        files = []
        for url in attachments or []:
            item = _template("attachment.json")
            item.update(
                id=next(self._ids),
                account_id=self.account_id,
                file_type=file_type(mime),
                data_url=url,
                thumb_url=url,
            )
            files.append(item)
        return self._add_message(conversation_id, content, "outgoing", False, files)

    async def resolve(self, conversation_id: int) -> None:
        self._set_status(conversation_id, "resolved")

    async def redeliver_last(self) -> None:
        assert self._outbox is not None and self.deliveries
        await self._outbox.put((*self.deliveries[-1], {}))

    async def settle(self) -> None:
        """Wait until every webhook was delivered."""
        assert self._outbox is not None
        await self._outbox.join()

    # --- the model ---------------------------------------------------------------

    def _contact_view(self, contact: dict[str, Any]) -> dict[str, Any]:
        inbox = {"id": self.inbox_id, "name": "WhatsApp (API)", "channel_type": "Channel::Api"}
        view = {k: v for k, v in contact.items() if k != "source_ids"}
        view["contact_inboxes"] = [
            {"source_id": source, "inbox": inbox} for source in contact["source_ids"]
        ]
        return view

    def _conversation_view(self, conversation: dict[str, Any]) -> dict[str, Any]:
        contact = self.contacts[conversation["contact_id"]]
        view = _template("conversation_status_changed.json")
        del view["event"]
        view.update(id=conversation["id"], inbox_id=self.inbox_id, status=conversation["status"])
        view["contact_inbox"].update(
            contact_id=contact["id"], inbox_id=self.inbox_id, source_id=conversation["source_id"]
        )
        sender = view["meta"]["sender"]
        sender.update(
            id=contact["id"],
            name=contact["name"],
            identifier=contact["identifier"],
            phone_number=contact["phone_number"],
            email=None,
        )
        return view

    def _add_message(
        self,
        conversation_id: int,
        content: str,
        message_type: str,
        private: bool,
        attachments: list[dict[str, Any]],
    ) -> dict[str, Any]:
        conversation = self.conversations[conversation_id]
        message = {
            "id": next(self._ids),
            "content": content,
            "message_type": message_type,
            "private": private,
            "attachments": attachments,
            "created_at": int(time.time()),
        }
        conversation["messages"].append(message)
        hook = _template("message_created.json")
        hook.update(id=message["id"], content=content, message_type=message_type, private=private)
        if message_type == "outgoing":  # an agent's (the token's user), not the contact's
            hook["sender"] = {"id": 1, "name": "John", "avatar": "", "type": "user"}
        else:
            contact = self.contacts[conversation["contact_id"]]
            hook["sender"].update(id=contact["id"], name=contact["name"])
        hook["inbox"]["id"] = self.inbox_id
        hook["conversation"] = self._conversation_view(conversation)
        hook["account"]["id"] = self.account_id
        if attachments:
            hook["attachments"] = copy.deepcopy(attachments)
        self._post_webhook(hook, message)
        return message

    def _set_status(self, conversation_id: int, status: str) -> None:
        conversation = self.conversations[conversation_id]
        conversation["status"] = status
        hook = self._conversation_view(conversation)
        hook["event"] = "conversation_status_changed"
        self._post_webhook(hook, conversation)

    def _post_webhook(self, payload: dict[str, Any], record: dict[str, Any]) -> None:
        if not self.webhook_url or self._outbox is None:
            return
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.signing_secret:
            stamp = str(int(time.time()))
            headers["X-Chatwoot-Timestamp"] = stamp
            headers["X-Chatwoot-Signature"] = chatwoot_signature(self.signing_secret, stamp, body)
            headers["X-Chatwoot-Delivery"] = str(uuid.uuid4())
        self.deliveries.append((body, headers))
        self._outbox.put_nowait((body, headers, record))

    async def _deliver_webhooks(self) -> None:
        """Post each webhook; the answer is kept on the message (the pane shows it)."""
        assert self._outbox is not None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            while True:
                body, headers, record = await self._outbox.get()
                try:
                    async with http.post(self.webhook_url, data=body, headers=headers) as answer:
                        await answer.read()
                        record["webhook_status"] = answer.status
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    record["webhook_status"] = 0
                    logger.warning("Chatwoot webhook not delivered: %r", exc)
                finally:
                    self._outbox.task_done()
                if record.get("webhook_status") not in (None, 0, 200):
                    logger.warning("Chatwoot webhook answered HTTP %s", record["webhook_status"])

    # --- the HTTP API --------------------------------------------------------------

    def guarded(self, handler: Handler) -> Handler:
        """``handler`` behind Chatwoot's checks: token, account, a JSON object body."""

        async def guard(request: web.Request) -> web.StreamResponse:
            body: Any
            try:
                if request.content_type == "multipart/form-data":
                    body = await self._form(request)
                else:
                    body = await request.json() if request.can_read_body else None
            except ValueError:
                return web.json_response({"message": "Invalid JSON", "attributes": []}, status=422)
            self.requests.append((request.method, request.path, body))
            if self.down:
                return web.Response(status=503, text="Service Unavailable")
            given = request.headers.get("api_access_token", "")
            if not (self.token and given and token_matches(self.token, given)):
                return web.json_response(ERRORS["401"], status=401)
            if request.match_info.get("account") != str(self.account_id):
                return web.json_response(ERRORS["404"], status=404)
            if body is not None and not isinstance(body, dict):
                return web.json_response({"message": "Invalid body", "attributes": []}, status=422)
            request["body"] = body or {}
            try:
                return await handler(request)
            except (KeyError, ValueError):  # an unknown or malformed id
                return web.json_response(ERRORS["404"], status=404)

        return guard

    async def _form(self, request: web.Request) -> dict[str, Any]:
        """A multipart body as a dict; files under ``attachments[]`` as a list of
        (filename, content type, bytes)."""
        form = await request.post()
        body: dict[str, Any] = {}
        for key, value in form.items():
            if isinstance(value, web.FileField):
                item = (value.filename, value.content_type, value.file.read())
                body.setdefault(key, []).append(item)
            else:
                body[key] = value
        if "private" in body:
            body["private"] = str(body["private"]).lower() == "true"
        return body

    def _stored(self, files: list[Any]) -> list[dict[str, Any]]:
        attachments = []
        for filename, content_type, data in files:
            item = _template("attachment.json")
            file_id = next(self._ids)
            path = f"/rails/active_storage/blobs/redirect/{file_id}/{filename}"
            item.update(
                id=file_id,
                account_id=self.account_id,
                file_type=file_type(content_type),
                extension=filename.rpartition(".")[2] if "." in filename else None,
                data_url=self.url + path,
                thumb_url=self.url + path if file_type(content_type) == "image" else "",
                file_size=len(data),
            )
            self.files[path] = (data, content_type)
            while len(self.files) > KEPT:
                del self.files[next(iter(self.files))]
            attachments.append(item)
        return attachments

    async def download(self, request: web.Request) -> web.Response:
        """An uploaded file, as the agent opens it from the conversation (no token)."""
        if request.path not in self.files:
            return web.json_response(ERRORS["404"], status=404)
        data, content_type = self.files[request.path]
        return web.Response(body=data, content_type=content_type)

    async def meta(self, request: web.Request) -> web.Response:
        """Conversation counts, as Chatwoot's ``conversations/meta`` answers them."""
        if self.meta_delay:
            await asyncio.sleep(self.meta_delay)
        inbox = request.query.get("inbox_id")
        mine = [
            c
            for c in self.conversations.values()
            if c["status"] == request.query.get("status", "open")
            and (inbox is None or inbox == str(self.inbox_id))
        ]
        unassigned = sum(1 for c in mine if c["id"] not in self.assigned)
        return web.json_response(
            {
                "meta": {
                    "mine_count": 0,
                    "assigned_count": len(mine) - unassigned,
                    "unassigned_count": unassigned,
                    "all_count": len(mine),
                }
            }
        )

    def _unprocessable(self, message: str, attribute: str) -> web.Response:
        return web.json_response({"message": message, "attributes": [attribute]}, status=422)

    async def search(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "")
        found = [
            self._contact_view(c)
            for c in self.contacts.values()
            if q and (q in str(c["identifier"]) or q in str(c["phone_number"]) or q in c["name"])
        ]
        return web.json_response(
            {"meta": {"count": len(found), "current_page": 1}, "payload": found}
        )

    async def create_contact(self, request: web.Request) -> web.Response:
        body = request["body"]
        if "inbox_id" not in body:
            return self._unprocessable("Inbox can't be blank", "inbox_id")
        if body["inbox_id"] != self.inbox_id:
            return web.json_response(ERRORS["404"], status=404)
        phone = body.get("phone_number")
        if phone and not (phone.startswith("+") and phone[1:].isdigit()):
            return self._unprocessable("Phone number should be in e164 format", "phone_number")
        if any(c["identifier"] == body.get("identifier") for c in self.contacts.values()):
            return self._unprocessable("Identifier has already been taken", "identifier")
        contact = {
            "id": next(self._ids),
            "name": body.get("name") or "",
            "phone_number": phone,
            "identifier": body.get("identifier"),
            "email": body.get("email"),
            "source_ids": [str(uuid.uuid4())],
        }
        self.contacts[contact["id"]] = contact
        logger.info("Chatwoot contact %s created", mask_phone(str(phone or "")))
        answer = _template("contact_create_response.json")
        answer["payload"]["contact"] = self._contact_view(contact)
        answer["payload"]["contact_inbox"]["source_id"] = contact["source_ids"][0]
        answer["payload"]["contact_inbox"]["inbox"]["id"] = self.inbox_id
        return web.json_response(answer)

    async def create_contact_inbox(self, request: web.Request) -> web.Response:
        contact = self.contacts[int(request.match_info["id"])]
        if request["body"].get("inbox_id") != self.inbox_id:
            return web.json_response(ERRORS["404"], status=404)
        source = str(uuid.uuid4())
        contact["source_ids"].append(source)
        return web.json_response({"source_id": source, "inbox": {"id": self.inbox_id}})

    async def contact_conversations(self, request: web.Request) -> web.Response:
        contact_id = int(request.match_info["id"])
        self.contacts[contact_id]  # 404 for an unknown contact
        mine = [c for c in self.conversations.values() if c["contact_id"] == contact_id]
        return web.json_response({"payload": [self._conversation_view(c) for c in mine]})

    async def create_conversation(self, request: web.Request) -> web.Response:
        body = request["body"]
        if not body.get("source_id"):
            return self._unprocessable("Source can't be blank", "source_id")
        if body.get("inbox_id") != self.inbox_id:
            return web.json_response(ERRORS["404"], status=404)
        owner = [c for c in self.contacts.values() if body["source_id"] in c["source_ids"]]
        if not owner:
            return web.json_response(ERRORS["404"], status=404)
        conversation = {
            "id": next(self._ids),
            "contact_id": owner[0]["id"],
            "source_id": body["source_id"],
            "status": body.get("status") or "open",
            "messages": [],
        }
        self.conversations[conversation["id"]] = conversation
        return web.json_response(self._conversation_view(conversation))

    async def create_message(self, request: web.Request) -> web.Response:
        conversation_id = int(request.match_info["id"])
        self.conversations[conversation_id]
        body = request["body"]
        files = body.get("attachments[]") or []
        if not files and (not isinstance(body.get("content"), str) or not body["content"]):
            return web.json_response(ERRORS["422"], status=422)
        kind = body.get("message_type", "outgoing")
        if kind not in ("incoming", "outgoing"):
            return self._unprocessable("Message type is not included in the list", "message_type")
        message = self._add_message(
            conversation_id,
            str(body.get("content") or ""),
            kind,
            bool(body.get("private")),
            self._stored(files),
        )
        return web.json_response({**message, "conversation_id": conversation_id})

    async def toggle_status(self, request: web.Request) -> web.Response:
        conversation_id = int(request.match_info["id"])
        self.conversations[conversation_id]
        status = request["body"].get("status")
        if status not in STATUSES:
            return self._unprocessable("Status is not included in the list", "status")
        self._set_status(conversation_id, status)
        return web.json_response(
            {
                "meta": {},
                "payload": {
                    "success": True,
                    "current_status": status,
                    "conversation_id": conversation_id,
                },
            }
        )

    def add_routes(self, app: web.Application) -> None:
        """Chatwoot's API paths (behind its checks) and the pane's, on ``app``."""
        base = "/api/v1/accounts/{account}"
        api = [
            ("GET", "/contacts/search", self.search),
            ("POST", "/contacts", self.create_contact),
            ("POST", "/contacts/{id}/contact_inboxes", self.create_contact_inbox),
            ("GET", "/contacts/{id}/conversations", self.contact_conversations),
            ("POST", "/conversations", self.create_conversation),
            ("GET", "/conversations/meta", self.meta),
            ("POST", "/conversations/{id}/messages", self.create_message),
            ("POST", "/conversations/{id}/toggle_status", self.toggle_status),
        ]
        for method, path, handler in api:
            app.router.add_route(method, base + path, self.guarded(handler))
        # A file's link opens without the token, as Active Storage's redirect does.
        app.router.add_get("/rails/active_storage/blobs/redirect/{id}/{name}", self.download)
        AgentPane(self).add_routes(app)
