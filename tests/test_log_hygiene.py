"""The log-leak check that runs over the whole test session (tests/conftest.py) works."""

from __future__ import annotations

import logging

import pytest

from bot.addons.whatsapp.logsafe import mask_phone
from tests.conftest import leaks


def test_the_leak_check_catches_secrets_and_full_numbers_but_not_masked_ones() -> None:
    assert leaks(["sent to 5561999998888"]) and leaks(["token test-app-secret"])
    assert leaks(["user 15550002222 wrote"])
    assert not leaks([f"sent to {mask_phone('5561999998888')}", "phone_number_id 100000000000002"])


def test_channel_logs_mask_numbers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger("bot.test").info("Send to %s failed", mask_phone("5561999998888"))
    assert "5561999998888" not in caplog.text and "55*********88" in caplog.text
