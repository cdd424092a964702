"""Channel settings: read once at start-up from ``credentials.yml`` and the environment.

Secrets are referenced in ``credentials.yml`` as ``${VAR}`` (Rasa substitutes them and
stops with the variable's name when one is undefined); everything else has a default and
may be overridden by an environment variable. :meth:`WhatsAppSettings.from_credentials`
checks that every value the chosen provider needs is present and names the variable
when one is missing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.addons.whatsapp.errors import ConfigurationError
from bot.addons.whatsapp.limits import MESSAGES_PER_SECOND_DEFAULT

Provider = Literal["cloud", "serpro"]

SILENCE_FALLBACK = (
    "Desculpe, tive um problema para responder agora. Tente de novo em alguns minutos."
)

# credentials.yml key -> environment variable, for the values a provider requires.
CLOUD_REQUIRED = {
    "access_token": "WPP_AUTHORIZATION_TOKEN",
    "verify_token": "WPP_VERIFY_TOKEN",
    "phone_number_id": "WPP_PHONE_NUMBER_IDENTIFIER",
    "app_secret": "WPP_APP_SECRET",
}
SERPRO_REQUIRED = {
    "serpro_client_id": "SERPRO_CLIENT_ID",
    "serpro_client_secret": "SERPRO_CLIENT_SECRET",
    "serpro_waba_id": "SERPRO_WABA_ID",
    "serpro_webhook_token": "SERPRO_WEBHOOK_TOKEN",
}
# Optional values: credentials key -> (environment variable, default).
OPTIONAL: dict[str, tuple[str, str]] = {
    "provider": ("WPP_PROVIDER", "cloud"),
    "api_version": ("WPP_API_VERSION", "v21.0"),
    "api_base_url": ("WPP_API_BASE_URL", "https://graph.facebook.com"),
    "serpro_base_url": ("SERPRO_BASE_URL", "https://api.whatsapp.serpro.gov.br"),
    "webhook_public_url": ("WEBHOOK_PUBLIC_URL", ""),
    # Serpro details not publicly confirmed (see README, "Deploy through Serpro").
    "serpro_read_receipt_path": ("SERPRO_READ_RECEIPT_PATH", "requisicao/informacao-de-leitura"),
    "serpro_recipient_plus": ("SERPRO_RECIPIENT_PLUS", "false"),
    "serpro_token_ttl": ("SERPRO_TOKEN_TTL", "600"),
    "redis_url": ("REDIS_URL", ""),
    "max_concurrency": ("WPP_MAX_CONCURRENCY", "32"),
    "queue_size": ("WPP_QUEUE_SIZE", "1000"),
    "dedup_ttl_seconds": ("WPP_DEDUP_TTL_SECONDS", "604800"),
    "dedup_max_entries": ("WPP_DEDUP_MAX_ENTRIES", "100000"),
    "lease_seconds": ("WPP_LEASE_SECONDS", "15"),
    "turn_thread": ("WPP_TURN_THREAD", "true"),
    "mark_read": ("WPP_MARK_READ", "true"),
    "typing_indicator": ("WPP_TYPING_INDICATOR", "true"),
    "send_rate_per_second": ("WPP_SEND_RATE_PER_SECOND", str(MESSAGES_PER_SECOND_DEFAULT)),
    "max_retries": ("WPP_MAX_RETRIES", "8"),
    "http_timeout": ("WPP_HTTP_TIMEOUT", "10"),
    "list_button_label": ("WPP_LIST_BUTTON_LABEL", "Ver opções"),
    "preview_urls": ("WPP_PREVIEW_URLS", "true"),
    "reengagement_template": ("WPP_REENGAGEMENT_TEMPLATE", ""),
    "reengagement_language": ("WPP_REENGAGEMENT_LANGUAGE", "pt_BR"),
    "drain_timeout": ("WPP_DRAIN_TIMEOUT", "25"),
    "silence_fallback": ("WPP_SILENCE_FALLBACK", SILENCE_FALLBACK),
}

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


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


@dataclass(frozen=True)
class WhatsAppSettings:
    """Everything the channel needs, validated. Secrets are kept out of ``repr``."""

    provider: Provider = "cloud"
    access_token: str = field(default="", repr=False)
    verify_token: str = field(default="", repr=False)
    phone_number_id: str = ""
    app_secret: str = field(default="", repr=False)
    api_version: str = "v21.0"
    api_base_url: str = "https://graph.facebook.com"
    serpro_client_id: str = ""
    serpro_client_secret: str = field(default="", repr=False)
    serpro_waba_id: str = ""
    serpro_base_url: str = "https://api.whatsapp.serpro.gov.br"
    serpro_webhook_token: str = field(default="", repr=False)
    webhook_public_url: str = ""
    serpro_read_receipt_path: str = "requisicao/informacao-de-leitura"
    serpro_recipient_plus: bool = False
    serpro_token_ttl: float = 600.0
    redis_url: str = field(default="", repr=False)
    max_concurrency: int = 32
    queue_size: int = 1000
    dedup_ttl_seconds: float = 86400.0
    dedup_max_entries: int = 100_000
    lease_seconds: float = 15.0
    turn_thread: bool = True
    mark_read: bool = True
    typing_indicator: bool = True
    send_rate_per_second: float = float(MESSAGES_PER_SECOND_DEFAULT)
    max_retries: int = 8
    http_timeout: float = 10.0
    list_button_label: str = "Ver opções"
    preview_urls: bool = True
    reengagement_template: str = ""
    reengagement_language: str = "pt_BR"
    drain_timeout: float = 25.0
    silence_fallback: str = SILENCE_FALLBACK
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
            ConfigurationError: naming the environment variable of a missing or invalid value.
        """
        creds = dict(credentials or {})
        env = os.environ if environ is None else environ

        def value(key: str, variable: str, default: str = "") -> str:
            given = creds.get(key)
            if given is None or str(given).strip() == "":
                return env.get(variable, default).strip()
            return str(given).strip()

        raw: dict[str, str] = {
            key: value(key, variable, default) for key, (variable, default) in OPTIONAL.items()
        }
        provider = raw["provider"].lower()
        if provider not in ("cloud", "serpro"):
            raise ConfigurationError(f"WPP_PROVIDER must be 'cloud' or 'serpro', not {provider!r}")
        required = CLOUD_REQUIRED if provider == "cloud" else SERPRO_REQUIRED
        secrets = {
            key: value(key, variable)
            for key, variable in {**CLOUD_REQUIRED, **SERPRO_REQUIRED}.items()
        }
        missing = [variable for key, variable in required.items() if not secrets[key]]
        if missing:
            raise ConfigurationError(
                f"The WhatsApp channel ({provider}) cannot start: set the environment "
                f"variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"(see variables.env.example)"
            )

        def number(key: str, kind: type[int] | type[float], minimum: float) -> Any:
            variable = OPTIONAL[key][0]
            try:
                result = kind(raw[key])
            except ValueError:
                raise ConfigurationError(f"{variable} must be a number, not {raw[key]!r}") from None
            if result < minimum:
                raise ConfigurationError(f"{variable} must be at least {minimum}")
            return result

        def flag(key: str) -> bool:
            text = raw[key].lower()
            if text in TRUE_WORDS:
                return True
            if text in FALSE_WORDS:
                return False
            raise ConfigurationError(f"{OPTIONAL[key][0]} must be true or false, not {raw[key]!r}")

        intents = InboundIntents(**{k: str(v) for k, v in dict(creds.get("intents") or {}).items()})
        return cls(
            provider=provider,  # type: ignore[arg-type]
            api_version=raw["api_version"],
            api_base_url=raw["api_base_url"].rstrip("/"),
            serpro_base_url=raw["serpro_base_url"].rstrip("/"),
            webhook_public_url=raw["webhook_public_url"],
            serpro_read_receipt_path=raw["serpro_read_receipt_path"].strip("/"),
            serpro_recipient_plus=flag("serpro_recipient_plus"),
            serpro_token_ttl=number("serpro_token_ttl", float, 1),
            redis_url=raw["redis_url"],
            max_concurrency=number("max_concurrency", int, 1),
            queue_size=number("queue_size", int, 1),
            dedup_ttl_seconds=number("dedup_ttl_seconds", float, 1),
            dedup_max_entries=number("dedup_max_entries", int, 100),
            lease_seconds=number("lease_seconds", float, 1),
            turn_thread=flag("turn_thread"),
            mark_read=flag("mark_read"),
            typing_indicator=flag("typing_indicator"),
            send_rate_per_second=number("send_rate_per_second", float, 0.1),
            max_retries=number("max_retries", int, 0),
            http_timeout=number("http_timeout", float, 0.1),
            list_button_label=raw["list_button_label"],
            preview_urls=flag("preview_urls"),
            reengagement_template=raw["reengagement_template"],
            reengagement_language=raw["reengagement_language"],
            drain_timeout=number("drain_timeout", float, 0),
            silence_fallback=raw["silence_fallback"],
            intents=intents,
            **secrets,
        )
