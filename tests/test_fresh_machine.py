"""A fresh machine: `make test` installs the Debian packages the suite runs, or names them;
`make run` shows our lines, not third-party deprecation noise."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from scripts import devstack
from tests.support.system import require_program

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_DEPS = ROOT / "scripts" / "system-deps.sh"
BASH = "/bin/bash"


# Run as `nobody`: without root the script must name the packages, never call apt-get.
AS_NOBODY = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def run_system_deps(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AS_NOBODY, BASH, str(SYSTEM_DEPS)],
        env={"PATH": path},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_without_root_the_missing_packages_are_named_on_one_line(tmp_path: Path) -> None:
    result = run_system_deps(str(tmp_path))  # an empty PATH: nothing installed
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    # (nginx is looked for in /usr/sbin too, where Debian installs it, whatever the PATH)
    assert "chromium" in lines[0] and "redis-server" in lines[0]


def test_with_the_packages_installed_nothing_is_done() -> None:
    result = run_system_deps(os.environ["PATH"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_make_test_and_ci_install_the_system_packages_first() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "bash scripts/system-deps.sh" in makefile
    test_line = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert test_line.split(":")[1].split()[0] == "system-deps"
    unit_line = next(line for line in makefile.splitlines() if line.startswith("test-unit:"))
    assert "system-deps" in unit_line.split("##")[0]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert commands == ["make test"]


def test_a_missing_program_fails_the_test_naming_it_and_its_package() -> None:
    with pytest.raises(
        pytest.fail.Exception,
        match=r"^no-such-server not found on PATH: .*"
        r"Debian package no-such-package",
    ):
        require_program("no-such-server", "no-such-package")
    assert require_program("redis-server", "redis-server").endswith("/redis-server")


NOISY = """
import warnings
import sanic  # adds a `once` filter for DeprecationWarning, as in rasa run
import pkg_resources  # DeprecationWarning on import
from sqlalchemy.ext.declarative import declarative_base
declarative_base()  # MovedIn20Warning, a DeprecationWarning, as rasa's tracker store
warnings.warn("the domain has no responses", UserWarning)
warnings.warn("this argument goes away in Rasa 4", FutureWarning)
"""


def run_noisy(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", NOISY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    return result.stderr


def test_make_run_hides_third_party_deprecations_and_keeps_other_warnings() -> None:
    base = {"PATH": os.environ["PATH"]}
    assert "DeprecationWarning" in run_noisy(base)  # the noise this filter is for
    quiet = run_noisy(devstack.with_quiet_warnings(base))
    assert "Deprecat" not in quiet and "MovedIn20Warning" not in quiet
    assert "UserWarning: the domain has no responses" in quiet
    assert "FutureWarning: this argument goes away in Rasa 4" in quiet


def test_the_quiet_warnings_path_comes_before_any_pythonpath_already_set() -> None:
    env = devstack.with_quiet_warnings({"PYTHONPATH": "/opt/plugins", "A": "1"})
    assert env == {"PYTHONPATH": f"{devstack.QUIET_WARNINGS}{os.pathsep}/opt/plugins", "A": "1"}
    assert (devstack.QUIET_WARNINGS / "sitecustomize.py").is_file()


def test_deprecations_from_our_own_code_are_still_shown() -> None:
    spec = importlib.util.spec_from_file_location(
        "quiet_sitecustomize", devstack.QUIET_WARNINGS / "sitecustomize.py"
    )
    assert spec is not None and spec.loader is not None
    sitecustomize = importlib.util.module_from_spec(spec)
    show = warnings.showwarning
    try:
        spec.loader.exec_module(sitecustomize)
    finally:
        warnings.showwarning = show  # loading it installs the filter: not in this process
    own = str(ROOT / "bot" / "addons" / "whatsapp" / "channel.py")
    assert not sitecustomize.is_third_party_deprecation(DeprecationWarning, own)
    assert sitecustomize.is_third_party_deprecation(DeprecationWarning, "/venv/tensorflow/x.py")
    assert not sitecustomize.is_third_party_deprecation(UserWarning, "/venv/rasa/shared/x.py")
