"""``python -m bot.addons.whatsapp.providers.serpro register|list|delete <id>``
(``make register-webhook``).

Reads SERPRO_CLIENT_ID, SERPRO_CLIENT_SECRET, SERPRO_WABA_ID, SERPRO_BASE_URL,
SERPRO_WEBHOOK_TOKEN and WEBHOOK_PUBLIC_URL from the environment (and ``.env``).
Exit codes: 0 done, 2 configuration, 3 bad credentials, 4 unreachable, 5 refused.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.errors import ConfigurationError
from bot.addons.whatsapp.providers.serpro.client import SerproProvider
from bot.addons.whatsapp.providers.serpro.registration import (
    RegistrationError,
    delete_webhook,
    list_webhooks,
    register,
)


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip().strip("'\"")
    return values


async def run(args: argparse.Namespace, settings: WhatsAppSettings) -> int:
    provider = SerproProvider.from_settings(settings)
    await provider.start()
    try:
        if args.command == "register":
            url = settings.webhook_public_url
            if not url.startswith("https://") and not args.allow_http:
                print(
                    "WEBHOOK_PUBLIC_URL must be the public https:// URL of the webhook",
                    file=sys.stderr,
                )
                return 2
            form, webhook = await register(provider, url, settings.serpro_webhook_token)
            token = (
                "in the URL" if form == "text" else ("set" if webhook.has_token else "not echoed")
            )
            uri = webhook.uri.split("?")[0]
            print(f"Registered {uri} (id {webhook.id}, {form} form, token {token})")
        elif args.command == "list":
            webhooks = await list_webhooks(provider)
            if not webhooks:
                print("No webhook registered for this phone number.")
            for webhook in webhooks:
                uri = webhook.uri.split("?")[0]
                token = "set" if webhook.has_token or "token=" in webhook.uri else "none"
                print(f"{webhook.id}\t{uri}\ttoken: {token}")
        else:
            await delete_webhook(provider, args.webhook_id)
            print(f"Deleted webhook {args.webhook_id}")
        return 0
    except RegistrationError as error:
        print(f"Error: {error}", file=sys.stderr)
        return error.exit_code
    finally:
        await provider.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.addons.whatsapp.providers.serpro",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register", help="register WEBHOOK_PUBLIC_URL with SERPRO_WEBHOOK_TOKEN")
    reg.add_argument("--allow-http", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("list", help="list the registered webhooks")
    delete = sub.add_parser("delete", help="delete a registered webhook")
    delete.add_argument("webhook_id")
    args = parser.parse_args(argv)
    env = {**read_env_file(Path(".env")), **os.environ, "WPP_PROVIDER": "serpro"}
    try:
        settings = WhatsAppSettings.from_credentials({}, env)
    except ConfigurationError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    if args.command == "register" and not settings.webhook_public_url:
        print(
            "Error: set WEBHOOK_PUBLIC_URL (https://<host>/webhooks/whatsapp/webhook)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
