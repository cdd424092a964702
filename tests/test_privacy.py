"""A citizen's personal data (LGPD): every key the channel writes expires, one citizen's
data is exported whole and alone, and an erasure leaves nothing of her in any store while
another citizen's conversation stays intact; on a real redis-server and in memory."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import EventVerbosity
from sqlalchemy import create_engine, select

from bot.addons.whatsapp.handoff.state import Waiting
from bot.addons.whatsapp.privacy.__main__ import main, open_stores
from bot.addons.whatsapp.privacy.citizen import Stores, erase, export
from bot.addons.whatsapp.proactive.personal import citizen_records
from bot.addons.whatsapp.proactive.schema import Delivery, metadata
from bot.addons.whatsapp.proactive.store import ProactiveStore
from tests.channel_harness import FakeAgent, Served, serve_channel
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.redis import RedisServer, redis_server
from tests.whatsapp_fixtures import fixture

MARIA_PHONE, MARIA = "5561987654321", "BR.1502576394655843"
OTHER = "15550002222"
DAY = 86400


@dataclass
class RasaLikeAgent(FakeAgent):
    """Writes each turn to a real Rasa tracker store under Rasa's lock store, as Rasa does."""

    store: Any = None
    locks: Any = None

    @property
    def tracker_store(self) -> Any:
        return self.store

    async def handle_message(self, message: UserMessage) -> None:
        sender = message.sender_id or ""
        async with self.locks.lock(sender):
            tracker = await self.store.get_or_create_tracker(sender)
            tracker.update(
                UserUttered(message.text, message_id=message.message_id, metadata=message.metadata)
            )
            await super().handle_message(message)
            tracker.update(BotUttered(f"eco: {message.text}"))
            await self.store.save(tracker)


