"""Each compose service's entry point imports with only the packages its image provides.

No Docker engine runs here, so an image's Python packages are worked out as Docker would
lay them down: the official base image installs its distribution (``rasa`` or ``rasa-sdk``)
and that distribution's dependency closure (read from the installed metadata, markers
evaluated, resolved against this venv, which ``uv.lock`` pins to the same versions); the
Dockerfile adds its requirements file; the code is what the Dockerfile copies (or compose
mounts). A throw-away virtualenv gets exactly those distributions (their files linked from
this venv) and nothing else, and each service's entry point is imported in it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import Distribution, distribution, distributions
from pathlib import Path
from typing import Any

import pytest
import tomli
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts import image_requirements
from scripts.endpoints import redis_endpoints

ROOT = Path(__file__).resolve().parents[1]
INGRESS_REQUIREMENTS = ROOT / "deploy" / "requirements-ingress.txt"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
# An official image ▸ the distribution it installs.
BASE_IMAGES = {
    re.compile(r"rasa/rasa:(?P<version>[\w.]+)-full"): "rasa",
    re.compile(r"rasa/rasa-sdk:(?P<version>[\w.]+)"): "rasa-sdk",
}


PYTHON_IMAGE = re.compile(r"python:(?P<minor>3\.\d+)\.\d+-slim")


@dataclass(frozen=True)
class ImageContents:
    """What a service's container has: packages and the project's code under /app."""

    distributions: frozenset[str]
    code: frozenset[tuple[str, str]]  # (path under /app, path in the repository)
    python: str = ""  # an official python:X.Y image's version; "" for the Rasa images' 3.10


def base_distribution(image: str) -> str:
    for pattern, name in BASE_IMAGES.items():
        match = pattern.fullmatch(image)
        if match:
            assert distribution(name).version == match["version"], f"{image} is not the lock's"
            return name
    raise AssertionError(f"unknown base image {image}")


def dependency_closure(root: str) -> set[str]:
    """``root`` and every distribution it requires, per the installed metadata."""
    seen: set[str] = set()
    extras_seen: set[tuple[str, str]] = set()
    todo: list[tuple[str, str]] = [(root, "")]
    while todo:
        name, extra = todo.pop()
        key = canonicalize_name(name)
        if (key, extra) in extras_seen:
            continue
        extras_seen.add((key, extra))
        seen.add(key)
        for line in distribution(key).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo.append((requirement.name, ""))
                todo.extend((requirement.name, e) for e in requirement.extras)
    return seen


def requirement_names(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {canonicalize_name(Requirement(ln).name) for ln in lines if ln and ln[0] != "#"}


def image_contents(service: dict[str, Any]) -> ImageContents:
    """The packages and code a compose service runs with."""
    if "build" not in service:  # an official image as it is, the code mounted into it
        code = {
            (target.removeprefix("/app/"), source.removeprefix("./"))
            for source, target, *_ in (v.split(":") for v in service.get("volumes", []))
            if target.startswith("/app/")
        }
        closure = dependency_closure(base_distribution(service["image"]))
        return ImageContents(frozenset(closure), frozenset(code))
    build = service["build"]
    context = ROOT / build["context"]
    dockerfile = (context / build["dockerfile"]).read_text(encoding="utf-8")
    base = re.search(r"^FROM (\S+)$", dockerfile, re.M)
    assert base, "the Dockerfile has no FROM"
    python = PYTHON_IMAGE.fullmatch(base.group(1))
    # python:X.Y-slim has no package beyond pip; a Rasa image has its distribution's closure.
    packages = set() if python else dependency_closure(base_distribution(base.group(1)))
    code = set()
    for sources, target in re.findall(r"^COPY (.+) (\S+)$", dockerfile, re.M):
        for source in sources.split():
            if source.startswith("deploy/requirements-"):
                packages |= requirement_names(context / source)
            elif target.startswith("/app/"):
                where = target.removeprefix("/app/")
                if target.endswith("/"):  # COPY a b /app/dir/: each into the folder
                    where += Path(source).name
                code.add((where, source))
    return ImageContents(frozenset(packages), frozenset(code), python["minor"] if python else "")


@cache
def owners_of_top_level_names() -> dict[str, set[str]]:
    """Which installed distributions put files under each top-level name of site-packages."""
    owners: dict[str, set[str]] = defaultdict(set)
    for dist in distributions():
        for file in dist.files or []:
            if ".." not in file.parts:
                owners[file.parts[0]].add(canonicalize_name(dist.metadata["Name"]))
    return owners


def link_distribution(dist: Distribution, name: str, site: Path) -> None:
    """Link ``dist``'s files into ``site``: a whole top-level folder when only it owns it."""
    owners = owners_of_top_level_names()
    for file in dist.files or []:
        if ".." in file.parts:
            continue  # console scripts in bin/
        top = file.parts[0]
        if owners[top] == {name}:
            target = site / top
            if not target.exists() and not target.is_symlink():
                target.symlink_to(Path(str(dist.locate_file(top))))
        else:  # shared (a namespace package, __pycache__): file by file
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_symlink():
                target.symlink_to(Path(str(dist.locate_file(file))))


