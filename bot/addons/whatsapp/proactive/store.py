"""The proactive database: notifications, campaigns, per-recipient outcomes, delivery
statuses and opt-outs, through SQLAlchemy Core.

A SQLite file by default (``WPP_PROACTIVE_DB_URL`` unset: ``sqlite:///proactive.db``), so
``make run`` needs no server; any SQLAlchemy URL otherwise (``postgresql://…`` in
production: several ``rasa run`` processes and the campaign command share it).

The tables and their migrations are in :mod:`~bot.addons.whatsapp.proactive.schema`.

The calls are synchronous (SQLAlchemy 1.4, the version Rasa 3.6 pins); the async callers
run them in a worker thread (``asyncio.to_thread``) so the event loop never waits on disk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import and_, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from bot.addons.whatsapp.proactive.schema import (
    DEFAULT_URL,
    Delivery,
    RecipientRow,
    campaigns,
    migrate,
    moves_on,
    notifications,
    opt_outs,
    recipients,
    sqlite_wal,
    statuses,
)


class ProactiveStore:
    """The tables above, on one engine; every method is one short transaction."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._clock = clock

    @classmethod
    def open(cls, url: str = "", clock: Callable[[], float] = time.time) -> ProactiveStore:
        """Connect to ``url`` (the SQLite default when empty) and migrate."""
        url = url or DEFAULT_URL
        options: dict[str, Any] = {"future": True, "pool_pre_ping": True}
        if url.startswith("sqlite"):
            # Reached from a worker thread; SQLite waits this long for another writer.
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if url.startswith("postgresql"):
            # An unreachable server fails a webhook's status write in seconds, not minutes.
            options["connect_args"] = {"connect_timeout": 5}
        if url in ("sqlite://", "sqlite:///:memory:"):
            options["poolclass"] = StaticPool  # one in-memory database, not one per connection
        engine = create_engine(url, **options)
        if url.startswith("sqlite:///") and not url.endswith(":memory:"):
            event.listen(engine, "connect", sqlite_wal)
        migrate(engine)
        return cls(engine, clock)

    def close(self) -> None:
        self.engine.dispose()

    # --- notifications ------------------------------------------------------------

    def add_notification(
        self, id_: str, recipient: str, kind: str, name: str, language: str, params: Any
    ) -> None:
        now = self._clock()
        with self.engine.begin() as connection:
            connection.execute(
                notifications.insert().values(
                    id=id_,
                    recipient=recipient,
                    kind=kind,
                    name=name,
                    language=language,
                    params=json.dumps(params, ensure_ascii=False),
                    status="accepted",
                    created_at=now,
                    updated_at=now,
                )
            )

    def notification_sent(self, id_: str, wamid: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                notifications.update()
                .where(and_(notifications.c.id == id_, notifications.c.status == "accepted"))
                .values(status="sent", wamid=wamid, updated_at=self._clock())
            )

    def notification_failed(self, id_: str, code: int | None, title: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                notifications.update()
                .where(notifications.c.id == id_)
                .values(
                    status="failed", error_code=code, error_title=title, updated_at=self._clock()
                )
            )

    def notification(self, id_: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(notifications).where(notifications.c.id == id_)).first()
        if row is None:
            return None
        record = dict(row._mapping)
        record["params"] = json.loads(record["params"])
        return record

    # --- delivery statuses ----------------------------------------------------------

    def record_status(self, delivery: Delivery) -> None:
        """Keep the status and move the notification or campaign row it belongs to on
        (never backwards: statuses may arrive out of order)."""
        now = self._clock()
        with self.engine.begin() as connection:
            connection.execute(
                statuses.insert().values(
                    wamid=delivery.wamid,
                    recipient=delivery.recipient,
                    status=delivery.status,
                    error_code=delivery.error_code,
                    error_title=delivery.error_title or None,
                    received_at=now,
                )
            )
            for table in (notifications, recipients):
                column = table.c.status if table is notifications else table.c.outcome
                row = connection.execute(
                    select(column).where(table.c.wamid == delivery.wamid)
                ).first()
                if row is None or not moves_on(row[0], delivery.status):
                    continue
                values: dict[str, Any] = {column.name: delivery.status, "updated_at": now}
                if delivery.status == "failed":
                    values.update(error_code=delivery.error_code, error_title=delivery.error_title)
                connection.execute(
                    table.update().where(table.c.wamid == delivery.wamid).values(**values)
                )

    def statuses_of(self, recipient: str, since: float) -> list[dict[str, Any]]:
        """Statuses received for ``recipient`` at or after ``since`` (oldest first)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(statuses)
                .where(and_(statuses.c.recipient == recipient, statuses.c.received_at >= since))
                .order_by(statuses.c.id)
            ).all()
        return [dict(row._mapping) for row in rows]

    # --- opt-outs -----------------------------------------------------------------

    def opt_out(self, addresses: Iterable[str], source: str) -> None:
        now = self._clock()
        with self.engine.begin() as connection:
            for address in {a for a in addresses if a}:
                exists = connection.execute(
                    select(opt_outs.c.address).where(opt_outs.c.address == address)
                ).first()
                if exists is None:
                    connection.execute(
                        opt_outs.insert().values(address=address, source=source, created_at=now)
                    )

    def opt_in(self, addresses: Iterable[str]) -> None:
        with self.engine.begin() as connection:
            for address in {a for a in addresses if a}:
                connection.execute(opt_outs.delete().where(opt_outs.c.address == address))

    def opted_out(self, addresses: Iterable[str]) -> bool:
        wanted = [a for a in addresses if a]
        if not wanted:
            return False
        with self.engine.connect() as connection:
            row = connection.execute(
                select(opt_outs.c.address).where(opt_outs.c.address.in_(wanted))
            ).first()
        return row is not None

    # --- campaigns ----------------------------------------------------------------

    def create_campaign(
        self,
        id_: str,
        template: str,
        language: str,
        category: str,
        rows: Sequence[tuple[str, Sequence[str]]],
    ) -> bool:
        """Create the campaign and its rows (all ``pending``); False if it already exists
        (a resumed campaign keeps its rows and outcomes)."""
        now = self._clock()
        with self.engine.begin() as connection:
            if connection.execute(select(campaigns.c.id).where(campaigns.c.id == id_)).first():
                return False
            connection.execute(
                campaigns.insert().values(
                    id=id_,
                    template=template,
                    language=language,
                    category=category,
                    state="running",
                    reason="",
                    total=len(rows),
                    created_at=now,
                    updated_at=now,
                )
            )
            if rows:
                connection.execute(
                    recipients.insert(),
                    [
                        {
                            "campaign_id": id_,
                            "row": index,
                            "recipient": recipient,
                            "params": json.dumps(list(params), ensure_ascii=False),
                            "outcome": "pending",
                            "updated_at": now,
                        }
                        for index, (recipient, params) in enumerate(rows)
                    ],
                )
        return True

    def campaign(self, id_: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(campaigns).where(campaigns.c.id == id_)).first()
        return dict(row._mapping) if row is not None else None

    def set_campaign_state(self, id_: str, state: str, reason: str = "") -> None:
        with self.engine.begin() as connection:
            connection.execute(
                campaigns.update()
                .where(campaigns.c.id == id_)
                .values(state=state, reason=reason, updated_at=self._clock())
            )

    def rows(self, id_: str, outcomes: Iterable[str] | None = None) -> list[RecipientRow]:
        query = select(recipients).where(recipients.c.campaign_id == id_)
        if outcomes is not None:
            query = query.where(recipients.c.outcome.in_(list(outcomes)))
        with self.engine.connect() as connection:
            found = connection.execute(query.order_by(recipients.c.row)).all()
        return [
            RecipientRow(
                row=r.row,
                recipient=r.recipient,
                params=tuple(json.loads(r.params)),
                outcome=r.outcome,
                wamid=r.wamid,
                error_code=r.error_code,
                error_title=r.error_title,
                attempted_at=r.attempted_at,
            )
            for r in found
        ]

    def set_outcome(
        self,
        id_: str,
        row: int,
        outcome: str,
        wamid: str | None = None,
        error_code: int | None = None,
        error_title: str | None = None,
    ) -> None:
        now = self._clock()
        values: dict[str, Any] = {"outcome": outcome, "updated_at": now}
        if outcome == "sending":
            values["attempted_at"] = now
        if wamid is not None:
            values["wamid"] = wamid
        if error_code is not None or error_title is not None:
            values.update(error_code=error_code, error_title=error_title)
        with self.engine.begin() as connection:
            connection.execute(
                recipients.update()
                .where(and_(recipients.c.campaign_id == id_, recipients.c.row == row))
                .values(**values)
            )

    # --- retention ------------------------------------------------------------------

    def purge(self, older_than_seconds: float) -> int:
        """Delete notifications, statuses and finished campaigns (with their rows) older
        than the retention period; opt-outs are kept (they are the citizen's choice)."""
        cutoff = self._clock() - older_than_seconds
        with self.engine.begin() as connection:
            deleted = connection.execute(
                notifications.delete().where(notifications.c.created_at < cutoff)
            ).rowcount
            deleted += connection.execute(
                statuses.delete().where(statuses.c.received_at < cutoff)
            ).rowcount
            old = [
                row.id
                for row in connection.execute(
                    select(campaigns.c.id).where(
                        and_(campaigns.c.updated_at < cutoff, campaigns.c.state == "done")
                    )
                )
            ]
            if old:
                deleted += connection.execute(
                    recipients.delete().where(recipients.c.campaign_id.in_(old))
                ).rowcount
                deleted += connection.execute(
                    campaigns.delete().where(campaigns.c.id.in_(old))
                ).rowcount
        return int(deleted)
