"""``python -m simulator``: the fake Cloud API, the fake Chatwoot and the chat page with its
agent pane on one port.

The fake Chatwoot answers the channel when ``CHATWOOT_URL`` points here: it takes the
channel's ``CHATWOOT_API_TOKEN``, ``CHATWOOT_ACCOUNT_ID`` and ``CHATWOOT_INBOX_ID`` and posts
its webhooks to ``--chatwoot-webhook-url`` (the channel's Chatwoot route with its secret),
signed when ``CHATWOOT_SIGNING_SECRET`` is set.
"""

from __future__ import annotations

import argparse
import logging
import os

from aiohttp import web

from simulator.chatwoot import FakeChatwoot
from simulator.notify import NotifyConfig
from simulator.server import SimulatorConfig, create_app


def main() -> None:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(env.get("SIMULATOR_PORT", "5100")))
    parser.add_argument(
        "--webhook-url",
        default=env.get("SIMULATOR_WEBHOOK_URL", "http://localhost:5006/webhooks/whatsapp/webhook"),
    )
    parser.add_argument(
        "--notify-url",
        default=env.get("SIMULATOR_NOTIFY_URL", "http://localhost:5005/webhooks/whatsapp/notify"),
        help="the bot's notify API, for the page's notification trigger",
    )
    parser.add_argument("--app-secret", default=env.get("WPP_APP_SECRET", ""))
    parser.add_argument("--access-token", default=env.get("WPP_AUTHORIZATION_TOKEN", ""))
    parser.add_argument(
        "--phone-number-id", default=env.get("WPP_PHONE_NUMBER_IDENTIFIER", "100000000000002")
    )
    # Rasa's HTTP API (rasa run --enable-api): the page shows what the bot heard in voice notes.
    parser.add_argument("--rasa-url", default=env.get("SIMULATOR_RASA_URL", ""))
    parser.add_argument(
        "--chatwoot-webhook-url",
        default="",
        help="where the fake Chatwoot posts its webhooks (…/webhooks/whatsapp/chatwoot/<secret>)",
    )
    args = parser.parse_args()
    if not args.app_secret or not args.access_token:
        parser.error(
            "set WPP_APP_SECRET and WPP_AUTHORIZATION_TOKEN (or --app-secret/--access-token)"
        )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = SimulatorConfig(
        webhook_url=args.webhook_url,
        app_secret=args.app_secret,
        access_token=args.access_token,
        phone_number_id=args.phone_number_id,
        public_url=f"http://localhost:{args.port}",
        rasa_url=args.rasa_url,
        rasa_token=env.get("SIMULATOR_RASA_TOKEN", ""),  # a secret: never on a command line
        # The token only from the environment: never on a command line.
        notify=NotifyConfig(args.notify_url, env.get("WPP_NOTIFY_TOKEN", "")),
    )
    chatwoot = FakeChatwoot(
        token=env.get("CHATWOOT_API_TOKEN", ""),
        account_id=int(env.get("CHATWOOT_ACCOUNT_ID") or 1),
        inbox_id=int(env.get("CHATWOOT_INBOX_ID") or 1),
        webhook_url=args.chatwoot_webhook_url,
        signing_secret=env.get("CHATWOOT_SIGNING_SECRET", ""),
    )
    # No access log: the page polls every 0.7 s and would drown the output of `make run`.
    web.run_app(
        create_app(config, chatwoot), host=args.host, port=args.port, print=None, access_log=None
    )


if __name__ == "__main__":
    main()
