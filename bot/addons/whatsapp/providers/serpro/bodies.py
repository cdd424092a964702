"""``messages.py`` objects ▸ Serpro requests (endpoint + JSON). Pure functions.

Field names come from Serpro's documentation where it exists (text, template, media
upload) and from the code of its production users otherwise (buttons, lists); see
``RESEARCH`` notes in the README's "Deploy through Serpro". Messages Serpro has no
documented endpoint for are sent as their closest text form and flagged ``degraded``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.outbound.messages import (
    CtaUrl,
    Custom,
    ListMessage,
    Media,
    OutMessage,
    ReplyButtons,
    Text,
    sections_as_dicts,
)


@dataclass(frozen=True)
class SerproRequest:
    """Where to POST (relative to ``/client/{id}/v2/requisicao/``) and what."""

    endpoint: str
    body: dict[str, Any]
    degraded: str | None = None  # why the message could not be sent as designed


def destinatario(wa_id: str, plus: bool = False) -> str:
    """The recipient as Serpro takes it: digits as received (``+`` optional, a setting)."""
    digits = wa_id.lstrip("+")
    return f"+{digits}" if plus else digits


def _text(to: str, body: str, preview: bool = False, degraded: str | None = None) -> SerproRequest:
    return SerproRequest(
        "mensagem/texto",
        {"destinatario": to, "body": body[: limits.TEXT_BODY_MAX], "preview_url": preview},
        degraded,
    )


def _template(to: str, template: Mapping[str, Any], waba_id: str) -> SerproRequest:
    parametros = []
    header: dict[str, Any] | None = None
    for component in template.get("components") or []:
        if not isinstance(component, Mapping):
            continue
        params = [p for p in component.get("parameters") or [] if isinstance(p, Mapping)]
        if component.get("type") == "body":
            for param in params:
                kind = str(param.get("type", "text"))
                value = param.get("text") if kind == "text" else param.get(kind)
                if isinstance(value, Mapping):
                    value = value.get("fallback_value") or value.get("link") or value.get("id")
                parametros.append({"tipo": kind, "valor": str(value if value is not None else "")})
        elif component.get("type") == "header" and params:
            media = next(
                (
                    p.get(p.get("type", ""))
                    for p in params
                    if isinstance(p.get(p.get("type", "")), Mapping)
                ),
                None,
            )
            if isinstance(media, Mapping):
                header = (
                    {"idMedia": media["id"]}
                    if media.get("id")
                    else {"linkMedia": media.get("link")}
                )
                if media.get("filename"):
                    header["filename"] = media["filename"]
    body: dict[str, Any] = {
        "nomeTemplate": template.get("name"),
        "wabaId": waba_id,
        "destinatarios": [to],
        "body": {"parametros": parametros},
    }
    if header:
        body["header"] = header
    return SerproRequest("mensagem/template", body)


def _media(to: str, media_type: str, obj: Mapping[str, Any]) -> SerproRequest:
    body: dict[str, Any] = {"destinatario": to, "tipoMedia": media_type}
    if obj.get("id"):
        body["idMedia"] = obj["id"]
    else:
        body["linkMedia"] = obj.get("link")
    if obj.get("caption"):
        body["caption"] = obj["caption"]
    if obj.get("filename"):
        body["filename"] = obj["filename"]
    return SerproRequest("mensagem/media", body)


def _custom(to: str, body: Mapping[str, Any], waba_id: str) -> SerproRequest | None:
    kind = str(body.get("type", ""))
    obj = body.get(kind)
    if kind == "template" and isinstance(obj, Mapping):
        return _template(to, obj, waba_id)
    if kind == "text" and isinstance(obj, Mapping):
        return _text(to, str(obj.get("body", "")), bool(obj.get("preview_url")))
    if kind in ("image", "video", "audio", "document", "sticker") and isinstance(obj, Mapping):
        return _media(to, kind, obj)
    if kind == "interactive" and isinstance(obj, Mapping):
        text = str((obj.get("body") or {}).get("text", ""))
        itype = obj.get("type")
        if itype == "location_request_message":
            return SerproRequest(
                "mensagem/interativa-localizacao", {"destinatario": to, "textoBody": text}
            )
        if itype == "cta_url":
            params = (obj.get("action") or {}).get("parameters") or {}
            return _text(
                to,
                f"{text}\n\n{params.get('display_text', '')}: {params.get('url', '')}",
                True,
                "cta_url sent as text",
            )
        return _text(to, text, False, f"interactive {itype} sent as text") if text else None
    if kind == "location" and isinstance(obj, Mapping):
        parts = [str(obj.get(k)) for k in ("name", "address") if obj.get(k)]
        link = f"https://maps.google.com/?q={obj.get('latitude')},{obj.get('longitude')}"
        return _text(to, "\n".join([*parts, link]), True, "location sent as text")
    if kind == "contacts" and isinstance(obj, list):
        lines = []
        for contact in obj:
            name = (contact.get("name") or {}).get("formatted_name", "")
            phones = ", ".join(p.get("phone", "") for p in contact.get("phones") or [])
            lines.append(f"{name}: {phones}".strip(": "))
        return _text(to, "\n".join(lines), False, "contacts sent as text")
    return None


def serpro_request(
    wa_id: str, message: OutMessage, waba_id: str, recipient_plus: bool = False
) -> SerproRequest | None:
    """The Serpro request for ``message``; None when Serpro cannot carry it at all."""
    to = destinatario(wa_id, recipient_plus)
    if isinstance(message, Text):
        return _text(to, message.body, message.preview_url)
    if isinstance(message, ReplyButtons):
        return SerproRequest(
            "mensagem/interativa-botoes",
            {
                "destinatario": to,
                "textoBody": message.body,
                "buttons": [{"id": b.id, "titulo": b.title} for b in message.buttons],
            },
        )
    if isinstance(message, ListMessage):
        secoes = sections_as_dicts(message.sections, title="titulo", description="descricao")
        return SerproRequest(
            "mensagem/interativa-lista",
            {
                "destinatario": to,
                "textoBody": message.body,
                "button": message.button_label,
                "secoes": secoes,
            },
        )
    if isinstance(message, Media):
        obj = {
            "id": message.media_id,
            "link": message.link,
            "caption": message.caption,
            "filename": message.filename,
        }
        return _media(to, message.media_type, obj)
    if isinstance(message, CtaUrl):
        return _text(
            to,
            f"{message.body}\n\n{message.display_text}: {message.url}",
            True,
            "cta_url sent as text",
        )
    if isinstance(message, Custom):
        return _custom(to, message.body, waba_id)
    return None
