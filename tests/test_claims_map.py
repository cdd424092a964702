"""The claims map cannot rot: every test the documentation names as checking a claim exists.

Node ids are read from the pages and looked up in the test files' syntax trees (no
collection run: this stays fast), so renaming or deleting a named test fails here.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "docs" / "operators" / "failure-modes.md",
    ROOT / "docs" / "developers" / "tests.md",
]
NODE_ID = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+)*)`")


@cache
def defined(path: Path) -> frozenset[str]:
    """Every test a file defines, as ``name`` or ``Class::name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}::{item.name}")
    return frozenset(n for n in names if n.split("::")[-1].startswith("test_"))


def named(page: Path) -> list[tuple[str, str]]:
    """(file, test) for every node id the page names; test is "" for a whole file."""
    return [(f, t.removeprefix("::")) for f, t in NODE_ID.findall(page.read_text("utf-8"))]


def missing(node_ids: list[tuple[str, str]]) -> list[str]:
    gone = []
    for file, test in node_ids:
        path = ROOT / file
        if not path.exists() or (test and test not in defined(path)):
            gone.append(f"{file}::{test}" if test else file)
    return gone


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_node_id_the_pages_name_exists(page: Path) -> None:
    node_ids = named(page)
    assert len(node_ids) >= 10, f"{page.name} names almost no tests"
    assert missing(node_ids) == []


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the markdown tables in ``text`` (header and rule left out)."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]
    return [row for row in cells[1:] if set(row[0]) != {"-"}]


def test_every_failure_mode_names_the_tests_that_check_it() -> None:
    rows = table_rows(PAGES[0].read_text("utf-8"))
    assert len(rows) >= 12
    unchecked = [row[0] for row in rows if not NODE_ID.search(row[-1])]
    assert unchecked == []
    # No bare tick: a claim shows its tests, or says what is not tested.
    assert not any("✔" in cell for row in rows for cell in row)


def test_every_claim_of_the_map_names_its_tests() -> None:
    map_text = PAGES[1].read_text("utf-8").split("## The claims map", 1)[1]
    rows = [r for r in table_rows(map_text) if r[0] != "each row of the failure table"]
    assert [row[0] for row in rows if not NODE_ID.search(row[-1])] == []


def test_a_renamed_test_is_reported_missing() -> None:
    assert missing([("tests/test_claims_map.py", "test_every_node_id_the_pages_name_exists")]) == []
    assert missing([("tests/test_claims_map.py", "test_that_was_renamed")]) == [
        "tests/test_claims_map.py::test_that_was_renamed"
    ]
    assert missing([("tests/test_gone.py", "")]) == ["tests/test_gone.py"]
