"""The Kubernetes deployment (deploy/helm/alfi) renders for each values file, every object
validates against its schema, and the chart keeps its promises.

Helm is the project's own build (`make helm`, which `make test` runs first): without it
these tests fail, they never skip. Core objects are validated offline by
kubernetes-validate (Kubernetes' own OpenAPI schemas, shipped in the package); the
operators' custom resources (Strimzi, CloudNativePG, KEDA, the Prometheus operator)
against their CRD schemas vendored in deploy/helm/crd-schemas/ (`make crd-schemas`),
read as the API server reads them with strict field validation: an unknown field is an
error. What the services read and write on Kafka is derived from their definitions
(services/<name>/service.py) and compared with the topics and ACLs the chart declares.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from alfi_contracts.topics import INTAKE_EVENTS, PARTITIONS, SERVICES, commands_topic, dead_letter_topic, events_topic
from services.casework.service import DEFINITION as CASEWORK
from services.common.kafka import KafkaConnection
from services.common.service import Runtime, ServiceDefinition
from services.common.settings import ServiceSettings
from services.intake.service import DEFINITION as INTAKE
from services.stats.service import DEFINITION as STATS
from services.veille.service import DEFINITION as VEILLE

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "alfi"
CRD_SCHEMAS = REPO / "deploy" / "helm" / "crd-schemas"
HELM = REPO / ".local" / "helm" / "v3.22.0" / "helm"  # the Makefile's HELM
KUBE_VERSION = "1.33.0"
VALUES_FILES = ["values-small.yaml", "values-federation.yaml"]
DEFINITIONS = {d.name: d for d in (INTAKE, CASEWORK, VEILLE, STATS)}
# What a reporting consumer's namespace carries (values.yaml networkPolicy.reportingConsumers).
REPORTING = {"alfi.io/reporting-consumer": "true"}


def helm() -> str:
    binary = os.environ.get("ALFI_HELM", str(HELM))
    if not Path(binary).is_file():
        pytest.fail(f"helm is missing ({binary}): run `make helm` (make test builds it first)")
    return binary


def render(values_file: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [helm(), "template", "alfi", str(CHART), "--namespace", "alfi", "--kube-version", KUBE_VERSION,
         "-f", str(CHART / values_file), "--set", "image.tag=2026.11.28", *extra],
        capture_output=True, text=True, timeout=60)


@cache
def rendered(values_file: str, *extra: str) -> tuple[dict, ...]:
    done = render(values_file, *extra)
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


@pytest.fixture(params=VALUES_FILES)
def objects(request: pytest.FixtureRequest) -> tuple[dict, ...]:
    return rendered(request.param)


def of_kind(objects: tuple[dict, ...], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def deployment(objects: tuple[dict, ...], service: str) -> dict:
    return of_kind(objects, "Deployment")[f"alfi-{service}"]


def container(objects: tuple[dict, ...], service: str) -> dict:
    [only] = deployment(objects, service)["spec"]["template"]["spec"]["containers"]
    return only


def config_of(objects: tuple[dict, ...], service: str) -> dict[str, str]:
    return of_kind(objects, "ConfigMap")[f"alfi-{service}"]["data"]


def values(values_file: str) -> dict:
    """The chart's values with the file's on top (Helm merges maps key by key)."""
    def merge(base: dict, top: dict) -> dict:
        return {**base, **{k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                           for k, v in top.items()}}
    return merge(yaml.safe_load((CHART / "values.yaml").read_text()),
                 yaml.safe_load((CHART / values_file).read_text()))


# ------------------------------------------------------------------ schemas


def test_helm_refuses_to_render_without_an_image_tag():
    done = subprocess.run([helm(), "template", "alfi", str(CHART), "--kube-version", KUBE_VERSION],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "image.tag" in done.stderr


def test_every_core_object_validates_against_the_kubernetes_schemas(objects):
    core = [o for o in objects if o["apiVersion"].split("/")[0] in CORE_GROUPS]
    assert {o["kind"] for o in core} >= {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget",
                                         "NetworkPolicy", "Ingress", "ServiceAccount"}
    failures = []
    # The oldest Kubernetes the chart admits (Chart.yaml kubeVersion) and the newest
    # kubernetes-validate ships.
    for version in ("1.30.0", "1.37.0"):
        for obj in core:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                failures.append(f"{version} {obj['kind']}/{obj['metadata']['name']}: {error.message}"
                                f" at {list(error.path)}")
    assert failures == []


CORE_GROUPS = {"v1", "apps", "policy", "autoscaling", "networking.k8s.io"}


def strict(schema: Any) -> Any:
    """A CRD's structural schema as the API server applies it with strict field
    validation (kubectl apply --validate=strict): a field the schema does not declare is
    an error, unless the schema preserves unknown fields; `nullable` admits null."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: strict(s) for name, s in value.items()}
        elif key in ("items", "additionalProperties", "allOf", "anyOf", "oneOf", "not"):
            out[key] = strict(value)
        else:
            out[key] = value
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the strict schema, from deploy/helm/crd-schemas/."""
    schemas = {}
    for path in CRD_SCHEMAS.glob("*.json"):
        crd = json.loads(path.read_text())
        group = path.stem.split(".", 1)[1]
        for version, schema in crd["versions"].items():
            schemas[f"{group}/{version}", crd["kind"]] = strict(schema)
    return schemas


def test_every_custom_resource_validates_against_its_operators_crd(objects):
    custom = [o for o in objects if o["apiVersion"].split("/")[0] not in CORE_GROUPS]
    kinds = {(o["apiVersion"], o["kind"]) for o in custom}
    assert kinds <= crd_schemas().keys(), f"no vendored CRD schema for {kinds - crd_schemas().keys()}"
    assert {kind for _, kind in kinds} >= {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster",
                                           "ScaledObject", "TriggerAuthentication", "ServiceMonitor",
                                           "PrometheusRule"}
    failures = []
    for obj in custom:
        validator = jsonschema.Draft4Validator(crd_schemas()[obj["apiVersion"], obj["kind"]])
        failures += [f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at {list(e.absolute_path)}"
                     for e in validator.iter_errors(obj)]
    assert failures == []


def test_the_crd_check_rejects_an_unknown_field():
    kafka = next(o for o in rendered(VALUES_FILES[0]) if o["kind"] == "Kafka")
    wrong = {**kafka, "spec": {**kafka["spec"], "zookeeper": {"replicas": 3}}}
    assert not jsonschema.Draft4Validator(crd_schemas()["kafka.strimzi.io/v1", "Kafka"]).is_valid(wrong)


# ------------------------------------------------------------------ the services


def test_the_four_services_run_several_replicas_of_the_one_image(objects):
    assert set(of_kind(objects, "Deployment")) == {f"alfi-{name}" for name in SERVICES + ("stats",)}
    autoscaled = {o["spec"]["scaleTargetRef"]["name"]: o for o in objects
                  if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")}
    for name, definition in DEFINITIONS.items():
        spec = deployment(objects, name)["spec"]
        scaler = autoscaled.get(f"alfi-{name}")
        least = scaler["spec"].get("minReplicas", scaler["spec"].get("minReplicaCount")) if scaler \
            else spec["replicas"]
        assert least >= 2, name
        assert ("replicas" in spec) == (scaler is None), f"{name}: the autoscaler owns the replica count"
        main = container(objects, name)
        assert main["image"] == "registry.example.org/alfi/platform:2026.11.28"
        assert main["command"] == ["python", "-m", f"services.{name}"]
        assert main["ports"][0]["containerPort"] == definition.default_port


def test_probes_are_the_health_endpoints(objects):
    for name in DEFINITIONS:
        main = container(objects, name)
        assert main["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        assert main["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert main["startupProbe"]["httpGet"]["path"] == "/health/live"


def test_the_grace_period_covers_the_drain(objects):
    # uvicorn's timeout_graceful_shutdown (10 s), then the consumers' stop (10 s each,
    # concurrently): services/common/service.py main() and Runtime.stop.
    for name in DEFINITIONS:
        pod = deployment(objects, name)["spec"]["template"]["spec"]
        pre_stop = container(objects, name)["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + 10 + 10


def test_each_service_has_a_disruption_budget_that_keeps_one_pod(objects):
    budgets = of_kind(objects, "PodDisruptionBudget")
    for name in DEFINITIONS:
        selector = deployment(objects, name)["spec"]["selector"]
        budget = budgets[f"alfi-{name}"]["spec"]
        assert budget["selector"] == selector
        assert budget["maxUnavailable"] == 1


def test_containers_run_as_non_root_on_a_read_only_file_system(objects):
    for name in DEFINITIONS:
        pod = deployment(objects, name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        context = container(objects, name)["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context.get("privileged") is False


def test_settings_come_from_a_configmap_the_services_read(objects):
    for name, definition in DEFINITIONS.items():
        data = config_of(objects, name)
        assert container(objects, name)["envFrom"] == [{"configMapRef": {"name": f"alfi-{name}"}}]
        for key in data:
            field = key.removeprefix("ALFI_").lower()
            assert key == "KAFKA_BOOTSTRAP_SERVERS" or field in ServiceSettings.model_fields \
                or key.startswith("ALFI_RETENTION_"), f"{name}: {key} is read by no service"
        settings = ServiceSettings.model_validate(
            {"service": name, "database_url": "postgresql://from-the-secret",
             **{k.removeprefix("ALFI_").lower(): v for k, v in data.items()
                if k.startswith("ALFI_") and k.removeprefix("ALFI_").lower() in ServiceSettings.model_fields},
             "kafka_bootstrap_servers": data["KAFKA_BOOTSTRAP_SERVERS"]})
        assert settings.http_port == definition.default_port and settings.http_host == "0.0.0.0"
        assert settings.kafka_security_protocol.startswith("SASL_")
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
        assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (3, 2)


def test_no_secret_is_written_in_any_rendered_object(objects):
    assert not of_kind(objects, "Secret"), "secrets are made by the operators or by hand, never by the chart"
    for name in DEFINITIONS:
        env = {e["name"]: e for e in container(objects, name)["env"]}
        for key in ("DATABASE_URL", "ALFI_KAFKA_SASL_PASSWORD"):
            assert set(env[key]) == {"name", "valueFrom"} and "secretKeyRef" in env[key]["valueFrom"], key
        assert not [k for k in config_of(objects, name) if re.search("PASSWORD|SECRET|TOKEN|DATABASE_URL", k)]
    text = yaml.safe_dump_all(objects)
    assert not re.search(r"postgres(ql)?://[^/@\s]+:[^/@\s]+@", text), "a database URL with a password"
    assert not re.search(r"(?i)password\s*[=:]\s*['\"]?[A-Za-z0-9+/]{8,}", text)
    for auth in of_kind(objects, "TriggerAuthentication").values():
        assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} >= {"password"}


# ------------------------------------------------------------------ who reaches what


def admits(policy: dict, namespace_labels: dict[str, str]) -> bool:
    """Whether a pod in a namespace with these labels may reach the policy's pods."""
    return any(all(namespace_labels.get(k) == v
                   for k, v in peer.get("namespaceSelector", {}).get("matchLabels", {}).items())
               and "namespaceSelector" in peer and "podSelector" not in peer
               for rule in policy["spec"]["ingress"] for peer in rule["from"])