def uv() -> list[str]:
    """uv, as the Makefile finds it: on PATH, else the module pip installed."""
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def interpreter(minor: str) -> Path:
    """A local Python ``minor`` (pyenv's or on PATH), as the python:``minor`` image has."""
    found = sorted(Path.home().glob(f".pyenv/versions/{minor}.*/bin/python3"))
    found += [Path(p) for p in filter(None, [shutil.which(f"python{minor}")])]
    for python in found:
        if (
            subprocess.run([str(python), "-c", ""], capture_output=True, check=False).returncode
            == 0
        ):
            return python
    raise AssertionError(
        f"no Python {minor} here for the ingress image's check (pyenv install {minor})"
    )


def throwaway_env(contents: ImageContents, where: Path) -> tuple[Path, Path]:
    """A virtualenv with only ``contents``'s distributions, and an /app with its code."""
    venv = where / "venv"
    if contents.python:  # the image's own interpreter, the requirements file's exact wheels
        subprocess.run(
            [*uv(), "venv", "--quiet", "--python", str(interpreter(contents.python)), str(venv)],
            check=True,
            timeout=120,
        )
        install = [*uv(), "pip", "install", "--quiet", "--no-deps", "--only-binary", ":all:"]
        install += ["--python", str(venv / "bin" / "python"), "-r", str(INGRESS_REQUIREMENTS)]
        subprocess.run(install, check=True, timeout=300)
    else:
        base_python = Path(sys.base_prefix) / "bin" / "python3"
        subprocess.run(
            [str(base_python), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60
        )
        (site,) = (venv / "lib").glob("python3*/site-packages")
        for name in sorted(contents.distributions):
            link_distribution(distribution(name), name, site)
    app = where / "app"
    app.mkdir()
    for inside, source in contents.code:
        (app / inside).parent.mkdir(parents=True, exist_ok=True)
        (app / inside).symlink_to(ROOT / source)
    return venv / "bin" / "python", app


def entry_points(name: str, service: dict[str, Any]) -> list[list[str]]:
    """What each service's container runs first, as Python arguments that import it."""
    entrypoint = service.get("entrypoint") or []
    command = service.get("command") or []
    if entrypoint[:2] == ["python", "-m"]:
        return [["-m", entrypoint[2], "--help"]]  # imports everything, then argparse exits
    if command[:1] == ["start"]:  # rasa-sdk's entrypoint.sh: python -m rasa_sdk
        package = command[command.index("--actions") + 1]
        # rasa-sdk logs an action package that fails to import and starts without it.
        load = (
            "import importlib, pkgutil, rasa_sdk.__main__\n"
            f"pkg = importlib.import_module({package!r})\n"
            f"for m in pkgutil.walk_packages(pkg.__path__, {package + '.'!r}):\n"
            "    importlib.import_module(m.name)\n"
        )
        return [["-c", load]]
    if command[:1] == ["run"]:  # rasa run: the channel in credentials, classes in endpoints
        credentials = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))
        endpoints = redis_endpoints("redis://redis:6379/2", None)
        custom = [c.rsplit(".", 1)[0] for c in credentials]
        custom += [
            str(e["type"]).rsplit(".", 1)[0]
            for e in endpoints.values()
            if isinstance(e, dict) and "." in e.get("type", "")
        ]
        # What a shell entrypoint runs first (python -m scripts.endpoints).
        custom += re.findall(r"python -m ([\w.]+)", " ".join(entrypoint))
        return [["-c", "; ".join(f"import {m}" for m in ["rasa.__main__", *custom])]]
    raise AssertionError(f"{name}: unknown entry point {entrypoint} {command}")


