"""Errors of the WhatsApp layer, and which of Meta's error codes are worth retrying.

The retry classification is ours, derived from Meta's "possible solutions" text on the
error-codes page (M-errors), as tabulated in the project's ``LIMITS.md`` §7.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Mapping


class WhatsAppError(Exception):
    """Base class of every error raised by the WhatsApp channel."""


class ConfigurationError(WhatsAppError):
    """A required setting is missing or invalid; the message names the variable.

    ``rasa run`` sees it as Rasa's ``InvalidConfigException`` (see
    ``WhatsAppInput.from_credentials``); this module must not import Rasa, since the
    ingress uses it.
    """


# Codes that mean "try again later": throughput, pair rate, temporary server trouble.
RETRYABLE_CODES: Final[frozenset[int]] = frozenset(
    {
        1,  # API Unknown: possibly a server error
        2,  # API Service: temporary downtime / overload
        4,  # app reached its API call rate limit
        80007,  # WABA rate limit
        130429,  # Cloud API throughput reached
        131000,  # unknown error ("Something went wrong")
        131016,  # service temporarily unavailable
        131056,  # pair rate limit (same recipient)
        131057,  # account in maintenance mode
        133004,  # server temporarily unavailable
    }
)

REENGAGEMENT_CODE: Final = 131047
"""More than 24 hours since the user's last message: only a template may be sent."""

PAIR_RATE_CODE: Final = 131056
"""Too many messages to the same recipient: the sender waits 4^attempt s, as Meta advises,
instead of its usual exponential backoff (``Retry-After`` still wins when given)."""

BSUID_UNSUPPORTED_CODE: Final = 131062
"""This message cannot go to a business-scoped user id (authentication templates,
``bid_spec``): only a resend with ``to`` = a phone can deliver it."""

MARKETING_LIMIT_CODE: Final = 131049
MARKETING_OPT_OUT_CODE: Final = 131050
MARKETING_DISABLED_CODE: Final = 131063
CLASSIFICATION_LIMIT_CODE: Final = 131064
IDENTITY_MISMATCH_CODE: Final = 137000


@dataclass(frozen=True)
class Decision:
    """What the channel does about an error code (LIMITS.md §8.2)."""

    meaning: str
    retry: bool
    retry_after: float | None = None  # seconds before a retry can succeed, when known
    configuration: bool = False  # an operator must change a setting


DECISIONS: Final[Mapping[int, Decision]] = {
    MARKETING_LIMIT_CODE: Decision(
        "per-user marketing limit (arrives as a failed status)", False, retry_after=86400.0
    ),
    MARKETING_OPT_OUT_CODE: Decision(
        "the user stopped marketing messages (failed status); not until a resume", False
    ),
    BSUID_UNSUPPORTED_CODE: Decision(
        "this message cannot be sent to a BSUID; resent to the phone when one is known", False
    ),
    MARKETING_DISABLED_CODE: Decision(
        "marketing templates are disabled on the Cloud API for this account",
        False,
        configuration=True,
    ),
    CLASSIFICATION_LIMIT_CODE: Decision(
        "messaging limit after template classification violations; lifted by Meta", False
    ),
    IDENTITY_MISMATCH_CODE: Decision(
        "the recipient's identity key changed (identity change check)", False
    ),
}
"""The 2026 codes whose handling is more than "retryable or not"."""


class WhatsAppApiError(WhatsAppError):
    """An error answered by the Graph API (or a provider speaking its format).

    Attributes:
        code: Meta's error ``code`` (0 when the provider gave none).
        subcode: ``error_subcode`` when present (deprecated by Meta, still seen).
        message: the human-readable message.
        trace_id: ``fbtrace_id`` (or the provider's request id), to quote to support.
        http_status: HTTP status of the response (0 for a network error).
        details: ``error_data.details`` when present.
        retry_after: seconds from a ``Retry-After`` header, if any.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        trace_id: str | None = None,
        http_status: int = 0,
        details: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"({code}) {message}")
        self.code = code
        self.subcode = subcode
        self.message = message
        self.trace_id = trace_id
        self.http_status = http_status
        self.details = details
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Whether sending again later can succeed.

        Network errors (``http_status == 0``), HTTP 429 and 5xx are retryable whatever the
        code; otherwise the code decides, from :data:`RETRYABLE_CODES`.
        """
        if self.http_status == 0 or self.http_status == 429 or self.http_status >= 500:
            return True
        return self.code in RETRYABLE_CODES

    @property
    def decision(self) -> Decision | None:
        return DECISIONS.get(self.code)

    @property
    def bsuid_unsupported(self) -> bool:
        """This message cannot be addressed to a BSUID (131062)."""
        return self.code == BSUID_UNSUPPORTED_CODE

    @property
    def reengagement(self) -> bool:
        """The 24-hour customer-service window is closed (131047)."""
        return self.code == REENGAGEMENT_CODE

    @classmethod
    def from_response(
        cls,
        http_status: int,
        body: Any,
        *,
        retry_after: float | None = None,
    ) -> WhatsAppApiError:
        """Build the error from a Graph API error response body (``{"error": {...}}``)."""
        error: Mapping[str, Any] = {}
        if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
            error = body["error"]
        code = error.get("code")
        subcode = error.get("error_subcode")
        error_data = error.get("error_data")
        details = error_data.get("details") if isinstance(error_data, Mapping) else None
        return cls(
            code if isinstance(code, int) else 0,
            str(error.get("message") or f"HTTP {http_status}"),
            subcode=subcode if isinstance(subcode, int) else None,
            trace_id=error.get("fbtrace_id") if isinstance(error.get("fbtrace_id"), str) else None,
            http_status=http_status,
            details=details if isinstance(details, str) else None,
            retry_after=retry_after,
        )

    @classmethod
    def network(cls, cause: BaseException) -> WhatsAppApiError:
        """A transport failure: no HTTP answer (refused, reset, timeout)."""
        return cls(0, f"network error: {type(cause).__name__}: {cause}", http_status=0)
