"""The agent pane's JSON API: what the simulator's agent page (``static/agent.js``) reads
and does on the fake Chatwoot (:mod:`simulator.chatwoot`) — list the conversations, answer
as the agent (text or a file), resolve. No token: a local tool, never deployed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from simulator.chatwoot import FakeChatwoot


class AgentPane:
    """What a person does in Chatwoot's UI, as JSON routes over ``chatwoot``."""

    def __init__(self, chatwoot: FakeChatwoot) -> None:
        self.chatwoot = chatwoot

    async def conversations(self, request: web.Request) -> web.Response:
        """Every conversation, newest first, with its contact and messages."""
        listed = []
        for conversation in sorted(self.chatwoot.conversations.values(), key=lambda c: -c["id"]):
            contact = self.chatwoot.contacts[conversation["contact_id"]]
            listed.append(
                {
                    "id": conversation["id"],
                    "status": conversation["status"],
                    "webhook_status": conversation.get("webhook_status"),
                    "contact": {k: contact[k] for k in ("name", "identifier", "phone_number")},
                    "messages": conversation["messages"],
                }
            )
        return web.json_response(
            {
                "enabled": bool(self.chatwoot.token and self.chatwoot.webhook_url),
                "conversations": listed,
            }
        )

    async def _target(self, request: web.Request) -> tuple[dict[str, Any], int] | web.Response:
        """The request's body and its conversation's id, or the answer refusing it (400 for a
        body that is not a JSON object with a numeric ``conversation_id``, 404 for an unknown
        conversation)."""
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            conversation_id = int(body.get("conversation_id", 0))
        except ValueError as exc:  # json.JSONDecodeError included
            return web.json_response({"error": str(exc)}, status=400)
        if conversation_id not in self.chatwoot.conversations:
            return web.json_response({"error": f"no conversation {conversation_id}"}, status=404)
        return body, conversation_id

    async def reply(self, request: web.Request) -> web.Response:
        """Answer as the agent: ``{conversation_id, content, attachment_url?, mime?}``."""
        target = await self._target(request)
        if isinstance(target, web.Response):
            return target
        body, conversation_id = target
        content = str(body.get("content") or "")
        link = str(body.get("attachment_url") or "")
        if not content.strip() and not link:
            return web.json_response({"error": "write a reply or attach a file"}, status=400)
        if link.startswith("/"):  # a file uploaded to the simulator: WhatsApp needs a URL
            link = self.chatwoot.url + link
        message = await self.chatwoot.agent_reply(
            conversation_id,
            content,
            [link] if link else None,
            str(body.get("mime") or "image/png"),
        )
        return web.json_response(message)

    async def resolve(self, request: web.Request) -> web.Response:
        """Resolve as the agent: ``{conversation_id}``."""
        target = await self._target(request)
        if isinstance(target, web.Response):
            return target
        await self.chatwoot.resolve(target[1])
        return web.json_response({"id": target[1], "status": "resolved"})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/agent/conversations", self.conversations)
        app.router.add_post("/api/agent/reply", self.reply)
        app.router.add_post("/api/agent/resolve", self.resolve)
