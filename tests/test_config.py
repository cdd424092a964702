"""Channel settings: required variables named when missing, secrets out of repr."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from rasa.shared.exceptions import InvalidConfigException

from bot.addons.whatsapp.channel import WhatsAppInput
from bot.addons.whatsapp.config import SETTINGS, WhatsAppSettings
from bot.addons.whatsapp.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]

CLOUD_ENV = {
    "WPP_AUTHORIZATION_TOKEN": "tok-secret",
    "WPP_VERIFY_TOKEN": "verify-secret",
    "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
    "WPP_APP_SECRET": "app-secret",
}


def test_cloud_settings_from_the_environment_with_defaults() -> None:
    settings = WhatsAppSettings.from_credentials({}, CLOUD_ENV)
    assert settings.provider == "cloud"
    assert settings.api_version == "v26.0"
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
    env = {"WPP_PROVIDER": "serpro", "SERPRO_CLIENT_ID": "c"}
    with pytest.raises(ConfigurationError) as raised:
        WhatsAppSettings.from_credentials({}, env)
    message = str(raised.value)
    for name in ("SERPRO_CLIENT_SECRET", "SERPRO_WABA_ID", "SERPRO_WEBHOOK_TOKEN"):
        assert name in message
    assert "WPP_APP_SECRET" not in message


SERPRO_ENV = {
    "WPP_PROVIDER": "serpro",
    "SERPRO_CLIENT_ID": "5561999990000",
    "SERPRO_CLIENT_SECRET": "serpro-secret",
    "SERPRO_WABA_ID": "waba",
    "SERPRO_WEBHOOK_TOKEN": "hook-secret",
}


def shipped_credentials() -> dict[str, object] | None:
    document = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))
    section: dict[str, object] | None = document["bot.addons.whatsapp.WhatsAppInput"]
    return section


@pytest.mark.parametrize(("env", "provider"), [(CLOUD_ENV, "cloud"), (SERPRO_ENV, "serpro")])
def test_wpp_provider_alone_chooses_the_provider_of_the_one_credentials_file(
    env: dict[str, str], provider: str
) -> None:
    settings = WhatsAppSettings.from_credentials(shipped_credentials(), env)
    assert settings.provider == provider
    assert settings.relay_secret == env.get("WPP_APP_SECRET", env.get("SERPRO_WEBHOOK_TOKEN"))


def test_a_credentials_provider_that_disagrees_with_wpp_provider_names_both() -> None:
    with pytest.raises(ConfigurationError) as raised:
        WhatsAppSettings.from_credentials({"provider": "cloud"}, {**SERPRO_ENV, **CLOUD_ENV})
    assert str(raised.value) == (
        "The WhatsApp channel cannot start: credentials.yml says provider: cloud but "
        "WPP_PROVIDER is serpro; WPP_PROVIDER alone chooses the provider: set it to the one "
        "you mean and remove 'provider' from credentials.yml"
    )


def test_an_unset_wpp_provider_is_cloud_and_a_serpro_file_disagrees_with_it() -> None:
    env = {k: v for k, v in SERPRO_ENV.items() if k != "WPP_PROVIDER"}
    with pytest.raises(
        ConfigurationError,
        match=r"provider: serpro but WPP_PROVIDER is cloud \(unset: the default\)",
    ):
        WhatsAppSettings.from_credentials({"provider": "serpro"}, env)


def test_a_credentials_provider_that_agrees_is_accepted_in_any_case() -> None:
    settings = WhatsAppSettings.from_credentials({"provider": "Serpro"}, SERPRO_ENV)
    assert settings.provider == "serpro"


def test_rasa_run_gets_the_disagreement_as_its_own_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SERPRO_ENV.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidConfigException, match="provider: cloud but WPP_PROVIDER is serpro"):
        WhatsAppInput.from_credentials({"provider": "cloud"})


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("WPP_PROVIDER", "twilio", "WPP_PROVIDER must be 'cloud' or 'serpro'"),
        ("WPP_QUEUE_SIZE", "many", "WPP_QUEUE_SIZE must be a number"),
        ("WPP_MAX_CONCURRENCY", "0", "WPP_MAX_CONCURRENCY must be at least 1, not '0'"),
        ("WPP_HTTP_TIMEOUT", "0.01", "WPP_HTTP_TIMEOUT must be at least 0.1, not '0.01'"),
        ("WPP_MARK_READ", "perhaps", "WPP_MARK_READ must be true or false, not 'perhaps'"),
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


def test_an_invalid_value_from_credentials_names_its_variable() -> None:
    with pytest.raises(ConfigurationError, match="WPP_QUEUE_SIZE must be a number, not 'lots'"):
        WhatsAppSettings.from_credentials({"queue_size": "lots"}, CLOUD_ENV)


def test_values_are_parsed_by_their_kind() -> None:
    env = {
        **CLOUD_ENV,
        "WPP_API_BASE_URL": "http://127.0.0.1:9000/",
        "SERPRO_READ_RECEIPT_PATH": "/requisicao/mensagem/status/",
        "WPP_MARK_READ": "off",
        "WPP_MAX_CONCURRENCY": " 4 ",
        "WPP_LEASE_SECONDS": "2.5",
    }
    settings = WhatsAppSettings.from_credentials({"provider": "CLOUD"}, env)
    assert settings.provider == "cloud"
    assert settings.api_base_url == "http://127.0.0.1:9000"
    assert settings.serpro_read_receipt_path == "requisicao/mensagem/status"
    assert settings.mark_read is False
    assert settings.max_concurrency == 4
    assert settings.lease_seconds == 2.5


def test_an_unknown_intent_key_is_named() -> None:
    with pytest.raises(ConfigurationError, match="unknown key locaton under 'intents'"):
        WhatsAppSettings.from_credentials({"intents": {"locaton": "enviar_local"}}, CLOUD_ENV)


def example_values() -> dict[str, str]:
    values = {}
    for line in (ROOT / "variables.env.example").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_setting_is_documented_with_its_default(name: str) -> None:
    row = SETTINGS[name]
    examples = example_values()
    assert row.variable in examples, f"{row.variable} is missing from variables.env.example"
    default = WhatsAppSettings.__dataclass_fields__[name].default
    assert row.parse(examples[row.variable]) == default


def test_the_rasa_channel_raises_rasas_own_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # rasa run prints its own exception types as one line; anything else as a traceback.
    for variable, value in CLOUD_ENV.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("WPP_QUEUE_SIZE", "many")
    with pytest.raises(InvalidConfigException, match="WPP_QUEUE_SIZE must be a number") as raised:
        WhatsAppInput.from_credentials({"provider": "cloud"})
    assert isinstance(raised.value.__cause__, ConfigurationError)


def test_redeliveries_are_recognised_for_as_long_as_meta_redelivers() -> None:
    # Meta retries an unacknowledged webhook for up to 7 days (M-webhooks).
    assert WhatsAppSettings.from_credentials({}, CLOUD_ENV).dedup_ttl_seconds == 7 * 24 * 3600
    custom = WhatsAppSettings.from_credentials({}, {**CLOUD_ENV, "WPP_DEDUP_TTL_SECONDS": "3600"})
    assert custom.dedup_ttl_seconds == 3600
