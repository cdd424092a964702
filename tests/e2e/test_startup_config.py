"""`rasa run` with a bad WhatsApp configuration stops with one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.stack import VENV_BIN, free_port

pytestmark = pytest.mark.e2e

SECRETS = {
    "WPP_AUTHORIZATION_TOKEN": "e2e-access-token",
    "WPP_VERIFY_TOKEN": "e2e-verify-token",
    "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
}


def test_a_missing_variable_stops_rasa_run_with_one_line_naming_it(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.yml"
    credentials.write_text("bot.addons.whatsapp.WhatsAppInput:\n  provider: cloud\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WPP_", "SERPRO_"))}
    argv = [str(VENV_BIN / "rasa"), "run", "--credentials", str(credentials)]
    done = subprocess.run(
        [*argv, "--port", str(free_port()), "--interface", "127.0.0.1"],
        env={**env, **SECRETS},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if "WPP_APP_SECRET" in line]
    assert "InvalidConfigException: The WhatsApp channel (cloud) cannot start" in line


def test_a_credentials_provider_other_than_wpp_provider_stops_rasa_run_naming_both(
    tmp_path: Path,
) -> None:
    credentials = tmp_path / "credentials.yml"
    credentials.write_text("bot.addons.whatsapp.WhatsAppInput:\n  provider: cloud\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WPP_", "SERPRO_"))}
    argv = [str(VENV_BIN / "rasa"), "run", "--credentials", str(credentials)]
    done = subprocess.run(
        [*argv, "--port", str(free_port()), "--interface", "127.0.0.1"],
        env={**env, **SECRETS, "WPP_APP_SECRET": "s", "WPP_PROVIDER": "serpro"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if "WPP_PROVIDER" in line]
    assert "InvalidConfigException: The WhatsApp channel cannot start: credentials.yml " in line
    assert "says provider: cloud but WPP_PROVIDER is serpro" in line
