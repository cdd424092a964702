"""The internal model of an outgoing WhatsApp message.

Rasa responses are converted into these (``convert.py``, pure functions); each provider
turns them into its own request body (Graph API JSON for ``cloud``, Serpro's JSON for
``serpro``). Every value here is already within WhatsApp's limits (``limits.py``): the
conversion does the cutting, the providers only translate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Union

MediaType = Literal["image", "video", "audio", "document", "sticker"]


@dataclass(frozen=True)
class Text:
    """A text message (``type: text``)."""

    body: str
    preview_url: bool = False


@dataclass(frozen=True)
class Button:
    """One reply button: ``id`` comes back in ``button_reply.id`` when tapped."""

    id: str
    title: str


@dataclass(frozen=True)
class ReplyButtons:
    """An interactive reply-buttons message (1 to 3 buttons)."""

    body: str
    buttons: tuple[Button, ...]
    header: str | None = None
    footer: str | None = None


@dataclass(frozen=True)
class ListRow:
    """One row of a list: ``id`` comes back in ``list_reply.id`` when picked."""

    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True)
class ListSection:
    """A section of a list; ``title`` is required when a list has several sections."""

    rows: tuple[ListRow, ...]
    title: str | None = None


@dataclass(frozen=True)
class ListMessage:
    """An interactive list message (at most 10 rows over all sections)."""

    body: str
    button_label: str
    sections: tuple[ListSection, ...]
    header: str | None = None
    footer: str | None = None


def sections_as_dicts(
    sections: tuple[ListSection, ...], title: str = "title", description: str = "description"
) -> list[dict[str, Any]]:
    """A list's sections as JSON, with the provider's key names; empty fields are omitted."""
    result: list[dict[str, Any]] = []
    for section in sections:
        rows: list[dict[str, Any]] = []
        for row in section.rows:
            item = {"id": row.id, title: row.title}
            if row.description:
                item[description] = row.description
            rows.append(item)
        result.append({title: section.title, "rows": rows} if section.title else {"rows": rows})
    return result


@dataclass(frozen=True)
class CtaUrl:
    """An interactive call-to-action URL button (``type: cta_url``)."""

    body: str
    display_text: str
    url: str
    header: str | None = None
    footer: str | None = None


@dataclass(frozen=True)
class Media:
    """An image, video, audio, document or sticker, by ``link`` or by uploaded ``media_id``."""

    media_type: MediaType
    link: str | None = None
    media_id: str | None = None
    caption: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class Custom:
    """A WhatsApp message object given by the designer in ``custom: {whatsapp: {...}}``.

    ``body`` holds ``type`` and the object of that type (``template``, ``location``,
    ``contacts``, ``reaction``, ``sticker``, ``interactive``), already checked for shape.
    """

    body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return str(self.body.get("type", ""))


OutMessage = Union[Text, ReplyButtons, ListMessage, CtaUrl, Media, Custom]
"""Any message the channel can send."""
