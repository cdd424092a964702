"""Fixtures shared by the whole suite."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.stack import MODEL, ROOT, VENV_BIN


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
