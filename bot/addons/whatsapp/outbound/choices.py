"""Buttons ▸ reply buttons, lists, list pages and ``cta_url`` messages. Pure functions.

* 1–3 buttons become reply buttons, 4–10 an interactive list, more than 10 several lists
  of up to 10 rows each, their bodies numbered "(1/3)", "(2/3)", … — nothing is dropped;
* text too long for an interactive body goes first as text messages;
* titles are cut with "…" (a list row keeps the full title in its description) and made
  distinct; ids over the limit become short keys (``short_keys.py``);
* buttons with a ``url`` become ``cta_url`` messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.outbound.messages import (
    Button,
    CtaUrl,
    ListMessage,
    ListRow,
    ListSection,
    ReplyButtons,
)
from bot.addons.whatsapp.outbound.short_keys import payload_ids
from bot.addons.whatsapp.outbound.text import cut, texts

if TYPE_CHECKING:  # convert.py imports this module; the types only annotate
    from bot.addons.whatsapp.outbound.convert import Conversion, ConversionOptions


def add_choices(
    text: str,
    buttons: Sequence[Mapping[str, Any]],
    options: ConversionOptions,
    conversion: Conversion,
) -> None:
    """Append the messages offering ``buttons`` (with ``text`` as their body)."""
    url_buttons = [b for b in buttons if b.get("url")]
    replies = [b for b in buttons if not b.get("url")]
    if replies:
        _add_replies(_interactive_body(text, options, conversion), replies, options, conversion)
        # The text went with the replies: each link is then introduced by its own title.
        link_body, fallback = "", options.choose_prompt
    else:
        link_body = _interactive_body(text, options, conversion) if text.strip() else ""
        fallback = ""
    for button in url_buttons:
        conversion.messages.append(_cta_url(button, link_body, fallback))


def _add_replies(
    body: str,
    replies: Sequence[Mapping[str, Any]],
    options: ConversionOptions,
    conversion: Conversion,
) -> None:
    """Reply buttons for up to 3, else list pages of up to 10 rows."""
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
        return
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
    pages = [rows[i : i + limits.LIST_ROWS_MAX] for i in range(0, len(rows), limits.LIST_ROWS_MAX)]
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


def _cta_url(button: Mapping[str, Any], body: str, fallback: str) -> CtaUrl:
    """A link button as a ``cta_url``: ``body``, else the button's title, else ``fallback``."""
    return CtaUrl(
        body=body or cut(str(button.get("title", "")), limits.INTERACTIVE_BODY_MAX) or fallback,
        display_text=cut(str(button.get("title", "Abrir")), limits.CTA_URL_DISPLAY_TEXT_MAX),
        url=str(button["url"]),
    )


def _interactive_body(text: str, options: ConversionOptions, conversion: Conversion) -> str:
    """The body of an interactive message; text over the limit goes first as text."""
    text = text.strip()
    if len(text) <= limits.INTERACTIVE_BODY_MAX and text:
        return text
    if text:
        conversion.messages.extend(texts(text, options.preview_urls))
    return options.choose_prompt


def _button_payload(button: Mapping[str, Any]) -> str:
    payload = button.get("payload")
    return str(payload if payload not in (None, "") else button.get("title", ""))


def _ids(payloads: Sequence[str], limit: int, conversion: Conversion) -> list[str]:
    """Ids for ``payloads``; the short keys among them are recorded for the inbound side."""
    ids, keys = payload_ids(payloads, limit)
    conversion.payload_keys.update(keys)
    return ids


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
