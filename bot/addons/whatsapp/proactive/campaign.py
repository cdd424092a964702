"""Campaigns: one approved template to the citizens of a CSV, resumable, with a report.

    python -m bot.addons.whatsapp.proactive.campaign send --id vacina-2026-12 \\
        --template lembrete_vacina [--category utility] [--nice 10] recipients.csv
    python -m bot.addons.whatsapp.proactive.campaign report vacina-2026-12 [--format json]

The CSV has a header; the ``recipient`` column holds a phone number or a BSUID, every
other column (in order) is a body parameter of that row's template.

**Resumable.** The campaign and its rows are written to the proactive database before the
first send; each row is marked ``sending`` before its request and ``sent`` (with the
``wamid``) after. Started again with the same ``--id``, a campaign sends only its
``pending`` rows. A row left ``sending`` by a killed process is ambiguous (the request may
or may not have reached WhatsApp): it is settled by the status webhooks ``rasa run``
recorded for that citizen since the attempt (any status: it went), waiting
``--settle`` seconds for late ones; without one it is sent again. So nobody is messaged
twice and nobody skipped, as long as Meta's ``sent`` status arrives within ``--settle``.

**Stops**, resumable later with the same command: the template paused or disabled by Meta
(its status webhook, or errors 132015/132016), or the daily messaging limit reached.
Opted-out citizens are skipped and counted. Exit status: 0 done, 3 stopped, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.errors import MARKETING_OPT_OUT_CODE, ConfigurationError, WhatsAppApiError
from bot.addons.whatsapp.inbound.routing import RedisRoutingStore
from bot.addons.whatsapp.logs import install_log_masking
from bot.addons.whatsapp.outbound.sender import Sender
from bot.addons.whatsapp.proactive.request import template_message
from bot.addons.whatsapp.proactive.store import ProactiveStore, RecipientRow
from bot.addons.whatsapp.proactive.throttle import SharedLimits
from bot.addons.whatsapp.providers import create_provider
from bot.addons.whatsapp.redis_client import redis_client

logger = logging.getLogger(__name__)

TEMPLATE_STOPPED_CODES: Final = frozenset({132015, 132016})  # paused / disabled (M-errors)
DONE, STOPPED, BAD_INPUT = 0, 3, 2


class CampaignError(Exception):
    """Bad input: the message says what and where."""


def read_recipients(text: str) -> list[tuple[str, list[str]]]:
    """(recipient, body parameters) per CSV row; raises :class:`CampaignError`."""
    reader = csv.reader(io.StringIO(text))
    header = [name.strip().lower() for name in next(reader, [])]
    if "recipient" not in header:
        raise CampaignError("the CSV needs a header with a 'recipient' column")
    at = header.index("recipient")
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise CampaignError(f"line {number}: {len(cells)} cells, the header has {len(header)}")
        recipient = cells[at].strip().lstrip("+")
        if not recipient:
            raise CampaignError(f"line {number}: no recipient")
        rows.append((recipient, [c.strip() for i, c in enumerate(cells) if i != at]))
    return rows


class Campaign:
    """Sends the pending rows of one campaign with ``workers`` concurrent senders."""

    def __init__(
        self,
        store: ProactiveStore,
        sender: Sender,
        limits: SharedLimits,
        routing: RedisRoutingStore | None,
        campaign: dict[str, Any],
        workers: int = 8,
        progress: bool = True,
    ) -> None:
        self.store = store
        self.sender = sender
        self.limits = limits
        self.routing = routing
        self.campaign = campaign
        self.workers = workers
        self.progress = progress
        self.stopped = ""
        self.counts: Counter[str] = Counter()
        self._shown = 0.0

    async def settle(self, wait: float) -> None:
        """Rows a killed process left ``sending``: sent if a status says so, else pending."""
        id_ = self.campaign["id"]
        ambiguous = await asyncio.to_thread(self.store.rows, id_, ["sending"])
        if ambiguous and wait > 0:
            print(f"{len(ambiguous)} interrupted send(s): waiting {wait:g}s for their statuses")
            await asyncio.sleep(wait)
        for row in ambiguous:
            since = (row.attempted_at or 0) - 1
            found = await asyncio.to_thread(self.store.statuses_of, row.recipient, since)
            if found:
                last = found[-1]
                await asyncio.to_thread(self.store.set_outcome, id_, row.row, "sent", last["wamid"])
            else:
                await asyncio.to_thread(self.store.set_outcome, id_, row.row, "pending")

    async def run(self) -> None:
        id_ = self.campaign["id"]
        pending = await asyncio.to_thread(self.store.rows, id_, ["pending"])
        self.total = len(pending)
        queue: asyncio.Queue[RecipientRow] = asyncio.Queue()
        for row in pending:
            queue.put_nowait(row)
        await asyncio.gather(*(self._worker(queue) for _ in range(self.workers)))
        self._show(force=True)

    async def _worker(self, queue: asyncio.Queue[RecipientRow]) -> None:
        while not self.stopped and not queue.empty():
            row = queue.get_nowait()
            outcome = await self._one(row)
            self.counts[outcome] += 1
            self._show()

    async def _one(self, row: RecipientRow) -> str:
        id_, name = self.campaign["id"], self.campaign["template"]
        if await asyncio.to_thread(self.store.opted_out, [row.recipient]):
            await asyncio.to_thread(self.store.set_outcome, id_, row.row, "opted_out")
            return "opted_out"
        if self.routing is not None and not await self.routing.template_usable(name):
            self._stop(f"template {name!r} is paused or disabled by Meta")
            return "pending"
        if not await self.limits.admit(row.recipient):
            self._stop("the daily messaging limit (unique citizens per 24 h) is reached")
            return "pending"
        await asyncio.to_thread(self.store.set_outcome, id_, row.row, "sending")
        await self.limits.acquire()
        message = template_message(name, self.campaign["language"], row.params)
        try:
            wamid = await self.sender.send_one(row.recipient, message)
        except WhatsAppApiError as error:
            if error.code in TEMPLATE_STOPPED_CODES:
                await asyncio.to_thread(self.store.set_outcome, id_, row.row, "pending")
                self._stop(f"template {name!r} was paused or disabled by Meta ({error.code})")
                return "pending"
            if error.code == MARKETING_OPT_OUT_CODE:
                await asyncio.to_thread(self.store.opt_out, [row.recipient], "131050")
            await asyncio.to_thread(
                self.store.set_outcome, id_, row.row, "failed", None, error.code, error.message
            )
            return "failed"
        await asyncio.to_thread(self.store.set_outcome, id_, row.row, "sent", wamid)
        return "sent"

    def _stop(self, reason: str) -> None:
        if not self.stopped:
            self.stopped = reason

    def _show(self, force: bool = False) -> None:
        if not self.progress or (not force and time.monotonic() - self._shown < 0.2):
            return
        self._shown = time.monotonic()
        done = sum(self.counts.values())
        width = 30
        filled = int(width * done / self.total) if self.total else width
        counts = "  ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}  {counts}"
        )
        if force:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def send(
    args: argparse.Namespace, settings: WhatsAppSettings, rows: list[tuple[str, list[str]]]
) -> int:
    store = await asyncio.to_thread(ProactiveStore.open, settings.proactive_db_url)
    created = await asyncio.to_thread(
        store.create_campaign, args.id, args.template, args.language, args.category, rows
    )
    campaign = await asyncio.to_thread(store.campaign, args.id)
    assert campaign is not None
    if (campaign["template"], campaign["language"]) != (args.template, args.language):
        print(
            f"Campaign {args.id} exists with template {campaign['template']!r} "
            f"({campaign['language']}): use another --id",
            file=sys.stderr,
        )
        return BAD_INPUT
    print(f"Campaign {args.id}: {'created' if created else 'resumed'}, {campaign['total']} rows")
    redis = redis_client(settings.redis_url) if settings.redis_url else None
    if redis is None:
        logger.warning("REDIS_URL is not set: the limits hold in this process only")
    limits = SharedLimits(
        redis,
        settings.phone_number_id or settings.serpro_client_id,
        settings.campaign_rate_per_second,
        settings.daily_recipient_limit,
    )
    provider = create_provider(settings)
    sender = Sender(provider, rate_per_second=1e6, max_retries=settings.max_retries)
    await sender.start()
    runner = Campaign(
        store,
        sender,
        limits,
        RedisRoutingStore(redis) if redis is not None else None,
        campaign,
        args.workers,
        not args.quiet,
    )
    try:
        await asyncio.to_thread(store.set_campaign_state, args.id, "running")
        await runner.settle(args.settle)
        await runner.run()
    finally:
        await sender.close()
        if redis is not None:
            await redis.close()
    left = await asyncio.to_thread(store.rows, args.id, ["pending", "sending"])
    state = "done" if not left else "paused"
    await asyncio.to_thread(store.set_campaign_state, args.id, state, runner.stopped)
    totals = Counter(row.outcome for row in await asyncio.to_thread(store.rows, args.id))
    print(f"Campaign {args.id}: {state}" + (f" ({runner.stopped})" if runner.stopped else ""))
    print("  " + "  ".join(f"{k} {v}" for k, v in sorted(totals.items())))
    if left:
        print(f"  {len(left)} not sent yet: run the same command again to resume")
    store.close()
    return DONE if state == "done" else STOPPED


def report(store: ProactiveStore, id_: str, fmt: str) -> str | None:
    """Each recipient's outcome (statuses that came later included) and the totals."""
    campaign = store.campaign(id_)
    if campaign is None:
        return None
    rows = store.rows(id_)
    fields = ["row", "recipient", "outcome", "wamid", "error_code", "error_title"]
    records = [{f: getattr(r, f) for f in fields} for r in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return out.getvalue()
    document = {
        "campaign": {k: campaign[k] for k in ("id", "template", "language", "state", "total")},
        "reason": campaign["reason"],
        "totals": dict(sorted(Counter(r.outcome for r in rows).items())),
        "errors": {
            str(code): n
            for code, n in sorted(Counter(r.error_code for r in rows if r.error_code).items())
        },
        "recipients": records,
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m bot.addons.whatsapp.proactive.campaign")
    commands = root.add_subparsers(dest="command", required=True)
    sending = commands.add_parser("send", help="send a template to a CSV (or resume)")
    sending.add_argument("csv")
    sending.add_argument("--id", required=True, help="the campaign's id (to resume: the same)")
    sending.add_argument("--template", required=True)
    sending.add_argument("--language", default="pt_BR")
    sending.add_argument("--category", default="utility", choices=["utility", "marketing"])
    sending.add_argument("--workers", type=int, default=8)
    sending.add_argument("--settle", type=float, default=30.0, help="seconds to wait for statuses")
    sending.add_argument("--quiet", action="store_true", help="no progress bar")
    sending.add_argument("--nice", type=int, default=10, help="CPU priority below the bot's")
    reporting = commands.add_parser("report", help="each recipient's outcome and the totals")
    reporting.add_argument("id")
    reporting.add_argument("--format", choices=["csv", "json"], default="csv")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install_log_masking()
    try:
        settings = WhatsAppSettings.from_credentials(None)
    except ConfigurationError as error:
        print(error, file=sys.stderr)
        return BAD_INPUT
    if args.command == "send":
        os.nice(args.nice)  # on a shared host, the chat's turns get the CPU first
        try:
            rows = read_recipients(Path(args.csv).read_text(encoding="utf-8-sig"))
        except (OSError, CampaignError) as error:
            print(f"Campaign not started: {error}", file=sys.stderr)
            return BAD_INPUT
        return asyncio.run(send(args, settings, rows))
    store = ProactiveStore.open(settings.proactive_db_url)
    text = report(store, args.id, args.format)
    store.close()
    if text is None:
        print(f"No campaign {args.id!r}", file=sys.stderr)
        return BAD_INPUT
    sys.stdout.write(text)
    return DONE


if __name__ == "__main__":
    sys.exit(main())
