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
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal

from bot.addons.whatsapp.errors import ConfigurationError
from bot.addons.whatsapp.inbound.intents import InboundIntents
from bot.addons.whatsapp.limits import DAILY_RECIPIENTS_DEFAULT, MESSAGES_PER_SECOND_DEFAULT
from bot.addons.whatsapp.setting import (
    FLAG,
    ID,
    PATH,
    REAL,
    SETTING,
    URL,
    WHOLE,
    ProviderName,
    Setting,
    one_of,
    setting,
)

__all__ = ["InboundIntents", "WhatsAppSettings"]  # InboundIntents: inbound/intents.py

VoiceBackend = Literal["none", "local", "api"]

SILENCE_FALLBACK = (
    "Desculpe, tive um problema para responder agora. Tente de novo em alguns minutos."
)

PROVIDER = one_of(ProviderName)
VOICE_BACKEND = one_of(VoiceBackend)


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
    # One sender's share of the queue: more than a person types before the bot answers,
    # far less than the queue, so one flooding number cannot refuse everyone else.
    sender_queue_size: int = setting("WPP_SENDER_QUEUE_SIZE", 50, WHOLE, at_least=1)
    # A request refused before authentication (401, 403, 413, 415) is answered about this
    # late, at most this many at once and at most this many a second (inbound/tarpit.py):
    # a flood pays in time, not in our CPU.
    refusal_delay_ms: int = setting("WPP_REFUSAL_DELAY_MS", 1000, WHOLE, at_least=0)
    refusal_hold_max: int = setting("WPP_REFUSAL_HOLD_MAX", 256, WHOLE, at_least=0)
    refusal_rate: float = setting("WPP_REFUSAL_RATE", 20.0, REAL, at_least=0)
    dedup_ttl_seconds: float = setting("WPP_DEDUP_TTL_SECONDS", 604800.0, REAL, at_least=1)
    dedup_max_entries: int = setting("WPP_DEDUP_MAX_ENTRIES", 100_000, WHOLE, at_least=100)
    lease_seconds: float = setting("WPP_LEASE_SECONDS", 15.0, REAL, at_least=1)
    turn_thread: bool = setting("WPP_TURN_THREAD", True, FLAG)
    mark_read: bool = setting("WPP_MARK_READ", True, FLAG)
    edits_as_new_messages: bool = setting("WPP_EDITS_AS_NEW_MESSAGES", False, FLAG)
    typing_indicator: bool = setting("WPP_TYPING_INDICATOR", True, FLAG)
    send_rate_per_second: float = setting(
        "WPP_SEND_RATE_PER_SECOND", float(MESSAGES_PER_SECOND_DEFAULT), REAL, at_least=0.1
    )
    max_retries: int = setting("WPP_MAX_RETRIES", 8, WHOLE, at_least=0)
    http_timeout: float = setting("WPP_HTTP_TIMEOUT", 10.0, REAL, at_least=0.1)
    list_button_label: str = setting("WPP_LIST_BUTTON_LABEL", "Ver opções")
    preview_urls: bool = setting("WPP_PREVIEW_URLS", True, FLAG)
    # A text followed by reply buttons in one turn goes out as one (billed) message.
    merge_text_buttons: bool = setting("WPP_MERGE_TEXT_BUTTONS", True, FLAG)
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
    handoff_attachment_max_bytes: int = setting(
        "HANDOFF_ATTACHMENT_MAX_BYTES", 16 * 1024 * 1024, WHOLE, at_least=0
    )
    # Voice notes (docs/operators/voice.md): transcribed when a backend is configured.
    voice_backend: VoiceBackend = setting("WPP_VOICE_BACKEND", "none", VOICE_BACKEND)
    voice_model_path: str = setting("WPP_VOICE_MODEL_PATH", "")
    voice_model_sha256: str = setting("WPP_VOICE_MODEL_SHA256", "")
    voice_api_url: str = setting("WPP_VOICE_API_URL", "", URL)
    voice_api_token: str = setting("WPP_VOICE_API_TOKEN", "", secret=True)
    voice_api_model: str = setting("WPP_VOICE_API_MODEL", "whisper-1")
    voice_language: str = setting("WPP_VOICE_LANGUAGE", "pt")
    voice_timeout: float = setting("WPP_VOICE_TIMEOUT", 30.0, REAL, at_least=0.1)
    voice_max_seconds: float = setting("WPP_VOICE_MAX_SECONDS", 120.0, REAL, at_least=1)
    voice_workers: int = setting("WPP_VOICE_WORKERS", 1, WHOLE, at_least=1)
    voice_threads: int = setting("WPP_VOICE_THREADS", 1, WHOLE, at_least=1)
    voice_confirm_below: float = setting("WPP_VOICE_CONFIRM_BELOW", 0.5, REAL, at_least=0)
    # Notifications and campaigns (docs/operators/notifications.md).
    notify_token: str = setting("WPP_NOTIFY_TOKEN", "", secret=True)
    proactive_db_url: str = setting("WPP_PROACTIVE_DB_URL", "", secret=True)
    proactive_retention_days: float = setting(
        "WPP_PROACTIVE_RETENTION_DAYS", 90.0, REAL, at_least=1
    )
    stop_words: str = setting("WPP_STOP_WORDS", "SAIR,PARAR,CANCELAR")
    resume_words: str = setting("WPP_RESUME_WORDS", "VOLTAR")
    campaign_rate_per_second: float = setting(
        "WPP_CAMPAIGN_RATE_PER_SECOND", float(MESSAGES_PER_SECOND_DEFAULT), REAL, at_least=0.1
    )
    daily_recipient_limit: int = setting(
        "WPP_DAILY_RECIPIENT_LIMIT", DAILY_RECIPIENTS_DEFAULT, WHOLE, at_least=1
    )
    # How long a silent citizen's data is kept (docs/operators/personal-data.md); the channel's
    # own keys (identity map, preferences, handoff waits) may be given their own period.
    retention_days: float = setting("PRIVACY_RETENTION_DAYS", 90.0, REAL, at_least=1)
    channel_retention_days: float = setting("PRIVACY_CHANNEL_RETENTION_DAYS", 0.0, REAL, at_least=0)
    intents: InboundIntents = field(default_factory=InboundIntents)

    @property
    def channel_retention_seconds(self) -> float:
        """The channel keys' retention: ``PRIVACY_CHANNEL_RETENTION_DAYS``, or when it is 0
        ``PRIVACY_RETENTION_DAYS``."""
        return (self.channel_retention_days or self.retention_days) * 86400.0

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
