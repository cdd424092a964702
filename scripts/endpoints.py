"""Rasa endpoints for several ``rasa run`` processes sharing one Redis (``REDIS_URL``).

Rasa's own ``RedisLockStore`` (made atomic by ``bot.addons.lock_store``) keeps each
conversation's turns one at a time and in ticket order across processes, and its Redis
tracker store lets any process continue any conversation. Both take host, port, db and
password rather than a URL, so ``REDIS_URL`` (``redis[s]://[:password@]host[:port][/db]``) is
spelled out here; the password is the URL's or else ``REDIS_PASSWORD``, as for the channel
(``bot/addons/whatsapp/redis_client.py``), and ``rediss://`` turns on TLS. Tracker and
lock live in the URL's database; the channel's own keys start with ``wa:``.

``python -m scripts.endpoints OUT.yml`` writes the file from the environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

# Rasa's RedisLockStore, with atomic ticket changes (see bot/addons/lock_store.py).
LOCK_STORE = "bot.addons.lock_store.AtomicRedisLockStore"


def redis_endpoints(
    redis_url: str, action_url: str | None, password: str | None = None
) -> dict[str, object]:
    """The endpoints.yml content (as a dict) for a Redis tracker and lock store.

    ``password`` (``REDIS_PASSWORD``) is used when the URL carries none.
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
        "tracker_store": {"type": "redis", **common, "key_prefix": "tracker"},
        "lock_store": {"type": LOCK_STORE, **common, "key_prefix": "rasa"},
    }
    if action_url:
        endpoints["action_endpoint"] = {"url": action_url}
    return endpoints


def write_redis_endpoints(
    path: Path, redis_url: str, action_url: str | None, password: str | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(redis_endpoints(redis_url, action_url, password), sort_keys=False)
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
        write_redis_endpoints(args.file, redis_url, action, password)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
