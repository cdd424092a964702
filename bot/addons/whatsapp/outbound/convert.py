"""Outbound conversion: a Rasa response ▸ WhatsApp messages (``messages.py``). Pure functions.

Designers write plain Rasa responses; this makes them fit WhatsApp's rules (``limits.py``):

* text over 4096 characters is split on paragraphs, then sentences, then words;
* 1–3 buttons become reply buttons, 4–10 an interactive list, more than 10 several lists
  of up to 10 rows each (numbered "(1/3)", "(2/3)", …) — nothing is dropped;
* text too long for an interactive body goes first as text messages;
* titles are cut with "…" (a list row keeps the full title in its description) and made
  distinct; ids over the limit become short keys that the inbound side maps back;
* buttons with a ``url`` become ``cta_url`` messages;
* ``image``, ``attachment`` and ``elements`` become media and interactive messages;
* ``custom: {whatsapp: {...}}`` is passed through after a shape check.

Problems a designer should fix (a malformed ``custom``) are returned, not raised: the rest
of the turn still goes out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.outbound.messages import (
    Button,
    CtaUrl,
    Custom,
    ListMessage,
    ListRow,
    ListSection,
    Media,
    MediaType,
    OutMessage,
    ReplyButtons,
    Text,
)

ELLIPSIS = "…"
SHORT_KEY_PREFIX = "~k:"
URL_RE = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)
SENTENCE_END_RE = re.compile(r"(?<=[.!?…])\s+")

EXTENSION_TYPES: dict[str, MediaType] = {
    **dict.fromkeys(("jpg", "jpeg", "png"), "image"),
    "webp": "sticker",
    **dict.fromkeys(("mp4", "3gp", "3gpp"), "video"),
    **dict.fromkeys(("mp3", "ogg", "opus", "aac", "amr", "m4a"), "audio"),
}


@dataclass(frozen=True)
class ConversionOptions:
    """Designer-facing wording and switches, from the channel settings."""

    list_button_label: str = "Ver opções"
    choose_prompt: str = "Escolha uma opção:"
    preview_urls: bool = True


@dataclass
class Conversion:
    """The messages for one response, the short keys they use, and any problems."""

    messages: list[OutMessage] = field(default_factory=list)
    payload_keys: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, ending in "…" when it had to be cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def split_text(text: str, limit: int = limits.TEXT_BODY_MAX) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters, in order.

    Paragraphs are kept whole when they fit, then sentences, then words; a word is cut
    only when it alone is longer than ``limit``.
    """
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    current = ""
    for piece, joiner in _pieces(text, limit):
        candidate = f"{current}{joiner}{piece}" if current else piece
        if len(candidate) <= limit:
            current = candidate
        else:
            if current:
                chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


def _pieces(text: str, limit: int) -> Iterable[tuple[str, str]]:
    """Paragraphs, or the sentences / words / hard cuts of those too long, with joiners."""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= limit:
            yield paragraph, "\n\n"
            continue
        first = True
        for sentence in SENTENCE_END_RE.split(paragraph):
            joiner = "\n\n" if first else " "
            first = False
            if len(sentence) <= limit:
                yield sentence, joiner
                continue
            for word in sentence.split(" "):
                while len(word) > limit:
                    yield word[:limit], joiner
                    word, joiner = word[limit:], ""
                if word:
                    yield word, joiner
                joiner = " "


def short_key(payload: str, salt: str = "") -> str:
    """A deterministic key for a payload too long (or unusable) as a button/row id."""
    digest = hashlib.sha256(f"{salt}\x00{payload}".encode()).digest()
    return SHORT_KEY_PREFIX + base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def _distinct(titles: Sequence[str], limit: int) -> list[str]:
    """Make titles unique (WhatsApp rejects duplicates) without exceeding ``limit``."""
    seen: dict[str, int] = {}
    result = []
    for title in titles:
        candidate = title
        number = 1
        while candidate.casefold() in seen:
            number += 1
            suffix = f" {number}"
            candidate = cut(title, limit - len(suffix)) + suffix
        seen[candidate.casefold()] = 1
        result.append(candidate)
    return result


