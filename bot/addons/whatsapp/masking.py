"""How the product masks personal data in log lines: phone numbers, business-scoped user ids
(BSUIDs), usernames, CPFs and e-mail addresses. Standard library only.

One module for every process: the channel and the ingress (through ``logs.py``, which adds
the masking of the numbers of the citizens the channel has seen), and the action server
and the knowledge service, which do not know those numbers and mask every phone-like run of
digits (:class:`MaskNumbers`). Their image copies this file with the package's
``__init__`` files, whose imports are lazy, so it loads without Rasa.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
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


_BSUID = re.compile(r"^([A-Z]{2}\.(?:ENT\.)?)([A-Za-z0-9]+)$")
_BSUID_IN_TEXT = re.compile(r"(?<![A-Za-z0-9.])[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]*\d[A-Za-z0-9]*")


def mask_user_id(user_id: str) -> str:
    """Mask a business-scoped user id (BSUID): ``"BR.1502576394655843"`` becomes
    ``"BR.**************43"`` (the country and the last 2 characters kept)."""
    match = _BSUID.match(user_id)
    if match is None:
        return "*" * len(user_id)
    head, rest = match.groups()
    return head + "*" * max(0, len(rest) - 2) + rest[-2:]


def is_bsuid(identifier: str) -> bool:
    """Whether ``identifier`` is shaped like a business-scoped user id."""
    return _BSUID.match(identifier) is not None


def mask_bsuids(text: str) -> str:
    """``text`` with everything shaped like a BSUID masked, known or not."""
    return _BSUID_IN_TEXT.sub(lambda m: mask_user_id(m.group(0)), text)


def mask_username(username: str) -> str:
    """Mask a WhatsApp username, keeping its ``@`` and first character."""
    name = username.lstrip("@")
    prefix = "@" if username.startswith("@") else ""
    return prefix + name[:1] + "*" * max(0, len(name) - 1)


def mask_id(identifier: str | None) -> str:
    """Mask whatever identifies a citizen: a phone, a BSUID or a username."""
    if not identifier:
        return "<none>"
    if _BSUID.match(identifier):
        return mask_user_id(identifier)
    if identifier.startswith("@"):
        return mask_username(identifier)
    return mask_phone(identifier)


_CPF_FORMATTED: Final = re.compile(r"(?<![\d.])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\d-])")
_ELEVEN_DIGITS: Final = re.compile(r"(?<![\d.])\d{11}(?!\d)")
_EMAIL: Final = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}")


def is_cpf(digits: str) -> bool:
    """Whether 11 digits are a valid CPF (both check digits right, not all one digit)."""
    if len(digits) != 11 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    for size in (9, 10):
        total = sum(int(d) * (size + 1 - i) for i, d in enumerate(digits[:size]))
        if (total * 10 % 11) % 10 != int(digits[size]):
            return False
    return True


def mask_personal_data(text: str) -> str:
    """``text`` with CPF numbers and e-mail addresses masked. Pure.

    A formatted CPF (``123.456.789-09``) is always masked, a run of 11 digits only when
    its check digits make it a CPF (other ids of 11 digits stay readable); an e-mail
    keeps its first character and its domain (``j***@exemplo.gov.br``).
    """
    masked = _CPF_FORMATTED.sub("***.***.***-**", text)
    masked = _ELEVEN_DIGITS.sub(lambda m: "*" * 11 if is_cpf(m.group(0)) else m.group(0), masked)
    if "@" in masked:
        masked = _EMAIL.sub(_masked_email, masked)
    return masked


def _masked_email(match: re.Match[str]) -> str:
    local, _, domain = match.group(0).partition("@")
    return local[:1] + "***@" + domain


def mask_record(record: logging.LogRecord, mask: Callable[[str], str]) -> None:
    """Apply ``mask`` to a record's message, its traceback and its stack.

    The traceback is formatted here (as ``Formatter.format`` would, which then uses
    ``exc_text`` as it is): an exception's text carries numbers as readily as a message.
    """
    try:
        message = record.getMessage()
    except Exception:
        message = None
    if message is not None:
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask(record.exc_text)
    if record.stack_info:
        record.stack_info = mask(record.stack_info)


_PHONE_LIKE: Final = re.compile(r"(?<![\d.])\+?\d{10,15}(?!\d)")


def mask_numbers(text: str) -> str:
    """``text`` with every phone-like run of 10 to 15 digits (E.164, optional ``+``; a bare
    CPF with them), BSUID, CPF and e-mail address masked: for a process that does not know
    which numbers are citizens'. Pure."""
    masked = _PHONE_LIKE.sub(lambda m: mask_phone(m.group(0)), text)
    return mask_personal_data(mask_bsuids(masked))


class MaskNumbers(logging.Filter):
    """Masks :func:`mask_numbers` in a record's message, its traceback and its stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record, mask_numbers)
        return True


MASK_NUMBERS = MaskNumbers()


def add_filter(mask: logging.Filter, *loggers: str) -> None:
    """Put ``mask`` on every handler of the root logger and of ``loggers`` (idempotent);
    call it once logging is configured."""
    for name in ("", *loggers):
        for handler in logging.getLogger(name or None).handlers:
            if mask not in handler.filters:
                handler.addFilter(mask)
