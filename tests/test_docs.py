"""The documentation stays true: the site builds, links resolve, and what the pages name exists.

README.md and docs/**/*.md are read as plain Markdown, the way GitHub shows them and MkDocs
builds them, so an anchor must exist under both tools' slugs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from bot.addons.whatsapp.config import SETTINGS
from bot.addons.whatsapp.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
# `make x` in inline code, or a line of a code block starting with make x.
MAKE_TARGET = re.compile(r"(?:`|^)make ([a-z][a-z0-9-]*)", re.M)
VARIABLE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
# Upper-case names the pages mention that are not environment variables of this project.
NOT_VARIABLES: set[str] = set()
# The interpreter's own: make run prepends a folder to what the caller had.
INTERPRETER_VARIABLES = {"PYTHONPATH"}
# Runtime code whose environment reads must all be documented (tests and bench set their own).
CODE_DIRS = ("bot", "actions", "knowledge", "simulator", "scripts")
ENV_READ = re.compile(
    r"""(?:environ|env)\s*\.get\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|(?:environ|env)\s*\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\](?!\s*=[^=])"""  # not a write
    r"""|getenv\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|["']([A-Z][A-Z0-9_]+)["']\s+(?:not\s+)?in\s+env"""
)
CONFIG_REFERENCE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")


def text_of(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def prose_of(page: Path) -> str:
    """The page without code blocks or inline code, where a link is only text."""
    return INLINE_CODE.sub("", FENCE.sub("", text_of(page)))


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    kept = "".join(
        ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in {"L", "N", "M"}
    )
    return kept.replace(" ", "-")


def anchors_of(page: Path) -> tuple[set[str], set[str]]:
    """(GitHub anchors, MkDocs anchors) of a page's headings."""
    headings = HEADING.findall(FENCE.sub("", text_of(page)))
    mkdocs_titles = [re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h).replace("`", "") for h in headings]
    return {github_slug(h) for h in headings}, {slugify(h, "-") for h in mkdocs_titles}


def relative_links() -> list[tuple[Path, str]]:
    return [
        (page, target)
        for page in PAGES
        for target in LINK.findall(prose_of(page))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)
    ]


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-zA-Z][a-zA-Z0-9_-]*):", text, re.M))


def documented_variables() -> set[str]:
    text = (ROOT / "variables.env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.M))


def variables_read_by_the_code() -> set[str]:
    names = {row.variable for row in SETTINGS.values()}
    for folder in CODE_DIRS:
        for source in (ROOT / folder).rglob("*.py"):
            for match in ENV_READ.finditer(source.read_text(encoding="utf-8")):
                names.add(next(group for group in match.groups() if group))
    for config in ("credentials.yml", "docker-compose.yml"):
        names |= set(CONFIG_REFERENCE.findall((ROOT / config).read_text(encoding="utf-8")))
    return names - INTERPRETER_VARIABLES


def test_the_site_builds_with_every_page_in_the_navigation_and_no_warning(
    tmp_path: Path,
) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "operators" / "configuration" / "index.html").is_file()


def test_there_are_links_to_check() -> None:
    # Guards the link tests below against a pattern that silently matches nothing.
    assert len(relative_links()) > 40


@pytest.mark.parametrize(
    ("page", "target"),
    relative_links(),
    ids=lambda value: str(value.relative_to(ROOT)) if isinstance(value, Path) else value,
)
def test_every_relative_link_and_anchor_resolves(page: Path, target: str) -> None:
    path_part, _, anchor = target.partition("#")
    destination = (page.parent / path_part).resolve() if path_part else page
    assert destination.exists(), f"{page.relative_to(ROOT)} links to missing {path_part}"
    if anchor:
        assert destination.suffix == ".md", f"an anchor into a non-Markdown file: {target}"
        on_github, on_the_site = anchors_of(destination)
        assert anchor in on_github, f"#{anchor} is not a heading on GitHub: {sorted(on_github)}"
        assert anchor in on_the_site, f"#{anchor} is not a heading on the site"


def test_every_make_target_the_pages_name_exists() -> None:
    named = {
        (page.relative_to(ROOT).as_posix(), target)
        for page in PAGES
        for target in MAKE_TARGET.findall(text_of(page))
    }
    assert {target for _, target in named} >= {"run", "test", "test-fast", "docs"}
    missing = sorted((page, target) for page, target in named if target not in makefile_targets())
    assert missing == []


def test_every_variable_the_pages_name_is_in_variables_env_example() -> None:
    named = {
        (page.relative_to(ROOT).as_posix(), name)
        for page in PAGES
        for name in VARIABLE.findall(text_of(page))
    }
    unknown = sorted(
        (page, name)
        for page, name in named
        if name not in documented_variables() and name not in NOT_VARIABLES
    )
    assert unknown == []


def test_names_that_are_not_variables_are_still_in_the_compose_file() -> None:
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert all(name in compose for name in NOT_VARIABLES)


def test_every_variable_the_code_reads_is_in_variables_env_example() -> None:
    read = variables_read_by_the_code()
    assert {"WPP_APP_SECRET", "KNOWLEDGE_API_URL", "SIMULATOR_PORT", "LOG_LEVEL"} <= read
    assert sorted(read - documented_variables()) == []


def test_the_configuration_page_lists_exactly_the_variables_of_variables_env_example() -> None:
    page = text_of(ROOT / "docs" / "operators" / "configuration.md")
    listed = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", page, re.M))
    assert sorted(documented_variables() - listed) == []
    assert sorted(listed - documented_variables()) == []


def test_the_metrics_page_lists_every_metric_both_processes_serve() -> None:
    served = set()
    for ingress in (False, True):
        text = Metrics(ingress=ingress).render()
        served |= set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    page = text_of(ROOT / "docs" / "operators" / "metrics.md")
    listed = set(re.findall(r"^\| `(whatsapp_[a-z_]+)(?:\{[a-z,]+\})?` \|", page, re.M))
    assert listed == served


def test_the_benchmarks_page_shows_the_latest_results() -> None:
    page = text_of(ROOT / "docs" / "developers" / "benchmarks.md")
    results = (ROOT / "bench" / "results" / "results.md").read_text(encoding="utf-8")
    missing = [line for line in results.splitlines() if line.strip() and line not in page]
    assert missing == []


def test_the_readme_stays_a_front_door() -> None:
    readme = text_of(ROOT / "README.md")
    assert len(readme.splitlines()) <= 150
    mapped = {(ROOT / target).resolve() for target in LINK.findall(readme)}
    pages = {page.resolve() for page in (ROOT / "docs").rglob("*.md")} - {
        (ROOT / "docs" / "index.md").resolve()
    }
    assert sorted(str(page.relative_to(ROOT)) for page in pages - mapped) == []
