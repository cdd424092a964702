"""docker-compose.yml is checked here, since no Docker engine runs in CI."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import rasa.shared.utils.common
import tomli
import yaml
from rasa.core.lock_store import RedisLockStore

from scripts.endpoints import redis_endpoints

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
    assert base_image("rasa") == f"rasa/rasa:{locked_version('rasa')}-full"
    assert SERVICES["rasa"]["image"] == "nova-aurora/rasa:local"
    # The public-facing ingress: its own image on a supported Python (3.12 or newer).
    version = re.fullmatch(r"python:3\.(\d+)\.\d+-slim", base_image("webhook"))
    assert version and int(version.group(1)) >= 12, base_image("webhook")
    assert SERVICES["webhook"]["image"] == "nova-aurora/ingress:local"
    for service in ("action-server", "knowledge"):
        assert base_image(service) == f"rasa/rasa-sdk:{locked_version('rasa-sdk')}"
        assert SERVICES[service]["image"] == "nova-aurora/sdk:local"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_health_check_and_restart_policy(name: str) -> None:
    service = SERVICES[name]
    assert service["restart"] in {"unless-stopped", "always", "on-failure"}
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1


@pytest.mark.parametrize("name", ["rasa", "webhook"])
def test_secrets_come_from_the_env_file(name: str) -> None:
    assert SERVICES[name]["env_file"] in (".env", [".env"])


def variables_read_by(package: str) -> set[str]:
    """Every environment variable the code of ``package`` reads by name."""
    pattern = re.compile(r'(?:environ|env)\.get\(\s*"([A-Z][A-Z0-9_]*)"')
    return {
        name
        for path in (ROOT / package).glob("*.py")
        for name in pattern.findall(path.read_text(encoding="utf-8"))
    }


CHANNEL_SECRETS = re.compile(r"^(WPP_|SERPRO_|CHATWOOT_|REDIS_)")


def test_the_action_server_gets_exactly_the_variables_the_actions_read() -> None:
    service = SERVICES["action-server"]
    assert "env_file" not in service  # .env holds the WhatsApp, Serpro and Chatwoot secrets
    given = set(service["environment"])
    assert given == variables_read_by("actions")
    assert {"PRIVACY_PSEUDONYM_KEY", "KNOWLEDGE_API_TOKEN"} <= given
    assert not [name for name in given if CHANNEL_SECRETS.match(name)]
    # Each default is the code's own, so an unset variable changes nothing.
    assert service["environment"]["KNOWLEDGE_TIMEOUT"] == "${KNOWLEDGE_TIMEOUT:-8}"
    assert "env_file" not in SERVICES["knowledge"]
    assert set(SERVICES["knowledge"]["environment"]) <= variables_read_by("knowledge") | {
        "KNOWLEDGE_INDEX_PATH"
    }


def test_rasa_telemetry_is_off_unless_the_operator_turns_it_on() -> None:
    environment = SERVICES["rasa"]["environment"]
    assert environment["RASA_TELEMETRY_ENABLED"] == "${RASA_TELEMETRY_ENABLED:-false}"


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


def test_one_credentials_file_serves_both_providers_so_wpp_provider_alone_chooses() -> None:
    document = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))
    # No provider and no secrets in the file: the environment gives them all.
    assert document == {"bot.addons.whatsapp.WhatsAppInput": None}
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "CREDENTIALS_FILE" not in text
    for name in ("rasa", "webhook"):
        assert "./credentials.yml:/app/credentials.yml:ro" in SERVICES[name]["volumes"]
        assert SERVICES[name]["env_file"] == ".env"  # where WPP_PROVIDER is set


def test_rasa_uses_redis_lock_and_tracker_stores_written_from_redis_url() -> None:
    service = SERVICES["rasa"]
    script = service["entrypoint"][2]
    assert script.startswith("python -m scripts.endpoints /tmp/endpoints.yml && exec rasa")
    command = service["command"]
    assert command[command.index("--endpoints") + 1] == "/tmp/endpoints.yml"
    assert service["environment"]["ACTION_ENDPOINT_URL"] == "http://action-server:5055/webhook"
    endpoints = redis_endpoints(service["environment"]["REDIS_URL"].split(":-")[1][:-1], None)
    lock_store = endpoints["lock_store"]
    assert isinstance(lock_store, dict)
    lock_class = rasa.shared.utils.common.class_from_module_path(lock_store["type"])
    assert issubclass(lock_class, RedisLockStore)  # Rasa's own, with atomic ticket changes
    assert lock_store["url"] == "redis"
    dockerfile = (ROOT / "deploy" / "rasa.Dockerfile").read_text(encoding="utf-8")
    assert "COPY bot /app/bot" in dockerfile  # where the lock store class lives
    assert "scripts/endpoints.py /app/scripts/" in dockerfile
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
        # Chatwoot's webhook (human handoff) is rasa's own route, authenticated there.
        "/webhooks/whatsapp/chatwoot/": "$rasa_upstream",
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


def test_redis_is_a_pinned_patch_release() -> None:
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+-alpine", SERVICES["redis"]["image"])


def test_compose_redis_command_requires_the_password_keeps_aof_and_never_evicts(
    tmp_path: Path,
) -> None:
    """Compose's own redis command line, run by the real redis-server on a free port."""
    import redis as redis_py

    from tests.support.stack import free_port, wait_for_tcp
    from tests.support.system import require_program

    service = SERVICES["redis"]
    assert service["command"][:2] == ["sh", "-c"]
    script = service["command"][2].replace("$$", "$")  # compose's escape for a literal $
    port = free_port()
    redis_server = require_program("redis-server", "redis-server")
    script = script.replace("exec redis-server", f"exec {redis_server}")
    script += f" --port {port} --bind 127.0.0.1 --dir {tmp_path} --save ''"
    password = "compose-test-password"
    assert "REDIS_PASSWORD" in service["environment"] and "REDISCLI_AUTH" in service["environment"]
    process = subprocess.Popen(
        ["sh", "-c", script],
        env={"REDIS_PASSWORD": password, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_tcp("127.0.0.1", port, 10)
        with pytest.raises(redis_py.exceptions.AuthenticationError):
            redis_py.Redis(port=port).ping()
        client = redis_py.Redis(port=port, password=password)
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert password not in " ".join(command_lines(process.pid))
    finally:
        process.terminate()
        process.wait(10)


def command_lines(parent: int) -> list[str]:
    """The command lines of ``parent`` and its children (from /proc)."""
    lines = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            ppid = int(re.search(r"PPid:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            if int(proc.name) == parent or ppid == parent:
                lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError):
            continue
    return lines