def test_only_stats_is_exposed_to_reporting_consumers(objects):
    policies = of_kind(objects, "NetworkPolicy")
    for name in DEFINITIONS:
        assert admits(policies[f"alfi-{name}"], REPORTING) == (name == "stats"), name
    [ingress] = of_kind(objects, "Ingress").values()
    backends = {p["backend"]["service"]["name"] for rule in ingress["spec"]["rules"]
                for p in rule["http"]["paths"]}
    assert backends == {"alfi-stats"}
    assert {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]} == {"/v1/reports", "/reports"}
    assert ingress["spec"]["tls"], "the reports carry tokens: TLS"


def test_postgresql_is_reachable_only_from_the_services(objects):
    [cluster] = of_kind(objects, "Cluster").values()
    policy = of_kind(objects, "NetworkPolicy")[cluster["metadata"]["name"]]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"cnpg.io/cluster": cluster["metadata"]["name"]}}
    to_postgres = [peer for rule in policy["spec"]["ingress"] if {"port": 5432, "protocol": "TCP"} in rule["ports"]
                   for peer in rule["from"]]
    assert to_postgres == [
        {"podSelector": {"matchLabels": {"alfi.io/database-client": "true", "app.kubernetes.io/instance": "alfi"}}},
        {"podSelector": {"matchLabels": {"cnpg.io/cluster": cluster["metadata"]["name"]}}},
    ]
    labelled = {name for name in DEFINITIONS
                if deployment(objects, name)["spec"]["template"]["metadata"]["labels"].get("alfi.io/database-client")}
    assert labelled == set(DEFINITIONS)


