"""One citizen, one conversation: the identity rule, in memory and on a real redis-server,
driven by the identifiers of the 2026 payload files; the thread owners, preferences and
template statuses kept beside it."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Iterator

import pytest

from bot.addons.whatsapp.inbound.events import Citizen
from bot.addons.whatsapp.inbound.identity import (
    Contact,
    IdentityMap,
    MemoryIdentityMap,
    RedisIdentityMap,
    choose_key,
    is_bsuid,
)
from bot.addons.whatsapp.inbound.routing import (
    MemoryRoutingStore,
    RedisRoutingStore,
    RoutingStore,
)
from bot.addons.whatsapp.redis_client import redis_client
from tests.channel_harness import serve_channel
from tests.support.redis import RedisServer, redis_server
from tests.whatsapp_fixtures import fixture

# Joana (a username, no phone at first) and Maria (phone and BSUID), from the fixtures.
JOANA = fixture("inbound_text_bsuid_only")["entry"][0]["changes"][0]["value"]["messages"][0][
    "from_user_id"
]
JOANA_PHONE = "5561991234567"  # shared later through a contact request (SOURCES.md)
MARIA_MESSAGE = fixture("inbound_text_bsuid_and_phone")["entry"][0]["changes"][0]["value"][
    "messages"
][0]
MARIA_PHONE, MARIA = MARIA_MESSAGE["from"], MARIA_MESSAGE["from_user_id"]
CARLOS_SYSTEM = fixture("inbound_system_user_changed_number_bsuid")["entry"][0]["changes"][0][
    "value"
]["messages"][0]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
async def identities(request: pytest.FixtureRequest) -> AsyncIterator[IdentityMap]:
    if request.param == "memory":
        yield MemoryIdentityMap()
        return
    server = request.getfixturevalue("redis")
    store = RedisIdentityMap(redis_client(server.url))
    yield store
    await store.close()


def test_bsuids_are_told_from_phones() -> None:
    assert is_bsuid(JOANA) and is_bsuid("BR.ENT.5930271846602248")
    assert not is_bsuid(MARIA_PHONE) and not is_bsuid("+5561987654321")
    assert not is_bsuid("@joana.lima") and not is_bsuid("")


def test_the_rule_prefers_the_bsuids_key_and_spots_a_recycled_number() -> None:
    both = Citizen(MARIA_PHONE, MARIA)
    assert choose_key(both, {}) == MARIA_PHONE  # first seen: the phone, as before 2026
    assert choose_key(both, {MARIA: "K1", MARIA_PHONE: "K2"}) == "K1"
    assert choose_key(both, {MARIA_PHONE: "K2"}, {"K2": MARIA}) == "K2"
    # The phone's conversation belongs to another BSUID: someone else got the number.
    assert choose_key(both, {MARIA_PHONE: "K2"}, {"K2": JOANA}) == MARIA
    assert choose_key(Citizen(user_id=JOANA), {}) == JOANA


async def test_a_phone_conversation_of_before_2026_keeps_its_key(identities: IdentityMap) -> None:
    assert await identities.resolve(Citizen(MARIA_PHONE, MARIA)) == MARIA_PHONE
    assert await identities.resolve(Citizen(phone=MARIA_PHONE)) == MARIA_PHONE
    assert await identities.resolve(Citizen(user_id=MARIA)) == MARIA_PHONE
    assert await identities.contact(MARIA_PHONE) == Contact(MARIA_PHONE, MARIA_PHONE, MARIA)


async def test_a_username_user_keeps_her_conversation_when_her_phone_appears(
    identities: IdentityMap,
) -> None:
    assert await identities.resolve(Citizen(user_id=JOANA)) == JOANA
    assert (await identities.contact(JOANA)).address == JOANA  # reply with "recipient"
    assert await identities.resolve(Citizen(JOANA_PHONE, JOANA)) == JOANA
    assert (await identities.contact(JOANA)).address == JOANA_PHONE  # now "to"
    assert await identities.resolve(Citizen(phone=JOANA_PHONE)) == JOANA


async def test_a_number_change_joins_the_old_conversation(identities: IdentityMap) -> None:
    old_phone, system = CARLOS_SYSTEM["from"], CARLOS_SYSTEM["system"]
    old_bsuid = "BR.3391048572216604"
    assert await identities.resolve(Citizen(old_phone, old_bsuid)) == old_phone
    new = Citizen(system["wa_id"], system["user_id"], system["parent_user_id"])
    assert await identities.link(old_phone, new) == old_phone
    assert await identities.resolve(Citizen(system["wa_id"], system["user_id"])) == old_phone
    assert (await identities.contact(old_phone)).address == system["wa_id"]


async def test_two_processes_agree_on_a_new_citizen(redis: RedisServer) -> None:
    first, second = (RedisIdentityMap(redis_client(redis.url)) for _ in range(2))
    keys = await asyncio.gather(
        *(
            store.resolve(ids)
            for store, ids in [
                (first, Citizen(user_id=JOANA)),
                (second, Citizen(JOANA_PHONE, JOANA)),
            ]
            * 20
        )
    )
    assert len(set(keys)) == 1
    await first.close()
    await second.close()


@pytest.fixture(params=["memory", "redis"])
async def routing(request: pytest.FixtureRequest) -> AsyncIterator[RoutingStore]:
    if request.param == "memory":
        yield MemoryRoutingStore()
        return
    server = request.getfixturevalue("redis")
    store = RedisRoutingStore(redis_client(server.url))
    yield store
    await store.close()


async def test_a_thread_taken_over_is_given_back_or_expires_when_idle(
    routing: RoutingStore,
) -> None:
    await routing.hand_over(MARIA_PHONE, "1000000000009002", idle_seconds=1)
    assert await routing.owner(MARIA_PHONE) == "1000000000009002"
    await routing.take_back(MARIA_PHONE)
    assert await routing.owner(MARIA_PHONE) is None
    await routing.hand_over(MARIA_PHONE, "1000000000009002", idle_seconds=1)
    await asyncio.sleep(0.7)
    await routing.touch(MARIA_PHONE, idle_seconds=1)  # standby traffic
    await asyncio.sleep(0.7)
    assert await routing.owner(MARIA_PHONE) == "1000000000009002"
    await asyncio.sleep(0.6)
    assert await routing.owner(MARIA_PHONE) is None
    await routing.touch(MARIA_PHONE, idle_seconds=1)  # traffic does not take a thread
    assert await routing.owner(MARIA_PHONE) is None


async def test_preferences_and_template_statuses_are_kept(routing: RoutingStore) -> None:
    assert await routing.preference(MARIA_PHONE, "marketing_messages") is None
    await routing.set_preference(MARIA_PHONE, "marketing_messages", "stop")
    assert await routing.preference(MARIA_PHONE, "marketing_messages") == "stop"
    assert await routing.template_usable("lembrete_agendamento")
    for event, usable in (("PAUSED", False), ("APPROVED", True), ("DISABLED", False)):
        await routing.set_template_status("lembrete_agendamento", event)
        assert await routing.template_usable("lembrete_agendamento") is usable


async def test_two_channels_on_one_redis_keep_one_conversation(redis: RedisServer) -> None:
    joana = fixture("inbound_text_bsuid_only")
    later = copy.deepcopy(joana)
    value = later["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = JOANA_PHONE
    value["messages"][0].update({"from": JOANA_PHONE, "id": "wamid.OTHER.PROCESS"})
    async with (
        serve_channel(redis_url=redis.url) as first,
        serve_channel(redis_url=redis.url) as second,
    ):
        assert (await first.post(joana)).status == 200
        await first.settle()
        assert (await second.post(later)).status == 200
        await second.settle()
        assert [m.sender_id for m in first.agent.messages + second.agent.messages] == [
            JOANA,
            JOANA,
        ]
        assert [to for to, _ in first.provider.sent + second.provider.sent] == [
            JOANA,
            JOANA_PHONE,
        ]
