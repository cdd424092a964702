"""Channel settings: read once at start-up from ``credentials.yml`` and the environment.

``credentials.yml`` only registers the channel (and may rename intents): every value,
secrets included, comes from the environment, and ``WPP_PROVIDER`` alone chooses the
provider, so one file serves both. A value given in ``credentials.yml`` (``${VAR}``
substituted by Rasa) still wins over the environment, except ``provider``, which must
agree with ``WPP_PROVIDER``. :meth:`WhatsAppSettings.from_credentials` checks that every
value the chosen provider needs is present and names the variable when one is missing or
invalid.

Each setting is declared once, as a field of :class:`WhatsAppSettings` built with
:func:`setting`: its credentials key (the field name), environment variable, default,
parser and bound. Reading, validation and error messages all come from that table.
"""

# ruff: noqa: RUF009  (setting() returns a dataclasses.field, not a shared default)
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal, TypeVar, cast, get_args

from bot.addons.whatsapp.errors import ConfigurationError
from bot.addons.whatsapp.limits import MESSAGES_PER_SECOND_DEFAULT

ProviderName = Literal["cloud", "serpro"]

SILENCE_FALLBACK = (
    "Desculpe, tive um problema para responder agora. Tente de novo em alguns minutos."
)

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Parser:
    """How a setting's text becomes its value.

    Attributes:
        convert: text (already stripped) to value; raises ``ValueError`` on bad text.
        expected: what the value must be, for the error message ("a number").
    """

    convert: Callable[[str], Any]
    expected: str


def _flag(text: str) -> bool:
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise ValueError(text)


def _provider(text: str) -> ProviderName:
    name = text.lower()
    if name in get_args(ProviderName):
        return cast(ProviderName, name)
    raise ValueError(text)


TEXT = Parser(str, "text")
URL = Parser(lambda text: text.rstrip("/"), "a URL")
PATH = Parser(lambda text: text.strip("/"), "a path")
FLAG = Parser(_flag, "true or false")
WHOLE = Parser(int, "a number")
ID = Parser(lambda text: int(text) if text else 0, "a number")  # empty: not set
REAL = Parser(float, "a number")
PROVIDER = Parser(_provider, "'cloud' or 'serpro'")


@dataclass(frozen=True)
class Setting:
    """One row of the settings table (the field name is the ``credentials.yml`` key).

    Attributes:
        variable: the environment variable read when ``credentials.yml`` gives no value.
        parser: how its text becomes the value.
        at_least: the smallest number accepted (numbers only).
        required_by: the provider that cannot start without a non-empty value.
    """

    variable: str
    parser: Parser = TEXT
    at_least: float | None = None
    required_by: ProviderName | None = None

    def parse(self, text: str) -> Any:
        """The value of ``text``; raises :class:`ConfigurationError` naming the variable."""
        try:
            value = self.parser.convert(text)
        except ValueError:
            raise ConfigurationError(
                f"{self.variable} must be {self.parser.expected}, not {text!r}"
            ) from None
        if self.at_least is not None and value < self.at_least:
            raise ConfigurationError(
                f"{self.variable} must be at least {self.at_least:g}, not {text!r}"
            )
        return value


T = TypeVar("T")
SETTING: Final = "setting"


def setting(
    variable: str,
    default: T,
    parser: Parser = TEXT,
    *,
    at_least: float | None = None,
    required_by: ProviderName | None = None,
    secret: bool = False,
) -> T:
    """A settings field: one row of the table (secrets are kept out of ``repr``)."""
    row = Setting(variable, parser, at_least, required_by)
    return field(default=default, repr=not secret, metadata={SETTING: row})


@dataclass(frozen=True)
class InboundIntents:
    """Intent names the channel gives the bot for messages that are not text.

    Designers write stories for these; each can be renamed in ``credentials.yml``
    (key ``intents``).
    """

    location: str = "share_location"
    media: str = "send_media"
    contacts: str = "unsupported_message"
    reaction: str = "unsupported_message"
    flow_reply: str = "unsupported_message"
    order: str = "unsupported_message"
    unsupported: str = "unsupported_message"

    @classmethod
    def from_credentials(cls, given: Any) -> InboundIntents:
        """The intents under ``intents:`` in ``credentials.yml``; an unknown key is named."""
        if not given:
            return cls()
        if not isinstance(given, Mapping):
            raise ConfigurationError(f"credentials.yml: 'intents' must be a mapping, not {given!r}")
        known = [spec.name for spec in fields(cls)]
        unknown = sorted(str(key) for key in given if key not in known)
        if unknown:
            raise ConfigurationError(
                f"credentials.yml: unknown key{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)} under 'intents' (known: {', '.join(known)})"
            )
        return cls(**{key: str(value) for key, value in given.items()})


