"""Phone numbers kept out of this process's log lines, tracebacks included.

The same file is in ``actions/`` and ``knowledge/``: each runs in its own container, which
mounts only its own folder (tests/test_log_hygiene.py checks the copies are equal). The
channel masks the numbers of the citizens it has seen; this process does not know them,
so it masks every run of 10 to 15 digits (E.164, optional ``+``), keeping the first and
the last two digits as the channel does.
"""

from __future__ import annotations

import logging
import re

_NUMBER = re.compile(r"(?<![\d.])\+?\d{10,15}(?!\d)")


def _masked(match: re.Match[str]) -> str:
    text = match.group(0)
    prefix = "+" if text.startswith("+") else ""
    digits = text.lstrip("+")
    return f"{prefix}{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"


def mask_numbers(text: str) -> str:
    """``text`` with every phone-number-like run of digits masked."""
    return _NUMBER.sub(_masked, text)


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
