"""Log helpers: phone numbers, BSUIDs, CPFs, e-mail addresses and secrets kept out of log
lines, and warnings about events that come in floods throttled."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any, Final

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


_USERNAME_IN_TEXT = re.compile(r"@[A-Za-z0-9._]+[A-Za-z0-9_]")
_DIGIT_RUN = re.compile(r"(?<!\d)\+?\d{8,15}(?!\d)")


class MaskKnownNumbers(logging.Filter):
    """Masks the phone numbers, BSUIDs and usernames of the channel's users, and every CPF
    and e-mail address, in every log line, whoever logs it.

    Rasa itself logs sender ids (e.g. "Circuit breaker tripped … for sender '5561…'"). The
    channel remembers the identifiers of each user it hands to Rasa (a bounded set) and
    this filter, installed on the root logger's handlers, masks those numbers and
    usernames in any record. Other long digit runs (message and media ids) are left
    alone. Anything shaped like a BSUID is masked whether remembered or not.
    """

    def __init__(self, max_numbers: int = 100_000) -> None:
        super().__init__()
        self._numbers: OrderedDict[str, None] = OrderedDict()
        self._usernames: OrderedDict[str, None] = OrderedDict()
        self._max = max_numbers

    def remember(self, number: str) -> None:
        if not number:
            return
        if number.startswith("@"):
            self._usernames[number] = None
            self._usernames.move_to_end(number)
            while len(self._usernames) > self._max:
                self._usernames.popitem(last=False)
            return
        if _BSUID.match(number):
            return  # masked by shape
        digits = number.lstrip("+")
        self._numbers[digits] = None
        self._numbers.move_to_end(digits)
        while len(self._numbers) > self._max:
            self._numbers.popitem(last=False)

    def _mask_username(self, match: re.Match[str]) -> str:
        text = match.group(0)
        return mask_username(text) if text in self._usernames else text

    def _mask(self, match: re.Match[str]) -> str:
        text = match.group(0)
        return mask_phone(text) if text.lstrip("+") in self._numbers else text

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record, self._mask_text)
        return True

    def _mask_text(self, text: str) -> str:
        # BSUIDs are masked by their shape; numbers and usernames when they are known.
        masked = _BSUID_IN_TEXT.sub(lambda m: mask_user_id(m.group(0)), text)
        masked = mask_personal_data(masked)
        if self._numbers:
            masked = _DIGIT_RUN.sub(self._mask, masked)
        if self._usernames and "@" in masked:
            masked = _USERNAME_IN_TEXT.sub(self._mask_username, masked)
        return masked


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


MASK_FILTER = MaskKnownNumbers()


class EntityPayloadNoise(logging.Filter):
    """Drops Rasa's false alarm about button payloads that carry entities.

    Rasa reads every ``{...}`` in a response, button payloads included, as a slot to fill,
    so the standard payload ``/choose_service{"service":"iptu"}`` logs an ERROR
    ("The specified slot name does not exist") on every turn that shows the button, while
    the payload is sent unchanged and works. Only records about a placeholder that starts
    with a quote (JSON, never a slot name) are dropped; a real missing slot still logs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        return '"placeholder_key": "\\"' not in message


ENTITY_PAYLOAD_NOISE = EntityPayloadNoise()


def install_log_masking() -> None:
    """Put :data:`MASK_FILTER` on every handler of the root logger (idempotent)."""
    for handler in logging.getLogger().handlers:
        if MASK_FILTER not in handler.filters:
            handler.addFilter(MASK_FILTER)
    interpolator = logging.getLogger("rasa.core.nlg.interpolator")
    if ENTITY_PAYLOAD_NOISE not in interpolator.filters:
        interpolator.addFilter(ENTITY_PAYLOAD_NOISE)


class ThrottledLog:
    """At most one warning per key per ``interval`` seconds for events that come in
    floods, with the count of those not logged.

    At 10x the sustainable rate the webhook refuses ~200 requests a second (503: overload,
    Redis down, shutdown); a line for each buried the log and cost the event loop the
    time it needs to keep shedding. The metrics still count every one.
    """

    def __init__(
        self,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger | None = None,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._log = log or logging.getLogger(__name__)
        self._logged_at: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()

    def warn(self, key: str, message: str, *args: Any) -> None:
        now = self._clock()
        logged_at = self._logged_at.get(key)
        if logged_at is not None and now - logged_at < self.interval:
            self._unlogged[key] += 1
            return
        self._logged_at[key] = now
        more = self._unlogged.pop(key, 0)
        if more:
            message += " (%d more since the last such line)"
            args = (*args, more)
        self._log.warning(message, *args)
