"""Phone numbers, BSUIDs, CPFs and e-mail addresses kept out of this process's log lines,
tracebacks included.

The same file is in ``actions/`` and ``knowledge/``: each runs in its own container, which
mounts only its own folder (tests/test_log_hygiene.py checks the copies are equal). The
channel masks the numbers of the citizens it has seen; this process does not know them,
so it masks every run of 10 to 15 digits (E.164, optional ``+``), keeping the first and
the last two digits as the channel does (a bare CPF, 11 digits, is masked with them), and
like the channel it masks formatted CPFs, e-mail addresses and business-scoped user ids.
"""

from __future__ import annotations

import logging
import re

_NUMBER = re.compile(r"(?<![\d.])\+?\d{10,15}(?!\d)")
_CPF = re.compile(r"(?<![\d.])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\d-])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
_BSUID = re.compile(r"(?<![A-Za-z0-9.])([A-Z]{2}\.(?:ENT\.)?)([A-Za-z0-9]*\d[A-Za-z0-9]*)")


def _masked(match: re.Match[str]) -> str:
    text = match.group(0)
    prefix = "+" if text.startswith("+") else ""
    digits = text.lstrip("+")
    return f"{prefix}{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"


def mask_numbers(text: str) -> str:
    """``text`` with every phone-number-like run of digits, CPF, e-mail address and BSUID
    masked."""
    masked = _NUMBER.sub(_masked, text)
    masked = _CPF.sub("***.***.***-**", masked)
    masked = _BSUID.sub(
        lambda m: m.group(1) + "*" * max(0, len(m.group(2)) - 2) + m.group(2)[-2:], masked
    )
    if "@" in masked:
        masked = _EMAIL.sub(
            lambda m: m.group(0)[:1] + "***@" + m.group(0).partition("@")[2], masked
        )
    return masked


class MaskNumbers(logging.Filter):
    """Masks numbers in a record's message, its traceback and its stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = None
        if message is not None:
            masked = mask_numbers(message)
            if masked != message:
                record.msg, record.args = masked, None
        # Formatted here as Formatter.format would, which then uses exc_text as it is.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_numbers(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_numbers(record.stack_info)
        return True


MASK_NUMBERS = MaskNumbers()


def install_log_masking(*loggers: str) -> None:
    """Put :data:`MASK_NUMBERS` on every handler of the root logger and of ``loggers``
    (idempotent); call it once logging is configured."""
    for name in ("", *loggers):
        for handler in logging.getLogger(name or None).handlers:
            if MASK_NUMBERS not in handler.filters:
                handler.addFilter(MASK_NUMBERS)
