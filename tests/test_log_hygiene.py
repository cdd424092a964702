"""The log-leak check that runs over the whole test session (tests/conftest.py) works."""

from __future__ import annotations

import logging

import pytest

from bot.addons.whatsapp.logs import mask_phone
from tests.conftest import leaks


def test_the_leak_check_catches_secrets_and_full_numbers_but_not_masked_ones() -> None:
    assert leaks(["sent to 5561999998888"]) and leaks(["token test-app-secret"])
    assert leaks(["user 15550002222 wrote"])
    assert not leaks([f"sent to {mask_phone('5561999998888')}", "phone_number_id 100000000000002"])


def test_channel_logs_mask_numbers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger("bot.test").info("Send to %s failed", mask_phone("5561999998888"))
    assert "5561999998888" not in caplog.text and "55*********88" in caplog.text


def test_numbers_the_channel_has_seen_are_masked_in_anyones_log_lines() -> None:
    from bot.addons.whatsapp.logs import MaskKnownNumbers

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep()
    mask = MaskKnownNumbers()
    handler.addFilter(mask)
    log = logging.getLogger("rasa.core.processor.test")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        mask.remember("5561933332222")
        log.warning("Circuit breaker tripped for sender '%s'", "5561933332222")
        log.warning("media 100000000000101 for +5561933332222, wamid.HBgM123")
    finally:
        log.removeHandler(handler)
    assert records == [
        "Circuit breaker tripped for sender '55*********22'",
        "media 100000000000101 for +55*********22, wamid.HBgM123",
    ]
    assert not leaks(records)


def test_rasa_false_alarm_about_entity_payloads_is_dropped_but_real_missing_slots_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from rasa.core.nlg.interpolator import interpolate_text
    from rasa.utils.log_utils import configure_structlog

    from bot.addons.whatsapp.logs import install_log_masking

    configure_structlog(logging.INFO)  # as `rasa run` does
    install_log_masking()
    with caplog.at_level(logging.INFO, logger="rasa.core.nlg.interpolator"):
        payload = '/choose_service{"service":"iptu"}'
        assert interpolate_text(payload, {"service": None}) == payload
        assert caplog.records == []
        assert interpolate_text("Olá {nome}", {}) == "Olá {nome}"
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert '"placeholder_key": "nome"' in caplog.records[0].getMessage()
