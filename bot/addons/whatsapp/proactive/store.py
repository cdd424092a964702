"""The proactive database: notifications, campaigns, per-recipient outcomes, delivery
statuses and opt-outs, through SQLAlchemy Core.

A SQLite file by default (``WPP_PROACTIVE_DB_URL`` unset: ``sqlite:///proactive.db``), so
``make run`` needs no server; any SQLAlchemy URL otherwise (``postgresql://…`` in
production: several ``rasa run`` processes and the campaign command share it).

**Migrations** are an ordered list of steps in this module (:data:`MIGRATIONS`), each
applied once in its own transaction and recorded in ``proactive_schema_version``. A
database newer than this code (a version this code does not know) refuses to open rather
than guess. There is no down-migration: a step only adds.

The calls are synchronous (SQLAlchemy 1.4, the version Rasa 3.6 pins); the async callers
run them in a worker thread (``asyncio.to_thread``) so the event loop never waits on disk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    func,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

DEFAULT_URL: Final = "sqlite:///proactive.db"

metadata = MetaData()

schema_version = Table(
    "proactive_schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)

notifications = Table(
    "proactive_notifications",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("recipient", String(160), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # template | response
    Column("name", String(512), nullable=False),
    Column("language", String(16), nullable=False, default=""),
    Column("params", Text, nullable=False, default="{}"),  # JSON
    Column("status", String(16), nullable=False),  # accepted | sent | delivered | read | failed
    Column("wamid", String(160), index=True),
    Column("error_code", Integer),
    Column("error_title", Text),
    Column("created_at", Float, nullable=False, index=True),
    Column("updated_at", Float, nullable=False),
)

campaigns = Table(
    "proactive_campaigns",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("template", String(512), nullable=False),
    Column("language", String(16), nullable=False),
    Column("category", String(32), nullable=False),  # marketing | utility | authentication
    Column("state", String(16), nullable=False),  # running | paused | done
    Column("reason", Text, nullable=False, default=""),
    Column("total", Integer, nullable=False),
    Column("created_at", Float, nullable=False, index=True),
    Column("updated_at", Float, nullable=False),
)

recipients = Table(
    "proactive_campaign_recipients",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("row", Integer, primary_key=True),
    Column("recipient", String(160), nullable=False),
    Column("params", Text, nullable=False, default="[]"),  # JSON list of body parameters
    # pending | sending | sent | delivered | read | failed | opted_out
    Column("outcome", String(16), nullable=False, index=True),
    Column("wamid", String(160), index=True),
    Column("error_code", Integer),
    Column("error_title", Text),
    Column("attempted_at", Float),
    Column("updated_at", Float, nullable=False),
)

statuses = Table(
    "proactive_statuses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("wamid", String(160), nullable=False, index=True),
    Column("recipient", String(160), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("error_code", Integer),
    Column("error_title", Text),
    Column("received_at", Float, nullable=False, index=True),
)

opt_outs = Table(
    "proactive_opt_outs",
    metadata,
    Column("address", String(160), primary_key=True),  # phone, BSUID or conversation key
    Column("source", String(32), nullable=False),  # stop_word | user_preferences | 131050
    Column("created_at", Float, nullable=False),
)


def _create(*tables: Table) -> Callable[[Connection], None]:
    def step(connection: Connection) -> None:
        for table in tables:
            table.create(connection, checkfirst=True)

    return step


MIGRATIONS: Final[Sequence[tuple[int, Callable[[Connection], None]]]] = (
    (1, _create(notifications, campaigns, recipients, statuses, opt_outs)),
)
"""(version, step) in order; add a step, never edit one that shipped."""

SCHEMA_VERSION: Final = MIGRATIONS[-1][0]

# Status ranks: a late "delivered" never overwrites "read"; "failed" always wins.
RANK: Final = {"pending": 0, "accepted": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer version of the bot."""


def migrate(engine: Engine) -> int:
    """Apply the missing steps; returns the schema version now in force."""
    schema_version.create(engine, checkfirst=True)
    with engine.begin() as connection:
        current = connection.execute(select(func.max(schema_version.c.version))).scalar() or 0
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"The proactive database is at schema version {current}; this code knows "
            f"{SCHEMA_VERSION}: upgrade the bot"
        )
    for version, step in MIGRATIONS:
        if version <= current:
            continue
        try:
            with engine.begin() as connection:
                step(connection)
                connection.execute(
                    schema_version.insert().values(version=version, applied_at=time.time())
                )
        except IntegrityError:
            pass  # another process applied this step at the same moment
    return SCHEMA_VERSION


@dataclass(frozen=True)
class Delivery:
    """What a status webhook said about one message."""

    wamid: str
    recipient: str
    status: str  # sent | delivered | read | failed
    error_code: int | None = None
    error_title: str = ""


@dataclass(frozen=True)
class RecipientRow:
    """One row of a campaign."""

    row: int
    recipient: str
    params: tuple[str, ...]
    outcome: str
    wamid: str | None
    error_code: int | None
    error_title: str | None
    attempted_at: float | None


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
        engine = create_engine(url, **options)
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
                if row is None or not _moves_on(row[0], delivery.status):
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


def _moves_on(current: str, new: str) -> bool:
    if current in ("failed", "opted_out"):
        return False
    if new == "failed":
        return True
    return RANK.get(new, 0) > RANK.get(current, 0)


def as_delivery(record: Mapping[str, Any]) -> Delivery:
    return Delivery(
        str(record["wamid"]),
        str(record["recipient"]),
        str(record["status"]),
        record.get("error_code"),
        str(record.get("error_title") or ""),
    )