def test_kafka_is_reachable_only_from_the_services(objects):
    [kafka] = of_kind(objects, "Kafka").values()
    [listener] = kafka["spec"]["kafka"]["listeners"]
    assert listener["type"] == "internal" and listener["authentication"] == {"type": "scram-sha-512"}
    peers = listener["networkPolicyPeers"]
    assert peers[0] == {"podSelector": {"matchLabels": {"alfi.io/kafka-client": "true",
                                                        "app.kubernetes.io/instance": "alfi"}}}
    assert peers[1:] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}]
    for name in DEFINITIONS:
        assert deployment(objects, name)["spec"]["template"]["metadata"]["labels"]["alfi.io/kafka-client"] == "true"


# ------------------------------------------------------------------ the engines


def test_kafka_is_a_kraft_cluster_of_three_with_two_in_sync(objects):
    [kafka] = of_kind(objects, "Kafka").values()
    [pool] = of_kind(objects, "KafkaNodePool").values()
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert pool["spec"]["replicas"] == 3 and sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert pool["spec"]["storage"]["volumes"][0]["deleteClaim"] is False
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["auto.create.topics.enable"] is False
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple"}


def expected_topics() -> set[str]:
    return {topic for service in SERVICES for base in (events_topic(service), commands_topic(service))
            for topic in (base, dead_letter_topic(base))}


