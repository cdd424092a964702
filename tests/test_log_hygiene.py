"""The log-leak check that runs over the whole test session (tests/conftest.py) works."""

from __future__ import annotations

import importlib
import io
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.addons.whatsapp.logs import MaskKnownNumbers, mask_personal_data, mask_phone
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


def _formatted(log: logging.Logger, filter_: logging.Filter, emit: Any) -> str:
    """What a handler with ``filter_`` and a plain formatter writes for ``emit(log)``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(filter_)
    log.addHandler(handler)
    log.propagate = False
    try:
        emit(log)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    return stream.getvalue()


def _log_a_failure_naming(number: str) -> Any:
    def emit(log: logging.Logger) -> None:
        try:
            raise ConnectionError(f"could not deliver to {number}")
        except ConnectionError:
            log.exception("Turn failed")

    return emit


def test_a_known_number_inside_a_traceback_is_masked() -> None:
    from bot.addons.whatsapp.logs import MaskKnownNumbers

    mask = MaskKnownNumbers()
    mask.remember("5561933332222")
    text = _formatted(
        logging.getLogger("bot.test.traceback"), mask, _log_a_failure_naming("5561933332222")
    )
    assert "Traceback" in text and "could not deliver to 55*********22" in text
    assert not leaks(text.splitlines())


def test_the_action_server_and_knowledge_service_mask_numbers_in_tracebacks() -> None:
    module = importlib.import_module("bot.addons.whatsapp.masking")
    text = _formatted(
        logging.getLogger("knowledge.test"),
        module.MaskNumbers(),
        _log_a_failure_naming("+5561933332222"),
    )
    assert "Traceback" in text and "could not deliver to +55*********22" in text
    assert not leaks(text.splitlines())
    assert module.mask_numbers("sender 15550002222 at 12:30, port 5057") == (
        "sender 15*******22 at 12:30, port 5057"
    )


@pytest.mark.parametrize(
    ("code", "logger"), [("actions/__init__.py", "rasa_sdk"), ("knowledge/__main__.py", "aiohttp")]
)
def test_the_action_server_and_knowledge_service_install_the_blanket_mask(
    code: str, logger: str
) -> None:
    root = Path(__file__).resolve().parents[1]
    text = (root / code).read_text("utf-8")
    # At start-up, once logging is configured, on the server's own logger too.
    assert f'add_filter(MASK_NUMBERS, "{logger}")' in text


CPF, CPF_DIGITS, EMAIL = "529.982.247-25", "52998224725", "joana.lima@exemplo.gov.br"


def test_the_leak_check_catches_cpfs_and_emails_but_not_masked_ones() -> None:
    assert leaks([f"cpf {CPF}"]) and leaks([f"cpf {CPF_DIGITS}"]) and leaks([f"de {EMAIL}"])
    assert not leaks([mask_personal_data(f"cpf {CPF} {CPF_DIGITS} de {EMAIL}")])
    # Other ids of 11 digits (not a CPF's check digits) and timestamps are not flagged.
    assert not leaks(["media 12345678901 at 1795525361"])


def test_cpfs_and_emails_are_masked_in_anyones_log_lines_by_the_channel() -> None:
    mask = MaskKnownNumbers()
    record = logging.LogRecord("rasa.x", logging.INFO, __file__, 1, "%s %s %s", None, None)
    record.args = (CPF, CPF_DIGITS, EMAIL)
    assert mask.filter(record)
    assert record.getMessage() == "***.***.***-** *********** j***@exemplo.gov.br"


def test_the_action_server_and_knowledge_service_mask_cpfs_emails_and_bsuids() -> None:
    module = importlib.import_module("bot.addons.whatsapp.masking")
    assert module.mask_numbers(f"{CPF} {CPF_DIGITS} {EMAIL} BR.1502576394655843") == (
        "***.***.***-** 52*******25 j***@exemplo.gov.br BR.**************43"
    )
