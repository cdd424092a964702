"""The proactive database on SQLite and on a real PostgreSQL server (started here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select

from bot.addons.whatsapp.proactive.schema import (
    SCHEMA_VERSION,
    SchemaTooNew,
    metadata,
    migrate,
    schema_version,
)
from bot.addons.whatsapp.proactive.store import Delivery, ProactiveStore
from tests.support.postgres import PostgresServer, postgres_server


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'proactive.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    yield server.url
    engine = create_engine(server.url)
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(url: str, clock: Clock) -> Iterator[ProactiveStore]:
    opened = ProactiveStore.open(url, clock)
    yield opened
    opened.close()


def test_migrating_twice_applies_each_step_once(url: str) -> None:
    engine = create_engine(url)
    assert migrate(engine) == SCHEMA_VERSION
    assert migrate(engine) == SCHEMA_VERSION
    with engine.connect() as connection:
        versions = [row.version for row in connection.execute(select(schema_version))]
    engine.dispose()
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_a_database_migrated_by_newer_code_is_refused(url: str) -> None:
    engine = create_engine(url)
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(insert(schema_version).values(version=SCHEMA_VERSION + 1, applied_at=0))
    with pytest.raises(SchemaTooNew, match="upgrade the bot"):
        migrate(engine)
    engine.dispose()


def test_a_notification_follows_its_statuses_and_never_goes_back(
    store: ProactiveStore, clock: Clock
) -> None:
    store.add_notification("n1", "5561999990001", "template", "protocolo", "pt_BR", {"p": ["1"]})
    store.notification_sent("n1", "wamid.A")
    store.record_status(Delivery("wamid.A", "5561999990001", "read"))
    store.record_status(Delivery("wamid.A", "5561999990001", "delivered"))  # late, out of order
    assert store.notification("n1") == {
        "id": "n1",
        "recipient": "5561999990001",
        "kind": "template",
        "name": "protocolo",
        "language": "pt_BR",
        "params": {"p": ["1"]},
        "status": "read",
        "wamid": "wamid.A",
        "error_code": None,
        "error_title": None,
        "created_at": clock.now,
        "updated_at": clock.now,
    }


def test_a_failed_status_keeps_its_error_code_and_title(store: ProactiveStore) -> None:
    store.add_notification("n2", "5561999990001", "template", "iptu", "pt_BR", {})
    store.notification_sent("n2", "wamid.B")
    store.record_status(Delivery("wamid.B", "5561999990001", "failed", 131026, "Undeliverable"))
    store.record_status(Delivery("wamid.B", "5561999990001", "delivered"))
    found = store.notification("n2")
    assert found is not None
    assert (found["status"], found["error_code"], found["error_title"]) == (
        "failed",
        131026,
        "Undeliverable",
    )


def test_opt_outs_hold_for_every_identifier_until_opted_in(store: ProactiveStore) -> None:
    store.opt_out(["5561999990001", "BR.ABC123"], "stop_word")
    store.opt_out(["5561999990001"], "user_preferences")  # twice: still one row
    assert store.opted_out(["BR.ABC123"])
    assert store.opted_out(["5561999990002", "5561999990001"])
    assert not store.opted_out(["5561999990002"])
    store.opt_in(["5561999990001", "BR.ABC123"])
    assert not store.opted_out(["5561999990001", "BR.ABC123"])


def test_a_campaign_is_created_once_and_its_rows_keep_their_outcomes(
    store: ProactiveStore,
) -> None:
    rows = [("5561999990001", ["Ana"]), ("5561999990002", ["Rui"])]
    assert store.create_campaign("c1", "vacina", "pt_BR", "utility", rows)
    store.set_outcome("c1", 0, "sending")
    store.set_outcome("c1", 0, "sent", wamid="wamid.C")
    assert not store.create_campaign("c1", "vacina", "pt_BR", "utility", rows)
    store.record_status(Delivery("wamid.C", "5561999990001", "delivered"))
    assert [(r.row, r.recipient, r.params, r.outcome, r.wamid) for r in store.rows("c1")] == [
        (0, "5561999990001", ("Ana",), "delivered", "wamid.C"),
        (1, "5561999990002", ("Rui",), "pending", None),
    ]
    assert [r.row for r in store.rows("c1", ["pending"])] == [1]


def test_retention_deletes_old_records_but_keeps_opt_outs_and_running_campaigns(
    store: ProactiveStore, clock: Clock
) -> None:
    store.add_notification("old", "5561999990001", "template", "x", "pt_BR", {})
    store.create_campaign("done", "x", "pt_BR", "utility", [("5561999990001", [])])
    store.set_campaign_state("done", "done")
    store.create_campaign("running", "x", "pt_BR", "utility", [("5561999990001", [])])
    store.opt_out(["5561999990001"], "stop_word")
    clock.now += 91 * 86400
    store.add_notification("new", "5561999990001", "template", "x", "pt_BR", {})
    assert store.purge(90 * 86400) == 3  # the notification, the campaign and its row
    assert store.notification("old") is None
    assert store.notification("new") is not None
    assert store.campaign("done") is None
    assert store.campaign("running") is not None
    assert store.opted_out(["5561999990001"])
