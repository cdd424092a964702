"""Who may answer a citizen, and what the channel must remember to send correctly.

* **Thread ownership** (Meta's conversation routing). ``messaging_handovers`` says who owns
  each citizen's thread: ``control_taken`` reaches this app when another app (a human
  agent, Meta's business agent) took it over, ``control_passed`` when it is handed back.
  While another app owns a thread the bot does not answer that citizen (answering would
  take the thread back); the ownership ends when control is passed back or after
  ``WPP_HANDOVER_IDLE_SECONDS`` without traffic on the thread (each ``standby`` copy of the
  citizen's messages counts as traffic), because Meta sends nothing when the other app
  simply stops.
* **Preferences** (``user_preferences``): a citizen who stopped marketing messages, per
  category, so that sending can honour it.
* **Template statuses** (``message_template_status_update``): a template ``PAUSED`` or
  ``DISABLED`` is not used as the 24-hour re-engagement fallback until it is approved again.

Kept on Redis when ``REDIS_URL`` is set (shared by every process), else in memory. A
citizen's preferences are one hash per citizen that expires after the channel's retention
(``PRIVACY_CHANNEL_RETENTION_DAYS``), renewed when they change. The :class:`ChannelState`
bundles this store with the identity map.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bot.addons.whatsapp.inbound.identity import (
    DEFAULT_RETENTION_SECONDS,
    IdentityMap,
    create_identity_map,
)
from bot.addons.whatsapp.redis_client import redis_client

OWNER_PREFIX: Final = "wa:thread:owner:"  # + conversation key -> the app that owns it
PREFERENCES_PREFIX: Final = "wa:prefs:"  # + conversation key: hash category -> stop/resume
TEMPLATES_KEY: Final = "wa:template:status"  # hash name -> last event

UNUSABLE_TEMPLATE_EVENTS: Final = frozenset({"PAUSED", "DISABLED", "REJECTED", "PENDING_DELETION"})
"""Template events after which a template cannot be sent until it is ``APPROVED`` again."""


class RoutingStore(Protocol):
    async def hand_over(self, key: str, app_id: str, idle_seconds: float) -> None:
        """Another app owns ``key``'s thread, until passed back or idle."""

    async def take_back(self, key: str) -> None:
        """This app owns ``key``'s thread again."""

    async def touch(self, key: str, idle_seconds: float) -> None:
        """Traffic on a thread another app owns: its idle time starts again."""

    async def owner(self, key: str) -> str | None:
        """The other app that owns ``key``'s thread, None when the bot does."""

    async def set_preference(self, key: str, category: str, value: str) -> None: ...

    async def preference(self, key: str, category: str) -> str | None: ...

    async def preferences_of(self, key: str) -> dict[str, str]:
        """Every preference of ``key`` (category -> value), for an access request."""

    async def forget(self, key: str) -> list[str]:
        """Remove ``key``'s thread owner and preferences; what was removed."""

    async def set_template_status(self, name: str, event: str) -> None: ...

    async def template_usable(self, name: str) -> bool:
        """False after a PAUSED/DISABLED event not followed by an approval."""

    async def close(self) -> None: ...


class MemoryRoutingStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.owners: dict[str, tuple[str, float]] = {}  # key -> (app, expires at)
        self.preferences: dict[tuple[str, str], str] = {}
        self.templates: dict[str, str] = {}

    async def hand_over(self, key: str, app_id: str, idle_seconds: float) -> None:
        self.owners[key] = (app_id, self._clock() + idle_seconds)

    async def take_back(self, key: str) -> None:
        self.owners.pop(key, None)

    async def touch(self, key: str, idle_seconds: float) -> None:
        if key in self.owners:
            self.owners[key] = (self.owners[key][0], self._clock() + idle_seconds)

    async def owner(self, key: str) -> str | None:
        held = self.owners.get(key)
        if held is None:
            return None
        if held[1] <= self._clock():
            del self.owners[key]
            return None
        return held[0]

    async def set_preference(self, key: str, category: str, value: str) -> None:
        self.preferences[(key, category)] = value

    async def preference(self, key: str, category: str) -> str | None:
        return self.preferences.get((key, category))

    async def preferences_of(self, key: str) -> dict[str, str]:
        return {c: v for (k, c), v in self.preferences.items() if k == key}

    async def forget(self, key: str) -> list[str]:
        removed = ["thread owner"] if self.owners.pop(key, None) is not None else []
        mine = [(k, c) for (k, c) in self.preferences if k == key]
        for entry in mine:
            del self.preferences[entry]
        return removed + [f"preference:{c}" for _, c in mine]

    async def set_template_status(self, name: str, event: str) -> None:
        self.templates[name] = event

    async def template_usable(self, name: str) -> bool:
        return self.templates.get(name) not in UNUSABLE_TEMPLATE_EVENTS

    async def close(self) -> None:
        pass


class RedisRoutingStore:
    """Ownership as keys that expire when the thread goes idle; a citizen's preferences as
    a hash that expires after ``retention_seconds``; template statuses as one hash (no
    personal data)."""

    def __init__(self, client: Any, retention_seconds: float = DEFAULT_RETENTION_SECONDS) -> None:
        self._redis = client
        self._ttl = max(1, int(retention_seconds))

    async def hand_over(self, key: str, app_id: str, idle_seconds: float) -> None:
        await self._redis.set(OWNER_PREFIX + key, app_id or "other", ex=max(1, int(idle_seconds)))

    async def take_back(self, key: str) -> None:
        await self._redis.delete(OWNER_PREFIX + key)

    async def touch(self, key: str, idle_seconds: float) -> None:
        await self._redis.expire(OWNER_PREFIX + key, max(1, int(idle_seconds)))

    async def owner(self, key: str) -> str | None:
        value = await self._redis.get(OWNER_PREFIX + key)
        return _text(value) if value is not None else None

    async def set_preference(self, key: str, category: str, value: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(PREFERENCES_PREFIX + key, category, value)
            pipe.expire(PREFERENCES_PREFIX + key, self._ttl)
            await pipe.execute()

    async def preference(self, key: str, category: str) -> str | None:
        value = await self._redis.hget(PREFERENCES_PREFIX + key, category)
        return _text(value) if value is not None else None

    async def preferences_of(self, key: str) -> dict[str, str]:
        entries = await self._redis.hgetall(PREFERENCES_PREFIX + key)
        return {_text(c): _text(v) for c, v in entries.items()}

    async def forget(self, key: str) -> list[str]:
        names = [OWNER_PREFIX + key, PREFERENCES_PREFIX + key]
        return [name for name in names if await self._redis.delete(name)]

    async def set_template_status(self, name: str, event: str) -> None:
        await self._redis.hset(TEMPLATES_KEY, name, event)

    async def template_usable(self, name: str) -> bool:
        value = await self._redis.hget(TEMPLATES_KEY, name)
        return value is None or _text(value) not in UNUSABLE_TEMPLATE_EVENTS

    async def close(self) -> None:
        await self._redis.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class ChannelState:
    """What the intake writes and the sender reads: identities and routing."""

    identities: IdentityMap
    routing: RoutingStore

    async def close(self) -> None:
        await self.identities.close()
        await self.routing.close()


def create_state(
    redis_url: str, retention_seconds: float = DEFAULT_RETENTION_SECONDS
) -> ChannelState:
    """On Redis when ``redis_url`` is set (shared across processes), else in memory.

    Args:
        redis_url: the channel's Redis, or "" for memory.
        retention_seconds: how long a silent citizen's identities and preferences are kept.
    """
    if not redis_url:
        return ChannelState(create_identity_map(""), MemoryRoutingStore())
    return ChannelState(
        create_identity_map(redis_url, retention_seconds),
        RedisRoutingStore(redis_client(redis_url), retention_seconds),
    )
