"""Fixtures shared by the whole suite."""

from __future__ import annotations

import logging
import re
import subprocess
import time as _time
from pathlib import Path

import pytest

from bot.addons.whatsapp.logs import is_cpf
from tests.support.stack import LOG_DIR, MODEL, ROOT, VENV_BIN


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """The trained model in ``models/``, trained here if missing (``make test`` trains first)."""
    if not MODEL.exists():
        subprocess.run(
            [str(VENV_BIN / "rasa"), "train", "--fixed-model-name", "nova-aurora"],
            cwd=ROOT,
            check=True,
        )
    return MODEL


# --- No secret and no full phone number in any log line of the whole run ---------------
# Every log record of the test process is kept, and the logs of every process the tests
# started (artifacts/logs/) are read at the end; a secret used by the tests, a citizen's
# full phone number or BSUID, a CPF or an e-mail address in any of them fails the run.

TEST_SECRETS = (
    "test-app-secret",
    "test-verify-token",
    "test-access-token",
    "test-serpro-webhook-token",
    "e2e-app-secret",
    "e2e-access-token",
    "e2e-verify-token",
    "e2e-serpro-webhook-token",
    "browser-app-secret",
    "browser-access-token",
    "browser-verify-token",
    "serpro-secret",
    "cli-secret-token",
    "sim-app-secret",
    "sim-access-token",
)
# Citizens' numbers used by the tests: Brazilian mobiles and Meta's fixture users.
PHONE = re.compile(r"(?<!\d)(55\d{10,11}|1555000[2-9]\d{3})(?!\d)")
# Their business-scoped user ids (unmasked: ten digits or more after the country) and the
# fixtures' username.
BSUID = re.compile(r"\b[A-Z]{2}\.(?:ENT\.)?\d{10,}|@joana\.lima")
# CPFs, formatted or as 11 digits whose check digits make them one, and e-mail addresses
# (a masked one, "j***@exemplo.gov.br", has no name character before its "@").
CPF = re.compile(r"(?<![\d.])(\d{3}\.\d{3}\.\d{3}-\d{2}|\d{11})(?![\d-])")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage())
        except Exception:  # a record whose arguments do not format is not ours to judge
            self.lines.append(str(record.msg))


_KEEP = _Keep()
_STARTED = _time.time()


def leaks(lines: list[str]) -> list[str]:
    found = []
    for line in lines:
        if (
            any(secret in line for secret in TEST_SECRETS)
            or PHONE.search(line)
            or BSUID.search(line)
            or any(
                "." in m.group(0) or is_cpf(re.sub(r"\D", "", m.group(0)))
                for m in CPF.finditer(line)
            )
            or EMAIL.search(line)
        ):
            found.append(line[:300])
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    root = logging.getLogger()
    root.addHandler(_KEEP)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    lines = list(_KEEP.lines)
    for path in LOG_DIR.glob("*.log") if LOG_DIR.exists() else []:
        if path.stat().st_mtime >= _STARTED:
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    found = leaks(lines)
    if found:
        print(
            "\nLOG LEAKS: secrets, full phone numbers, CPFs or e-mails were logged:",
            *found[:20],
            sep="\n  ",
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
