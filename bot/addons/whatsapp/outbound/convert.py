"""Outbound conversion: a Rasa response ▸ WhatsApp messages (``messages.py``). Pure functions.

Designers write plain Rasa responses; this makes them fit WhatsApp's rules (``limits.py``),
one part per kind of content:

* ``text.py``: text over 4096 characters is split on paragraphs, then sentences, then
  words; titles are cut with "…";
* ``choices.py``: buttons become reply buttons, a list, or several numbered lists —
  nothing is dropped; over-long ids become short keys (``short_keys.py``); buttons with a
  ``url`` become ``cta_url`` messages;
* ``media.py``: ``image`` and ``attachment`` become media messages;
* ``custom.py``: ``custom: {whatsapp: {...}}`` is passed through after a shape check, and
  ``elements`` become media and interactive messages.

Problems a designer should fix (a malformed ``custom``) are returned, not raised: the rest
of the turn still goes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.outbound.choices import add_choices
from bot.addons.whatsapp.outbound.custom import add_custom, add_elements
from bot.addons.whatsapp.outbound.media import add_attachment, media
from bot.addons.whatsapp.outbound.messages import OutMessage
from bot.addons.whatsapp.outbound.text import texts


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
        add_choices(text, buttons, options, conversion)
    elif text and not caption_text:
        conversion.messages.extend(texts(text, options.preview_urls))
    if response.get("custom"):
        add_custom(response["custom"], options, conversion)
    if isinstance(image, str) and image:
        conversion.messages.append(media("image", image, text.strip() if caption_text else None))
    if response.get("attachment"):
        add_attachment(response["attachment"], conversion)
    if response.get("elements"):
        add_elements(response["elements"], options, conversion)
    return conversion