def maria_says(wamid: str, text: str) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("inbound_text_bsuid_and_phone"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message.update({"id": wamid, "text": {"body": text}})
    return payload


def other_says(wamid: str, text: str) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("inbound_text"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message.update({"id": wamid, "text": {"body": text}})
    return payload


MARIA_WAMIDS = [
    fixture("inbound_text_bsuid_and_phone")["entry"][0]["changes"][0]["value"]["messages"][0]["id"],
    "wamid.MARIA2",
]
MARIA_TRACES = [MARIA_PHONE, MARIA, "Maria Souza", "segunda via do IPTU", "meu CPF", *MARIA_WAMIDS]


async def converse(s: Served, waiting: Waiting) -> None:
    """Maria talks (a stop of marketing messages, a thread another app took, a handoff
    waiting for an agent); another citizen talks too."""
    await s.post(maria_says(MARIA_WAMIDS[0], "quero a segunda via do IPTU"))
    await s.post(other_says("wamid.OTHER1", "horário de atendimento"))
    await s.settle()
    await s.post(maria_says(MARIA_WAMIDS[1], "meu CPF mudou"))
    await s.settle()
    await s.post(fixture("webhook_user_preferences_marketing_stop"))
    await s.post(fixture("webhook_messaging_handovers_control_taken"))
    await s.settle()
    await waiting.start(MARIA_PHONE)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
async def on_redis(
    redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Stores, RasaLikeAgent]]:
    """The stores as the privacy command opens them (from REDIS_URL), and an agent on its own
    instances of the same stores, as a running ``rasa run`` would be. No proactive database:
    run from an empty directory, so a ``proactive.db`` that ``make run`` left in the checkout
    is not opened."""
    monkeypatch.chdir(tmp_path)
    environ = {"REDIS_URL": redis.url}
    stores = open_stores("", "", environ)
    bot = open_stores("", "", environ)
    yield stores, RasaLikeAgent(store=bot.tracker_store, locks=bot.lock_store)
    for opened in (stores, bot):
        await opened.state.close()
        await opened.waiting.close()
        await opened.redis.close()


async def all_keys(redis: Any) -> dict[str, tuple[int, str]]:
    """Every key -> (its TTL, its whole value as text)."""
    found = {}
    async for raw in redis.scan_iter(count=1000):
        name = raw.decode()
        kind = (await redis.type(name)).decode()
        if kind == "string":
            value: Any = await redis.get(name)
        elif kind == "hash":
            value = await redis.hgetall(name)
        elif kind == "set":
            value = sorted(await redis.smembers(name))
        else:
            value = await redis.lrange(name, 0, -1)
        found[name] = (await redis.ttl(name), repr(value))
    return found


async def test_every_key_the_channel_writes_during_a_conversation_expires(
    on_redis: tuple[Stores, RasaLikeAgent], redis: RedisServer
) -> None:
    stores, agent = on_redis
    agent.gate = asyncio.Event()  # hold a turn mid-way: the journal is written then
    during: dict[str, tuple[int, str]] = {}
    async with serve_channel(agent, redis_url=redis.url) as s:
        posted = asyncio.ensure_future(converse(s, Waiting(redis.url, retention_seconds=30 * DAY)))
        for _ in range(500):
            during = await all_keys(stores.redis)
            if any(name.startswith("wa:journal:") for name in during):
                break
            await asyncio.sleep(0.01)
        agent.gate.set()
        await posted
        after = await all_keys(stores.redis)
    written = {**during, **after}
    families = {_family(name) for name in written}
    assert families >= {
        "tracker:tracker:<citizen>",  # Rasa's tracker store
        "wa:dedup:<wamid>",
        "wa:journal:<owner>",
        "wa:alive:<owner>",
        "wa:identity:alias:<citizen>",
        "wa:identity:phone:<citizen>",
        "wa:identity:user:<citizen>",
        "wa:identity:ids:<citizen>",
        "wa:prefs:<citizen>",
        "wa:thread:owner:<citizen>",
        "wa:handoff:waiting",
    }
    assert sorted(name for name, (ttl, _) in written.items() if ttl < 0) == []
    retention = 90 * DAY  # PRIVACY_RETENTION_DAYS' default
    for name in (
        "tracker:tracker:" + MARIA_PHONE,
        "wa:identity:alias:" + MARIA,
        "wa:identity:ids:" + MARIA_PHONE,
        "wa:prefs:" + MARIA_PHONE,
    ):
        assert retention - 60 < written[name][0] <= retention, name
    assert 30 * DAY - 60 < written["wa:handoff:waiting"][0] <= 30 * DAY


def _family(name: str) -> str:
    """``wa:identity:alias:BR.1502…`` ▸ ``wa:identity:alias:<citizen>``: what kind of key."""
    parts = name.split(":")
    for i, part in enumerate(parts):
        if part in (MARIA_PHONE, MARIA, OTHER):
            return ":".join([*parts[:i], "<citizen>"])
        if part.startswith("wamid."):
            return ":".join([*parts[:i], "<wamid>"])
    if parts[:2] in (["wa", "journal"], ["wa", "alive"], ["wa", "adopted"]):
        return ":".join([*parts[:2], "<owner>"])
    return name


def events_of(tracker: Any) -> list[tuple[str, str | None]]:
    return [
        (e["event"], e.get("text")) for e in tracker.current_state(EventVerbosity.ALL)["events"]
    ]


async def check_export_and_erasure(
    stores: Stores, s: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """The export holds Maria's data and nobody else's; the erasure removes it all, once."""
    other_before = events_of(await stores.tracker_store.retrieve(OTHER))
    exported = await export(stores, MARIA)  # by her BSUID: her phone-keyed conversation too
    conversations = exported.pop("conversations")
    assert exported == {
        "conversation_key": MARIA_PHONE,
        "identifiers": [MARIA_PHONE, MARIA],
        "contact": {"phone": MARIA_PHONE, "user_id": MARIA},
        "preferences": {"marketing_messages": "stop"},
        "thread_owner": "1000000000009002",
        "handoff_waiting_since": {
            MARIA_PHONE: pytest.approx(exported["handoff_waiting_since"][MARIA_PHONE])
        },
        "messages_in_flight": [],
        "proactive": None,
    }
    assert list(conversations) == [MARIA_PHONE]
    said = [
        (e["event"], e.get("text"))
        for e in conversations[MARIA_PHONE]
        if e["event"] in ("user", "bot")
    ]
    assert said == [
        ("user", "quero a segunda via do IPTU"),
        ("bot", "eco: quero a segunda via do IPTU"),
        ("user", "meu CPF mudou"),
        ("bot", "eco: meu CPF mudou"),
    ]
    text = json.dumps({**exported, "conversations": conversations})
    assert OTHER not in text and "horário" not in text

    caplog.set_level(logging.INFO, logger="bot.addons.whatsapp.privacy.citizen")
    first = await erase(stores, MARIA_PHONE)
    assert first.removed["tracker"] == ["55*********21"]
    assert first.removed["handoff"] == ["waiting"]
    assert {"wa:prefs:" + MARIA_PHONE, "wa:thread:owner:" + MARIA_PHONE} <= set(
        first.removed["channel"]
    ) or {"thread owner", "preference:marketing_messages"} <= set(first.removed["channel"])
    again = await erase(stores, MARIA)
    assert again.summary == "nothing (already erased or never seen)"
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("privacy.citizen")]
    assert lines[0].startswith("Erased the personal data of 55*********21: tracker=1, channel=")
    assert len(lines) == 2 and all(MARIA_PHONE not in line and MARIA not in line for line in lines)

    assert await stores.tracker_store.retrieve(MARIA_PHONE) is None
    assert events_of(await stores.tracker_store.retrieve(OTHER)) == other_before
    assert await export(stores, MARIA_PHONE) == {
        "conversation_key": MARIA_PHONE,
        "identifiers": [MARIA_PHONE],
        "contact": {"phone": "", "user_id": ""},
        "conversations": {},
        "preferences": {},
        "thread_owner": None,
        "handoff_waiting_since": {},
        "messages_in_flight": [],
        "proactive": None,
    }


async def check_both_are_still_answered(stores: Stores, s: Served) -> None:
    """After the erasure Maria starts a new conversation; the other one goes on."""
    await s.post(maria_says("wamid.MARIA3", "voltei"))
    await s.post(other_says("wamid.OTHER2", "obrigado"))
    await s.settle()
    assert events_of(await stores.tracker_store.retrieve(MARIA_PHONE))[-2:] == [
        ("user", "voltei"),
        ("bot", "eco: voltei"),
    ]


async def test_on_redis_an_erasure_leaves_nothing_of_the_citizen_key_by_key(
    on_redis: tuple[Stores, RasaLikeAgent],
    redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stores, agent = on_redis
    async with serve_channel(agent, redis_url=redis.url) as s:
        await converse(s, stores.waiting)
        before = await all_keys(stores.redis)
        other_keys = {n: v for n, v in before.items() if OTHER in n}
        assert sum(trace in repr(before) for trace in MARIA_TRACES) == len(MARIA_TRACES)
        await check_export_and_erasure(stores, s, caplog)
        # Her new conversation aside, no key names her or holds anything of hers.
        after = await all_keys(stores.redis)
    for name, (_, value) in after.items():
        for trace in MARIA_TRACES[1:]:
            assert trace not in name and trace not in value, (name, trace)
        if MARIA_PHONE in name or MARIA_PHONE in value:
            assert "voltei" in value or "wamid.MARIA3" in name or name.startswith("wa:identity"), (
                name
            )
    for name in other_keys:
        assert name in after


async def test_in_memory_an_export_and_erasure_cover_every_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = RasaLikeAgent(store=InMemoryTrackerStore(Domain.empty()), locks=InMemoryLockStore())
    async with serve_channel(agent) as s:
        stores = Stores(agent.store, agent.locks, s.channel.state, Waiting())
        await converse(s, stores.waiting)
        await check_export_and_erasure(stores, s, caplog)
        state = repr((vars(s.channel.state.identities), vars(s.channel.state.routing)))
        assert MARIA_PHONE not in state and MARIA not in state
        await check_both_are_still_answered(stores, s)


async def test_an_erasure_waits_for_the_turn_in_progress(
    on_redis: tuple[Stores, RasaLikeAgent], redis: RedisServer
) -> None:
    stores, agent = on_redis
    agent.gate = asyncio.Event()
    async with serve_channel(agent, redis_url=redis.url) as s:
        await s.post(maria_says("wamid.SLOW", "quero a segunda via do IPTU"))
        for _ in range(500):
            if agent.active.get(MARIA_PHONE):
                break
            await asyncio.sleep(0.01)
        erasing = asyncio.ensure_future(erase(stores, MARIA))
        await asyncio.sleep(0.5)
        assert not erasing.done()  # Rasa's lock: the turn finishes first
        agent.gate.set()
        await s.settle()
        erasure = await erasing
    assert erasure.removed["tracker"] == ["55*********21"]
    assert await stores.tracker_store.retrieve(MARIA_PHONE) is None


def test_the_command_exports_and_erases_through_redis_url(
    redis: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", redis.url)

    async def talk() -> None:
        stores = open_stores("", "", {"REDIS_URL": redis.url})
        agent = RasaLikeAgent(store=stores.tracker_store, locks=stores.lock_store)
        async with serve_channel(agent, redis_url=redis.url) as s:
            await converse(s, stores.waiting)
        await stores.state.close()
        await stores.waiting.close()
        await stores.redis.close()

    asyncio.run(talk())
    out = tmp_path / "maria.json"
    assert main(["export", MARIA, "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o077 == 0
    assert json.loads(out.read_text())["identifiers"] == [MARIA_PHONE, MARIA]
    assert main(["erase", MARIA_PHONE]) == 0
    assert main(["erase", MARIA_PHONE]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("erased 55*********21: tracker=1, channel=")
    assert printed[1] == "erased 55*********21: nothing (already erased or never seen)"


def test_the_command_refuses_when_conversations_live_only_in_rasas_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text('action_endpoint:\n  url: "http://localhost:5055/webhook"\n')
    assert main(["export", MARIA, "--endpoints", str(endpoints)]) == 2
    assert "live in the memory of the running `rasa run`" in capsys.readouterr().err


async def test_on_a_sqlite_tracker_store_the_conversation_is_erased_and_another_kept(
    tmp_path: Path,
) -> None:
    from rasa.core.tracker_store import SQLTrackerStore

    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "trackers.db"))
    agent = RasaLikeAgent(store=store, locks=InMemoryLockStore())
    async with serve_channel(agent) as s:
        stores = Stores(store, agent.locks, s.channel.state, Waiting())
        await converse(s, stores.waiting)
        other_before = events_of(await store.retrieve(OTHER))
        exported = await export(stores, MARIA)
        assert list(exported["conversations"]) == [MARIA_PHONE]
        erasure = await erase(stores, MARIA)
        assert erasure.removed["tracker"] == ["55*********21"]
    assert await store.retrieve(MARIA_PHONE) is None
    assert events_of(await store.retrieve(OTHER)) == other_before
    assert sorted(await store.keys()) == [OTHER]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def proactive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProactiveStore]:
    """The proactive database, on a SQLite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'proactive.db'}"
    else:
        url = request.getfixturevalue("postgres").url
    store = ProactiveStore.open(url)
    yield store
    store.close()
    if request.param == "postgresql":
        engine = create_engine(url)
        metadata.drop_all(engine)
        engine.dispose()


def notify_and_campaign(store: ProactiveStore) -> None:
    """A notification to Maria's phone and one to her BSUID, one to the other citizen, each
    with delivery statuses; a campaign with a row for each; opt-outs of both."""
    for id_, recipient, wamid in (
        ("n-maria-phone", MARIA_PHONE, "wamid.N1"),
        ("n-maria-bsuid", MARIA, "wamid.N2"),
        ("n-other", OTHER, "wamid.N3"),
    ):
        store.add_notification(id_, recipient, "template", "iptu_boleto", "pt_BR", ["IPTU"])
        store.notification_sent(id_, wamid)
        store.record_status(Delivery(wamid, recipient, "delivered"))
    store.create_campaign(
        "vacina", "vacina_aviso", "pt_BR", "utility", [(MARIA_PHONE, ["Maria"]), (OTHER, ["Ana"])]
    )
    store.set_outcome("vacina", 0, "sent", wamid="wamid.C1")
    store.set_outcome("vacina", 1, "sent", wamid="wamid.C2")
    store.opt_out([MARIA_PHONE, MARIA], "stop_word")
    store.opt_out([OTHER], "stop_word")


def every_row(store: ProactiveStore) -> list[dict[str, Any]]:
    with store.engine.connect() as connection:
        return [
            {"table": table.name, **row._mapping}
            for table in metadata.sorted_tables
            if table.name != "proactive_schema_version"
            for row in connection.execute(select(table))
        ]


async def test_an_erasure_removes_the_citizens_notifications_campaign_rows_and_opt_outs(
    proactive: ProactiveStore, caplog: pytest.LogCaptureFixture
) -> None:
    agent = RasaLikeAgent(store=InMemoryTrackerStore(Domain.empty()), locks=InMemoryLockStore())
    async with serve_channel(agent) as s:
        stores = Stores(agent.store, agent.locks, s.channel.state, Waiting(), proactive=proactive)
        await converse(s, stores.waiting)
        notify_and_campaign(proactive)
        other_rows = [row for row in every_row(proactive) if OTHER in repr(row)]

        exported = (await export(stores, MARIA))["proactive"]  # by her BSUID: her phone too
        assert [
            (n["id"], n["recipient"], n["status"], n["params"]) for n in exported["notifications"]
        ] == [
            ("n-maria-phone", MARIA_PHONE, "delivered", ["IPTU"]),
            ("n-maria-bsuid", MARIA, "delivered", ["IPTU"]),
        ]
        assert [(st["wamid"], st["status"]) for st in exported["statuses"]] == [
            ("wamid.N1", "delivered"),
            ("wamid.N2", "delivered"),
        ]
        assert [
            (r["campaign_id"], r["row"], r["params"], r["outcome"])
            for r in exported["campaign_rows"]
        ] == [("vacina", 0, ["Maria"], "sent")]
        assert sorted((o["address"], o["source"]) for o in exported["opt_outs"]) == [
            (MARIA_PHONE, "stop_word"),
            (MARIA, "stop_word"),
        ]
        assert OTHER not in json.dumps(exported)

        caplog.set_level(logging.INFO, logger="bot.addons.whatsapp.privacy.citizen")
        first = await erase(stores, MARIA_PHONE)
        assert {kind: len(first.removed[kind]) for kind in exported} == {
            "notifications": 2,
            "statuses": 2,
            "campaign_rows": 1,
            "opt_outs": 2,
        }
        again = await erase(stores, MARIA)
        assert again.summary == "nothing (already erased or never seen)"

    lines = [r.getMessage() for r in caplog.records if r.name.endswith("privacy.citizen")]
    assert len(lines) == 2
    assert "notifications=2, statuses=2, campaign_rows=1, opt_outs=2" in lines[0]
    assert all(MARIA_PHONE not in line and MARIA not in line for line in lines)
    left = every_row(proactive)
    assert [row for row in left if MARIA_PHONE in repr(row) or MARIA in repr(row)] == []
    assert [row for row in left if OTHER in repr(row)] == other_rows
    assert not proactive.opted_out([MARIA_PHONE, MARIA]) and proactive.opted_out([OTHER])


def test_the_command_erases_from_the_proactive_database_it_is_given(
    redis: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite:///{tmp_path / 'proactive.db'}"
    monkeypatch.setenv("REDIS_URL", redis.url)
    monkeypatch.setenv("WPP_PROACTIVE_DB_URL", url)
    store = ProactiveStore.open(url)
    notify_and_campaign(store)
    out = tmp_path / "maria.json"
    assert main(["export", MARIA_PHONE, "--out", str(out)]) == 0
    exported = json.loads(out.read_text())["proactive"]
    assert [n["id"] for n in exported["notifications"]] == ["n-maria-phone"]  # map unknown
    assert main(["erase", MARIA_PHONE]) == 0
    printed = capsys.readouterr().out
    assert "notifications=1, statuses=1, campaign_rows=1, opt_outs=1" in printed
    assert [
        n["recipient"] for n in citizen_records(store, [MARIA_PHONE, OTHER])["notifications"]
    ] == [OTHER]
    store.close()


def test_without_a_proactive_database_the_command_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WPP_PROACTIVE_DB_URL", raising=False)
    from bot.addons.whatsapp.privacy.__main__ import open_proactive

    assert open_proactive({}) is None
    assert list(tmp_path.iterdir()) == []
    ProactiveStore.open("sqlite:///proactive.db").close()
    opened = open_proactive({})
    assert opened is not None and citizen_records(opened, [MARIA])["opt_outs"] == []
    opened.close()