def _ids(payloads: Sequence[str], limit: int, conversion: Conversion) -> list[str]:
    """Ids within ``limit`` and unique; others replaced by short keys, recorded for inbound."""
    result = []
    used: set[str] = set()
    for index, payload in enumerate(payloads):
        usable = payload and payload == payload.strip() and len(payload) <= limit
        identifier = payload if usable and payload not in used else short_key(payload, str(index))
        if identifier != payload:
            conversion.payload_keys[identifier] = payload
        used.add(identifier)
        result.append(identifier)
    return result


def _button_payload(button: Mapping[str, Any]) -> str:
    payload = button.get("payload")
    return str(payload if payload not in (None, "") else button.get("title", ""))


def _interactive_body(text: str, options: ConversionOptions, conversion: Conversion) -> str:
    """The body of an interactive message; text over the limit goes first as text."""
    text = text.strip()
    if len(text) <= limits.INTERACTIVE_BODY_MAX and text:
        return text
    if text:
        conversion.messages.extend(_texts(text, options))
    return options.choose_prompt


def _texts(text: str, options: ConversionOptions) -> list[OutMessage]:
    return [
        Text(chunk, preview_url=options.preview_urls and bool(URL_RE.search(chunk)))
        for chunk in split_text(text)
    ]


def _choices(
    text: str,
    buttons: Sequence[Mapping[str, Any]],
    options: ConversionOptions,
    conversion: Conversion,
) -> None:
    url_buttons = [b for b in buttons if b.get("url")]
    replies = [b for b in buttons if not b.get("url")]
    if not replies:
        body = _interactive_body(text, options, conversion) if text.strip() else ""
        for button in url_buttons:
            conversion.messages.append(
                CtaUrl(
                    body=body or cut(str(button.get("title", "")), limits.INTERACTIVE_BODY_MAX),
                    display_text=cut(
                        str(button.get("title", "Abrir")), limits.CTA_URL_DISPLAY_TEXT_MAX
                    ),
                    url=str(button["url"]),
                )
            )
        return
    body = _interactive_body(text, options, conversion)
    payloads = [_button_payload(b) for b in replies]
    full_titles = [
        " ".join(str(b.get("title", "")).split()) or p
        for b, p in zip(replies, payloads, strict=True)
    ]
    if len(replies) <= limits.REPLY_BUTTONS_MAX:
        ids = _ids(payloads, limits.REPLY_BUTTON_ID_MAX, conversion)
        titles = _distinct(
            [cut(t, limits.REPLY_BUTTON_TITLE_MAX) for t in full_titles],
            limits.REPLY_BUTTON_TITLE_MAX,
        )
        conversion.messages.append(
            ReplyButtons(
                body=body, buttons=tuple(Button(i, t) for i, t in zip(ids, titles, strict=True))
            )
        )
    else:
        ids = _ids(payloads, limits.LIST_ROW_ID_MAX, conversion)
        titles = _distinct(
            [cut(t, limits.LIST_ROW_TITLE_MAX) for t in full_titles], limits.LIST_ROW_TITLE_MAX
        )
        rows = [
            ListRow(
                id=row_id,
                title=title,
                description=cut(full, limits.LIST_ROW_DESCRIPTION_MAX) if full != title else None,
            )
            for row_id, title, full in zip(ids, titles, full_titles, strict=True)
        ]
        pages = [
            rows[i : i + limits.LIST_ROWS_MAX] for i in range(0, len(rows), limits.LIST_ROWS_MAX)
        ]
        label = cut(options.list_button_label, limits.LIST_BUTTON_LABEL_MAX)
        for number, page in enumerate(pages, start=1):
            page_body = body
            if len(pages) > 1:
                marker = f" ({number}/{len(pages)})"
                page_body = cut(body, limits.INTERACTIVE_BODY_MAX - len(marker)) + marker
            conversion.messages.append(
                ListMessage(
                    body=page_body, button_label=label, sections=(ListSection(rows=tuple(page)),)
                )
            )
    for button in url_buttons:
        conversion.messages.append(
            CtaUrl(
                body=cut(str(button.get("title", "")), limits.INTERACTIVE_BODY_MAX)
                or options.choose_prompt,
                display_text=cut(
                    str(button.get("title", "Abrir")), limits.CTA_URL_DISPLAY_TEXT_MAX
                ),
                url=str(button["url"]),
            )
        )


