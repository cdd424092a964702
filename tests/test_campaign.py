"""Campaigns against the fake Graph API, a real redis-server and the proactive database:
opt-outs, the daily limit, a paused template, later statuses in the report, the shared
rate limit across two processes, and a SIGKILL mid-campaign."""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import create_engine

from bot.addons.whatsapp.inbound.routing import RedisRoutingStore
from bot.addons.whatsapp.proactive.campaign import (
    CampaignError,
    read_recipients,
    report,
    send,
)
from bot.addons.whatsapp.proactive.schema import metadata
from bot.addons.whatsapp.proactive.store import Delivery, ProactiveStore
from bot.addons.whatsapp.proactive.throttle import SharedLimits, spacing
from bot.addons.whatsapp.redis_client import redis_client
from tests.channel_harness import settings
from tests.fakes.graph import FakeGraph, graph_error, running_graph
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.redis import RedisServer, redis_server
from tests.support.stack import ROOT


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each campaign process opens it: a SQLite file, or a real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'p.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    yield server.url
    engine = create_engine(server.url)
    metadata.drop_all(engine)
    engine.dispose()


@dataclass
class TimedGraph(FakeGraph):
    """The fake Graph API, also noting when each message arrived and the wamid it got."""

    arrivals: list[float] = field(default_factory=list)
    accepted: list[tuple[str, str]] = field(default_factory=list)  # (to, wamid)

    async def messages(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.time())
        answer = await super().messages(request)
        if answer.status == 200 and answer.text:
            body = json.loads(answer.text)
            self.accepted.append((body["contacts"][0]["input"], body["messages"][0]["id"]))
        return answer


@asynccontextmanager
async def graph() -> AsyncIterator[TimedGraph]:
    async with running_graph(TimedGraph()) as fake:
        assert isinstance(fake, TimedGraph)
        yield fake


def citizens(n: int, start: int = 0) -> list[tuple[str, list[str]]]:
    return [(f"556199{i:07d}", [f"Cidadão {i}"]) for i in range(start, start + n)]


def args(id_: str, template: str = "lembrete_vacina", **extra: Any) -> argparse.Namespace:
    values = {
        "id": id_,
        "template": template,
        "language": "pt_BR",
        "category": "utility",
        "workers": 8,
        "settle": 0.0,
        "quiet": True,
        "csv": "",
    }
    values.update(extra)
    return argparse.Namespace(**values)


def sent_to(fake: FakeGraph) -> Counter[str]:
    return Counter(body["to"].lstrip("+") for body in fake.sent)


def flush(redis: RedisServer) -> None:
    import redis as sync_redis

    sync_redis.Redis.from_url(redis.url).flushall()


def test_the_csv_gives_each_row_its_recipient_and_parameters() -> None:
    text = "nome,recipient,data\nAna,+5561999990001,10/12\n\nRui,5561999990002,11/12\n"
    assert read_recipients(text) == [
        ("5561999990001", ["Ana", "10/12"]),
        ("5561999990002", ["Rui", "11/12"]),
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nome,telefone\nAna,55\n", "the CSV needs a header with a 'recipient' column"),
        ("recipient,nome\n5561,Ana,extra\n", "line 2: 3 cells, the header has 2"),
        ("recipient,nome\n,Ana\n", "line 2: no recipient"),
    ],
)
def test_a_bad_csv_is_refused_naming_the_line(text: str, reason: str) -> None:
    with pytest.raises(CampaignError) as raised:
        read_recipients(text)
    assert str(raised.value) == reason


@pytest.mark.e2e  # ~20 s
async def test_a_campaign_of_2000_skips_opted_out_citizens_and_messages_everyone_else_once(
    redis: RedisServer, tmp_path: Path
) -> None:
    flush(redis)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    rows = citizens(2000)
    opted = [recipient for recipient, _ in rows[::100]]  # 20 citizens
    store = ProactiveStore.open(url)
    store.opt_out(opted, "stop_word")
    async with graph() as fake:
        config = settings(
            api_base_url=fake.url,
            redis_url=redis.url,
            proactive_db_url=url,
            campaign_rate_per_second=2000.0,
            daily_recipient_limit=5000,
        )
        assert await send(args("c2000"), config, rows) == 0
        counts = sent_to(fake)
    assert set(counts.values()) == {1}
    assert set(counts) == {r for r, _ in rows} - set(opted)
    assert [body for body in fake.sent if body["to"] == f"+{rows[1][0]}"] == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": f"+{rows[1][0]}",
            "type": "template",
            "template": {
                "name": "lembrete_vacina",
                "language": {"code": "pt_BR"},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": "Cidadão 1"}]}
                ],
            },
        }
    ]
    document = json.loads(report(store, "c2000", "json") or "")
    assert (document["campaign"]["state"], document["totals"]) == (
        "done",
        {"opted_out": 20, "sent": 1980},
    )


