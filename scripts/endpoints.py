"""Rasa endpoints for several ``rasa run`` processes sharing one Redis (``REDIS_URL``).

Rasa's own ``RedisLockStore`` (made atomic by ``bot.addons.lock_store``) keeps each
conversation's turns one at a time and in ticket order across processes, and its Redis
tracker store lets any process continue any conversation. Both take host, port, db and
password rather than a URL, so ``REDIS_URL`` (``redis[s]://[:password@]host[:port][/db]``) is
spelled out here; the password is the URL's or else ``REDIS_PASSWORD``, as for the channel
(``bot/addons/whatsapp/redis_client.py``), and ``rediss://`` turns on TLS. Tracker and
lock live in the URL's database; the channel's own keys start with ``wa:``.

A tracker expires ``PRIVACY_TRACKER_RETENTION_DAYS`` (else ``PRIVACY_RETENTION_DAYS``, else
90) days after the conversation's last turn: Rasa's ``record_exp``, renewed on every save
(docs/operators/personal-data.md).

``python -m scripts.endpoints OUT.yml`` writes the file from the environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

# Rasa's RedisLockStore, with atomic ticket changes (see bot/addons/lock_store.py).
LOCK_STORE = "bot.addons.lock_store.AtomicRedisLockStore"
DEFAULT_RETENTION_DAYS = 90.0


def tracker_retention_seconds(environ: Mapping[str, str]) -> float:
    """The tracker store's expiry from the environment, in seconds.

    Raises:
        ValueError: naming the variable whose value is not a number of days >= 1.
    """
    for name in ("PRIVACY_TRACKER_RETENTION_DAYS", "PRIVACY_RETENTION_DAYS"):
        text = environ.get(name, "").strip()
        if text:
            try:
                days = float(text)
            except ValueError:
                days = -1.0
            if days == 0 and name == "PRIVACY_TRACKER_RETENTION_DAYS":
                continue  # 0: the general retention
            if days < 1:
                raise ValueError(f"{name} must be a number of days, at least 1 (got {text!r})")
            return days * 86400.0
    return DEFAULT_RETENTION_DAYS * 86400.0


def redis_endpoints(
    redis_url: str,
    action_url: str | None,
    password: str | None = None,
    retention_seconds: float = DEFAULT_RETENTION_DAYS * 86400.0,
) -> dict[str, object]:
    """The endpoints.yml content (as a dict) for a Redis tracker and lock store.

    ``password`` (``REDIS_PASSWORD``) is used when the URL carries none;
    ``retention_seconds`` is how long a tracker outlives its last turn.
    """
    parts = urlsplit(redis_url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError("REDIS_URL must look like redis[s]://[:password@]host[:port][/db]")
    db = int(parts.path.lstrip("/") or 0)
    common: dict[str, object] = {"url": parts.hostname, "port": parts.port or 6379, "db": db}
    if parts.password:
        common["password"] = unquote(parts.password)
    elif password:
        common["password"] = password
    if parts.username:
        common["username"] = unquote(parts.username)
    if parts.scheme == "rediss":
        common["use_ssl"] = True
    endpoints: dict[str, object] = {
        "tracker_store": {
            "type": "redis",
            **common,
            "key_prefix": "tracker",
            "record_exp": int(retention_seconds),
        },
        "lock_store": {"type": LOCK_STORE, **common, "key_prefix": "rasa"},
    }
    if action_url:
        endpoints["action_endpoint"] = {"url": action_url}
    return endpoints


def write_redis_endpoints(
    path: Path,
    redis_url: str,
    action_url: str | None,
    password: str | None = None,
    retention_seconds: float = DEFAULT_RETENTION_DAYS * 86400.0,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    endpoints = redis_endpoints(redis_url, action_url, password, retention_seconds)
    text = yaml.safe_dump(endpoints, sort_keys=False)
    path.write_text("# Written from REDIS_URL by scripts/endpoints.py\n" + text, encoding="utf-8")
    path.chmod(0o600)  # it may hold the Redis password
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.endpoints",
        description="Write Rasa's endpoints file with its lock and tracker stores on REDIS_URL "
        "(password from the URL or REDIS_PASSWORD) and the action server at ACTION_ENDPOINT_URL.",
    )
    parser.add_argument("file", type=Path, help="the endpoints file to write")
    args = parser.parse_args(argv)
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        print("error: set the environment variable REDIS_URL", file=sys.stderr)
        return 2
    action = os.environ.get("ACTION_ENDPOINT_URL", "http://localhost:5055/webhook")
    password = os.environ.get("REDIS_PASSWORD") or None
    try:
        retention = tracker_retention_seconds(os.environ)
        write_redis_endpoints(args.file, redis_url, action, password, retention)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
