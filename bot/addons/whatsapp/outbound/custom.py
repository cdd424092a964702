"""``custom: {whatsapp: {...}}`` passed through after a shape check, and ``elements``.

Pure functions. A malformed ``custom`` is not sent: what is wrong is returned in the
designer's words (``Conversion.problems``) and the rest of the turn still goes out.
``elements`` (Rasa's generic template) become an image with a caption, or a text, and
their buttons (``choices.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.outbound.choices import add_choices
from bot.addons.whatsapp.outbound.media import media
from bot.addons.whatsapp.outbound.messages import Custom
from bot.addons.whatsapp.outbound.text import texts

if TYPE_CHECKING:  # convert.py imports this module; the types only annotate
    from bot.addons.whatsapp.outbound.convert import Conversion, ConversionOptions

CUSTOM_TYPES = {
    "text",
    "template",
    "location",
    "contacts",
    "reaction",
    "sticker",
    "image",
    "video",
    "audio",
    "document",
    "interactive",
}
INTERACTIVE_TYPES = {"cta_url", "flow", "location_request_message", "button", "list"}


def check_custom(body: Any) -> list[str]:
    """What is wrong with a ``custom.whatsapp`` message body, in a designer's words."""
    if not isinstance(body, Mapping):
        return ["custom.whatsapp must be a mapping with 'type' and the object of that type"]
    kind = body.get("type")
    if kind not in CUSTOM_TYPES:
        return [f"custom.whatsapp.type must be one of {sorted(CUSTOM_TYPES)}, not {kind!r}"]
    given = body.get(kind)
    if not isinstance(given, Mapping) and not (kind == "contacts" and isinstance(given, list)):
        return [f"custom.whatsapp needs a '{kind}' object for type '{kind}'"]
    obj: Any = given
    problems: list[str] = []
    if kind == "template":
        if not obj.get("name"):
            problems.append("template needs a 'name' (the approved template's name)")
        language = obj.get("language")
        if not isinstance(language, Mapping) or not language.get("code"):
            problems.append(
                "template needs 'language: {code: pt_BR}' (or another approved language)"
            )
    elif kind == "location":
        for key in ("latitude", "longitude"):
            if not isinstance(obj.get(key), (int, float, str)) or obj.get(key) in ("", None):
                problems.append(f"location needs '{key}'")
    elif kind == "contacts":
        if not isinstance(obj, list) or not obj:
            problems.append("contacts must be a non-empty list")
        else:
            for index, contact in enumerate(obj):
                name = contact.get("name") if isinstance(contact, Mapping) else None
                if not isinstance(name, Mapping) or not name.get("formatted_name"):
                    problems.append(f"contacts[{index}] needs name.formatted_name")
    elif kind == "reaction":
        if not obj.get("message_id") or not isinstance(obj.get("emoji"), str):
            problems.append("reaction needs 'message_id' and 'emoji' (\"\" removes a reaction)")
    elif kind in ("sticker", "image", "video", "audio", "document"):
        if not obj.get("id") and not obj.get("link"):
            problems.append(f"{kind} needs an 'id' or a 'link'")
        if obj.get("caption") and kind not in limits.CAPTION_MEDIA_TYPES:
            problems.append(f"{kind} cannot have a caption")
        elif len(str(obj.get("caption", ""))) > limits.MEDIA_CAPTION_MAX:
            problems.append(f"caption is over {limits.MEDIA_CAPTION_MAX} characters")
    elif kind == "text":
        text = str(obj.get("body", ""))
        if not text or len(text) > limits.TEXT_BODY_MAX:
            problems.append(f"text.body must have 1 to {limits.TEXT_BODY_MAX} characters")
    elif kind == "interactive":
        problems.extend(_check_interactive(obj))
    return problems


def _check_interactive(obj: Mapping[str, Any]) -> list[str]:
    kind = obj.get("type")
    if kind not in INTERACTIVE_TYPES:
        return [f"interactive.type must be one of {sorted(INTERACTIVE_TYPES)}, not {kind!r}"]
    problems = []
    body = obj.get("body")
    text = body.get("text") if isinstance(body, Mapping) else None
    if not isinstance(text, str) or not text:
        problems.append("interactive needs body.text")
    elif len(text) > limits.INTERACTIVE_BODY_MAX:
        problems.append(f"interactive body.text is over {limits.INTERACTIVE_BODY_MAX} characters")
    action = obj.get("action")
    if not isinstance(action, Mapping):
        return [*problems, "interactive needs an 'action'"]
    parameters = action.get("parameters")
    parameters = parameters if isinstance(parameters, Mapping) else {}
    if kind == "cta_url":
        display = str(parameters.get("display_text", ""))
        if not display or len(display) > limits.CTA_URL_DISPLAY_TEXT_MAX:
            problems.append(
                f"cta_url display_text must have 1 to {limits.CTA_URL_DISPLAY_TEXT_MAX} characters"
            )
        if not str(parameters.get("url", "")).startswith(("http://", "https://")):
            problems.append("cta_url needs an http(s) 'url'")
    elif kind == "flow":
        cta = str(parameters.get("flow_cta", ""))
        if not cta or len(cta) > limits.FLOW_CTA_MAX:
            problems.append(f"flow_cta must have 1 to {limits.FLOW_CTA_MAX} characters")
        if not (parameters.get("flow_id") or parameters.get("flow_name")):
            problems.append("flow needs 'flow_id' or 'flow_name'")
    elif kind == "location_request_message" and action.get("name") != "send_location":
        problems.append("location_request_message needs action.name: send_location")
    return problems


def add_custom(custom: Any, options: ConversionOptions, conversion: Conversion) -> None:
    """Append a response's ``custom.whatsapp`` body when its shape is right (or its ``text``)."""
    body = custom.get("whatsapp") if isinstance(custom, Mapping) else None
    if body is None:
        text = custom.get("text") if isinstance(custom, Mapping) else None
        if isinstance(text, str) and text.strip():
            conversion.messages.extend(texts(text, options.preview_urls))
        else:
            conversion.problems.append(
                "custom response has no 'whatsapp' key, so nothing was sent to WhatsApp "
                "(write it as custom: {whatsapp: {type: ..., ...}})"
            )
        return
    problems = check_custom(body)
    if problems:
        conversion.problems.append("custom.whatsapp not sent: " + "; ".join(problems))
        return
    clean = {
        k: v for k, v in body.items() if k not in ("messaging_product", "recipient_type", "to")
    }
    conversion.messages.append(Custom(body=json.loads(json.dumps(clean))))


def add_elements(elements: Any, options: ConversionOptions, conversion: Conversion) -> None:
    """Append each element as an image (captioned when it fits) or text, then its buttons."""
    if not isinstance(elements, list):
        conversion.problems.append("elements must be a list")
        return
    for element in elements:
        if not isinstance(element, Mapping):
            conversion.problems.append("each element must be a mapping")
            continue
        title = str(element.get("title", "")).strip()
        subtitle = str(element.get("subtitle", "")).strip()
        text = "\n".join(part for part in (f"*{title}*" if title else "", subtitle) if part)
        image = element.get("image_url")
        buttons = element.get("buttons") or []
        if isinstance(image, str) and image:
            caption = text if len(text) <= limits.MEDIA_CAPTION_MAX and not buttons else None
            conversion.messages.append(media("image", image, caption))
            if caption:
                continue
        if buttons:
            add_choices(text or title, buttons, options, conversion)
        elif text:
            conversion.messages.extend(texts(text, options.preview_urls))
