"""Start real processes (rasa run, action server, knowledge service, simulator) for tests.

Every process gets its own log file under ``artifacts/logs/`` and its own process group,
so stopping it stops its children too, and nothing outlives the test session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LOG_DIR = ROOT / "artifacts" / "logs"
MODEL = ROOT / "models" / "nova-aurora.tar.gz"
_USED_NAMES: set[str] = set()


def free_port() -> int:
    """An unused TCP port on loopback (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s: {last_error}")


def wait_for_tcp(host: str, port: int, timeout: float) -> None:
    """Wait until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


@dataclass
class Proc:
    """A started process: where it listens and where it logs."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path
    url: str = ""
    _log_file: object = field(default=None, repr=False)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Signal the process group and wait; SIGKILL if it does not exit in time."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        close = getattr(self._log_file, "close", None)
        if close is not None:
            close()
        return self.popen.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_process(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    ready_url: str | None = None,
    port: int = 0,
    timeout: float = 180.0,
    cwd: Path = ROOT,
) -> Proc:
    """Start ``argv`` in its own process group and wait until ``ready_url`` answers 200.

    Args:
        name: used for the log file ``artifacts/logs/<name>.log``.
        argv: the command.
        env: extra environment variables (added to the current environment).
        ready_url: polled until it answers 200; None to return at once.
        port: the port the process listens on (for ``Proc.url``).
        timeout: seconds to wait for readiness.
        cwd: working directory (the repository root by default).
    """
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    # A fresh file per process of this run (the log check reads them all at the end).
    base, count = name, 1
    while name in _USED_NAMES:
        count += 1
        name = f"{base}-{count}"
    _USED_NAMES.add(name)
    log_path = LOG_DIR / f"{name}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by Proc.stop
    # The proactive database under artifacts/, not proactive.db in the repository.
    proactive = f"sqlite:///{LOG_DIR.parent / 'proactive.db'}"
    full_env = {
        "WPP_PROACTIVE_DB_URL": proactive,
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    popen = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc = Proc(
        name=name,
        popen=popen,
        port=port,
        log_path=log_path,
        url=f"http://127.0.0.1:{port}" if port else "",
        _log_file=log_file,
    )
    if ready_url:
        try:
            wait_for_http(ready_url, timeout, popen)
        except BaseException:
            proc.stop()
            tail = proc.log_text()[-3000:]
            raise RuntimeError(f"{name} did not start; last log lines:\n{tail}") from None
    return proc


def start_rasa(
    port: int,
    env: Mapping[str, str] | None = None,
    credentials: Path | None = None,
    endpoints: Path | None = None,
    model: Path = MODEL,
    name: str = "rasa",
    timeout: float = 240.0,
    wait: bool = True,
    extra_args: Sequence[str] = (),
) -> Proc:
    """``rasa run`` with the trained model, ready when its HTTP API answers ``/``
    (``wait=False`` returns at once: start several, then ``wait_ready`` each;
    ``extra_args``: more ``rasa run`` options, e.g. ``--enable-api``)."""
    argv = [
        str(VENV_BIN / "rasa"),
        "run",
        "--model",
        str(model),
        "--port",
        str(port),
        "--interface",
        "127.0.0.1",
    ]
    if credentials is not None:
        argv += ["--credentials", str(credentials)]
    if endpoints is not None:
        argv += ["--endpoints", str(endpoints)]
    argv += list(extra_args)
    return start_process(
        name,
        argv,
        env=env,
        ready_url=f"http://127.0.0.1:{port}/" if wait else None,
        port=port,
        timeout=timeout,
    )


def start_ingress(
    port: int,
    rasa_url: str,
    env: Mapping[str, str] | None = None,
    credentials: Path | None = None,
    name: str = "ingress",
) -> Proc:
    """The webhook ingress (``python -m bot.addons.whatsapp.ingress``) relaying to
    ``rasa_url``, ready when its ``/health`` answers."""
    argv = [str(VENV_BIN / "python"), "-m", "bot.addons.whatsapp.ingress"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--rasa-url", rasa_url]
    if credentials is not None:
        argv += ["--credentials", str(credentials)]
    return start_process(
        name,
        argv,
        env=env,
        ready_url=f"http://127.0.0.1:{port}/webhooks/whatsapp/health",
        port=port,
        timeout=60,
    )


def wait_ready(proc: Proc, timeout: float = 240.0) -> Proc:
    """Wait until a process started with ``wait=False`` answers on ``/``."""
    try:
        wait_for_http(proc.url + "/", timeout, proc.popen)
    except BaseException:
        proc.stop()
        raise RuntimeError(f"{proc.name} did not start:\n{proc.log_text()[-3000:]}") from None
    return proc


def start_action_server(port: int, env: Mapping[str, str] | None = None) -> Proc:
    """The rasa-sdk action server with ``actions/``, ready on ``/health``."""
    return start_process(
        "action-server",
        [str(VENV_BIN / "python"), "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
        env=env,
        ready_url=f"http://127.0.0.1:{port}/health",
        port=port,
        timeout=120.0,
    )


def write_endpoints(path: Path, action_port: int | None) -> Path:
    """An endpoints.yml pointing Rasa at the action server on ``action_port``."""
    lines = []
    if action_port is not None:
        lines += ["action_endpoint:", f'  url: "http://127.0.0.1:{action_port}/webhook"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[tuple[Proc, ...]]:
    """Stop every process on exit, in reverse order."""
    try:
        yield procs
    finally:
        for proc in reversed(procs):
            proc.stop()
