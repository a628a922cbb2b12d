"""Local infrastructure without Docker: a real Kafka broker and a private PostgreSQL.

Used by `make run`, `make test` and the test fixtures. Standard library only, so it runs
before any virtualenv exists.

- Kafka: Apache Kafka (KRaft, broker and controller in one JVM) on 127.0.0.1:9092. Its
  jars are resolved once from Maven Central with maven-dependency-plugin into a cache
  outside the repository (deploy/kafka/pom.xml), storage is formatted with
  kafka.tools.StorageTool, the broker runs from kafka.Kafka and is ready at the log line
  "Kafka Server started".
- PostgreSQL: DATABASE_URL when it answers; otherwise a private cluster (initdb) on its
  own port with the system's binaries, installing Debian's postgresql package when they
  are missing.

- A local three-node Kafka cluster (KRaft, each node broker and controller, 512 MiB
  heap): client ports 29192, 29194, 29196 (controllers on the next port up), data under
  .local/kafka-cluster/node-N, replication factor 3 and min.insync.replicas=2, for
  trying the platform against replicated topics and a node going down.

Every start is idempotent: a running instance is reused, a stale pid file from a crashed
run is cleared. Nothing here knows about the services; it only gives addresses.

    python deploy/local/devstack.py up|down|status|env|run|token SCOPES [--territories|--worker|--ttl|--label ...]|kafka-up|kafka-down|pg-up|pg-down
    python deploy/local/devstack.py cluster-up|cluster-down|cluster-env

`run` is what `make run` calls: it starts the infrastructure and the services in the
foreground and stops everything it started on Ctrl-C (or SIGTERM).

`cluster-up` starts the three-node cluster and prints its bootstrap list, `cluster-down`
stops it (its data is kept), `cluster-env` starts it and prints the `export` lines that
point the services at it (KAFKA_BOOTSTRAP_SERVERS, ALFI_KAFKA_REPLICATION_FACTOR=3,
ALFI_KAFKA_MIN_INSYNC_REPLICAS=2): `eval "$(python3 deploy/local/devstack.py cluster-env)"`.

From Python (tests own throwaway instances this way): kafka_up(port=, root=),
kafka_down(root, kill=); pg_up(port, root), pg_down(root, immediate=) (immediate is a
crash: no checkpoint); kafka_cluster_up(ports, root), kafka_node_down(node, root, kill=),
kafka_node_up(node, root), kafka_cluster_down(root).

kafka_up(port=, root=, scram=(user, password)) starts a single broker whose client
listener is SASL_PLAINTEXT with SCRAM-SHA-512 instead of PLAINTEXT (the user created at
storage format, deploy/kafka/sasl-scram.properties.in appended): how docker-compose.yml
runs Kafka, for tests of the clients' authentication. Without `scram`, nothing changes.
"""

from __future__ import annotations

import base64
import concurrent.futures
import grp
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
KAFKA_CONF_DIR = REPO / "deploy" / "kafka"
KAFKA_VERSION = "4.1.1"
KAFKA_READY_LINE = "Kafka Server started"


class DevstackError(RuntimeError):
    """A problem a developer can fix; the message says how."""


def state_dir() -> Path:
    return Path(os.environ.get("ALFI_LOCAL_DIR", REPO / ".local"))


