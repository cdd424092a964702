"""Examples that run: every command the documentation shows is run by a test, or is marked
with what it needs that the test machines do not have (a Meta, Serpro or Chatwoot account,
Docker, an audited model)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_claims_map import NODE_ID, missing

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL_BLOCK = re.compile(
    r"(?:^(<!-- needs: .+? -->)\n)?^```(?:bash|sh|console|shell)\n(.*?)^```", re.M | re.S
)
PYTHON_M = re.compile(r"`python -m ([a-zA-Z_][\w.]*)[^`]*`")

# Commands of unmarked shell blocks, and the tests that run them.
RUN_BY = {
    "make run": "tests/test_endpoints.py::test_make_run_puts_the_ingress_in_front_of_rasa",
    "make test": ".ci/run",  # CI runs it on every submission
}


def shell_blocks() -> list[tuple[str, str | None, list[str]]]:
    blocks = []
    for page in PAGES:
        for marker, body in SHELL_BLOCK.findall(page.read_text("utf-8")):
            commands = [line.split("#", 1)[0].strip() for line in body.splitlines() if line.strip()]
            blocks.append((str(page.relative_to(ROOT)), marker or None, commands))
    return blocks


def test_every_shell_block_is_run_by_a_test_or_says_what_it_needs() -> None:
    unrun = [
        (page, command)
        for page, marker, commands in shell_blocks()
        if marker is None
        for command in commands
        if command not in RUN_BY
    ]
    assert unrun == []


def test_the_tests_that_run_the_shown_commands_exist() -> None:
    node_ids = [NODE_ID.match(f"`{n}`") for n in RUN_BY.values() if n.startswith("tests/")]
    assert all(node_ids)
    named = [(m.group(1), m.group(2).removeprefix("::")) for m in node_ids if m is not None]
    assert missing(named) == []
    assert (ROOT / ".ci" / "run").read_text("utf-8").count("make test") >= 1


def modules_shown() -> list[str]:
    found = {m for page in PAGES for m in PYTHON_M.findall(page.read_text("utf-8"))}
    return sorted(found)


def test_the_docs_show_the_project_commands() -> None:
    assert {"bot.addons.whatsapp.ingress", "knowledge"} <= set(modules_shown())


@pytest.mark.parametrize("module", modules_shown())
def test_every_python_command_shown_runs(module: str) -> None:
    """``--help`` starts the command for real (its imports, its argument parser) without
    credentials; a module that cannot start, or that was renamed, fails here."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()