def test_every_alfi_topic_is_declared_with_the_services_layout(objects):
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(objects, "KafkaTopic").values()}
    assert set(topics) == expected_topics()
    retention = int(config_of(objects, "intake")["ALFI_KAFKA_COMMAND_RETENTION_MS"])
    services_layout = KafkaConnection("unused", min_insync_replicas=2, command_retention_ms=retention)
    for name, spec in topics.items():
        assert spec["partitions"] == PARTITIONS and spec["replicas"] == 3
        # What services/common/kafka.py would create or align the topic to: equal, so the
        # services never need to alter it (their users may not).
        assert {k: str(v) for k, v in spec["config"].items()} == services_layout.topic_config(name), name
        if ".events" in name:
            assert spec["config"]["retention.ms"] == -1, f"{name} must keep every event"


def kafka_access(definition: ServiceDefinition) -> dict[str, set[str]]:
    """What a service reads and writes on Kafka, from its definition, as Runtime.start
    builds its consumers and relay: command topic (with handlers), intake's events (with
    the household replica), the definition's own consumers; the relay publishes its
    events and the dead letters of what its consumers read and of its own events."""
    runtime = Runtime(definition, ServiceSettings(service=definition.name, database_url="postgresql://unused"))
    runtime.extras["generation"] = 1
    consumers = []
    if definition.handlers:
        consumers.append((f"alfi-{definition.name}-commands", [commands_topic(definition.name)]))
    if definition.replicates_households:
        consumers.append((f"alfi-{definition.name}-households", [INTAKE_EVENTS]))
    consumers += [(c.group_id, c.topics) for c in (definition.consumers(runtime) if definition.consumers else [])]
    reads = {topic for _, topics in consumers for topic in topics}
    own = {events_topic(definition.name), dead_letter_topic(events_topic(definition.name))} \
        if definition.handlers else set()
    return {"reads": reads, "writes": own | {dead_letter_topic(t) for t in reads},
            "groups": {group for group, _ in consumers}}


def acls(user: dict) -> list[tuple[str, str, str, set[str]]]:
    return [(a["resource"]["type"], a["resource"]["name"], a["resource"].get("patternType", "literal"),
             set(a["operations"])) for a in user["spec"]["authorization"]["acls"]]


def test_each_service_writes_only_its_own_topics_and_reads_what_it_consumes(objects):
    users = of_kind(objects, "KafkaUser")
    for name, definition in DEFINITIONS.items():
        user = users[f"alfi-{name}"]
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        expected = kafka_access(definition)
        granted = acls(user)
        writes = {n for kind, n, _, ops in granted if kind == "topic" and "Write" in ops}
        reads = {n for kind, n, _, ops in granted if kind == "topic" and "Read" in ops}
        assert writes == expected["writes"], name
        assert reads == expected["reads"], name
        # Its own events, dead letters, nothing else: never a command topic, never
        # another service's events.
        assert all(t == events_topic(name) or t.endswith(".dlq") for t in writes), name
        assert all(kind in ("topic", "group") for kind, *_ in granted)
        assert not any(op in ops for *_, ops in granted for op in ("All", "Alter", "AlterConfigs", "Delete", "Create"))
        [(prefix, ops)] = [(n, ops) for kind, n, pattern, ops in granted if kind == "group" and pattern == "prefix"]
        assert prefix == f"alfi-{name}-" and "Read" in ops
        assert all(group.startswith(prefix) for group in expected["groups"])
        env = {e["name"]: e for e in container(objects, name)["env"]}
        assert env["ALFI_KAFKA_SASL_USERNAME"] == {"name": "ALFI_KAFKA_SASL_USERNAME", "value": f"alfi-{name}"}
    assert set(users) == {f"alfi-{name}" for name in DEFINITIONS}, "no other Kafka user unless asked for"


