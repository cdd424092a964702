"""WhatsApp's rules for ``/messages`` bodies, checked as Meta would, with Meta's error codes.

Every limit comes from ``bot.addons.whatsapp.limits``. A body breaking a rule gets the
error Meta answers (131008 for a missing parameter, 131009 for an invalid value, 100 for an
invalid parameter such as a text over the limit) with a message naming the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.inbound.identity import BSUID

MISSING = 131008
INVALID_VALUE = 131009
INVALID_PARAMETER = 100
MESSAGE_TYPES = {
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
}
TITLES = {
    MISSING: "Required parameter is missing",
    INVALID_VALUE: "Parameter value is not valid",
    INVALID_PARAMETER: "Invalid parameter",
}
PHONE_RE = re.compile(r"^\+?\d{6,15}$")


def _is_bsuid(value: Any) -> bool:
    return isinstance(value, str) and BSUID.match(value) is not None


@dataclass(frozen=True)
class Violation:
    """One broken rule: Meta's code and what is wrong."""

    code: int
    rule: str

    def error_body(self, trace_id: str) -> dict[str, Any]:
        return {
            "error": {
                "message": f"(#{self.code}) {TITLES[self.code]}",
                "type": "OAuthException",
                "code": self.code,
                "error_data": {"messaging_product": "whatsapp", "details": self.rule},
                "fbtrace_id": trace_id,
            }
        }


