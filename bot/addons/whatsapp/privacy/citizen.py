"""Everything stored about one citizen: found through the identity map, exported, erased.

A citizen may have several identifiers (a phone, a BSUID, a parent BSUID, an older phone
after a number change); the identity map (:mod:`..inbound.identity`) ties them to one
conversation key, Rasa's ``sender_id``. Trackers are looked up under the key *and* every
identifier, because a conversation of before the identity map may be keyed on an
identifier that is no longer the key.

The stores, and what is removed from each on erasure:

* Rasa's tracker store: the conversation (its events), under Rasa's lock store, so a turn
  in progress finishes first and the next message starts a new conversation rather than
  writing into a half-deleted one;
* the channel's keys: identity entries, thread owner, preferences, a handoff still waiting
  for an agent, and (on Redis) the journal entries, dedup claims and sent counts of the
  citizen's messages (a WhatsApp message id encodes the sender's phone number);
* the proactive database (:mod:`..proactive.personal`), when one is configured: the
  notifications sent to the citizen (with their statuses), her rows in campaigns and her
  opt-outs, under any of her identifiers.

Erasure is idempotent: a second run finds nothing and removes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rasa.core.lock_store import LockStore
from rasa.core.tracker_store import InMemoryTrackerStore, RedisTrackerStore, SQLTrackerStore
from rasa.shared.core.trackers import EventVerbosity

from bot.addons.whatsapp.handoff.state import Waiting
from bot.addons.whatsapp.inbound.events import message_from_record
from bot.addons.whatsapp.inbound.routing import ChannelState
from bot.addons.whatsapp.logs import mask_id
from bot.addons.whatsapp.proactive.personal import citizen_records, erase_citizen
from bot.addons.whatsapp.proactive.store import ProactiveStore

logger = logging.getLogger(__name__)


class UnsupportedStoreError(Exception):
    """The tracker store is of a kind this module cannot erase from."""


@dataclass(frozen=True)
class Stores:
    """Where a citizen's data lives.

    Attributes:
        tracker_store: Rasa's tracker store (as ``rasa run`` uses it).
        lock_store: Rasa's lock store (the same as ``rasa run``'s, so erasure waits for a
            turn in progress).
        state: the channel's identity map and routing store.
        waiting: handoffs waiting for an agent.
        redis: the channel's Redis client, or None without Redis (no journal then).
        proactive: the proactive database (notifications, campaigns, opt-outs), or None
            where there is none.
    """

    tracker_store: Any
    lock_store: LockStore
    state: ChannelState
    waiting: Waiting
    redis: Any = None
    proactive: ProactiveStore | None = None


@dataclass(frozen=True)
class Citizen:
    """One person: the conversation key and every identifier known for it."""

    key: str
    identifiers: frozenset[str]


@dataclass(frozen=True)
class Erasure:
    """What an erasure removed (store -> items), for its log line."""

    masked_id: str
    removed: dict[str, list[str]] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        parts = [f"{store}={len(items)}" for store, items in self.removed.items() if items]
        return ", ".join(parts) or "nothing (already erased or never seen)"


async def find(stores: Stores, identifier: str) -> Citizen:
    """The citizen ``identifier`` belongs to (itself alone when the map does not know it)."""
    key, identifiers = await stores.state.identities.identifiers(identifier.strip())
    return Citizen(key, identifiers)


def _senders(citizen: Citizen) -> list[str]:
    return [citizen.key, *sorted(citizen.identifiers - {citizen.key})]


async def export(stores: Stores, identifier: str) -> dict[str, Any]:
    """Everything stored about the citizen, as JSON-ready data (an access request)."""
    citizen = await find(stores, identifier)
    contact = await stores.state.identities.contact(citizen.key)
    conversations = {}
    for sender in _senders(citizen):
        tracker = await stores.tracker_store.retrieve_full_tracker(sender)
        if tracker is not None and tracker.events:
            conversations[sender] = tracker.current_state(EventVerbosity.ALL)["events"]
    waiting = {}
    for sender in _senders(citizen):
        started = await stores.waiting.started(sender)
        if started is not None:
            waiting[sender] = started
    return {
        "conversation_key": citizen.key,
        "identifiers": sorted(citizen.identifiers),
        "contact": {"phone": contact.phone, "user_id": contact.user_id},
        "conversations": conversations,
        "preferences": await stores.state.routing.preferences_of(citizen.key),
        "thread_owner": await stores.state.routing.owner(citizen.key),
        "handoff_waiting_since": waiting,
        "messages_in_flight": [m["wamid"] for m in await _journal_entries(stores, citizen)],
        "proactive": (
            None
            if stores.proactive is None
            else await asyncio.to_thread(citizen_records, stores.proactive, _addresses(citizen))
        ),
    }


async def erase(stores: Stores, identifier: str) -> Erasure:
    """Erase everything stored about the citizen; logs one line with what was removed."""
    citizen = await find(stores, identifier)
    removed: dict[str, list[str]] = {"tracker": [], "channel": [], "handoff": [], "journal": []}
    message_ids: set[str] = set()
    for sender in _senders(citizen):
        async with stores.lock_store.lock(sender):
            tracker = await stores.tracker_store.retrieve_full_tracker(sender)
            if tracker is None:
                continue
            message_ids |= {e.message_id for e in tracker.events if getattr(e, "message_id", None)}
            if await _delete_tracker(stores.tracker_store, sender):
                removed["tracker"].append(mask_id(sender))
    for sender in _senders(citizen):
        if await stores.waiting.take(sender) is not None:
            removed["handoff"].append("waiting")
    removed["channel"] += await stores.state.routing.forget(citizen.key)
    removed["channel"] += await stores.state.identities.forget(citizen.key)
    removed["journal"] += await _erase_journal(stores, citizen, message_ids)
    if stores.proactive is not None:
        counts = await asyncio.to_thread(erase_citizen, stores.proactive, _addresses(citizen))
        for kind, count in counts.items():
            removed[kind] = [kind] * count
    erasure = Erasure(mask_id(identifier), removed)
    logger.info("Erased the personal data of %s: %s", erasure.masked_id, erasure.summary)
    return erasure


def _unwrap(store: Any) -> Any:
    """The tracker store under Rasa's wrappers (``AwaitableTrackerStore``, fail-safe)."""
    while hasattr(store, "_tracker_store"):
        store = store._tracker_store
    return store