def cache_dir() -> Path:
    """Downloads kept across checkouts (the Kafka jars): never inside the repository."""
    if os.environ.get("ALFI_CACHE_DIR"):
        return Path(os.environ["ALFI_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "alfi"


def log(message: str) -> None:
    sys.stderr.write(f"[devstack] {message}\n")  # one write: lines from threads stay whole
    sys.stderr.flush()


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on `port` now (with SO_REUSEADDR, as PostgreSQL and
    the JVM do)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_bindable(ports: list[int], timeout: float = 90.0) -> None:
    """Wait until nothing holds `ports`. Ports in the kernel's ephemeral range
    (32768-60999 by default: 55432, 29192...) can be the local end of some client's
    connection, which blocks a listener although nothing listens there; such a hold
    ends with the connection (plus 60 s of TIME_WAIT)."""
    deadline = time.monotonic() + timeout
    held = [p for p in ports if not port_bindable(p)]
    if held:
        log(f"port(s) {held} on 127.0.0.1 held by a client connection's local end; waiting up to {timeout:.0f}s")
    while held:
        if time.monotonic() > deadline:
            raise DevstackError(
                f"port(s) {held} on 127.0.0.1 stayed taken (`ss -tanp | grep :{held[0]}` shows by what). "
                "Ports in net.ipv4.ip_local_port_range can be reserved for servers with "
                "net.ipv4.ip_local_reserved_ports."
            )
        time.sleep(1.0)
        held = [p for p in held if not port_bindable(p)]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as dead. But a multi-threaded process (the
    # JVM) killed with SIGKILL shows its leader as a zombie while its other threads are
    # still exiting and its sockets still open: dead only once no other thread is left.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split(") ", 1)[1][0] != "Z":
                return True
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return True


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def stop_pid(pid: int, name: str, timeout: float = 30.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.2)
    log(f"{name} did not stop within {timeout:.0f}s, killing it")
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --------------------------------------------------------------------------- Kafka


@dataclass(frozen=True)
class KafkaPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def pid(self) -> Path:
        return self.root / "kafka.pid"

    @property
    def log(self) -> Path:
        return self.root / "kafka.log"

    @property
    def properties(self) -> Path:
        return self.root / "server.properties"


def kafka_paths(root: Path | None = None) -> KafkaPaths:
    return KafkaPaths(root or state_dir() / "kafka")


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        raise DevstackError(f"'{name}' was not found on PATH. {hint}")
    return path


def java_major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    for token in out.split('"')[1:2]:
        head = token.split(".")[0]
        return int(head) if head.isdigit() else 0
    return 0


def kafka_lib_dir() -> Path:
    """The broker's runtime classpath, resolved from Maven Central once and cached."""
    lib = cache_dir() / f"kafka-{KAFKA_VERSION}" / "lib"
    if (lib / ".complete").exists():
        return lib
    mvn = require_tool(
        "mvn", "Install Maven (Debian: apt-get install maven); it fetches the broker's jars."
    )
    log(f"resolving Apache Kafka {KAFKA_VERSION} jars from Maven Central into {lib}")
    lib.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="lib-", dir=lib.parent))
    cmd = [
        mvn, "-B", "-q", "-f", str(KAFKA_CONF_DIR / "pom.xml"),
        f"-Dkafka.version={KAFKA_VERSION}",
        "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
        f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        raise DevstackError(
            "Maven could not resolve the Kafka broker jars:\n" + result.stdout[-3000:]
            + result.stderr[-3000:]
        )
    (staging / ".complete").write_text(KAFKA_VERSION)
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    return lib


def kafka_port() -> int:
    return int(os.environ.get("ALFI_KAFKA_PORT", "9092"))


@dataclass(frozen=True)
class KafkaNodeConfig:
    """What server.properties.in needs for one node (single broker or cluster member)."""

    node_id: int
    port: int
    voters: str
    replication_factor: int
    min_insync: int
    # (user, password): a SASL_PLAINTEXT client listener with this SCRAM-SHA-512 user.
    scram: tuple[str, str] | None = field(default=None, repr=False)

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def listener(self) -> str:
        return "SASL_PLAINTEXT" if self.scram else "PLAINTEXT"


@dataclass
class KafkaLaunch:
    """A node process just started, waiting for its ready line."""

    paths: KafkaPaths
    port: int
    process: subprocess.Popen
    offset: int
    started: float


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def kafka_runtime() -> tuple[str, Path]:
    """Java (17+) and the broker's jars."""
    java = require_tool("java", "Install Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless).")
    if java_major_version(java) < 17:
        raise DevstackError("Kafka 4.x needs Java 17 or newer; `java -version` reports older.")
    return java, kafka_lib_dir()


def kafka_node_running(paths: KafkaPaths, port: int) -> bool:
    """True when this root's node is up and answering; clears a stale or hung one and
    refuses ports another process holds."""
    pid = read_pid(paths.pid)
    if pid and port_open("127.0.0.1", port):
        return True
    if pid:
        log(f"a previous broker (pid {pid}) in {paths.root} is not answering; stopping it")
        stop_pid(pid, "kafka")
    if port_open("127.0.0.1", port) or port_open("127.0.0.1", port + 1):
        raise DevstackError(
            f"127.0.0.1:{port} or :{port + 1} is taken by another process. Stop it, or "
            "point at a running broker with KAFKA_BOOTSTRAP_SERVERS, or pick other ports "
            "(ALFI_KAFKA_PORT for the single broker)."
        )
    wait_bindable([port, port + 1])
    return False


def start_kafka_node(
    paths: KafkaPaths, port: int, *, config: KafkaNodeConfig | None, cluster_id: str,
    runtime: tuple[str, Path],
) -> KafkaLaunch:
    """Render the node's server.properties (unless `config` is None: a restart keeps the
    node's own file), format its storage once with `cluster_id`, start kafka.Kafka.
    The one way every node starts: single broker, cluster member, restarted member."""
    java, lib = runtime
    paths.root.mkdir(parents=True, exist_ok=True)
    if config is not None:
        refuse_other_security(paths, config)
        template = (KAFKA_CONF_DIR / "server.properties.in").read_text()
        if config.scram:
            template += (KAFKA_CONF_DIR / "sasl-scram.properties.in").read_text()
        rendered = (
            template.replace("@DATA_DIR@", str(paths.data))
            .replace("@NODE_ID@", str(config.node_id))
            .replace("@VOTERS@", config.voters)
            .replace("@REPLICATION_FACTOR@", str(config.replication_factor))
            .replace("@MIN_ISR@", str(config.min_insync))
            .replace("@LISTENER@", config.listener)
            .replace("@CONTROLLER_PORT@", str(config.controller_port))
            .replace("@PORT@", str(config.port))
        )
        if config.scram:
            user, password = config.scram
            rendered = rendered.replace("@SCRAM_USERNAME@", user).replace("@SCRAM_PASSWORD@", password)
        paths.properties.touch(mode=0o600)
        paths.properties.chmod(0o600)  # before writing: it holds the SCRAM password when there is one
        paths.properties.write_text(rendered)
        unfilled = re.findall(r"@[A-Z_]+@", paths.properties.read_text())
        if unfilled:
            raise DevstackError(f"{paths.properties}: placeholders left unfilled: {unfilled}")
    elif not paths.properties.exists():
        raise DevstackError(f"{paths.properties} is missing: start the node with its cluster first.")
    classpath = f"{lib}/*"
    if not (paths.data / "meta.properties").exists():
        # A SCRAM user exists from the first start only if it is in the formatted metadata.
        add_scram = (["--add-scram", f"SCRAM-SHA-512=[name={config.scram[0]},password={config.scram[1]}]"]
                     if config is not None and config.scram else [])
        result = subprocess.run(
            # `--cluster-id=` form: a base64url id may start with "-", which would read as an option.
            # A one-shot tool: the client JIT and serial GC cost a third less CPU at start.
            [java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", classpath,
             "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
             "-c", str(paths.properties), "-g", *add_scram],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise DevstackError("formatting Kafka storage failed:\n" + result.stdout + result.stderr)
    log(f"starting Kafka {KAFKA_VERSION} on 127.0.0.1:{port}")
    started = time.monotonic()
    with paths.log.open("ab") as out:
        offset = out.tell()
        process = subprocess.Popen(
            [java, "-Xms256m", "-Xmx512m", "-XX:+UseG1GC",
             f"-Dlog4j2.configurationFile={KAFKA_CONF_DIR / 'log4j2.properties'}",
             "-cp", classpath, "kafka.Kafka", str(paths.properties)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    paths.pid.write_text(str(process.pid))
    return KafkaLaunch(paths, port, process, offset, started)


def refuse_other_security(paths: KafkaPaths, config: KafkaNodeConfig) -> None:
    """A storage formatted for a PLAINTEXT broker has no SCRAM user, and one formatted with
    a user expects SASL: refuse to start it the other way, and to write into `--add-scram`
    or the JAAS line a user or password that would not survive their syntax."""
    if config.scram and not all(part and not set(part) & set(',"\\\n') for part in config.scram):
        raise DevstackError('a SCRAM user and password must be non-empty, without , " \\ or a newline')
    if not (paths.data / "meta.properties").exists() or not paths.properties.exists():
        return
    was_sasl = "sasl.enabled.mechanisms=" in paths.properties.read_text()
    if was_sasl != bool(config.scram):
        raise DevstackError(
            f"the Kafka storage in {paths.data} was formatted {'with' if was_sasl else 'without'} "
            f"SCRAM credentials: start it the same way, or remove {paths.root} to start afresh."
        )


def wait_kafka_ready(launches: list[KafkaLaunch], deadline: float) -> None:
    """Wait for every launched node's "Kafka Server started" (cluster members only get
    there together, once the controller quorum has formed). On failure, stop them all."""
    pending = list(launches)
    while pending:
        for launch in list(pending):
            if launch.process.poll() is not None:
                for other in launches:
                    stop_pid(other.process.pid, "kafka")
                raise DevstackError(
                    f"Kafka ({launch.paths.root}) exited with {launch.process.returncode}:\n"
                    + tail(launch.paths.log, launch.offset)
                )
            if KAFKA_READY_LINE in tail(launch.paths.log, launch.offset, limit=None):
                log(f"Kafka on 127.0.0.1:{launch.port} ready in {time.monotonic() - launch.started:.1f}s")
                pending.remove(launch)
        if pending and time.monotonic() > deadline:
            for other in launches:
                stop_pid(other.process.pid, "kafka")
            raise DevstackError(
                "Kafka did not start in time:\n"
                + "\n".join(tail(launch.paths.log, launch.offset) for launch in pending)
            )
        if pending:
            time.sleep(0.25)


def kafka_up(
    timeout: float = 180.0, *, port: int | None = None, root: Path | None = None,
    scram: tuple[str, str] | None = None,
) -> str:
    """Start the local broker unless one is already ours and running; return bootstrap.

    `port` and `root` give a separate broker (the tests use a throwaway one). `scram`
    (user, password) makes its client listener SASL_PLAINTEXT with that SCRAM-SHA-512
    user, created when its storage is formatted."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and port is None:
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    port = port or kafka_port()
    paths = kafka_paths(root)
    if kafka_node_running(paths, port):
        return f"127.0.0.1:{port}"
    config = KafkaNodeConfig(
        node_id=1, port=port, voters=f"1@127.0.0.1:{port + 1}", replication_factor=1, min_insync=1,
        scram=scram,
    )
    launch = start_kafka_node(paths, port, config=config, cluster_id=new_cluster_id(), runtime=kafka_runtime())
    wait_kafka_ready([launch], launch.started + timeout)
    return f"127.0.0.1:{port}"


def kafka_down(root: Path | None = None, *, kill: bool = False) -> None:
    paths = kafka_paths(root)
    pid = read_pid(paths.pid)
    if pid:
        log("killing Kafka" if kill else "stopping Kafka")
        if kill:
            os.killpg(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.1)
        else:
            stop_pid(pid, "kafka")
    paths.pid.unlink(missing_ok=True)


# ------------------------------------------------------------ Kafka: three-node cluster

CLUSTER_PORTS = (29192, 29194, 29196)
CLUSTER_REPLICATION_FACTOR = 3
CLUSTER_MIN_INSYNC = 2


def cluster_root(root: Path | None = None) -> Path:
    return root or state_dir() / "kafka-cluster"


def cluster_node_paths(node: int, root: Path | None = None) -> KafkaPaths:
    if node not in (1, 2, 3):
        raise DevstackError(f"the local cluster has nodes 1, 2 and 3, not {node}")
    return KafkaPaths(cluster_root(root) / f"node-{node}")


def cluster_ports(root: Path | None = None) -> tuple[int, int, int] | None:
    """The client ports the cluster in `root` was started with (its `ports` file)."""
    try:
        ports = tuple(int(p) for p in (cluster_root(root) / "ports").read_text().split(","))
    except (OSError, ValueError):
        return None
    return ports if len(ports) == 3 else None  # type: ignore[return-value]


def kafka_cluster_up(
    ports: tuple[int, int, int] = CLUSTER_PORTS, root: Path | None = None, timeout: float = 180
) -> str:
    """Start the local three-node KRaft cluster (each node broker and controller, 512 MiB
    heap) unless its nodes already run; return the bootstrap list. Controller port =
    client port + 1; data under `root` (default .local/kafka-cluster), one directory per
    node, every node formatted with the cluster's one id (kept in `root`/cluster-id)."""
    if len(set(ports)) != 3 or len({*ports, *(p + 1 for p in ports)}) != 6:
        raise DevstackError(f"three distinct client ports with free neighbours needed, got {ports}")
    base = cluster_root(root)
    previous = cluster_ports(root)
    if previous and previous != tuple(ports):
        raise DevstackError(
            f"the cluster in {base} was made with ports {previous}: use them, or remove {base}."
        )
    base.mkdir(parents=True, exist_ok=True)
    (base / "ports").write_text(",".join(str(p) for p in ports))
    id_file = base / "cluster-id"
    if not id_file.exists():
        id_file.write_text(new_cluster_id())
    cluster_id = id_file.read_text().strip()
    voters = ",".join(f"{n}@127.0.0.1:{p + 1}" for n, p in enumerate(ports, start=1))
    bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports)
    to_start = [
        (node, port) for node, port in enumerate(ports, start=1)
        if not kafka_node_running(cluster_node_paths(node, root), port)
    ]
    if not to_start:
        return bootstrap
    runtime = kafka_runtime()
    started = time.monotonic()

    def start(node: int, port: int) -> KafkaLaunch:
        config = KafkaNodeConfig(
            node_id=node, port=port, voters=voters,
            replication_factor=CLUSTER_REPLICATION_FACTOR, min_insync=CLUSTER_MIN_INSYNC,
        )
        return start_kafka_node(
            cluster_node_paths(node, root), port, config=config, cluster_id=cluster_id, runtime=runtime,
        )

    # In parallel: formatting a node's storage is a JVM start of its own, and a node only
    # gets ready once a majority of the controllers runs.
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(start, node, port) for node, port in to_start]
    launches = [f.result() for f in futures if f.exception() is None]
    failed = next((f.exception() for f in futures if f.exception() is not None), None)
    if failed is not None:
        for launch in launches:
            stop_pid(launch.process.pid, "kafka")
        raise failed
    wait_kafka_ready(launches, started + timeout)
    log(f"Kafka cluster {bootstrap} ready in {time.monotonic() - started:.1f}s")
    return bootstrap


def kafka_node_down(node: int, root: Path | None = None, *, kill: bool = True) -> None:
    """Stop one cluster node: kill -9 by default (a crash), else a controlled shutdown."""
    kafka_down(cluster_node_paths(node, root).root, kill=kill)


def kafka_node_up(node: int, root: Path | None = None, timeout: float = 180) -> str:
    """Restart one cluster node with its own properties and data; return its address
    once it logged "Kafka Server started"."""
    paths = cluster_node_paths(node, root)
    ports = cluster_ports(root)
    if ports is None or not paths.properties.exists():
        raise DevstackError(f"no cluster in {cluster_root(root)}: run kafka_cluster_up first")
    port = ports[node - 1]
    if not kafka_node_running(paths, port):
        cluster_id = (cluster_root(root) / "cluster-id").read_text().strip()
        launch = start_kafka_node(paths, port, config=None, cluster_id=cluster_id, runtime=kafka_runtime())
        wait_kafka_ready([launch], launch.started + timeout)
    return f"127.0.0.1:{port}"


def kafka_cluster_down(root: Path | None = None) -> None:
    """Stop every node of the cluster (controlled shutdown, all at once); data is kept."""
    pids = []
    for node in (1, 2, 3):
        paths = cluster_node_paths(node, root)
        pid = read_pid(paths.pid)
        if pid:
            pids.append((pid, paths))
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    if pids:
        log("stopping the Kafka cluster")
    for pid, paths in pids:
        stop_pid(pid, "kafka")  # already signalled: waits, kills after 30 s
        paths.pid.unlink(missing_ok=True)
    for node in (1, 2, 3):
        cluster_node_paths(node, root).pid.unlink(missing_ok=True)


def tail(path: Path, offset: int = 0, limit: int | None = 4000) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return text if limit is None else text[-limit:]


# --------------------------------------------------------------------------- PostgreSQL


def pg_port() -> int:
    return int(os.environ.get("ALFI_PG_PORT", "55432"))


def database_answers(url: str) -> bool:
    parts = urlsplit(url)
    return port_open(parts.hostname or "127.0.0.1", parts.port or 5432, timeout=1.0)


def pg_bin_dir() -> Path | None:
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def install_postgres() -> Path:
    if os.geteuid() != 0:
        raise DevstackError(
            "PostgreSQL server binaries (initdb, pg_ctl) are missing. Install them "
            "(Debian: sudo apt-get install postgresql) or set DATABASE_URL."
        )
    log("PostgreSQL binaries missing: installing Debian's postgresql package")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise DevstackError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    bin_dir = pg_bin_dir()
    if not bin_dir:
        raise DevstackError("apt-get installed postgresql but initdb is still not found")
    return bin_dir


def pg_data_dir() -> Path:
    """Where the private cluster lives.

    PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres`
    user, which must be able to reach its data directory. A checkout under a private
    directory (mktemp -d is 0700) is not reachable, so as root the data lives under
    /var/tmp, one directory per checkout; otherwise under .local/.
    """
    if os.geteuid() != 0:
        return state_dir() / "pg" / "data"
    digest = hashlib.sha1(str(REPO).encode()).hexdigest()[:12]
    return Path(os.environ.get("ALFI_PG_ROOT", "/var/tmp")) / f"alfi-pg-{digest}" / "data"


def pg_run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
        return pwd.getpwnam("postgres")


def run_pg(cmd: list[str], user: pwd.struct_passwd | None, **kwargs) -> subprocess.CompletedProcess:
    extra = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    return subprocess.run(cmd, capture_output=True, text=True, cwd="/", **extra, **kwargs)


def pg_url_file(root: Path | None = None) -> Path:
    # Beside the data directory, so the URL (with its generated password) lives and dies
    # with the cluster it opens.
    return (root if root is not None else pg_data_dir().parent) / "database-url"


def reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may traverse every directory down to `path` (exclusive)."""
    groups = {user.pw_gid, *(g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem)}
    for parent in path.resolve().parents:
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid in groups:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return False
    return True


def pg_up(port: int | None = None, root: Path | None = None) -> str:
    """Return a DATABASE_URL that answers, starting the private cluster if needed.

    With `root`, a separate cluster of the caller's own: initialised once under `root`
    (data in `root`/data, its URL in `root`/database-url, log and socket in `root`) on
    `port` (default ALFI_PG_PORT or 55432), started unless it runs; DATABASE_URL is not
    consulted. As root the cluster runs as `postgres`, so `root` is handed to that user
    (a mktemp directory is 0700) and its parents must let it through."""
    if root is None and port is None:
        external = os.environ.get("DATABASE_URL")
        if external:
            if database_answers(external):
                return external
            log("DATABASE_URL does not answer; starting the private local cluster instead")
    bin_dir = pg_bin_dir() or install_postgres()
    own_root = root is not None
    data = root / "data" if own_root else pg_data_dir()
    user = pg_run_as()
    port = port or pg_port()
    url_file = pg_url_file(data.parent)
    if own_root:
        data.parent.mkdir(parents=True, exist_ok=True)
        if user:
            if not reachable_by(data.parent, user):
                raise DevstackError(
                    f"the postgres user cannot reach {data.parent} (a parent directory is "
                    f"closed to it); pick a root under {tempfile.gettempdir()} or /var/tmp."
                )
            os.chown(data.parent, user.pw_uid, user.pw_gid)
    if not (data / "PG_VERSION").exists():
        if own_root:  # never wipe a directory the caller gave: only what we would create
            shutil.rmtree(data, ignore_errors=True)
            url_file.unlink(missing_ok=True)
        else:
            shutil.rmtree(data.parent, ignore_errors=True)
        data.mkdir(parents=True)
        password = secrets.token_urlsafe(24)
        pwfile = data.parent / "pwfile"
        pwfile.write_text(password + "\n")
        if user:
            for path in (data.parent, data, pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
        data.chmod(0o700)
        log(f"initialising a private PostgreSQL cluster in {data}")
        result = run_pg(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "alfi", "--pwfile", str(pwfile),
             "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8",
             "--locale=C.UTF-8"],
            user,
        )
        pwfile.unlink()
        if result.returncode != 0:
            raise DevstackError("initdb failed:\n" + result.stdout + result.stderr)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# alfi local development cluster\n"
                f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{data.parent}'\n"
                "max_connections = 200\nshared_buffers = 256MB\n"
                "synchronous_commit = on\nlog_min_messages = warning\n"
            )
        url_file.parent.mkdir(parents=True, exist_ok=True)
        url_file.write_text(f"postgresql://alfi:{password}@127.0.0.1:{port}/postgres\n")
        url_file.chmod(0o600)
    if not url_file.exists():
        raise DevstackError(
            f"{url_file} is missing but {data} exists: remove {data.parent} to start afresh."
        )
    url = url_file.read_text().strip()
    if own_root and urlsplit(url).port != port:
        raise DevstackError(
            f"the cluster in {data} was made for port {urlsplit(url).port}, not {port}: use "
            f"that port, or remove {data.parent} to start afresh."
        )
    # After a crash (or an immediate stop) postmaster.pid may be left: pg_ctl start
    # sees its process is gone and starts anyway, with crash recovery.
    ours = (data / "postmaster.pid").exists()
    if port_open("127.0.0.1", port) and not ours:
        raise DevstackError(
            f"127.0.0.1:{port} is taken by another PostgreSQL (another checkout's?). Stop it, "
            "pick another port with ALFI_PG_PORT, or point at a server with DATABASE_URL."
        )
    if not port_open("127.0.0.1", port):
        wait_bindable([port])
        log(f"starting PostgreSQL on 127.0.0.1:{port}")
        result = run_pg(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(data.parent / "postgres.log"),
             "-w", "-t", "60", "start"],
            user,
        )
        if result.returncode != 0:
            raise DevstackError(
                "PostgreSQL did not start:\n" + result.stdout + result.stderr
                + tail(data.parent / "postgres.log")
            )
    return url


def pg_down(root: Path | None = None, *, immediate: bool = False) -> None:
    """Stop the private cluster (or the one in `root`): a fast shutdown (a checkpoint,
    clients disconnected), or with `immediate` a crash: no checkpoint, the next start
    runs crash recovery from the WAL."""
    data = root / "data" if root is not None else pg_data_dir()
    bin_dir = pg_bin_dir()
    if bin_dir and (data / "postmaster.pid").exists():
        log("crashing PostgreSQL (immediate stop)" if immediate else "stopping PostgreSQL")
        run_pg([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate" if immediate else "fast",
                "-w", "stop"], pg_run_as())


# --------------------------------------------------------------------------- run

# (name, python module started with `python -m`, port): filled in as services land.
SERVICES: list[tuple[str, str, int]] = [
    ("intake", "services.intake", 8001),
    ("casework", "services.casework", 8002),
    ("veille", "services.veille", 8003),
    ("stats", "services.stats", 8004),
]


def issue_token(scopes: str, url: str, label: str, *options: str) -> str:
    """A token for the local stack (services.common.auth; needs the project's venv).
    `options`: more of `issue`'s options (--territories, --worker, --ttl, --label); it
    expires after ALFI_TOKEN_TTL, else 90 days, unless --ttl says otherwise."""
    result = subprocess.run(
        [sys.executable, "-m", "services.common.auth", "issue", "--scopes", scopes, "--label", label, *options],
        env=dict(os.environ, DATABASE_URL=url), cwd=REPO, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise DevstackError("issuing a token failed:\n" + result.stderr[-2000:])
    return result.stdout.strip()


def write_dev_token(url: str) -> Path:
    path = state_dir() / "dev-token"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(issue_token("all", url, "make run dev token") + "\n")
    path.chmod(0o600)
    return path


def run_foreground() -> int:
    """Infrastructure plus services in the foreground; Ctrl-C stops what this started."""
    before = status()
    bootstrap, url = kafka_up(), pg_up()
    log(f"development token with every scope written to {write_dev_token(url)}")
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, DATABASE_URL=url)
    # A development stack replays past years (make demo): the retention clock would erase
    # them within minutes. Off unless asked for (ALFI_RETENTION_ENABLED=true make run).
    env.setdefault("ALFI_RETENTION_ENABLED", "false")
    children: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for name, module, port in SERVICES:
            log(f"starting {name} on 127.0.0.1:{port}")
            children.append((name, subprocess.Popen(
                [sys.executable, "-m", module], env=dict(env, ALFI_HTTP_PORT=str(port)),
                cwd=REPO, start_new_session=True,
            )))
        log(f"Kafka {bootstrap}, PostgreSQL 127.0.0.1:{pg_port()}"
            f"{', services: ' + ', '.join(n for n, _, _ in SERVICES) if SERVICES else ''}."
            " Ctrl-C stops everything.")
        while not stopping:
            for name, child in children:
                if child.poll() is not None:
                    log(f"{name} exited with {child.returncode}; stopping everything")
                    stopping = True
            time.sleep(0.5)
    finally:
        for name, child in reversed(children):
            if child.poll() is None:
                log(f"stopping {name}")
                stop_pid(child.pid, name)
        if before["kafka"] == "stopped":
            kafka_down()
        else:
            log("Kafka was running before `run` started it: left running")
        if before["postgres"] == "stopped":
            pg_down()
        else:
            log("PostgreSQL was running before `run` started: left running")
    return 0


# --------------------------------------------------------------------------- CLI


def status() -> dict[str, str]:
    kafka = "running" if port_open("127.0.0.1", kafka_port()) else "stopped"
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        kafka = f"external ({os.environ['KAFKA_BOOTSTRAP_SERVERS']})"
    pg = "running" if port_open("127.0.0.1", pg_port()) else "stopped"
    if os.environ.get("DATABASE_URL") and database_answers(os.environ["DATABASE_URL"]):
        pg = "external (DATABASE_URL)"
    return {"kafka": kafka, "postgres": pg}


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    try:
        if command == "kafka-up":
            print(kafka_up())
        elif command == "pg-up":
            print(pg_up())
        elif command in ("up", "env"):
            bootstrap, url = kafka_up(), pg_up()
            if command == "env":
                print(f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap}\nexport DATABASE_URL={url}")
        elif command == "token":
            print(issue_token(argv[2] if len(argv) > 2 else "all", pg_up(), "make token", *argv[3:]))
        elif command == "run":
            return run_foreground()
        elif command == "down":
            kafka_down()
            pg_down()
        elif command == "kafka-down":
            kafka_down()
        elif command == "pg-down":
            pg_down()
        elif command == "cluster-up":
            print(kafka_cluster_up())
        elif command == "cluster-down":
            kafka_cluster_down()
        elif command == "cluster-env":
            print(f"export KAFKA_BOOTSTRAP_SERVERS={kafka_cluster_up()}\n"
                  f"export ALFI_KAFKA_REPLICATION_FACTOR={CLUSTER_REPLICATION_FACTOR}\n"
                  f"export ALFI_KAFKA_MIN_INSYNC_REPLICAS={CLUSTER_MIN_INSYNC}")
        elif command == "status":
            for name, state in status().items():
                print(f"{name}: {state}")
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except DevstackError as error:
        log(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