class _Checker:
    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def missing(self, rule: str) -> None:
        self.violations.append(Violation(MISSING, rule))

    def invalid(self, rule: str, code: int = INVALID_VALUE) -> None:
        self.violations.append(Violation(code, rule))

    def text(self, value: Any, name: str, limit: int, required: bool = True) -> None:
        if value is None or value == "":
            if required:
                self.missing(f"{name} is required")
            return
        if not isinstance(value, str):
            self.invalid(f"{name} must be a string")
        elif len(value) > limit:
            self.invalid(
                f"{name} is {len(value)} characters; the limit is {limit}", INVALID_PARAMETER
            )

    def mapping(self, value: Any, name: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.missing(f"{name} object is required")
            return {}
        return value


def validate_message(body: Any) -> list[Violation]:
    """Every rule ``body`` breaks (empty when WhatsApp would accept it)."""
    check = _Checker()
    if not isinstance(body, Mapping):
        check.invalid("the body must be a JSON object", INVALID_PARAMETER)
        return check.violations
    if body.get("messaging_product") != "whatsapp":
        check.missing("messaging_product must be 'whatsapp'")
    if body.get("status") == "read":
        if not body.get("message_id"):
            check.missing("message_id is required to mark a message read")
        typing = body.get("typing_indicator")
        if typing is not None and (not isinstance(typing, Mapping) or typing.get("type") != "text"):
            check.invalid("typing_indicator.type must be 'text'")
        return check.violations
    to, recipient = body.get("to"), body.get("recipient")
    if not to and not recipient:
        # Meta: "(#100) The parameter to is required." (LIMITS.md §8.1)
        check.missing("to (a phone number) or recipient (a business-scoped user id) is required")
    elif to and (not isinstance(to, str) or not PHONE_RE.match(to)):
        what = "a business-scoped user id goes in recipient" if _is_bsuid(to) else "not"
        check.invalid(f"to must be a phone number with country code ({what}: {to!r})")
    elif recipient and not to and not _is_bsuid(recipient):
        check.invalid(f"recipient must be a business-scoped user id, not {recipient!r}")
    kind = body.get("type", "text")
    if kind not in MESSAGE_TYPES:
        check.invalid(f"type must be one of {sorted(MESSAGE_TYPES)}, not {kind!r}")
        return check.violations
    obj = check.mapping(body.get(kind), kind) if kind != "contacts" else body.get(kind)
    {
        "text": _text,
        "interactive": _interactive,
        "template": _template,
        "location": _location,
        "contacts": _contacts,
        "reaction": _reaction,
    }.get(kind, _media)(check, obj, kind)
    return check.violations


def _text(check: _Checker, obj: Any, kind: str) -> None:
    check.text(obj.get("body"), "text.body", limits.TEXT_BODY_MAX)
    if "preview_url" in obj and not isinstance(obj["preview_url"], bool):
        check.invalid("text.preview_url must be true or false")


def _media(check: _Checker, obj: Any, kind: str) -> None:
    has_id, has_link = bool(obj.get("id")), bool(obj.get("link"))
    if has_id == has_link:
        check.missing(f"{kind} needs exactly one of 'id' or 'link'")
    if has_link and not str(obj["link"]).startswith(("http://", "https://")):
        check.invalid(f"{kind}.link must be an http(s) URL")
    if "caption" in obj:
        if kind not in limits.CAPTION_MEDIA_TYPES:
            check.invalid(f"{kind} messages cannot have a caption")
        else:
            check.text(obj["caption"], f"{kind}.caption", limits.MEDIA_CAPTION_MAX)


def _interactive(check: _Checker, obj: Any, kind: str) -> None:
    itype = obj.get("type")
    types = {"button", "list", "cta_url", "flow", "location_request_message"}
    if itype not in types:
        check.invalid(f"interactive.type must be one of {sorted(types)}, not {itype!r}")
        return
    body = check.mapping(obj.get("body"), "interactive.body")
    check.text(body.get("text"), "interactive.body.text", limits.INTERACTIVE_BODY_MAX)
    header = obj.get("header")
    if isinstance(header, Mapping) and header.get("type") == "text":
        check.text(header.get("text"), "interactive.header.text", limits.HEADER_TEXT_MAX)
    footer = obj.get("footer")
    if footer is not None:
        check.text(
            check.mapping(footer, "interactive.footer").get("text"),
            "interactive.footer.text",
            limits.FOOTER_TEXT_MAX,
        )
    action = check.mapping(obj.get("action"), "interactive.action")
    if itype == "button":
        _reply_buttons(check, action)
    elif itype == "list":
        _list(check, action)
    elif itype == "cta_url":
        params = check.mapping(action.get("parameters"), "interactive.action.parameters")
        check.text(
            params.get("display_text"), "cta_url display_text", limits.CTA_URL_DISPLAY_TEXT_MAX
        )
        if not str(params.get("url", "")).startswith(("http://", "https://")):
            check.invalid("cta_url url must be an http(s) URL")
    elif itype == "flow":
        params = check.mapping(action.get("parameters"), "interactive.action.parameters")
        check.text(params.get("flow_cta"), "flow_cta", limits.FLOW_CTA_MAX)
    elif action.get("name") != "send_location":
        check.invalid("location_request_message needs action.name 'send_location'")


def _reply_buttons(check: _Checker, action: Mapping[str, Any]) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not buttons:
        check.missing("interactive.action.buttons is required (1 to 3 buttons)")
        return
    if len(buttons) > limits.REPLY_BUTTONS_MAX:
        check.invalid(f"{len(buttons)} reply buttons; at most {limits.REPLY_BUTTONS_MAX}")
    ids, titles = set(), set()
    for index, button in enumerate(buttons):
        reply = check.mapping(
            button.get("reply") if isinstance(button, Mapping) else None, f"buttons[{index}].reply"
        )
        button_id, title = reply.get("id"), reply.get("title")
        check.text(button_id, f"buttons[{index}].reply.id", limits.REPLY_BUTTON_ID_MAX)
        check.text(title, f"buttons[{index}].reply.title", limits.REPLY_BUTTON_TITLE_MAX)
        if isinstance(button_id, str) and button_id != button_id.strip():
            check.invalid(f"buttons[{index}].reply.id has leading or trailing spaces")
        if button_id in ids:
            check.invalid(f"Duplicate button id {button_id!r}")
        if isinstance(title, str) and title.casefold() in titles:
            check.invalid(f"Duplicate button title {title!r}")
        ids.add(button_id)
        titles.add(title.casefold() if isinstance(title, str) else title)


def _list(check: _Checker, action: Mapping[str, Any]) -> None:
    check.text(action.get("button"), "list action.button (the label)", limits.LIST_BUTTON_LABEL_MAX)
    sections = action.get("sections")
    if not isinstance(sections, list) or not sections:
        check.missing("list action.sections is required")
        return
    if len(sections) > limits.LIST_SECTIONS_MAX:
        check.invalid(f"{len(sections)} sections; at most {limits.LIST_SECTIONS_MAX}")
    row_ids: set[Any] = set()
    total = 0
    for s_index, section in enumerate(sections):
        section = check.mapping(section, f"sections[{s_index}]")
        check.text(
            section.get("title"),
            f"sections[{s_index}].title",
            limits.LIST_SECTION_TITLE_MAX,
            required=len(sections) > 1,
        )
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            check.missing(f"sections[{s_index}].rows is required")
            continue
        total += len(rows)
        for r_index, row in enumerate(rows):
            row = check.mapping(row, f"rows[{r_index}]")
            where = f"sections[{s_index}].rows[{r_index}]"
            check.text(row.get("id"), f"{where}.id", limits.LIST_ROW_ID_MAX)
            check.text(row.get("title"), f"{where}.title", limits.LIST_ROW_TITLE_MAX)
            check.text(
                row.get("description"),
                f"{where}.description",
                limits.LIST_ROW_DESCRIPTION_MAX,
                required=False,
            )
            if row.get("id") in row_ids:
                check.invalid(f"Duplicate row id {row.get('id')!r}")
            row_ids.add(row.get("id"))
    if total > limits.LIST_ROWS_MAX:
        check.invalid(f"{total} rows in the list; at most {limits.LIST_ROWS_MAX} over all sections")


def _template(check: _Checker, obj: Any, kind: str) -> None:
    if not obj.get("name"):
        check.missing("template.name is required")
    language = obj.get("language")
    if not isinstance(language, Mapping) or not language.get("code"):
        check.missing("template.language.code is required")


def _location(check: _Checker, obj: Any, kind: str) -> None:
    for key in ("latitude", "longitude"):
        try:
            float(obj.get(key))
        except (TypeError, ValueError):
            check.missing(f"location.{key} is required and must be a number")


def _contacts(check: _Checker, obj: Any, kind: str) -> None:
    if not isinstance(obj, list) or not obj:
        check.missing("contacts must be a non-empty list")
        return
    for index, contact in enumerate(obj):
        name = contact.get("name") if isinstance(contact, Mapping) else None
        if not isinstance(name, Mapping) or not name.get("formatted_name"):
            check.missing(f"contacts[{index}].name.formatted_name is required")


def _reaction(check: _Checker, obj: Any, kind: str) -> None:
    if not obj.get("message_id"):
        check.missing("reaction.message_id is required")
    if not isinstance(obj.get("emoji"), str):
        check.missing("reaction.emoji is required ('' removes a reaction)")