async def test_the_daily_limit_stops_a_campaign_before_it_is_exceeded(
    redis: RedisServer, tmp_path: Path
) -> None:
    flush(redis)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    async with graph() as fake:
        config = settings(
            api_base_url=fake.url,
            redis_url=redis.url,
            proactive_db_url=url,
            daily_recipient_limit=50,
        )
        assert await send(args("first"), config, citizens(80)) == 3
        assert len(fake.sent) == 50
        # Citizens already messaged today cost nothing: a second campaign reaches them.
        assert await send(args("second", "outro"), config, citizens(30)) == 0
        assert len(fake.sent) == 80
    store = ProactiveStore.open(url)
    campaign = store.campaign("first")
    assert campaign is not None
    assert (campaign["state"], campaign["reason"]) == (
        "paused",
        "the daily messaging limit (unique citizens per 24 h) is reached",
    )


async def test_a_paused_template_stops_the_campaign_and_it_resumes_once_approved(
    redis: RedisServer, tmp_path: Path
) -> None:
    flush(redis)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    rows = citizens(100)
    routing = RedisRoutingStore(redis_client(redis.url))
    async with graph() as fake:
        config = settings(api_base_url=fake.url, redis_url=redis.url, proactive_db_url=url)
        await routing.set_template_status("lembrete_vacina", "PAUSED")  # its status webhook
        assert await send(args("p"), config, rows) == 3
        assert fake.sent == []
        await routing.set_template_status("lembrete_vacina", "APPROVED")
        fake.fail(400, graph_error("(#132015) Template is paused", 132015))  # Meta's own refusal
        assert await send(args("p"), config, rows) == 3
        assert await send(args("p"), config, rows) == 0
        counts = sent_to(fake)
    await routing.close()
    assert counts == Counter({r: 1 for r, _ in rows})


async def test_statuses_that_arrive_later_are_in_the_report_with_their_error_codes(
    redis: RedisServer, tmp_path: Path
) -> None:
    flush(redis)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    rows = citizens(3)
    async with graph() as fake:
        config = settings(
            api_base_url=fake.url,
            redis_url=redis.url,
            proactive_db_url=url,
            campaign_rate_per_second=1,
        )
        assert await send(args("r", workers=1), config, rows) == 0
        accepted = list(fake.accepted)
    store = ProactiveStore.open(url)
    store.record_status(Delivery(accepted[0][1], rows[0][0], "read"))
    store.record_status(Delivery(accepted[1][1], rows[1][0], "failed", 131026, "Undeliverable"))
    assert report(store, "r", "csv") == (
        "row,recipient,outcome,wamid,error_code,error_title\n"
        f"0,{rows[0][0]},read,{accepted[0][1]},,\n"
        f"1,{rows[1][0]},failed,{accepted[1][1]},131026,Undeliverable\n"
        f"2,{rows[2][0]},sent,{accepted[2][1]},,\n"
    )
    document = json.loads(report(store, "r", "json") or "")
    assert (document["totals"], document["errors"]) == (
        {"failed": 1, "read": 1, "sent": 1},
        {"131026": 1},
    )


# --- real processes -----------------------------------------------------------------


def campaign_env(fake: FakeGraph, redis: RedisServer, url: str, rate: float) -> dict[str, str]:
    return {
        **os.environ,
        "WPP_AUTHORIZATION_TOKEN": fake.token,
        "WPP_VERIFY_TOKEN": "v",
        "WPP_PHONE_NUMBER_IDENTIFIER": "100000000000002",
        "WPP_APP_SECRET": "s",
        "WPP_API_BASE_URL": fake.url,
        "REDIS_URL": redis.url,
        "WPP_PROACTIVE_DB_URL": url,
        "WPP_CAMPAIGN_RATE_PER_SECOND": str(rate),
        "WPP_DAILY_RECIPIENT_LIMIT": "100000",
    }


