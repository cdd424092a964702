"""Events a person would not answer: reactions, deletions, edits, system notices and call
permission replies. Pure functions.

None of them gets a reply (no "I can't read that"), nor a read receipt: WhatsApp shows
none for them. What each becomes (docs/designers/what-rasa-receives.md):

* a **reaction** is recorded in the conversation as ``/react{...}`` (a rule answers it
  with ``action_listen``); a 👍/👎 right after the feedback question counts as feedback;
* a **deletion** (``revoke``) withdraws the deleted message if it is still waiting for its
  turn; otherwise it is recorded as ``/message_deleted{...}``;
* an **edit** replaces the original's content if the original is still waiting for its
  turn (the correction is what gets answered); otherwise it is recorded as
  ``/message_edited{...}``, or handled as a new message when ``WPP_EDITS_AS_NEW_MESSAGES``
  is on;
* a **system** notice never reaches Rasa (a number change still joins the new
  identifiers to the citizen's conversation, in the triage);
* a **call permission reply** is recorded as ``/call_permission_reply{...}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot.addons.whatsapp.inbound.events import InboundMessage, MessageType

REACTION = "reaction"
REVOKE = "revoke"
EDIT = "edit"
SYSTEM = "system"
CALL_PERMISSION_REPLY = "call_permission_reply"

# The response the bot asks "Essa resposta ajudou?" with (domain.yml): a 👍/👎 reaction
# right after it is that question's answer.
FEEDBACK_QUESTION = "utter_ask_feedback"

# Skin tones (U+1F3FB..U+1F3FF) and the emoji/text variation selectors change how a
# thumb looks, not what it says.
_MODIFIERS = {chr(code) for code in range(0x1F3FB, 0x1F400)} | {"\ufe0f", "\ufe0e"}
_SENTIMENTS = {"\U0001f44d": "positive", "\U0001f44e": "negative"}


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = data.get(key)
    return section if isinstance(section, Mapping) else {}


def quiet_kind(message: InboundMessage) -> str | None:
    """Which kind of unanswered event ``message`` is, or None for one that expects an
    answer."""
    if message.type is MessageType.REACTION:
        return REACTION
    if message.type is MessageType.REVOKE:
        return REVOKE
    if message.type is MessageType.EDIT:
        return EDIT
    if message.type is MessageType.SYSTEM:
        return SYSTEM
    if message.type is MessageType.INTERACTIVE:
        interactive = _section(message.data, "interactive")
        if interactive.get("type") == CALL_PERMISSION_REPLY or CALL_PERMISSION_REPLY in interactive:
            return CALL_PERMISSION_REPLY
    return None


def original_id(message: InboundMessage) -> str:
    """The wamid a deletion or an edit is about ("" for any other message)."""
    if message.type not in (MessageType.REVOKE, MessageType.EDIT):
        return ""
    value = _section(message.data, message.type.value).get("original_message_id")
    return value if isinstance(value, str) else ""


def reaction_emoji(message: InboundMessage) -> str:
    """The reaction's emoji; "" when the citizen removed the reaction."""
    emoji = _section(message.data, "reaction").get("emoji")
    return emoji if isinstance(emoji, str) else ""


def reacted_message_id(message: InboundMessage) -> str:
    """The wamid of the message the citizen reacted to."""
    value = _section(message.data, "reaction").get("message_id")
    return value if isinstance(value, str) else ""


def reaction_sentiment(emoji: str) -> str:
    """``positive`` (👍), ``negative`` (👎), ``removed`` ("") or ``other``."""
    if not emoji:
        return "removed"
    bare = "".join(char for char in emoji if char not in _MODIFIERS)
    return _SENTIMENTS.get(bare, "other")


def call_permission_response(message: InboundMessage) -> str:
    """``accept`` or ``reject`` (as sent; "" when absent)."""
    reply = _section(_section(message.data, "interactive"), CALL_PERMISSION_REPLY)
    response = reply.get("response")
    return response if isinstance(response, str) else ""


def edited_content(edit: InboundMessage) -> Mapping[str, Any]:
    """The message object an edit carries (``edit.message``: type plus its section)."""
    return _section(_section(edit.data, "edit"), "message")


def edited_text(edit: InboundMessage) -> str:
    """The new text of an edited text message, or the new caption of an edited media."""
    content = edited_content(edit)
    kind = content.get("type")
    if not isinstance(kind, str):
        return ""
    section = _section(content, kind)
    text = section.get("body") if kind == "text" else section.get("caption")
    return text if isinstance(text, str) else ""


def as_edited(target: InboundMessage, edit: InboundMessage) -> InboundMessage:
    """``target`` with the content of ``edit``: its type and type-specific section.

    ``target`` keeps its wamid (the journal and the read receipt know it by that) and the
    sender's identifiers; the rest of its data (context, referral) stays, and
    ``data["edited"]`` names the edit.
    """
    content = edited_content(edit)
    kind = content.get("type")
    if not isinstance(kind, str) or not isinstance(content.get(kind), Mapping):
        return target
    data = {
        key: value
        for key, value in target.data.items()
        if key not in (target.type.value, "type", EDIT)
    }
    data.update({key: value for key, value in content.items() if key != "context"})
    data["type"] = kind
    data["edited"] = {"edit_id": edit.wamid, "original_message_id": original_id(edit)}
    return replace(target, type=MessageType(kind), data=data)
