"""Keeping phone numbers and secrets out of log lines."""

from __future__ import annotations

import re
from typing import Final

_DIGITS: Final = re.compile(r"\d")


def mask_phone(number: str | None) -> str:
    """Mask a phone number (``wa_id``) for logs, keeping the country code and the last 2 digits.

    ``"5561999998888"`` becomes ``"55*********88"``; short or empty values are masked whole.

    Args:
        number: a phone number as received or sent (digits, optionally with ``+``).

    Returns:
        The masked number, safe to log.
    """
    if not number:
        return "<none>"
    digits = _DIGITS.findall(number)
    if len(digits) <= 6:
        return "*" * len(number)
    prefix = "+" if number.startswith("+") else ""
    kept_head = "".join(digits[:2])
    kept_tail = "".join(digits[-2:])
    return f"{prefix}{kept_head}{'*' * (len(digits) - 4)}{kept_tail}"
