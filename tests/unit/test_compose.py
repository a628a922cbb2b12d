"""docker-compose.yml cannot run here (no Docker engine): check its structure against
what the services read, so it does not rot unnoticed."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.casework.service import DEFINITION as CASEWORK
from services.common.settings import ServiceSettings
from services.intake.service import DEFINITION as INTAKE
from services.stats.service import DEFINITION as STATS
from services.veille.service import DEFINITION as VEILLE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_every_service_has_a_healthcheck():
    missing = [name for name, spec in SERVICES.items() if "healthcheck" not in spec]
    assert missing == []


def test_platform_services_match_their_definitions():
    for definition in (INTAKE, CASEWORK, VEILLE, STATS):
        spec = SERVICES[definition.name]
        assert spec["command"] == ["python", "-m", f"services.{definition.name}"]
        assert spec["ports"] == [f"{definition.default_port}:{definition.default_port}"]
        env = spec["environment"]
        assert env["ALFI_HTTP_PORT"] == str(definition.default_port)
        assert env["ALFI_HTTP_HOST"] == "0.0.0.0"
        settings = ServiceSettings.model_validate(
            {"service": definition.name, "database_url": env["DATABASE_URL"],
             "kafka_bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
        assert settings.database_url.endswith("@postgres:5432/alfi")
        assert settings.kafka_bootstrap_servers == "kafka:29092"
        assert env["ALFI_KAFKA_REPLICATION_FACTOR"] == "1"  # one broker
        assert env["ALFI_KAFKA_MIN_INSYNC_REPLICAS"] == "1"
        assert spec["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_kafka_is_the_official_image_in_kraft_mode_with_an_internal_listener():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.1")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "INTERNAL://kafka:29092" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_kafka_log_dirs_live_in_a_named_volume():
    """The event history must survive a re-created container: log dirs on a named volume,
    the storage's cluster id pinned so a re-created broker accepts it."""
    kafka = SERVICES["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    mounts = {target: source for source, target, *_ in (v.split(":") for v in kafka["volumes"])}
    for log_dir in log_dirs.split(","):
        source = next((s for t, s in mounts.items() if log_dir == t or log_dir.startswith(t + "/")), None)
        assert source in COMPOSE["volumes"], f"{log_dir} is not on a named volume: {mounts}"
    assert kafka["environment"]["CLUSTER_ID"]


def test_prometheus_and_grafana_mount_what_deploy_holds():
    prometheus = SERVICES["prometheus"]["volumes"][0].split(":")[0]
    assert (ROOT / prometheus / "prometheus.yml").exists() and (ROOT / prometheus / "alerts.yml").exists()
    for volume in SERVICES["grafana"]["volumes"]:
        assert (ROOT / volume.split(":")[0]).is_dir()


def test_image_runs_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER alfi" in dockerfile and "useradd" in dockerfile
