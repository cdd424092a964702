"""The package's layout holds: each folder imports only what its ``__init__`` allows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bot" / "addons" / "whatsapp"
ROOT = PACKAGE.parents[2]

# folder -> top-level modules none of its modules may load (directly or through another)
FORBIDDEN = {
    "inbound": ("rasa", "sanic", "aiohttp"),
    "outbound": ("rasa", "sanic"),
    "ingress": ("rasa", "sanic", "tensorflow"),
}


def _modules(folder: str) -> list[str]:
    return sorted(
        "bot.addons.whatsapp." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for path in (PACKAGE / folder).rglob("*.py")
        if path.name != "__main__.py"
    )


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_a_folder_loads_none_of_what_its_init_forbids(folder: str) -> None:
    modules = _modules(folder)
    assert modules, folder
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(set(FORBIDDEN[folder]) & set(loaded)) == []


def test_no_module_of_the_package_is_over_300_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 320
    }
    assert long == {}
