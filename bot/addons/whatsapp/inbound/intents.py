"""The intent names the channel gives the bot for messages that are not text (read from
``credentials.yml``'s ``intents:``; see ``to_rasa.py`` for what each message becomes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from bot.addons.whatsapp.errors import ConfigurationError


@dataclass(frozen=True)
class InboundIntents:
    """Intent names the channel gives the bot for messages that are not text.

    Designers write stories for these; each can be renamed in ``credentials.yml``
    (key ``intents``).
    """

    location: str = "share_location"
    media: str = "send_media"
    contacts: str = "unsupported_message"
    reaction: str = "react"
    deleted: str = "message_deleted"
    edited: str = "message_edited"
    call_permission: str = "call_permission_reply"
    flow_reply: str = "unsupported_message"
    order: str = "unsupported_message"
    unsupported: str = "unsupported_message"
    # Voice notes (docs/operators/voice.md): an unsure transcript, no transcript.
    voice_confirm: str = "voice_confirm"
    voice_failed: str = "voice_failed"

    @classmethod
    def from_credentials(cls, given: Any) -> InboundIntents:
        """The intents under ``intents:`` in ``credentials.yml``; an unknown key is named."""
        if not given:
            return cls()
        if not isinstance(given, Mapping):
            raise ConfigurationError(f"credentials.yml: 'intents' must be a mapping, not {given!r}")
        known = [spec.name for spec in fields(cls)]
        unknown = sorted(str(key) for key in given if key not in known)
        if unknown:
            raise ConfigurationError(
                f"credentials.yml: unknown key{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)} under 'intents' (known: {', '.join(known)})"
            )
        return cls(**{key: str(value) for key, value in given.items()})
