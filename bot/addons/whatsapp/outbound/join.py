"""A text followed by reply buttons ▸ one interactive message. Pure functions.

Since October 2026 every message the bot sends in a service conversation is billed. The
most common pair of bot messages is an answer followed, in the same turn, by a question
with reply buttons ("Essa resposta ajudou?" Sim / Não): two billed messages for what
WhatsApp can carry as one reply-buttons message whose body is the answer, a blank line
and the question, as long as that body fits ``limits.INTERACTIVE_BODY_MAX``.

The output channel holds a response that converted to a single :class:`Text` short
enough to lead an interactive body (:func:`holdable`) until the next response of the
turn or the turn's end, then sends either the joined message (:func:`join`) or both as
before. The decision depends only on the responses, never on timing, so a turn run again
after a crash yields the same number of messages and the journal's skip stays right.
Reply buttons only: a list (4+ buttons) keeps its options behind a button, and a link
button (``cta_url``) already introduces itself; both go out as today.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.outbound.messages import OutMessage, ReplyButtons, Text

SEPARATOR = "\n\n"
"""Between the held text and the buttons' own text, as two paragraphs of one message."""


def holdable(messages: Sequence[OutMessage]) -> Text | None:
    """The one text message of a response that could lead an interactive body, else None.

    Only a response that converted to exactly one :class:`Text` qualifies: a text that
    went out as a caption, a split long text or anything with media or buttons is sent
    as it is.
    """
    if len(messages) != 1 or not isinstance(messages[0], Text):
        return None
    text = messages[0]
    room = limits.INTERACTIVE_BODY_MAX - len(SEPARATOR) - 1  # at least one character after
    return text if text.body.strip() and len(text.body) <= room else None


def join(held: Text, messages: Sequence[OutMessage]) -> list[OutMessage] | None:
    """``messages`` with ``held`` leading the body of the first, when that is reply buttons
    and the joined body fits WhatsApp's interactive body limit; None otherwise (then both
    go out as they are)."""
    if not messages or not isinstance(messages[0], ReplyButtons):
        return None
    first = messages[0]
    body = f"{held.body.strip()}{SEPARATOR}{first.body}"
    if len(body) > limits.INTERACTIVE_BODY_MAX:
        return None
    return [replace(first, body=body), *messages[1:]]