@dataclass(frozen=True)
class WhatsAppSettings:
    """Everything the channel needs, validated. Secrets are kept out of ``repr``."""

    provider: ProviderName = setting("WPP_PROVIDER", "cloud", PROVIDER)
    access_token: str = setting("WPP_AUTHORIZATION_TOKEN", "", required_by="cloud", secret=True)
    verify_token: str = setting("WPP_VERIFY_TOKEN", "", required_by="cloud", secret=True)
    phone_number_id: str = setting("WPP_PHONE_NUMBER_IDENTIFIER", "", required_by="cloud")
    app_secret: str = setting("WPP_APP_SECRET", "", required_by="cloud", secret=True)
    api_version: str = setting("WPP_API_VERSION", "v26.0")
    api_base_url: str = setting("WPP_API_BASE_URL", "https://graph.facebook.com", URL)
    serpro_client_id: str = setting("SERPRO_CLIENT_ID", "", required_by="serpro")
    serpro_client_secret: str = setting(
        "SERPRO_CLIENT_SECRET", "", required_by="serpro", secret=True
    )
    serpro_waba_id: str = setting("SERPRO_WABA_ID", "", required_by="serpro")
    serpro_base_url: str = setting("SERPRO_BASE_URL", "https://api.whatsapp.serpro.gov.br", URL)
    serpro_webhook_token: str = setting(
        "SERPRO_WEBHOOK_TOKEN", "", required_by="serpro", secret=True
    )
    webhook_public_url: str = setting("WEBHOOK_PUBLIC_URL", "")
    # Serpro details not publicly confirmed (see README, "Deploy through Serpro").
    serpro_read_receipt_path: str = setting(
        "SERPRO_READ_RECEIPT_PATH", "requisicao/informacao-de-leitura", PATH
    )
    serpro_recipient_plus: bool = setting("SERPRO_RECIPIENT_PLUS", False, FLAG)
    serpro_token_ttl: float = setting("SERPRO_TOKEN_TTL", 600.0, REAL, at_least=1)
    redis_url: str = setting("REDIS_URL", "", secret=True)
    max_concurrency: int = setting("WPP_MAX_CONCURRENCY", 32, WHOLE, at_least=1)
    queue_size: int = setting("WPP_QUEUE_SIZE", 1000, WHOLE, at_least=1)
    dedup_ttl_seconds: float = setting("WPP_DEDUP_TTL_SECONDS", 604800.0, REAL, at_least=1)
    dedup_max_entries: int = setting("WPP_DEDUP_MAX_ENTRIES", 100_000, WHOLE, at_least=100)
    lease_seconds: float = setting("WPP_LEASE_SECONDS", 15.0, REAL, at_least=1)
    turn_thread: bool = setting("WPP_TURN_THREAD", True, FLAG)
    mark_read: bool = setting("WPP_MARK_READ", True, FLAG)
    typing_indicator: bool = setting("WPP_TYPING_INDICATOR", True, FLAG)
    send_rate_per_second: float = setting(
        "WPP_SEND_RATE_PER_SECOND", float(MESSAGES_PER_SECOND_DEFAULT), REAL, at_least=0.1
    )
    max_retries: int = setting("WPP_MAX_RETRIES", 8, WHOLE, at_least=0)
    http_timeout: float = setting("WPP_HTTP_TIMEOUT", 10.0, REAL, at_least=0.1)
    list_button_label: str = setting("WPP_LIST_BUTTON_LABEL", "Ver opções")
    preview_urls: bool = setting("WPP_PREVIEW_URLS", True, FLAG)
    reengagement_template: str = setting("WPP_REENGAGEMENT_TEMPLATE", "")
    reengagement_language: str = setting("WPP_REENGAGEMENT_LANGUAGE", "pt_BR")
    drain_timeout: float = setting("WPP_DRAIN_TIMEOUT", 25.0, REAL, at_least=0)
    silence_fallback: str = setting("WPP_SILENCE_FALLBACK", SILENCE_FALLBACK)
    # A thread another app took over (messaging_handovers) is the bot's again after this
    # long without traffic on it (README, "Usernames and business-scoped user IDs").
    handover_idle_seconds: float = setting("WPP_HANDOVER_IDLE_SECONDS", 3600.0, REAL, at_least=1)
    # Human handoff through Chatwoot (docs/operators/handoff.md); off while CHATWOOT_URL is "".
    chatwoot_url: str = setting("CHATWOOT_URL", "", URL)
    chatwoot_account_id: str = setting("CHATWOOT_ACCOUNT_ID", "")
    chatwoot_inbox_id: int = setting("CHATWOOT_INBOX_ID", 0, ID, at_least=0)
    chatwoot_api_token: str = setting("CHATWOOT_API_TOKEN", "", secret=True)
    chatwoot_webhook_secret: str = setting("CHATWOOT_WEBHOOK_SECRET", "", secret=True)
    chatwoot_signing_secret: str = setting("CHATWOOT_SIGNING_SECRET", "", secret=True)
    chatwoot_timeout: float = setting("CHATWOOT_TIMEOUT", 5.0, REAL, at_least=0.1)
    handoff_resume_words: str = setting("HANDOFF_RESUME_WORDS", "menu,voltar ao robô")
    handoff_agent_timeout: float = setting("HANDOFF_AGENT_TIMEOUT", 600.0, REAL, at_least=1)
    intents: InboundIntents = field(default_factory=InboundIntents)

    @property
    def relay_secret(self) -> str:
        """The secret the ingress and ``rasa run`` sign relays with: the one the provider
        signs webhooks with, which both processes already hold."""
        return self.app_secret if self.provider == "cloud" else self.serpro_webhook_token

    @classmethod
    def from_credentials(
        cls,
        credentials: Mapping[str, Any] | None,
        environ: Mapping[str, str] | None = None,
    ) -> WhatsAppSettings:
        """Build and validate the settings.

        Args:
            credentials: the channel's section of ``credentials.yml`` (already
                env-substituted by Rasa).
            environ: the environment (``os.environ`` by default), used for values
                ``credentials.yml`` does not give.

        Raises:
            ConfigurationError: naming the environment variable of a missing or invalid
                value, an unknown key under ``intents``, or both providers when
                ``credentials.yml``'s ``provider`` disagrees with ``WPP_PROVIDER``.
        """
        creds = dict(credentials or {})
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, row in SETTINGS.items():
            given = creds.get(name)
            text = str(given) if given is not None and str(given).strip() else env.get(row.variable)
            if text is not None:
                values[name] = row.parse(text.strip())
        provider: ProviderName = values.get("provider", "cloud")
        # WPP_PROVIDER alone chooses the provider; a file naming another one is a mistake
        # (a Serpro deployment serving the Cloud API), not a choice.
        chosen = SETTINGS["provider"].parse(env.get("WPP_PROVIDER", "cloud").strip())
        if provider != chosen:
            raise ConfigurationError(
                f"The WhatsApp channel cannot start: credentials.yml says provider: {provider} "
                f"but WPP_PROVIDER is {chosen}"
                f"{'' if 'WPP_PROVIDER' in env else ' (unset: the default)'}; "
                "WPP_PROVIDER alone chooses the provider: set it to the one you mean and "
                "remove 'provider' from credentials.yml"
            )
        missing = [
            row.variable
            for name, row in SETTINGS.items()
            if row.required_by == provider and not values.get(name)
        ]
        if values.get("chatwoot_url"):
            missing += [
                row.variable
                for name, row in SETTINGS.items()
                if name in HANDOFF_REQUIRED and not values.get(name)
            ]
        if missing:
            raise ConfigurationError(
                f"The WhatsApp channel ({provider}) cannot start: set the environment "
                f"variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"(see variables.env.example)"
            )
        return cls(**values, intents=InboundIntents.from_credentials(creds.get("intents")))


SETTINGS: Final[dict[str, Setting]] = {
    spec.name: spec.metadata[SETTING]
    for spec in fields(WhatsAppSettings)
    if SETTING in spec.metadata
}
"""The settings table: credentials key (field name) -> its row."""

# credentials.yml key -> environment variable, for the values a provider requires.
CLOUD_REQUIRED: Final = {
    name: row.variable for name, row in SETTINGS.items() if row.required_by == "cloud"
}
# What a handoff cannot work without, once CHATWOOT_URL is set.
HANDOFF_REQUIRED: Final = (
    "chatwoot_account_id",
    "chatwoot_inbox_id",
    "chatwoot_api_token",
    "chatwoot_webhook_secret",
)
SERPRO_REQUIRED: Final = {
    name: row.variable for name, row in SETTINGS.items() if row.required_by == "serpro"
}
