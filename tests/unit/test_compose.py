"""docker-compose.yml cannot run here (no Docker engine): check its structure against
what the services read, so it does not rot unnoticed, and its security promises: Kafka
speaks SASL/SCRAM only and publishes no port, every secret comes from .env (git-ignored,
documented in .env.example), Grafana has no default password.

Variables are substituted the way docker compose does (`${VAR}`, `${VAR:-default}`,
`${VAR:?error}`, `$$`), with the values of .env.example, placeholders filled in."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from services.casework.service import DEFINITION as CASEWORK
from services.common.settings import ServiceSettings
from services.intake.service import DEFINITION as INTAKE
from services.stats.service import DEFINITION as STATS
from services.veille.service import DEFINITION as VEILLE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
PLATFORM = (INTAKE, CASEWORK, VEILLE, STATS)

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; not $${...}.
REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|JAAS|CREDENTIAL", re.IGNORECASE)
# What the apache/kafka image sets when unset (/etc/kafka/docker/configureDefaults), among
# them a PLAINTEXT listener on 0.0.0.0:9092: every one must be given, so none applies.
IMAGE_LISTENER_DEFAULTS = (
    "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
    "KAFKA_INTER_BROKER_LISTENER_NAME", "KAFKA_CONTROLLER_LISTENER_NAMES", "KAFKA_CONTROLLER_QUORUM_VOTERS",
)


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name, operator, argument = match.groups()
        current = env.get(name)
        empty = current is None or (current == "" and operator and operator.startswith(":"))
        if operator in (":?", "?") and empty:
            raise MissingVariable(f"{name}: {argument}")
        if operator in (":-", "-") and empty:
            return argument
        return current or ""

    return REFERENCE.sub(value, text).replace("$$", "$")


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.lstrip().startswith("#"))


def sample_env() -> dict[str, str]:
    """.env.example with each placeholder filled as `openssl rand -base64` would."""
    return {name: value or f"{name.lower()}+/x=" for name, value in env_example().items()}


def resolved(env: dict[str, str] | None = None) -> dict:
    return yaml.safe_load(interpolate(COMPOSE_TEXT, sample_env() if env is None else env))["services"]


def references(value: str) -> list[tuple[str, str | None, str]]:
    return [match.groups() for match in REFERENCE.finditer(value)]


def kafka_property(env_name: str) -> str:
    """The server.properties key the apache/kafka image derives from a KAFKA_* variable
    (KafkaDockerWrapper: KAFKA_ dropped, lower case, "_" -> ".", "___" -> "-", "__" -> "_")."""
    return env_name.removeprefix("KAFKA_").lower().replace("_", ".").replace("...", "-").replace("..", "_")


def listeners(kafka_env: dict[str, str]) -> dict[str, tuple[str, int]]:
    """Listener name -> (security protocol, port)."""
    protocols = dict(entry.split(":") for entry in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    found = {}
    for listener in kafka_env["KAFKA_LISTENERS"].split(","):
        name, address = listener.split("://")
        found[name] = (protocols[name], int(address.rsplit(":", 1)[1]))
    return found


def env_has_required(env: dict[str, str], key: str) -> bool:
    return [operator for _, operator, _ in references(env.get(key, ""))] == [":?"]


def one_shot(name: str) -> bool:
    """A service run to completion before another (kafka-format), not kept running."""
    return SERVICES[name].get("restart") == "no" and any(
        (spec.get("depends_on") or {}).get(name, {}).get("condition") == "service_completed_successfully"
        for spec in SERVICES.values() if isinstance(spec.get("depends_on"), dict))


def test_every_long_running_service_has_a_healthcheck():
    assert [name for name in SERVICES if one_shot(name)] == ["kafka-format"]
    missing = [name for name, spec in SERVICES.items() if "healthcheck" not in spec and not one_shot(name)]
    assert missing == []


def test_platform_services_match_their_definitions():
    services = resolved()
    kafka_env = services["kafka"]["environment"]
    for definition in PLATFORM:
        spec = services[definition.name]
        assert spec["command"] == ["python", "-m", f"services.{definition.name}"]
        assert spec["ports"] == [f"{definition.default_port}:{definition.default_port}"]
        env = spec["environment"]
        assert env["ALFI_HTTP_PORT"] == str(definition.default_port)
        assert env["ALFI_HTTP_HOST"] == "0.0.0.0"
        settings = ServiceSettings.model_validate(
            {"service": definition.name, "database_url": env["DATABASE_URL"],
             "kafka_bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
        assert settings.database_url.endswith("@postgres:5432/alfi")
        # The address the broker advertises for its client listener.
        assert f"CLIENT://{settings.kafka_bootstrap_servers}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
        assert env["ALFI_KAFKA_REPLICATION_FACTOR"] == "1"  # one broker
        assert env["ALFI_KAFKA_MIN_INSYNC_REPLICAS"] == "1"
        assert spec["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_kafka_is_the_official_image_in_kraft_mode():
    kafka, kafka_format = SERVICES["kafka"], SERVICES["kafka-format"]
    assert kafka["image"].startswith("apache/kafka:4.1")
    assert kafka_format["image"] == kafka["image"]  # formats with the broker's own version
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_kafka_log_dirs_live_in_a_named_volume():
    """The event history must survive a re-created container: log dirs on a named volume,
    the storage's cluster id pinned so a re-created broker accepts it; kafka-format
    formats that same volume."""
    for name in ("kafka", "kafka-format"):
        spec = SERVICES[name]
        log_dirs = spec["environment"]["KAFKA_LOG_DIRS"]
        mounts = {target: source for source, target, *_ in (v.split(":") for v in spec["volumes"])}
        for log_dir in log_dirs.split(","):
            source = next((s for t, s in mounts.items() if log_dir == t or log_dir.startswith(t + "/")), None)
            assert source in COMPOSE["volumes"], f"{name}: {log_dir} is not on a named volume: {mounts}"
            assert source == "kafkadata"
        assert spec["environment"]["CLUSTER_ID"] == SERVICES["kafka"]["environment"]["CLUSTER_ID"]


def test_kafka_publishes_no_port_and_speaks_only_sasl_to_clients():
    kafka_env = SERVICES["kafka"]["environment"]
    # Not even a SASL one: admin tools run inside, `docker compose exec kafka ...`.
    assert "ports" not in SERVICES["kafka"] and "ports" not in SERVICES["kafka-format"]
    found = listeners(kafka_env)
    controllers = set(kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
    for name, (protocol, _port) in found.items():
        if name not in controllers:
            assert protocol in ("SASL_PLAINTEXT", "SASL_SSL"), f"listener {name} is {protocol}"
    advertised = {entry.split("://")[0] for entry in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert advertised and not advertised & controllers  # the PLAINTEXT controller is never handed to clients
    assert kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    # The image's default listeners (PLAINTEXT on 9092) never apply.
    for service in ("kafka", "kafka-format"):
        assert all(SERVICES[service]["environment"].get(key) for key in IMAGE_LISTENER_DEFAULTS), service


def test_services_authenticate_with_scram_from_variables():
    kafka_env = SERVICES["kafka"]["environment"]
    format_env = SERVICES["kafka-format"]["environment"]
    enabled = kafka_env["KAFKA_SASL_ENABLED_MECHANISMS"].split(",")
    for definition in PLATFORM:
        env = SERVICES[definition.name]["environment"]
        assert env["ALFI_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["ALFI_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["ALFI_KAFKA_SASL_MECHANISM"] in enabled
        # The user kafka-format creates, from the same variables.
        assert references(env["ALFI_KAFKA_SASL_USERNAME"]) == references(format_env["SERVICES_USERNAME"])
        assert references(env["ALFI_KAFKA_SASL_PASSWORD"]) == references(format_env["SERVICES_PASSWORD"])

    sample = sample_env()
    for definition in PLATFORM:
        env = resolved(sample)[definition.name]["environment"]
        settings = ServiceSettings.model_validate({
            "service": definition.name, "database_url": env["DATABASE_URL"],
            "kafka_bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"],
            **{name.removeprefix("ALFI_").lower(): value
               for name, value in env.items() if name.startswith("ALFI_KAFKA_")},
        })
        options = settings.kafka.client_options()
        assert options["security_protocol"] == "SASL_PLAINTEXT"
        assert options["sasl_mechanism"] == "SCRAM-SHA-512"
        assert options["sasl_plain_username"] == sample["KAFKA_SERVICES_USERNAME"]
        assert options["sasl_plain_password"] == sample["KAFKA_SERVICES_PASSWORD"]
        assert settings.kafka.faststream_security() is not None


def test_the_broker_logs_in_as_a_user_kafka_format_creates():
    kafka_env = SERVICES["kafka"]["environment"]
    format_env = SERVICES["kafka-format"]["environment"]
    inter_broker = kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"].lower()
    mechanism = kafka_env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"]
    [jaas_name] = [name for name in kafka_env if name.endswith("_SASL_JAAS_CONFIG")]
    assert kafka_property(jaas_name) == f"listener.name.{inter_broker}.{mechanism.lower()}.sasl.jaas.config"
    jaas = kafka_env[jaas_name]
    assert jaas.startswith("org.apache.kafka.common.security.scram.ScramLoginModule required ")
    assert jaas.endswith(";") and "\n" not in jaas
    username, password = re.fullmatch(r'.* username="([^"]+)" password="([^"]+)";', jaas).groups()
    assert references(username) == references(format_env["BROKER_USERNAME"])
    assert references(password) == references(format_env["BROKER_PASSWORD"])
    # The healthcheck and admin tools log in as that user too.
    assert references(kafka_env["ADMIN_PASSWORD"]) == references(format_env["BROKER_PASSWORD"])
    # Interpolated, the line names the sample's user and password.
    resolved_jaas = resolved()["kafka"]["environment"][jaas_name]
    sample = sample_env()
    login = f'username="{sample["KAFKA_BROKER_USERNAME"]}" password="{sample["KAFKA_BROKER_PASSWORD"]}";'
    assert login in resolved_jaas


def test_kafka_scripts_are_mounted_and_the_broker_waits_for_its_format():
    kafka, kafka_format = SERVICES["kafka"], SERVICES["kafka-format"]
    for spec in (kafka, kafka_format):
        mount = next(v for v in spec["volumes"] if v.split(":")[1] == "/opt/alfi")
        source = ROOT / mount.split(":")[0]
        assert (source / "format-storage.sh").is_file() and (source / "kafka-admin.sh").is_file()
        assert mount.endswith(":ro")
    assert kafka_format["entrypoint"] == ["bash", "/opt/alfi/format-storage.sh"]
    assert kafka["healthcheck"]["test"][:3] == ["CMD", "bash", "/opt/alfi/kafka-admin.sh"]
    assert kafka["depends_on"]["kafka-format"]["condition"] == "service_completed_successfully"
    script = (ROOT / "deploy/kafka/compose/format-storage.sh").read_text()
    assert "--add-scram" in script and "--ignore-formatted" in script and "SCRAM-SHA-512" in script


def test_no_secret_is_written_in_the_file():
    """Every password-like value is a required `${VAR:?...}` reference (no default that
    would be a secret in clear); the database URL carries no password."""
    checked = 0
    for name, spec in SERVICES.items():
        for key, value in (spec.get("environment") or {}).items():
            if not SECRET_KEY.search(key):
                continue
            checked += 1
            if key.endswith("_SASL_JAAS_CONFIG"):
                secrets = re.findall(r'password="([^"]*)"', value)
            else:
                secrets = [value]
            assert secrets, f"{name}.{key}"
            for secret in secrets:
                assert REFERENCE.fullmatch(secret), f"{name}.{key} is not only a variable: {secret!r}"
                [(variable, operator, _)] = references(secret)
                assert operator == ":?", f"{name}.{key}: {variable} must be required, without default"
        url = (spec.get("environment") or {}).get("DATABASE_URL")
        if url:  # the user alone before the host: no "user:password@" (PGPASSWORD instead)
            assert not references(url) and urlsplit(url).password is None, f"{name}: {url}"
            assert env_has_required(spec["environment"], "PGPASSWORD"), name
    assert checked >= 12  # the four services' two secrets, Kafka's, PostgreSQL's, Grafana's
    for variable, operator, _ in references(COMPOSE_TEXT):
        if SECRET_KEY.search(variable):
            assert operator == ":?", f"{variable} has a default"
    assert not re.search(r"password=(?![\"']?\$\{)", COMPOSE_TEXT, re.IGNORECASE)


def test_grafana_has_no_default_admin_password_and_no_anonymous_access():
    env = SERVICES["grafana"]["environment"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


@pytest.mark.parametrize("secret", ["POSTGRES_PASSWORD", "KAFKA_BROKER_PASSWORD", "KAFKA_SERVICES_PASSWORD",
                                    "GRAFANA_ADMIN_PASSWORD"])
def test_compose_refuses_to_start_without_a_secret(secret: str):
    env = sample_env()
    env[secret] = ""  # as in a copied .env.example left unfilled
    with pytest.raises(MissingVariable, match=secret):
        resolved(env)
    del env[secret]
    with pytest.raises(MissingVariable, match=secret):
        resolved(env)


def test_env_is_gitignored_and_env_example_documents_every_variable():
    ignored = [line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()]
    assert ".env" in ignored
    assert not any(pattern in ignored for pattern in (".env*", "*.example", ".env.example"))
    example = env_example()
    used = {variable for variable, _, _ in references(COMPOSE_TEXT)}
    assert used == set(example), (used ^ set(example))
    for name, value in example.items():
        if SECRET_KEY.search(name):
            assert value == "", f".env.example holds a value for {name}: leave it to be filled"
    text = (ROOT / ".env.example").read_text()
    assert "openssl rand -base64 32" in text and "cp .env.example .env" in text


def test_prometheus_and_grafana_mount_what_deploy_holds():
    prometheus = SERVICES["prometheus"]["volumes"][0].split(":")[0]
    assert (ROOT / prometheus / "prometheus.yml").exists() and (ROOT / prometheus / "alerts.yml").exists()
    for volume in SERVICES["grafana"]["volumes"]:
        assert (ROOT / volume.split(":")[0]).is_dir()


def test_image_runs_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER alfi" in dockerfile and "useradd" in dockerfile
