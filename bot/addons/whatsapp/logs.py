"""Log helpers: phone numbers, BSUIDs, CPFs, e-mail addresses and secrets kept out of log
lines, and warnings about events that come in floods throttled."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any, Final

from bot.addons.whatsapp.masking import (
    add_filter,
    is_bsuid,
    is_cpf,
    mask_bsuids,
    mask_id,
    mask_personal_data,
    mask_phone,
    mask_record,
    mask_username,
)

__all__ = [  # the masking helpers the channel's modules import from here
    "is_cpf",
    "mask_id",
    "mask_personal_data",
    "mask_phone",
]

_USERNAME_IN_TEXT: Final = re.compile(r"@[A-Za-z0-9._]+[A-Za-z0-9_]")
_DIGIT_RUN: Final = re.compile(r"(?<!\d)\+?\d{8,15}(?!\d)")


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
        if is_bsuid(number):
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
        masked = mask_bsuids(text)
        masked = mask_personal_data(masked)
        if self._numbers:
            masked = _DIGIT_RUN.sub(self._mask, masked)
        if self._usernames and "@" in masked:
            masked = _USERNAME_IN_TEXT.sub(self._mask_username, masked)
        return masked


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
    add_filter(MASK_FILTER)
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