def media_type_for(url: str, explicit: str | None = None) -> MediaType:
    """The WhatsApp media type for an attachment: explicit, else by file extension."""
    if explicit in limits.MEDIA_TYPES:
        return explicit  # type: ignore[return-value]
    extension = urlparse(url).path.rsplit(".", 1)[-1].lower() if "." in urlparse(url).path else ""
    return EXTENSION_TYPES.get(extension, "document")


def _media(
    media_type: MediaType, link: str, caption: str | None, filename: str | None = None
) -> Media:
    allowed_caption = caption if media_type in limits.CAPTION_MEDIA_TYPES else None
    return Media(
        media_type=media_type, link=link, caption=allowed_caption or None, filename=filename
    )


def _attachment(attachment: Any, conversion: Conversion) -> None:
    if isinstance(attachment, str):
        spec: Mapping[str, Any] = {"url": attachment}
    elif isinstance(attachment, Mapping):
        spec = attachment
    else:
        conversion.problems.append(
            f"attachment must be a URL or a mapping, not {type(attachment).__name__}"
        )
        return
    link = spec.get("url") or spec.get("link")
    if not isinstance(link, str) or not link:
        conversion.problems.append("attachment has no 'url'")
        return
    media_type = media_type_for(link, spec.get("type"))
    filename = spec.get("filename")
    if media_type == "document" and not filename:
        filename = unquote(urlparse(link).path.rsplit("/", 1)[-1]) or None
    caption = spec.get("caption")
    conversion.messages.append(
        _media(
            media_type,
            link,
            cut(str(caption), limits.MEDIA_CAPTION_MAX) if caption else None,
            filename if media_type == "document" else None,
        )
    )


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


def _custom(custom: Any, options: ConversionOptions, conversion: Conversion) -> None:
    body = custom.get("whatsapp") if isinstance(custom, Mapping) else None
    if body is None:
        text = custom.get("text") if isinstance(custom, Mapping) else None
        if isinstance(text, str) and text.strip():
            conversion.messages.extend(_texts(text, options))
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


def _elements(elements: Any, options: ConversionOptions, conversion: Conversion) -> None:
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
            conversion.messages.append(_media("image", image, caption))
            if caption:
                continue
        if buttons:
            _choices(text or title, buttons, options, conversion)
        elif text:
            conversion.messages.extend(_texts(text, options))


def convert_response(
    response: Mapping[str, Any], options: ConversionOptions | None = None
) -> Conversion:
    """Convert one Rasa response (``BotUttered`` data) into WhatsApp messages, in order.

    Order follows Rasa's own ``OutputChannel.send_response``: text with buttons or quick
    replies, then custom, image, attachment, elements. Text alone with an image becomes the
    image's caption when it fits.
    """
    options = options or ConversionOptions()
    conversion = Conversion()
    text = str(response.get("text") or "")
    buttons = response.get("quick_replies") or response.get("buttons") or []
    image = response.get("image")
    caption_text = (
        bool(text)
        and not buttons
        and isinstance(image, str)
        and len(text) <= limits.MEDIA_CAPTION_MAX
    )

    if buttons:
        _choices(text, buttons, options, conversion)
    elif text and not caption_text:
        conversion.messages.extend(_texts(text, options))
    if response.get("custom"):
        _custom(response["custom"], options, conversion)
    if isinstance(image, str) and image:
        conversion.messages.append(_media("image", image, text.strip() if caption_text else None))
    if response.get("attachment"):
        _attachment(response["attachment"], conversion)
    if response.get("elements"):
        _elements(response["elements"], options, conversion)
    return conversion
