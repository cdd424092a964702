"""The requirements file of each of the project's images (``deploy/``), exported from ``uv.lock``.

Each image is an official Rasa image plus what our code imports on top of it. The code an
image carries is scanned for its third-party imports; each becomes its distribution, and
that distribution's dependency closure in ``uv.lock`` (for Linux x86_64, CPython 3.10, the
images' platform) is written with the locked versions. The Dockerfile installs the file
with ``--no-deps``, so the image gets exactly these versions and nothing unlocked.

    python -m scripts.image_requirements           # rewrite deploy/requirements-*.txt
    python -m scripts.image_requirements --check   # exit 1 if a file is not what uv.lock says
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import tomli
from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"

# The official images' platform, for the markers in uv.lock.
IMAGE_PLATFORM = {
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "python_version": "3.10",
    "python_full_version": "3.10.13",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}
OWN_PACKAGES = {"bot", "actions", "knowledge", "scripts", "__future__"}


@dataclass(frozen=True)
class Image:
    """One of our images: the official image it starts from and the code it carries."""

    name: str
    base_image: str  # FROM, pinned
    base_distribution: str  # what the base image installs (its module is not ours to add)
    base_module: str
    code: tuple[str, ...]  # folders and files copied into /app

    @property
    def requirements(self) -> Path:
        return DEPLOY / f"requirements-{self.name}.txt"

    @property
    def dockerfile(self) -> Path:
        return DEPLOY / f"{self.name}.Dockerfile"


IMAGES = (
    # rasa run and the webhook ingress
    Image("rasa", "rasa/rasa:3.6.21-full", "rasa", "rasa", ("bot", "scripts/endpoints.py")),
    # the action server and the knowledge service
    Image("sdk", "rasa/rasa-sdk:3.6.2", "rasa-sdk", "rasa_sdk", ("actions", "knowledge")),
)


def imported_modules(folders: Iterable[Path]) -> set[str]:
    """Top-level names of the third-party modules imported anywhere under ``folders``."""
    names: set[str] = set()
    for folder in folders:
        for path in [folder] if folder.is_file() else sorted(folder.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in OWN_PACKAGES}


def distributions_of(modules: Iterable[str], image: Image) -> set[str]:
    """The distributions providing ``modules`` (the base image's own module excluded)."""
    providers = packages_distributions()
    wanted: set[str] = set()
    for module in modules:
        if module == image.base_module:
            continue
        if module not in providers:
            raise LookupError(f"no installed distribution provides the module {module!r}")
        wanted |= {canonicalize_name(d) for d in providers[module]}
    return wanted


def lock_closure(lock: Mapping[str, Any], roots: Iterable[str]) -> dict[str, str]:
    """``{name: version}`` of ``roots`` and everything they need, per ``uv.lock``."""
    packages: dict[str, list[dict[str, Any]]] = {}
    for package in lock["package"]:
        packages.setdefault(package["name"], []).append(package)

    def applies(entry: Mapping[str, Any]) -> bool:
        marker = entry.get("marker")
        return marker is None or Marker(marker).evaluate(IMAGE_PLATFORM)

    def pick(name: str) -> dict[str, Any]:
        candidates = packages[name]
        if len(candidates) == 1:
            return candidates[0]
        # Several locked versions (one per platform): the one whose markers fit the image.
        fitting = [
            p
            for p in candidates
            if any(Marker(m).evaluate(IMAGE_PLATFORM) for m in p.get("resolution-markers", []))
        ]
        assert len(fitting) == 1, f"{name}: {len(fitting)} locked versions fit the image"
        return fitting[0]

    closure: dict[str, str] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(canonicalize_name(r), ()) for r in roots]
    while todo:
        name, extras = todo.pop()
        package = pick(name)
        first_visit = name not in closure
        closure[name] = package["version"]
        deps = list(package.get("dependencies", [])) if first_visit else []
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        for dep in deps:
            if applies(dep):
                todo.append((dep["name"], tuple(dep.get("extra", ()))))
    return closure


def requirements_text(image: Image, lock: Mapping[str, Any]) -> str:
    """The content of ``deploy/requirements-<image>.txt``."""
    modules = imported_modules(ROOT / folder for folder in image.code)
    pins = lock_closure(lock, distributions_of(modules, image))
    pins.pop(image.base_distribution, None)
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    header = (
        f"# Generated from uv.lock by `python -m scripts.image_requirements`: do not edit.\n"
        f"# What {', '.join(image.code)} import on top of "
        f"{image.base_image},\n"
        f"# with its dependencies, at the locked versions (installed with --no-deps).\n"
    )
    return header + "".join(line + "\n" for line in lines)


def load_lock() -> dict[str, Any]:
    return tomli.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.image_requirements",
        description="Write each image's requirements file (deploy/) from uv.lock: the code's "
        "third-party imports and their dependency closure, pinned.",
    )
    parser.add_argument("--check", action="store_true", help="only say which files are stale")
    args = parser.parse_args(argv)
    lock = load_lock()
    stale = []
    for image in IMAGES:
        text = requirements_text(image, lock)
        if args.check:
            current = image.requirements.read_text(encoding="utf-8")
            if current != text:
                stale.append(str(image.requirements.relative_to(ROOT)))
        else:
            image.requirements.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date with uv.lock: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
