"""Channel settings: required variables named when missing, secrets out of repr."""

from __future__ import annotations

import pytest

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.errors import ConfigurationError

CLOUD_ENV = {
    "WPP_AUTHORIZATION_TOKEN": "tok-secret",
    "WPP_VERIFY_TOKEN": "verify-secret",
    "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
    "WPP_APP_SECRET": "app-secret",
}


def test_cloud_settings_from_the_environment_with_defaults() -> None:
    settings = WhatsAppSettings.from_credentials({}, CLOUD_ENV)
    assert settings.provider == "cloud"
    assert settings.api_version == "v21.0"
    assert settings.api_base_url == "https://graph.facebook.com"
    assert settings.access_token == "tok-secret"
    assert settings.send_rate_per_second == 80


def test_credentials_win_over_the_environment() -> None:
    settings = WhatsAppSettings.from_credentials({**{"access_token": "from-yaml"}}, CLOUD_ENV)
    assert settings.access_token == "from-yaml"


@pytest.mark.parametrize("missing", sorted(CLOUD_ENV))
def test_a_missing_cloud_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in CLOUD_ENV.items() if k != missing}
    with pytest.raises(ConfigurationError, match=missing):
        WhatsAppSettings.from_credentials({}, env)


def test_serpro_needs_its_own_variables_not_metas() -> None:
    with pytest.raises(ConfigurationError) as raised:
        WhatsAppSettings.from_credentials({"provider": "serpro"}, {"SERPRO_CLIENT_ID": "c"})
    message = str(raised.value)
    for name in ("SERPRO_CLIENT_SECRET", "SERPRO_WABA_ID", "SERPRO_WEBHOOK_TOKEN"):
        assert name in message
    assert "WPP_APP_SECRET" not in message


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("WPP_PROVIDER", "twilio", "WPP_PROVIDER must be 'cloud' or 'serpro'"),
        ("WPP_QUEUE_SIZE", "many", "WPP_QUEUE_SIZE must be a number"),
        ("WPP_MAX_CONCURRENCY", "0", "WPP_MAX_CONCURRENCY must be at least 1"),
        ("WPP_MARK_READ", "perhaps", "WPP_MARK_READ must be true or false"),
    ],
)
def test_invalid_values_are_named(variable: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        WhatsAppSettings.from_credentials({}, {**CLOUD_ENV, variable: value})


def test_secrets_never_appear_in_repr() -> None:
    env = {**CLOUD_ENV, "REDIS_URL": "redis://:pw-secret@localhost:6379/0"}
    text = repr(WhatsAppSettings.from_credentials({}, env))
    for secret in ("tok-secret", "verify-secret", "app-secret", "pw-secret"):
        assert secret not in text
    assert "100000000000002" in text


def test_inbound_intent_names_come_from_credentials() -> None:
    settings = WhatsAppSettings.from_credentials(
        {"intents": {"location": "enviar_local"}}, CLOUD_ENV
    )
    assert settings.intents.location == "enviar_local"
    assert settings.intents.media == "send_media"


def test_redeliveries_are_recognised_for_as_long_as_meta_redelivers() -> None:
    # Meta retries an unacknowledged webhook for up to 7 days (M-webhooks).
    assert WhatsAppSettings.from_credentials({}, CLOUD_ENV).dedup_ttl_seconds == 7 * 24 * 3600
    custom = WhatsAppSettings.from_credentials({}, {**CLOUD_ENV, "WPP_DEDUP_TTL_SECONDS": "3600"})
    assert custom.dedup_ttl_seconds == 3600