async def start_campaign(
    env: dict[str, str], csv_path: Path, id_: str, *extra: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.addons.whatsapp.proactive.campaign",
        "send",
        "--id",
        id_,
        "--template",
        "lembrete_vacina",
        "--settle",
        "0",
        "--quiet",
        *extra,
        str(csv_path),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


SAME = ("--nice", "0")  # the campaign's CPU priority left as the test runner's


def write_csv(path: Path, rows: list[tuple[str, list[str]]]) -> Path:
    lines = ["recipient,nome"] + [f"{r},{p[0]}" for r, p in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.e2e
async def test_two_campaign_processes_share_one_rate_limit(
    redis: RedisServer, tmp_path: Path
) -> None:
    flush(redis)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    rate = 40
    async with graph() as fake:
        env = campaign_env(fake, redis, url, rate)
        # At the test runner's CPU priority: what is measured is the shared limit alone.
        first = await start_campaign(env, write_csv(tmp_path / "a.csv", citizens(120)), "a", *SAME)
        second = await start_campaign(
            env, write_csv(tmp_path / "b.csv", citizens(120, 500)), "b", *SAME
        )
        outputs = await asyncio.gather(first.communicate(), second.communicate())
        assert (first.returncode, second.returncode) == (0, 0), outputs
        arrivals = sorted(fake.arrivals)
    assert len(fake.sent) == 240
    # Any one second of arrivals at the fake Meta (a sliding window, not calendar seconds)
    busiest = max(bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals))
    assert busiest <= rate
    achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert 0.8 * rate <= achieved <= rate


@pytest.mark.e2e
async def test_a_campaign_killed_mid_way_and_started_again_messages_nobody_twice_and_skips_nobody(
    redis: RedisServer, tmp_path: Path, database: str
) -> None:
    flush(redis)
    url = database
    rows = citizens(600)
    csv_path = write_csv(tmp_path / "c.csv", rows)
    async with graph() as fake:
        env = campaign_env(fake, redis, url, 150)
        process = await start_campaign(env, csv_path, "k")
        while len(fake.sent) < 200:
            assert process.returncode is None
            await asyncio.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        killed_at = len(fake.sent)
        assert killed_at < len(rows)
        store = ProactiveStore.open(url)
        # Eight workers mark a row "sending", then wait for the rate limit: the kill
        # leaves some rows whose fate the second run must settle.
        assert store.rows("k", ["sending"]) != []
        # Meta reports "sent" for every message it accepted; rasa run records the statuses.
        for to, wamid in fake.accepted:
            store.record_status(Delivery(wamid, to.lstrip("+"), "sent"))
        again = await start_campaign(env, csv_path, "k")
        output, _ = await again.communicate()
        assert again.returncode == 0, output.decode()
        counts = sent_to(fake)
    assert counts == Counter({r: 1 for r, _ in rows})
    document = json.loads(report(store, "k", "json") or "")
    store.close()
    assert document["totals"] == {"sent": 600}


def niceness(pid: int) -> int:
    """A running process's nice value (field 19 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[16])


@pytest.mark.e2e
async def test_the_campaign_runs_at_a_lower_cpu_priority_than_whoever_started_it(
    redis: RedisServer, tmp_path: Path
) -> None:
    """On a host it shares with rasa run, the chat's turns get the CPU first."""
    flush(redis)
    async with graph() as fake:
        env = campaign_env(fake, redis, f"sqlite:///{tmp_path / 'p.db'}", 4)
        process = await start_campaign(env, write_csv(tmp_path / "n.csv", citizens(12)), "n")
        while not fake.sent:  # sending, so past its start-up
            assert process.returncode is None
            await asyncio.sleep(0.02)
        observed = niceness(process.pid)
        output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    assert observed == min(19, os.nice(0) + 10)


@pytest.mark.parametrize(("rate", "seconds"), [(80.0, 1 / 79), (2.0, 1.0), (1.0, 1.0), (0.5, 2.0)])
def test_sends_are_spaced_so_that_no_second_holds_more_than_the_rate(
    rate: float, seconds: float
) -> None:
    assert spacing(rate) == pytest.approx(seconds)


async def test_without_redis_the_limits_hold_in_the_process() -> None:
    now = [1000.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))

    limits = SharedLimits(None, "1", 11.0, daily_limit=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await limits.acquire()
    assert waits == [0.1, 0.2]  # spaced 1/(11 - 1) s; the first goes at once
    assert [await limits.admit(r) for r in ("a", "b", "a", "c")] == [True, True, True, False]
    now[0] += 86401
    assert await limits.admit("c")


async def test_sends_woken_up_late_never_crowd_a_second_over_the_rate(redis: RedisServer) -> None:
    """Two processes on one limit, one of them on a host so busy that every wake-up is
    0.2 s late (more than the spacing): its sends would land in the punctual one's seconds."""
    flush(redis)
    rate, each = 20.0, 30
    sent: list[float] = []

    async def late_sleep(seconds: float) -> None:
        await asyncio.sleep(seconds + 0.2)

    async def process(sleep: Any) -> None:
        client = redis_client(redis.url)
        limits = SharedLimits(client, "1", rate, daily_limit=10, sleep=sleep)

        async def worker() -> None:
            for _ in range(each // 3):
                await limits.acquire()
                sent.append(time.time())

        await asyncio.gather(*(worker() for _ in range(3)))
        await client.close()

    await asyncio.gather(process(asyncio.sleep), process(late_sleep))
    times = sorted(sent)
    assert len(times) == 2 * each
    busiest = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    assert busiest <= rate


async def test_a_punctual_campaign_loses_nothing_to_the_window() -> None:
    now = [1000.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    limits = SharedLimits(None, "1", 5.0, daily_limit=10, clock=lambda: now[0], sleep=sleep)
    for _ in range(9):
        await limits.acquire()
    assert now[0] == pytest.approx(1002.0)  # every 1/(5 - 1) s: 9 sends in 2 s, none refused
