"""One citizen, one conversation: WhatsApp's identifiers of a person ▸ one Rasa ``sender_id``.

Since 2026 a citizen reaches the bot with a phone number (``wa_id``/``from``), a
business-scoped user id (BSUID, ``user_id``/``from_user_id``), a parent BSUID, or any mix of
them, and the mix changes over time (a username user arrives BSUID-only, later shares the
phone; a number change brings a new phone and a new BSUID). Rasa keys a conversation (its
tracker) on one string, so every identifier is mapped to one *conversation key*.

The rule (README, "Usernames and business-scoped user IDs"):

1. The key of a citizen is the first identifier the bot saw: the phone when the first
   message carried one (as every conversation before 2026 was keyed, so existing trackers
   keep working), else the BSUID. A key never changes.
2. Every identifier seen later with a known one maps to the same key. When the identifiers
   of one message point at different keys, the BSUID's key wins (Meta scopes a BSUID to one
   person; a phone number can be recycled) and the phone is re-pointed to it.
3. A phone already linked to a *different* BSUID than the one it arrives with now is a
   recycled number: unless that new BSUID is known, it starts a new conversation, keyed on
   the new BSUID.
4. A number change (``user_changed_number`` system message, ``user_id_update`` webhook)
   links the new identifiers to the old key.

Replies go to the phone when one is known for the key, else to the BSUID (sent as
``recipient``). Usernames are display names only, never identifiers.

The map lives in Redis when ``REDIS_URL`` is set, shared by every ``rasa run`` and ingress
process, otherwise in memory. On Redis each entry is its own key with the channel's
retention (``PRIVACY_CHANNEL_RETENTION_DAYS``, docs/operators/personal-data.md), renewed by
every message of the citizen: the map forgets a citizen who has been silent that long, as
the tracker store forgets the conversation. The keys are per citizen so that an erasure
(:mod:`bot.addons.whatsapp.privacy`) finds and deletes exactly one person's entries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from bot.addons.whatsapp.redis_client import redis_client

if TYPE_CHECKING:  # events.py imports this module (is_bsuid)
    from bot.addons.whatsapp.inbound.events import Citizen

BSUID: Final = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")
"""Meta's BSUID format (LIMITS.md §8.1): country code, ``.``, optional ``ENT.`` (a parent
BSUID), up to 128 alphanumerics."""

ALIAS_PREFIX: Final = "wa:identity:alias:"  # + identifier -> conversation key
PHONE_PREFIX: Final = "wa:identity:phone:"  # + conversation key -> latest phone
USER_PREFIX: Final = "wa:identity:user:"  # + conversation key -> latest BSUID
IDS_PREFIX: Final = "wa:identity:ids:"  # + conversation key -> set of its identifiers
DEFAULT_RETENTION_SECONDS: Final = 90 * 86400.0  # PRIVACY_RETENTION_DAYS' default


def is_bsuid(value: str | None) -> bool:
    """Whether ``value`` is a BSUID (or a parent BSUID) rather than a phone number."""
    return bool(value) and BSUID.match(value or "") is not None


def is_parent_bsuid(value: str | None) -> bool:
    return is_bsuid(value) and ".ENT." in (value or "")


@dataclass(frozen=True)
class Contact:
    """What the map knows of one conversation key."""

    key: str
    phone: str = ""
    user_id: str = ""

    @property
    def address(self) -> str:
        """Where WhatsApp can deliver a reply: the phone when known, else the BSUID."""
        return self.phone or self.user_id or self.key


def choose_key(
    ids: Citizen, found: Mapping[str, str], user_of: Mapping[str, str] | None = None
) -> str:
    """The conversation key for ``ids`` (rules 1-3 of the module docstring). Pure.

    Args:
        ids: the identifiers of one message.
        found: the keys already mapped for those identifiers (identifier -> key).
        user_of: the BSUID recorded for a key (key -> BSUID), for rule 3.
    """
    for identifier in (ids.user_id, ids.parent_user_id):
        if identifier and identifier in found:
            return found[identifier]
    phone_key = found.get(ids.phone) if ids.phone else None
    if phone_key is not None:
        previous_user = (user_of or {}).get(phone_key, "")
        if not (ids.user_id and previous_user and previous_user != ids.user_id):
            return phone_key
        return ids.user_id  # a recycled number: someone else now
    return ids.phone or ids.user_id or ids.parent_user_id


class IdentityMap(Protocol):
    async def resolve(self, ids: Citizen) -> str:
        """The conversation key of ``ids``, recording every identifier under it."""

    async def link(self, previous: str, ids: Citizen) -> str:
        """Map ``ids`` (new identifiers after a number change) to the key of ``previous``."""

    async def contact(self, key: str) -> Contact:
        """What is known of ``key`` (a key never seen is its own address)."""

    async def identifiers(self, identifier: str) -> tuple[str, frozenset[str]]:
        """The conversation key of ``identifier`` (itself when unknown) and every
        identifier recorded for that key, ``identifier`` and the key included."""

    async def forget(self, key: str) -> list[str]:
        """Remove everything recorded for ``key``; what was removed (for the erasure log)."""

    async def close(self) -> None: ...


class MemoryIdentityMap:
    """The map inside one process (tests, single-process deployments without Redis)."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.phones: dict[str, str] = {}
        self.users: dict[str, str] = {}

    def _record(self, key: str, ids: Citizen) -> str:
        for identifier in (ids.phone, ids.user_id, ids.parent_user_id):
            if identifier:
                self.aliases[identifier] = key
        if ids.phone:
            self.phones[key] = ids.phone
        if ids.user_id:
            self.users[key] = ids.user_id
        return key

    async def resolve(self, ids: Citizen) -> str:
        identifiers = (ids.phone, ids.user_id, ids.parent_user_id)
        found = {i: self.aliases[i] for i in identifiers if i and i in self.aliases}
        return self._record(choose_key(ids, found, self.users), ids)

    async def link(self, previous: str, ids: Citizen) -> str:
        key = self.aliases.get(previous)
        if key is None:
            return await self.resolve(ids)
        return self._record(key, ids)

    async def contact(self, key: str) -> Contact:
        return Contact(key, self.phones.get(key, ""), self.users.get(key, ""))

    async def identifiers(self, identifier: str) -> tuple[str, frozenset[str]]:
        key = self.aliases.get(identifier, identifier)
        ids = {i for i, k in self.aliases.items() if k == key} | {identifier, key}
        return key, frozenset(ids)

    async def forget(self, key: str) -> list[str]:
        removed = [f"alias:{i}" for i, k in self.aliases.items() if k == key]
        self.aliases = {i: k for i, k in self.aliases.items() if k != key}
        removed += [
            name
            for name, kept in (("phone", self.phones), ("user", self.users))
            if kept.pop(key, None) is not None
        ]
        return removed

    async def close(self) -> None:
        pass


