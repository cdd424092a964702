"""docker-compose.yml is checked here, since no Docker engine runs in CI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import rasa.shared.utils.common
import tomli
import yaml
from rasa.core.lock_store import RedisLockStore

ROOT = Path(__file__).resolve().parents[1]
VAR_REF = re.compile(r"\$\{([A-Z0-9_]+)(:?-[^}]*)?\}")


def load_yaml(name: str) -> Any:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def documented_variables() -> set[str]:
    names = set()
    for line in (ROOT / "variables.env.example").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def locked_version(package: str) -> str:
    lock = tomli.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    return next(p["version"] for p in lock["package"] if p["name"] == package)


COMPOSE = load_yaml("docker-compose.yml")
SERVICES: dict[str, Any] = COMPOSE["services"]


def test_stack_has_rasa_actions_knowledge_and_redis() -> None:
    assert {"rasa", "action-server", "knowledge", "redis", "proxy"} <= set(SERVICES)


def base_image(service: str) -> str:
    """The FROM of the Dockerfile compose builds the service's image with."""
    build = SERVICES[service]["build"]
    dockerfile = (ROOT / build["context"] / build["dockerfile"]).read_text(encoding="utf-8")
    return re.findall(r"^FROM (\S+)$", dockerfile, re.M)[-1]


def test_images_are_built_on_the_locked_rasa_and_sdk_versions() -> None:
    for service in ("rasa", "webhook"):
        assert base_image(service) == f"rasa/rasa:{locked_version('rasa')}-full"
        assert SERVICES[service]["image"] == "nova-aurora/rasa:local"
    for service in ("action-server", "knowledge"):
        assert base_image(service) == f"rasa/rasa-sdk:{locked_version('rasa-sdk')}"
        assert SERVICES[service]["image"] == "nova-aurora/sdk:local"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_health_check_and_restart_policy(name: str) -> None:
    service = SERVICES[name]
    assert service["restart"] in {"unless-stopped", "always", "on-failure"}
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1


@pytest.mark.parametrize("name", ["rasa", "action-server"])
def test_secrets_come_from_the_env_file(name: str) -> None:
    assert SERVICES[name]["env_file"] in (".env", [".env"])


def test_depends_on_names_existing_services_with_health_conditions() -> None:
    for name, service in SERVICES.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert condition == {"condition": "service_healthy"}


def test_rasa_replicas_publish_no_fixed_host_port() -> None:
    # `--scale rasa=N` fails if each replica binds the same host port; only the proxy does.
    assert "ports" not in SERVICES["rasa"] and "ports" not in SERVICES["webhook"]
    assert SERVICES["proxy"]["ports"] == ["${PUBLIC_PORT:-8080}:8080"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    assert "http://rasa:5005" in nginx


def test_mounted_paths_exist_in_the_repository() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = VAR_REF.sub(lambda m: (m.group(2) or "")[2:], volume).split(":")[0]
            if source.startswith("./") and source != "./models":  # models/ is made by make train
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_every_variable_used_is_documented_or_defaulted() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    documented = documented_variables()
    for name, default in VAR_REF.findall(text):
        assert default or name in documented, f"${{{name}}} is neither defaulted nor documented"


@pytest.mark.parametrize("name", ["credentials.yml", "credentials.serpro.yml"])
def test_credentials_variables_are_documented(name: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    documented = documented_variables()
    used = {name for name, _ in VAR_REF.findall(text)}
    assert used, "credentials.yml should read its secrets from the environment"
    assert used <= documented, f"undocumented: {sorted(used - documented)}"


def test_rasa_uses_redis_lock_and_tracker_stores() -> None:
    endpoints = load_yaml("deploy/endpoints.docker.yml")
    lock_store = rasa.shared.utils.common.class_from_module_path(endpoints["lock_store"]["type"])
    assert issubclass(lock_store, RedisLockStore)  # Rasa's own, with atomic ticket changes
    assert endpoints["tracker_store"]["type"] == "redis"
    assert endpoints["lock_store"]["url"] == "redis"
    assert endpoints["action_endpoint"]["url"] == "http://action-server:5055/webhook"
    mounted = SERVICES["rasa"]["volumes"]
    assert "./deploy/endpoints.docker.yml:/app/endpoints.yml:ro" in mounted
    dockerfile = (ROOT / "deploy" / "rasa.Dockerfile").read_text(encoding="utf-8")
    assert "COPY bot /app/bot" in dockerfile  # where the lock store class lives
    assert int(SERVICES["rasa"]["environment"]["TICKET_LOCK_LIFETIME"]) >= 30


def nginx_servers() -> dict[str, str]:
    """nginx.conf's server blocks by the port they listen on."""
    text = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    blocks = re.split(r"^server \{", text, flags=re.M)[1:]
    return {re.search(r"listen (\d+);", b).group(1): b for b in blocks}  # type: ignore[union-attr]


def proxied_locations(server: str) -> dict[str, str]:
    """``{location: upstream}`` of a server block's proxy_pass locations."""
    found = re.findall(r"location ([^{]+?) \{((?:[^{}]|\{[^{}]*\})*)\}", server)
    return {
        where: match.group(1)
        for where, body in found
        if (match := re.search(r"proxy_pass (\S+);", body))
    }


def test_meta_reaches_the_ingress_which_relays_to_rasa_through_the_proxy() -> None:
    webhook = SERVICES["webhook"]
    assert webhook["entrypoint"] == ["python", "-m", "bot.addons.whatsapp.ingress"]
    command = webhook["command"]
    option = {command[i]: command[i + 1] for i in range(0, len(command), 2)}
    port = option["--port"]
    assert webhook["expose"] == [port]
    assert f"localhost:{port}/webhooks/whatsapp/health" in " ".join(webhook["healthcheck"]["test"])
    assert option["--rasa-url"] == "http://proxy:8081"
    credentials = option["--credentials"]
    for service in (webhook, SERVICES["rasa"]):
        mounts = [VAR_REF.sub("", v).split(":") for v in service["volumes"]]
        assert any(target == credentials for _, target, *_ in mounts)
    assert "8081" in SERVICES["proxy"]["expose"] and "webhook" in SERVICES["proxy"]["depends_on"]
    servers = nginx_servers()
    public, internal = servers["8080"], servers["8081"]
    assert f"set $webhook_upstream http://webhook:{port};" in public
    assert f"set $webhook_upstream http://webhook:{port};" in internal
    assert "set $rasa_upstream http://rasa:5005;" in internal
    # What each port serves (tests/test_nginx.py runs the file in a real nginx).
    assert proxied_locations(public) == {
        "= /webhooks/whatsapp/webhook": "$webhook_upstream",
        "= /webhooks/whatsapp/health": "$webhook_upstream",
    }
    assert proxied_locations(internal) == {
        "= /webhooks/whatsapp/relay": "$rasa_upstream",
        "= /webhooks/whatsapp/metrics": "$webhook_upstream",
    }


def test_rasa_behind_the_ingress_runs_turns_without_the_thread() -> None:
    assert SERVICES["rasa"]["environment"]["WPP_TURN_THREAD"] == "false"
    assert (
        SERVICES["webhook"]["environment"]["REDIS_URL"]
        == SERVICES["rasa"]["environment"]["REDIS_URL"]
    )
