"""A notification request, validated (pure): what ``POST /notify`` may ask for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.addons.whatsapp.inbound.parse import PayloadError
from bot.addons.whatsapp.outbound.messages import Custom

BSUID_PREFIX_LENGTH = 3  # "BR." — a BSUID starts with a country code and a dot


@dataclass(frozen=True)
class TemplateRequest:
    name: str
    language: str
    params: tuple[str, ...] = ()
    category: str = "utility"


@dataclass(frozen=True)
class NotifyRequest:
    """A validated request: exactly one of ``template`` and ``response``."""

    recipient: str
    template: TemplateRequest | None = None
    response: str = ""
    slots: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_bsuid(self) -> bool:
        return len(self.recipient) > BSUID_PREFIX_LENGTH and self.recipient[2] == "."


def parse_request(payload: Any) -> NotifyRequest:
    """The request in ``payload``; raises :class:`PayloadError` saying what is wrong."""
    if not isinstance(payload, Mapping):
        raise PayloadError("the body must be a JSON object")
    recipient = payload.get("recipient")
    if not isinstance(recipient, str) or not recipient.strip():
        raise PayloadError("'recipient' (a phone number or a business-scoped user id) is required")
    recipient = recipient.strip().lstrip("+")
    template, response = payload.get("template"), payload.get("response")
    if (template is None) == (response is None):
        raise PayloadError("give exactly one of 'template' and 'response'")
    if response is not None:
        if not isinstance(response, str) or not response.startswith("utter_"):
            raise PayloadError("'response' must name a domain response (utter_…)")
        slots = payload.get("slots") or {}
        if not isinstance(slots, Mapping):
            raise PayloadError("'slots' must be an object")
        return NotifyRequest(recipient, response=response, slots=dict(slots))
    if not isinstance(template, Mapping):
        raise PayloadError("'template' must be an object")
    name, language = template.get("name"), template.get("language")
    if not isinstance(name, str) or not name:
        raise PayloadError("'template.name' is required")
    if not isinstance(language, str) or not language:
        raise PayloadError("'template.language' is required (e.g. pt_BR)")
    params = template.get("params") or []
    if not isinstance(params, list) or not all(isinstance(p, (str, int, float)) for p in params):
        raise PayloadError("'template.params' must be a list of texts")
    category = str(template.get("category") or "utility").lower()
    return NotifyRequest(
        recipient, TemplateRequest(name, language, tuple(str(p) for p in params), category)
    )


def template_message(name: str, language: str, params: tuple[str, ...]) -> Custom:
    """The Cloud API body of an approved template with body parameters."""
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if params:
        template["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}
        ]
    return Custom({"type": "template", "template": template})


def last_user_message_at(events: Any) -> float | None:
    """The timestamp of the citizen's last message in a Rasa tracker's events."""
    for event in reversed(list(events or ())):
        if getattr(event, "type_name", "") == "user":
            return float(event.timestamp)
    return None


def response_template(response: Mapping[str, Any]) -> str | None:
    """The template's name when a domain response is a WhatsApp template
    (``custom: {whatsapp: {type: template, template: {name: …}}}``), else None."""
    custom = response.get("custom")
    body = custom.get("whatsapp") if isinstance(custom, Mapping) else None
    if not isinstance(body, Mapping) or body.get("type") != "template":
        return None
    template = body.get("template")
    name = template.get("name") if isinstance(template, Mapping) else None
    return str(name) if name else ""
