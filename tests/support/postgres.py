"""A real PostgreSQL server for tests: a fresh cluster (``initdb``) in a temporary directory,
on a free port, stopped and removed afterwards.

Debian's ``postgresql`` package puts the server programs in ``/usr/lib/postgresql/<n>/bin``
(not on PATH). PostgreSQL refuses to run as root, so under root (CI containers) the
cluster belongs to the ``postgres`` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.stack import LOG_DIR, free_port, wait_for_tcp


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    path = shutil.which("initdb")
    if path:
        return Path(path).parent
    if not found:
        pytest.fail(
            "initdb not found: install the Debian package postgresql "
            "(`make test` does so when run as root: scripts/system-deps.sh)",
            pytrace=False,
        )
    return Path(found[-1]).parent


@dataclass
class PostgresServer:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"postgresql://wpp@127.0.0.1:{self.port}/wpp"


def _as_owner(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb, start, create database ``wpp`` owned by role ``wpp`` (trust auth on loopback)."""
    binaries = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="wpp-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
    subprocess.run(
        _as_owner(
            [str(binaries / "initdb"), "-D", str(data), "-U", "wpp", "-A", "trust", "--no-sync"]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"postgres-{port}.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        _as_owner(
            [
                str(binaries / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(root),
                "-c",
                "fsync=off",
            ]
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_tcp("127.0.0.1", port, 30)
        subprocess.run(
            [
                str(binaries / "createdb") if (binaries / "createdb").exists() else "createdb",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "wpp",
                "wpp",
            ],
            check=True,
        )
        yield PostgresServer(port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
