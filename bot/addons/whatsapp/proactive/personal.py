"""One citizen's rows in the proactive database, for the privacy command's access and
erasure requests (:mod:`bot.addons.whatsapp.privacy`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from bot.addons.whatsapp.proactive.schema import notifications, opt_outs, recipients, statuses
from bot.addons.whatsapp.proactive.store import ProactiveStore


def citizen_records(
    store: ProactiveStore, addresses: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    """Every row about the citizen known by ``addresses`` (phone, BSUID, conversation
    key): notifications, delivery statuses, campaign rows and opt-outs, JSON-ready."""
    wanted = sorted({a for a in addresses if a})
    with store.engine.connect() as connection:
        found = {
            name: [
                dict(row._mapping)
                for row in connection.execute(
                    select(table).where(column.in_(wanted)).order_by(*order)
                )
            ]
            for name, table, column, order in _citizen_tables()
        }
    for record in found["notifications"] + found["campaign_rows"]:
        record["params"] = json.loads(record["params"])
    return found


def erase_citizen(store: ProactiveStore, addresses: Iterable[str]) -> dict[str, int]:
    """Delete every row :func:`citizen_records` finds, in one transaction; how many of
    each kind (a campaign keeps its other rows; its ``total`` still counts the row)."""
    wanted = sorted({a for a in addresses if a})
    with store.engine.begin() as connection:
        return {
            name: int(connection.execute(table.delete().where(column.in_(wanted))).rowcount)
            for name, table, column, _ in _citizen_tables()
        }


def _citizen_tables() -> list[tuple[str, Any, Any, tuple[Any, ...]]]:
    """(name, table, the column naming the citizen, order) of each table with her rows."""
    return [
        (
            "notifications",
            notifications,
            notifications.c.recipient,
            (notifications.c.created_at, notifications.c.id),
        ),
        ("statuses", statuses, statuses.c.recipient, (statuses.c.id,)),
        (
            "campaign_rows",
            recipients,
            recipients.c.recipient,
            (recipients.c.campaign_id, recipients.c.row),
        ),
        ("opt_outs", opt_outs, opt_outs.c.address, (opt_outs.c.address,)),
    ]