def run_in_image(name: str, tmp_path: Path) -> None:
    service = SERVICES[name]
    python, app = throwaway_env(image_contents(service), tmp_path)
    for argv in entry_points(name, service):
        result = subprocess.run(
            [str(python), *argv],
            cwd=app,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(app), "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        last = result.stderr.strip().splitlines()[-1:] or [""]
        assert result.returncode == 0, f"{name} cannot start in its image: {last[0]}"


@pytest.mark.parametrize("name", ["knowledge", "action-server"])
def test_the_sdk_services_import_with_their_images_packages(name: str, tmp_path: Path) -> None:
    run_in_image(name, tmp_path)


@pytest.mark.e2e  # imports rasa (TensorFlow): about 30 s
def test_rasa_imports_with_its_images_packages(tmp_path: Path) -> None:
    run_in_image("rasa", tmp_path)


def test_the_ingress_imports_on_its_images_python_with_its_packages_and_no_rasa(
    tmp_path: Path,
) -> None:
    contents = image_contents(SERVICES["webhook"])
    assert tuple(map(int, contents.python.split("."))) >= (3, 12), contents.python
    assert not {"rasa", "sanic", "tensorflow"} & contents.distributions
    run_in_image("webhook", tmp_path)


def test_the_ingress_requirements_are_its_locks_current_versions() -> None:
    lock = tomli.loads((ROOT / "deploy" / "ingress" / "uv.lock").read_text(encoding="utf-8"))
    locked = {p["name"]: p["version"] for p in lock["package"] if "version" in p}
    text = INGRESS_REQUIREMENTS.read_text(encoding="utf-8")
    pinned = dict(line.split(";")[0].strip().split("==") for line in lines(text))
    assert pinned == {name: locked[name] for name in pinned}
    assert {"aiohttp", "redis", "pyyaml"} <= set(pinned)
    assert tuple(int(part) for part in pinned["aiohttp"].split(".")[:2]) >= (3, 12)
    dockerfile = (ROOT / "deploy" / "ingress.Dockerfile").read_text(encoding="utf-8")
    assert "COPY deploy/requirements-ingress.txt /tmp/requirements.txt" in dockerfile
    assert "--no-deps --only-binary=:all:" in dockerfile and "apt-get" not in dockerfile
    assert re.findall(r"^USER (\S+)$", dockerfile, re.M)[-1] == "1001"


def test_the_throwaway_env_lacks_what_the_image_lacks(tmp_path: Path) -> None:
    # The check above could not fail if the throw-away env saw this venv's packages.
    sdk_only = ImageContents(
        frozenset(dependency_closure("rasa-sdk")), frozenset({("knowledge", "knowledge")})
    )
    assert "aiohttp" not in sdk_only.distributions  # rasa-sdk's image has no aiohttp
    python, app = throwaway_env(sdk_only, tmp_path)
    result = subprocess.run(
        [str(python), "-m", "knowledge", "--help"],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "No module named 'aiohttp'" in result.stderr


def lines(text: str) -> Iterable[str]:
    return (line for line in text.splitlines() if line and not line.startswith("#"))


@pytest.mark.parametrize("image", image_requirements.IMAGES, ids=lambda i: i.name)
def test_each_requirements_file_is_what_uv_lock_says(image: image_requirements.Image) -> None:
    expected = image_requirements.requirements_text(image, image_requirements.load_lock())
    assert image.requirements.read_text(encoding="utf-8") == expected
    locked = {p["name"]: p["version"] for p in image_requirements.load_lock()["package"]}
    for line in lines(expected):
        name, _, version = line.partition("==")
        assert locked[name] == version


@pytest.mark.parametrize("image", image_requirements.IMAGES, ids=lambda i: i.name)
def test_dockerfiles_pin_the_base_install_wheels_only_and_run_unprivileged(
    image: image_requirements.Image,
) -> None:
    text = image.dockerfile.read_text(encoding="utf-8")
    assert re.search(rf"^FROM {re.escape(image.base_image)}$", text, re.M)
    assert f"COPY deploy/requirements-{image.name}.txt" in text
    install = re.search(r"^RUN python -m pip install (.*)", text, re.M)
    assert install and {"--no-deps", "--no-cache-dir", "--only-binary=:all:"} <= set(
        install.group(1).split()
    )
    assert "apt-get" not in text  # no build tools added
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users[-1] == "1001"  # the official images' unprivileged user, last
    copied = re.findall(r"^COPY (.+) /app/", text, re.M)
    for path in image.code:
        assert any(path in line.split() for line in copied), f"{path} is not copied"