def test_an_upstream_producer_may_only_write_commands_from_its_namespace():
    objects = rendered(VALUES_FILES[0], "--set", "kafka.upstreamUser.enabled=true")
    upstream = of_kind(objects, "KafkaUser")["alfi-upstream"]
    assert {n for kind, n, _, ops in acls(upstream) if "Write" in ops} == {commands_topic(s) for s in SERVICES}
    assert not any("Read" in ops for *_, ops in acls(upstream))
    [kafka] = of_kind(objects, "Kafka").values()
    [listener] = kafka["spec"]["kafka"]["listeners"]
    assert listener["networkPolicyPeers"][-1] == {
        "namespaceSelector": {"matchLabels": {"alfi.io/kafka-producer": "true"}}}


def test_postgresql_is_three_instances_and_its_secret_feeds_database_url(objects):
    [cluster] = of_kind(objects, "Cluster").values()
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["enableSuperuserAccess"] is False
    database_url = {e["name"]: e for e in container(objects, "stats")["env"]}["DATABASE_URL"]
    assert database_url["valueFrom"]["secretKeyRef"] == {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}


def test_an_external_database_replaces_the_cluster():
    objects = rendered(VALUES_FILES[0], "--set", "database.mode=external")
    assert not of_kind(objects, "Cluster")
    assert "alfi-pg" not in of_kind(objects, "NetworkPolicy")
    database_url = {e["name"]: e for e in container(objects, "intake")["env"]}["DATABASE_URL"]
    assert database_url["valueFrom"]["secretKeyRef"] == {"name": "alfi-database", "key": "uri"}


# ------------------------------------------------------------------ scaling


def test_consumers_scale_on_lag_within_the_partitions(objects):
    [scaled] = of_kind(objects, "ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "alfi-stats"
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in of_kind(objects, "KafkaTopic").values()}
    assert scaled["spec"]["maxReplicaCount"] <= PARTITIONS
    [projector] = STATS.consumers(_stats_runtime())
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["topic"] for t in triggers} == set(projector.topics)
    for trigger in triggers:
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == projector.group_id
        assert scaled["spec"]["maxReplicaCount"] <= partitions[trigger["metadata"]["topic"]]


def _stats_runtime() -> Runtime:
    runtime = Runtime(STATS, ServiceSettings(service="stats", database_url="postgresql://unused"))
    runtime.extras["generation"] = 1
    return runtime


def test_http_services_scale_on_cpu(objects):
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in of_kind(objects, "HorizontalPodAutoscaler").values()}
    assert set(hpas) == {f"alfi-{name}" for name in SERVICES}
    for spec in hpas.values():
        assert spec["minReplicas"] >= 2 and spec["maxReplicas"] > spec["minReplicas"]
        assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu"]


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_more_lag_replicas_than_partitions_is_refused(values_file):
    done = render(values_file, "--set", f"services.stats.autoscaling.maxReplicas={PARTITIONS + 1}")
    assert done.returncode != 0 and "exceeds kafka.partitions" in done.stderr


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_the_chart_partitions_are_the_contracts(values_file):
    assert values(values_file)["kafka"]["partitions"] == PARTITIONS


# ------------------------------------------------------------------ observability


def test_the_prometheus_rule_is_deploys_alert_file(objects):
    [rule] = of_kind(objects, "PrometheusRule").values()
    alerts = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]


def test_services_are_scraped_as_the_local_prometheus_does(objects):
    [monitor] = of_kind(objects, "ServiceMonitor").values()
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    [job] = [s["job_name"] for s in scrape]
    assert monitor["spec"]["jobLabel"] == "alfi.io/job"
    services = of_kind(objects, "Service")
    selected = [s for s in services.values()
                if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert len(selected) == len(DEFINITIONS)
    assert all(s["metadata"]["labels"]["alfi.io/job"] == job for s in selected)
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    # The alerts and the dashboard group by service=<name>, the component label.
    assert endpoint["relabelings"] == [{"sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_component"],
                                        "targetLabel": "service"}]
    assert {s["metadata"]["labels"]["app.kubernetes.io/component"] for s in selected} == set(DEFINITIONS)


def test_the_dashboard_is_a_configmap_for_grafanas_sidecar(objects):
    dashboard = of_kind(objects, "ConfigMap")["alfi-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "alfi.json").read_text())
    assert json.loads(dashboard["data"]["alfi.json"]) == source
