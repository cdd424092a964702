"""``python -m bot.addons.whatsapp.privacy export|erase <phone or BSUID>``
(``make privacy-export ID=…``, ``make privacy-erase ID=…``).

Reaches the stores ``rasa run`` uses: Rasa's tracker and lock stores from ``--endpoints``
(by default, the Redis stores ``REDIS_URL`` gives, as ``scripts/endpoints.py`` writes them
for every deployment, else ``endpoints.yml``), the channel's keys on ``REDIS_URL``, and the
proactive database (``WPP_PROACTIVE_DB_URL``, else ``proactive.db`` in the working directory
when that file exists, as ``rasa run`` would have created it there).
Without a tracker store in ``endpoints.yml`` (Rasa's in-memory default) conversations live
only inside the ``rasa run`` process and are gone when it stops; the command says so and
exits 2 rather than report an empty export.

``export`` writes the JSON to ``--out`` (readable by the owner only) or to stdout; ``erase``
prints what it removed. Exit codes: 0 done, 2 configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from bot.addons.whatsapp.handoff.state import Waiting
from bot.addons.whatsapp.inbound.routing import create_state
from bot.addons.whatsapp.logs import install_log_masking
from bot.addons.whatsapp.privacy.citizen import Stores, UnsupportedStoreError, erase, export
from bot.addons.whatsapp.proactive.schema import DEFAULT_URL
from bot.addons.whatsapp.proactive.store import ProactiveStore
from bot.addons.whatsapp.redis_client import redis_client


class NoStoreError(Exception):
    """There is no store this process can reach."""


def endpoint_configs(endpoints: str, environ: dict[str, str]) -> tuple[Any, Any]:
    """Rasa's (tracker store, lock store) endpoint configs, either possibly None."""
    from rasa.utils.endpoints import EndpointConfig, read_endpoint_config

    if not endpoints and environ.get("REDIS_URL"):
        from scripts.endpoints import redis_endpoints

        config = redis_endpoints(environ["REDIS_URL"], None, environ.get("REDIS_PASSWORD"))
        tracker, lock = config["tracker_store"], config["lock_store"]
        assert isinstance(tracker, dict) and isinstance(lock, dict)
        return EndpointConfig.from_dict(tracker), EndpointConfig.from_dict(lock)
    path = endpoints or "endpoints.yml"
    return read_endpoint_config(path, "tracker_store"), read_endpoint_config(path, "lock_store")


def open_proactive(environ: dict[str, str]) -> ProactiveStore | None:
    """The proactive database ``rasa run`` uses; None when unset and the default SQLite
    file does not exist (no notification was ever sent from here: creating an empty
    database would only hide a wrong working directory)."""
    url = environ.get("WPP_PROACTIVE_DB_URL", "")
    if not url:
        if not Path(DEFAULT_URL.removeprefix("sqlite:///")).exists():
            return None
        url = DEFAULT_URL
    return ProactiveStore.open(url)


def open_stores(endpoints: str, domain: str, environ: dict[str, str]) -> Stores:
    """The stores ``rasa run`` uses, as configured; :class:`NoStoreError` when memory only."""
    from rasa.core.lock_store import LockStore
    from rasa.core.tracker_store import TrackerStore
    from rasa.shared.core.domain import Domain

    tracker_config, lock_config = endpoint_configs(endpoints, environ)
    if tracker_config is None:
        raise NoStoreError(
            "no tracker_store in the endpoints: conversations live in the memory of the "
            "running `rasa run` process and are gone when it stops, so there is nothing "
            "this command can reach (set REDIS_URL or give --endpoints)"
        )
    loaded = Domain.load(domain) if domain and Path(domain).exists() else Domain.empty()
    redis_url = environ.get("REDIS_URL", "")
    return Stores(
        tracker_store=TrackerStore.create(tracker_config, loaded),
        lock_store=LockStore.create(lock_config),
        state=create_state(redis_url),
        waiting=Waiting(redis_url),
        redis=redis_client(redis_url) if redis_url else None,
        proactive=open_proactive(environ),
    )


async def run(args: argparse.Namespace, stores: Stores) -> str:
    """The export's JSON, or the erasure's summary line."""
    try:
        if args.command == "export":
            return json.dumps(await export(stores, args.id), ensure_ascii=False, indent=2)
        erasure = await erase(stores, args.id)
        return f"erased {erasure.masked_id}: {erasure.summary}"
    finally:
        await stores.state.close()
        await stores.waiting.close()
        if stores.redis is not None:
            await stores.redis.close()
        if stores.proactive is not None:
            stores.proactive.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.addons.whatsapp.privacy")
    parser.add_argument("command", choices=["export", "erase"])
    parser.add_argument("id", help="the citizen's phone number or business-scoped user id")
    parser.add_argument("--endpoints", default="", help="Rasa's endpoints file")
    parser.add_argument("--domain", default="domain.yml")
    parser.add_argument("--out", default="", help="export: write the JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    install_log_masking()
    if not args.id.strip():
        print("privacy: give the citizen's phone number or BSUID", file=sys.stderr)
        return 2
    try:
        stores = open_stores(args.endpoints, args.domain, dict(os.environ))
        text = asyncio.run(run(args, stores))
    except (NoStoreError, UnsupportedStoreError, ValueError) as exc:
        print(f"privacy: {exc}", file=sys.stderr)
        return 2
    if args.command == "export" and args.out:
        out = Path(args.out)
        out.touch(mode=0o600)  # an export is personal data: the owner's only
        out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
