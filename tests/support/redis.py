"""A real ``redis-server`` for tests, on its own port, that can be stopped and restarted."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.stack import LOG_DIR, free_port, wait_for_tcp
from tests.support.system import require_program


@dataclass
class RedisServer:
    """``redis-server`` without persistence on loopback; ``restart`` keeps the port."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # Extra redis-server arguments, e.g. ["--requirepass", "..."]; the URL stays password-less.
    options: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        redis = require_program("redis-server", "redis-server")
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        argv = [redis, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--logfile", str(LOG_DIR / f"redis-{self.port}.log")]
        argv += self.options
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_tcp("127.0.0.1", self.port, 10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@contextmanager
def redis_server(*options: str) -> Iterator[RedisServer]:
    server = RedisServer(options=options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
