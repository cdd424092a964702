"""The channel's errors share one base, and the module holding it stays free of Rasa."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.addons.whatsapp.errors import ConfigurationError, WhatsAppApiError, WhatsAppError
from bot.addons.whatsapp.inbound.parse import PayloadError
from bot.addons.whatsapp.ingress.relay import RelayRefused
from bot.addons.whatsapp.providers.serpro.registration import RegistrationError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "error",
    [
        ConfigurationError("WPP_APP_SECRET"),
        WhatsAppApiError(131000, "Something went wrong"),
        PayloadError("'entry' is missing or not a list"),
        RelayRefused(503, "queue_full"),
        RegistrationError("Serpro refused the credentials (401)", 3),
    ],
)
def test_every_error_of_the_channel_is_a_whatsapp_error(error: Exception) -> None:
    # One `except WhatsAppError` catches whatever the channel raises.
    assert isinstance(error, WhatsAppError)


def test_the_ingress_and_the_errors_load_without_rasa() -> None:
    # The ingress must start without Rasa installed, and it raises these errors.
    script = (
        "import sys, bot.addons.whatsapp.errors, bot.addons.whatsapp.ingress.app\n"
        "print(sorted(m for m in sys.modules if m == 'rasa' or m.startswith('rasa.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "[]"