# The same rule as choose_key + MemoryIdentityMap._record, in one atomic step, so that two
# processes receiving two messages of one new citizen at once agree on its key.
# Every entry gets the retention again (the citizen is active). The keys depend on the key
# found, so they are built here: like the journal, a single Redis (not a Cluster).
# ARGV: phone, user_id, parent_user_id, previous (or ""), retention seconds.
_RESOLVE = """
local phone, user, parent, previous, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ALIAS, PHONE = 'wa:identity:alias:', 'wa:identity:phone:'
local USER, IDS = 'wa:identity:user:', 'wa:identity:ids:'
local function alias(id)
  if id == '' then return false end
  return redis.call('GET', ALIAS .. id)
end
local key = false
if previous ~= '' then key = alias(previous) end
if not key then key = alias(user) end
if not key then key = alias(parent) end
if not key then
  local phone_key = alias(phone)
  if phone_key then
    local previous_user = redis.call('GET', USER .. phone_key)
    if user ~= '' and previous_user and previous_user ~= user then
      key = user
    else
      key = phone_key
    end
  end
end
if not key then
  if phone ~= '' then key = phone elseif user ~= '' then key = user else key = parent end
end
redis.call('SADD', IDS .. key, key)
for _, id in ipairs({phone, user, parent}) do
  if id ~= '' then
    redis.call('SET', ALIAS .. id, key, 'EX', ttl)
    redis.call('SADD', IDS .. key, id)
  end
end
redis.call('EXPIRE', IDS .. key, ttl)
if phone ~= '' then redis.call('SET', PHONE .. key, phone, 'EX', ttl)
else redis.call('EXPIRE', PHONE .. key, ttl) end
if user ~= '' then redis.call('SET', USER .. key, user, 'EX', ttl)
else redis.call('EXPIRE', USER .. key, ttl) end
return key
"""


class RedisIdentityMap:
    """The map on Redis, shared by every process; each entry expires after ``retention_seconds``
    without a message from its citizen."""

    def __init__(self, client: Any, retention_seconds: float = DEFAULT_RETENTION_SECONDS) -> None:
        self._redis = client
        self._script = client.register_script(_RESOLVE)
        self._ttl = max(1, int(retention_seconds))

    async def _run(self, ids: Citizen, previous: str = "") -> str:
        key = await self._script(
            keys=[], args=[ids.phone, ids.user_id, ids.parent_user_id, previous, self._ttl]
        )
        return key.decode() if isinstance(key, bytes) else str(key)

    async def resolve(self, ids: Citizen) -> str:
        return await self._run(ids)

    async def link(self, previous: str, ids: Citizen) -> str:
        return await self._run(ids, previous)

    async def contact(self, key: str) -> Contact:
        phone = await self._redis.get(PHONE_PREFIX + key)
        user = await self._redis.get(USER_PREFIX + key)
        return Contact(key, _text(phone), _text(user))

    async def identifiers(self, identifier: str) -> tuple[str, frozenset[str]]:
        key = _text(await self._redis.get(ALIAS_PREFIX + identifier)) or identifier
        members = await self._redis.smembers(IDS_PREFIX + key)
        return key, frozenset({_text(m) for m in members} | {identifier, key})

    async def forget(self, key: str) -> list[str]:
        _, ids = await self.identifiers(key)
        names = [ALIAS_PREFIX + i for i in sorted(ids)]
        names += [PHONE_PREFIX + key, USER_PREFIX + key, IDS_PREFIX + key]
        removed = []
        for name in names:
            # An alias re-pointed to another citizen's key (a recycled number) is theirs now.
            if name.startswith(ALIAS_PREFIX) and _text(await self._redis.get(name)) != key:
                continue
            if await self._redis.delete(name):
                removed.append(name)
        return removed

    async def close(self) -> None:
        await self._redis.close()


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def create_identity_map(
    redis_url: str, retention_seconds: float = DEFAULT_RETENTION_SECONDS
) -> IdentityMap:
    if not redis_url:
        return MemoryIdentityMap()
    return RedisIdentityMap(redis_client(redis_url), retention_seconds)
