"""deploy/kubernetes: every manifest valid for Kubernetes, and in agreement with the code."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from bot.addons.whatsapp.ingress.app import DEFAULT_PORT
from scripts import devstack
from scripts.endpoints import redis_endpoints
from tests.test_compose import CHANNEL_SECRETS, variables_read_by

with warnings.catch_warnings():  # its pkg_resources and distutils imports warn
    warnings.simplefilter("ignore", DeprecationWarning)
    import kubernetes_validate

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.28.0"
HEALTH = "/webhooks/whatsapp/health"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
RESOURCES = [d for name in KUSTOMIZATION["resources"] for d in documents(K8S / name)]


def find(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in RESOURCES if d["kind"] == kind and d["metadata"]["name"] == name)


def container(name: str) -> dict[str, Any]:
    kind = "StatefulSet" if name in ("redis", "postgres") else "Deployment"
    (only,) = find(kind, name)["spec"]["template"]["spec"]["containers"]
    return only


def documented_variables() -> set[str]:
    text = (ROOT / "variables.env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.M))


def test_kustomization_lists_every_manifest() -> None:
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(KUSTOMIZATION["resources"]) == sorted(files)


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yaml")))
def test_every_manifest_is_valid_against_the_kubernetes_schemas(name: str) -> None:
    if name == "kustomization.yaml":
        return  # not a Kubernetes object: checked above
    for document in documents(K8S / name):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_refused() -> None:
    # The check above can fail: a probe port of the wrong type is a schema error.
    deployment = yaml.safe_load(yaml.safe_dump(find("Deployment", "webhook")))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def port_of(name: str) -> int:
    (port,) = container(name)["ports"]
    return int(port["containerPort"])


def test_ports_are_the_ones_the_code_listens_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(devstack, "RUN_DIR", tmp_path)
    services, _ = devstack.build_services({})
    health = {s.name: s.health_url for s in services}
    assert port_of("webhook") == DEFAULT_PORT
    assert health["webhook"] == f"http://localhost:{port_of('webhook')}{HEALTH}"
    assert health["knowledge"] == f"http://localhost:{port_of('knowledge')}/health"
    assert health["actions"] == f"http://localhost:{port_of('action-server')}/health"
    assert health["rasa"].startswith(f"http://localhost:{port_of('rasa')}/")
    config = find("ConfigMap", "nova-aurora-config")["data"]
    assert config["WPP_INGRESS_PORT"] == str(port_of("webhook"))
    assert config["WPP_RASA_URL"] == f"http://rasa:{port_of('rasa')}"
    assert config["KNOWLEDGE_API_URL"] == f"http://knowledge:{port_of('knowledge')}/ask"
    assert (
        config["ACTION_ENDPOINT_URL"] == f"http://action-server:{port_of('action-server')}/webhook"
    )
    assert redis_endpoints(config["REDIS_URL"], None)["lock_store"]["url"] == "redis"  # type: ignore[index]
    assert port_of("redis") == 6379
    for name in ("webhook", "rasa", "knowledge", "action-server", "redis"):
        (service_port,) = find("Service", name)["spec"]["ports"]
        assert service_port["port"] == port_of(name)


@pytest.mark.parametrize(
    ("name", "path"),
    [("webhook", HEALTH), ("rasa", HEALTH), ("knowledge", "/health"), ("action-server", "/health")],
)
def test_readiness_and_liveness_probe_the_health_routes(name: str, path: str) -> None:
    spec = container(name)
    for probe in ("readinessProbe", "livenessProbe"):
        assert spec[probe]["httpGet"] == {"path": path, "port": "http"}
    assert spec["ports"][0]["name"] == "http"


@pytest.mark.parametrize("name", ["webhook", "rasa", "knowledge", "action-server"])
def test_pods_outlive_the_drain_and_have_a_disruption_budget(name: str) -> None:
    pod = find("Deployment", name)["spec"]["template"]["spec"]
    drain = float(find("ConfigMap", "nova-aurora-config")["data"]["WPP_DRAIN_TIMEOUT"])
    pre_stop = container(name)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + drain
    budget = find("PodDisruptionBudget", name)["spec"]
    assert (
        budget["selector"]["matchLabels"]
        == find("Deployment", name)["spec"]["selector"]["matchLabels"]
    )
    assert budget["minAvailable"] >= 1
    assert pod["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("name", ["webhook", "rasa"])
def test_the_ingress_and_rasa_scale_horizontally(name: str) -> None:
    hpa = find("HorizontalPodAutoscaler", name)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]


def test_the_ingress_exposes_only_the_webhook_and_health() -> None:
    (rule,) = find("Ingress", "webhook")["spec"]["rules"]
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert paths == {("/webhooks/whatsapp/webhook", "Exact"), (HEALTH, "Exact")}
    for path in rule["http"]["paths"]:
        assert path["backend"]["service"] == {"name": "webhook", "port": {"name": "http"}}
    services = {d["metadata"]["name"]: d["spec"] for d in RESOURCES if d["kind"] == "Service"}
    assert all(s.get("type", "ClusterIP") == "ClusterIP" for s in services.values())


def test_every_variable_is_one_the_code_documents_and_secrets_stay_in_the_secret() -> None:
    config = set(find("ConfigMap", "nova-aurora-config")["data"])
    secret = set(find("Secret", "nova-aurora-secrets")["stringData"])
    documented = documented_variables()
    assert config | secret <= documented, sorted((config | secret) - documented)
    assert not config & secret
    credentials = (ROOT / "credentials.yml").read_text(encoding="utf-8")
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)\}", credentials))
    assert referenced <= config | secret, sorted(referenced - config - secret)
    for name in secret:
        assert re.search(r"TOKEN|SECRET|PASSWORD|CLIENT_ID|_KEY$", name), f"{name} is no secret"
    for name in ("rasa", "webhook"):  # the action server: only its own (test below)
        sources = container(name)["envFrom"]
        assert {"configMapRef": {"name": "nova-aurora-config"}} in sources
        assert {"secretRef": {"name": "nova-aurora-secrets"}} in sources


def test_rasa_and_redis_start_as_in_compose() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    rasa = container("rasa")
    assert rasa["command"][2] == services["rasa"]["entrypoint"][2].replace("$$", "$")
    assert rasa["args"] == services["rasa"]["command"]
    assert container("redis")["image"] == services["redis"]["image"]
    assert container("redis")["command"][2].endswith(
        services["redis"]["command"][2].replace("$$", "$")
    )
    assert container("webhook")["command"] == services["webhook"]["entrypoint"]
    assert container("knowledge")["command"] == services["knowledge"]["entrypoint"]
    assert container("action-server")["args"] == services["action-server"]["command"]


def test_the_action_server_gets_only_the_variables_the_actions_read() -> None:
    spec = container("action-server")
    assert "envFrom" not in spec  # the Secret holds the WhatsApp, Serpro and Chatwoot secrets
    given = {item["name"]: item["valueFrom"] for item in spec["env"]}
    assert set(given) == variables_read_by("actions")
    secret_refs = {name for name, ref in given.items() if "secretKeyRef" in ref}
    assert secret_refs == {"KNOWLEDGE_API_TOKEN", "PRIVACY_PSEUDONYM_KEY"}
    secret = find("Secret", "nova-aurora-secrets")["stringData"]
    assert secret_refs <= set(secret)
    assert not [name for name in given if CHANNEL_SECRETS.match(name)]


def test_rasa_telemetry_is_off_and_the_retention_set_for_every_pod() -> None:
    config = find("ConfigMap", "nova-aurora-config")["data"]
    assert config["RASA_TELEMETRY_ENABLED"] == "false"
    assert config["PRIVACY_RETENTION_DAYS"] == "90"
    for name in ("rasa", "webhook"):
        refs = [
            e["configMapRef"]["name"] for e in container(name)["envFrom"] if "configMapRef" in e
        ]
        assert refs == ["nova-aurora-config"]


def env_of(name: str) -> dict[str, Any]:
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in container(name)["env"]
    }


def test_postgres_starts_as_in_compose_with_the_password_from_the_secret() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    service = compose["services"]["postgres"]
    postgres = container("postgres")
    assert postgres["image"] == service["image"]
    env = env_of("postgres")
    assert env["POSTGRES_USER"] == service["environment"]["POSTGRES_USER"]
    assert env["POSTGRES_DB"] == service["environment"]["POSTGRES_DB"]
    ref = {"secretKeyRef": {"name": "nova-aurora-secrets", "key": "POSTGRES_PASSWORD"}}
    assert env["POSTGRES_PASSWORD"] == ref
    assert "POSTGRES_PASSWORD" in find("Secret", "nova-aurora-secrets")["stringData"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert postgres[probe]["exec"]["command"] == service["healthcheck"]["test"][1:]
    (mount,) = postgres["volumeMounts"]
    (volume,) = find("StatefulSet", "postgres")["spec"]["volumeClaimTemplates"]
    assert mount["name"] == volume["metadata"]["name"]
    assert mount["mountPath"] == service["volumes"][0].split(":")[1]
    assert env["PGDATA"].startswith(mount["mountPath"] + "/")  # not the volume's root
    (service_port,) = find("Service", "postgres")["spec"]["ports"]
    assert service_port["port"] == port_of("postgres") == 5432


@pytest.mark.parametrize("name", ["rasa", "webhook"])
def test_rasa_and_the_ingress_reach_the_proactive_store_as_in_compose(name: str) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    composed = compose["services"][name]["environment"]["WPP_PROACTIVE_DB_URL"]
    env = env_of(name)
    names = [item["name"] for item in container(name)["env"]]
    # Kubernetes expands $(VAR) only from variables defined before it.
    assert names.index("POSTGRES_PASSWORD") < names.index("WPP_PROACTIVE_DB_URL")
    assert env["POSTGRES_PASSWORD"] == env_of("postgres")["POSTGRES_PASSWORD"]
    url = env["WPP_PROACTIVE_DB_URL"]
    assert url == re.sub(r"\$\{POSTGRES_PASSWORD[^}]*\}", "$(POSTGRES_PASSWORD)", composed)
    parsed = make_url(url.replace("$(POSTGRES_PASSWORD)", "secret"))
    postgres = env_of("postgres")
    assert parsed.get_backend_name() == "postgresql"
    assert (parsed.username, parsed.database) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_DB"],
    )
    assert (parsed.host, parsed.port) == ("postgres", port_of("postgres"))
    assert find("Service", "postgres")["spec"]["selector"] == {"app.kubernetes.io/name": "postgres"}
