"""REDIS_URL ▸ Rasa's Redis lock and tracker stores (make run and the scale-out tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from rasa.core.lock_store import LockStore
from rasa.core.tracker_store import RedisTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.utils.endpoints import read_endpoint_config
from redis.exceptions import AuthenticationError

from bot.addons.lock_store import AtomicRedisLockStore
from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.redis_client import redis_client
from scripts import devstack
from scripts.endpoints import redis_endpoints, tracker_retention_seconds, write_redis_endpoints
from tests.support.redis import redis_server
from tests.support.stack import ROOT


def test_a_redis_url_is_spelled_out_for_rasa() -> None:
    endpoints = redis_endpoints("redis://:s3cret@cache.internal:6380/2", "http://a:5055/webhook")
    assert endpoints["lock_store"] == {
        "type": "bot.addons.lock_store.AtomicRedisLockStore",
        "url": "cache.internal",
        "port": 6380,
        "db": 2,
        "password": "s3cret",
        "key_prefix": "rasa",
    }
    assert endpoints["tracker_store"] == {
        **endpoints["lock_store"],
        "type": "redis",
        "key_prefix": "tracker",
        "record_exp": 90 * 86400,
    }
    assert endpoints["action_endpoint"] == {"url": "http://a:5055/webhook"}
    assert redis_endpoints("redis://localhost", None)["lock_store"]["port"] == 6379  # type: ignore[index]


@pytest.mark.parametrize("url", ["localhost:6379", "http://localhost", "redis://"])
def test_a_malformed_redis_url_is_refused_with_its_expected_shape(url: str) -> None:
    with pytest.raises(ValueError, match=r"redis\[s\]://\[:password@\]host"):
        redis_endpoints(url, None)


def test_rasa_builds_its_redis_stores_from_the_file_and_locks_on_redis(tmp_path: Path) -> None:
    with redis_server() as redis:
        path = write_redis_endpoints(tmp_path / "endpoints.yml", redis.url, None)
        lock_store = LockStore.create(read_endpoint_config(str(path), "lock_store"))
        tracker_store = TrackerStore.create(
            read_endpoint_config(str(path), "tracker_store"), Domain.empty()
        )
        assert isinstance(lock_store, AtomicRedisLockStore)
        assert isinstance(tracker_store, RedisTrackerStore)
        ticket = lock_store.issue_ticket("5561999990000")
        assert lock_store.red.exists("rasa:lock:5561999990000") == 1
        lock_store.cleanup("5561999990000", ticket)
        assert lock_store.red.exists("rasa:lock:5561999990000") == 0


def test_make_run_puts_rasa_on_redis_when_redis_url_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devstack, "RUN_DIR", tmp_path)
    services, _ = devstack.build_services({"REDIS_URL": "redis://localhost:6379/0"})
    rasa = next(s for s in services if s.name == "rasa")
    endpoints = Path(rasa.argv[rasa.argv.index("--endpoints") + 1])
    assert endpoints == tmp_path / "endpoints.yml"
    assert read_endpoint_config(str(endpoints), "lock_store").type.endswith("AtomicRedisLockStore")

    services, _ = devstack.build_services({})
    rasa = next(s for s in services if s.name == "rasa")
    assert rasa.argv[rasa.argv.index("--endpoints") + 1] == "endpoints.yml"


def test_make_run_puts_the_ingress_in_front_of_rasa(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devstack, "RUN_DIR", tmp_path)
    monkeypatch.setattr(devstack, "dev_secrets", lambda: {"WPP_APP_SECRET": "dev"})
    services, _ = devstack.build_services({"WEBHOOK_PORT": "5999", "RASA_PORT": "5998"})
    by_name = {s.name: s for s in services}
    webhook, rasa, simulator = by_name["webhook"], by_name["rasa"], by_name["simulator"]
    assert webhook.argv[2:] == [
        "bot.addons.whatsapp.ingress",
        "--port",
        "5999",
        "--rasa-url",
        "http://localhost:5998",
        "--credentials",
        "credentials.yml",
    ]
    assert "http://localhost:5999/webhooks/whatsapp/webhook" in simulator.argv
    assert rasa.env["WPP_TURN_THREAD"] == "false"


PASSWORD = "redis-test-password-5f2c"


def test_redis_password_reaches_rasas_stores_when_the_url_has_none() -> None:
    endpoints = redis_endpoints("redis://cache:6379/1", None, password=PASSWORD)
    assert endpoints["lock_store"]["password"] == PASSWORD  # type: ignore[index]
    assert endpoints["tracker_store"]["password"] == PASSWORD  # type: ignore[index]
    in_url = redis_endpoints("redis://:from-url@cache:6379/1", None, password=PASSWORD)
    assert in_url["lock_store"]["password"] == "from-url"  # type: ignore[index]


def test_rediss_turns_on_tls_for_rasa_and_the_channel() -> None:
    endpoints = redis_endpoints("rediss://:pw@cache.example:6380/0", None)
    assert endpoints["lock_store"]["use_ssl"] is True  # type: ignore[index]
    assert endpoints["tracker_store"]["use_ssl"] is True  # type: ignore[index]
    from redis.asyncio.connection import SSLConnection

    client = redis_client("rediss://cache.example:6380/0", password="pw")
    assert client.connection_pool.connection_class is SSLConnection


def test_every_component_authenticates_on_a_password_protected_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with redis_server("--requirepass", PASSWORD) as redis:
        # Rasa's lock and tracker stores, from REDIS_URL without password + REDIS_PASSWORD.
        path = write_redis_endpoints(tmp_path / "endpoints.yml", redis.url, None, PASSWORD)
        lock_store = LockStore.create(read_endpoint_config(str(path), "lock_store"))
        assert isinstance(lock_store, AtomicRedisLockStore)
        lock_store.cleanup("5561999990000", lock_store.issue_ticket("5561999990000"))
        tracker_store = TrackerStore.create(
            read_endpoint_config(str(path), "tracker_store"), Domain.empty()
        )
        assert isinstance(tracker_store, RedisTrackerStore)
        assert tracker_store.red.ping()
        # Without the password, the same file is refused: the password is what let them in.
        bare = write_redis_endpoints(tmp_path / "bare.yml", redis.url, None)
        with pytest.raises(AuthenticationError):
            LockStore.create(read_endpoint_config(str(bare), "lock_store")).red.ping()

        # The channel's client (dedup, journal, short keys, Serpro token) reads REDIS_PASSWORD.
        async def ping() -> bool:
            client = redis_client(redis.url)
            try:
                return bool(await client.ping())
            finally:
                await client.close()

        monkeypatch.setenv("REDIS_PASSWORD", PASSWORD)
        assert asyncio.run(ping())
        monkeypatch.delenv("REDIS_PASSWORD")
        with pytest.raises(AuthenticationError):
            asyncio.run(ping())


def test_a_tracker_expires_after_the_configured_retention(tmp_path: Path) -> None:
    # The tracker store's own save sets the expiry, renewed at every turn.
    retention = tracker_retention_seconds({"PRIVACY_RETENTION_DAYS": "30"})
    assert retention == 30 * 86400
    assert (
        tracker_retention_seconds(
            {"PRIVACY_RETENTION_DAYS": "30", "PRIVACY_TRACKER_RETENTION_DAYS": "7"}
        )
        == 7 * 86400
    )
    with redis_server() as redis:
        path = write_redis_endpoints(tmp_path / "endpoints.yml", redis.url, None, None, retention)
        store = TrackerStore.create(
            read_endpoint_config(str(path), "tracker_store"), Domain.empty()
        )
        tracker = asyncio.run(store.get_or_create_tracker("5561999990000"))
        asyncio.run(store.save(tracker))
        ttl = store.red.ttl(store.key_prefix + "5561999990000")
        assert 30 * 86400 - 5 < ttl <= 30 * 86400


@pytest.mark.parametrize("value", ["0.5", "soon", "-3"])
def test_a_retention_that_is_not_a_number_of_days_is_refused_by_name(value: str) -> None:
    with pytest.raises(ValueError, match="PRIVACY_TRACKER_RETENTION_DAYS"):
        tracker_retention_seconds({"PRIVACY_TRACKER_RETENTION_DAYS": value})


def test_make_run_keeps_trackers_for_the_retention_and_rasa_telemetry_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devstack, "RUN_DIR", tmp_path)
    env = {"REDIS_URL": "redis://localhost:6379/0", "PRIVACY_RETENTION_DAYS": "30"}
    services, _ = devstack.build_services(env)
    rasa = next(s for s in services if s.name == "rasa")
    endpoints = rasa.argv[rasa.argv.index("--endpoints") + 1]
    assert read_endpoint_config(endpoints, "tracker_store").kwargs["record_exp"] == 30 * 86400
    assert rasa.env["RASA_TELEMETRY_ENABLED"] == "false"
    services, _ = devstack.build_services({"RASA_TELEMETRY_ENABLED": "true"})
    assert next(s for s in services if s.name == "rasa").env["RASA_TELEMETRY_ENABLED"] == "true"


def test_make_run_serves_serpro_from_wpp_provider_alone_with_the_one_credentials_file() -> None:
    env = {
        "WPP_PROVIDER": "serpro",
        "SERPRO_CLIENT_ID": "5561999990000",
        "SERPRO_CLIENT_SECRET": "serpro-secret",
    }
    services, _ = devstack.build_services(env)
    by_name = {s.name: s for s in services}
    assert "simulator" not in by_name  # real Serpro credentials: no simulator
    for name in ("rasa", "webhook"):
        service = by_name[name]
        assert service.argv[service.argv.index("--credentials") + 1] == "credentials.yml"
        assert service.env["WPP_PROVIDER"] == "serpro"
    document = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))
    section = document["bot.addons.whatsapp.WhatsAppInput"]
    for name in ("rasa", "webhook"):
        with_env = {**by_name[name].env, "SERPRO_WABA_ID": "w", "SERPRO_WEBHOOK_TOKEN": "t"}
        assert WhatsAppSettings.from_credentials(section, with_env).provider == "serpro"