async def _delete_tracker(store: Any, sender: str) -> bool:
    """Delete ``sender``'s conversation; whether there was one. Rasa 3.6's tracker stores
    have no delete, so each kind this project deploys is handled here."""
    inner = _unwrap(store)
    if isinstance(inner, RedisTrackerStore):
        return bool(inner.red.delete(inner.key_prefix + sender))
    if isinstance(inner, InMemoryTrackerStore):
        return inner.store.pop(sender, None) is not None
    if isinstance(inner, SQLTrackerStore):
        with inner.session_scope() as session:
            table = inner.SQLEvent
            count = session.query(table).filter(table.sender_id == sender).delete()
            session.commit()
        return bool(count)
    raise UnsupportedStoreError(
        f"erasing from a {type(inner).__name__} is not supported "
        "(Redis, SQL and in-memory tracker stores are)"
    )


async def _journal_entries(stores: Stores, citizen: Citizen) -> list[dict[str, str]]:
    """The citizen's messages in the journals (acknowledged, turn not finished)."""
    if stores.redis is None:
        return []
    found = []
    for pattern in ("wa:journal:*", "wa:adopted:*"):
        async for raw in stores.redis.scan_iter(match=pattern, count=100):
            name = _text(raw)
            for wamid, record in (await stores.redis.hgetall(name)).items():
                message = message_from_record(record)
                if _mentions(citizen, (message.wa_id, message.phone, message.user_id)):
                    found.append({"hash": name, "wamid": _text(wamid)})
    return found


async def _erase_journal(stores: Stores, citizen: Citizen, message_ids: set[str]) -> list[str]:
    if stores.redis is None:
        return []
    removed = []
    for entry in await _journal_entries(stores, citizen):
        if await stores.redis.hdel(entry["hash"], entry["wamid"]):
            removed.append(entry["hash"].split(":")[1])
        message_ids.add(entry["wamid"])
    for wamid in sorted(message_ids):
        for name in (f"wa:dedup:{wamid}", f"wa:sent:{wamid}"):
            if await stores.redis.delete(name):
                removed.append(name.split(":")[1])
    return removed


def _addresses(citizen: Citizen) -> list[str]:
    """Every identifier the proactive database may know her by (the key included)."""
    return sorted(citizen.identifiers | {citizen.key})


def _mentions(citizen: Citizen, values: Iterable[str]) -> bool:
    return any(value and value in citizen.identifiers for value in values)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
