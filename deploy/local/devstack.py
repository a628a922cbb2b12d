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

Every start is idempotent: a running instance is reused, a stale pid file from a crashed
run is cleared. Nothing here knows about the services; it only gives addresses.

    python deploy/local/devstack.py up|down|status|env|run|token SCOPES|kafka-up|pg-up

`run` is what `make run` calls: it starts the infrastructure and the services in the
foreground and stops everything it started on Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
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
    print(f"[devstack] {message}", file=sys.stderr, flush=True)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
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


def kafka_up(timeout: float = 180.0, *, port: int | None = None, root: Path | None = None) -> str:
    """Start the local broker unless one is already ours and running; return bootstrap.

    `port` and `root` give a separate broker (the tests use a throwaway one)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and port is None:
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    port = port or kafka_port()
    controller_port = port + 1
    paths = kafka_paths(root)
    pid = read_pid(paths.pid)
    if pid and port_open("127.0.0.1", port):
        return f"127.0.0.1:{port}"
    if pid:
        log(f"a previous broker (pid {pid}) is not answering; stopping it")
        stop_pid(pid, "kafka")
    if port_open("127.0.0.1", port) or port_open("127.0.0.1", controller_port):
        raise DevstackError(
            f"127.0.0.1:{port} or :{controller_port} is taken by another process. Stop it, or "
            "point at a running broker with KAFKA_BOOTSTRAP_SERVERS, or pick another port "
            "with ALFI_KAFKA_PORT."
        )
    java = require_tool("java", "Install Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless).")
    if java_major_version(java) < 17:
        raise DevstackError("Kafka 4.x needs Java 17 or newer; `java -version` reports older.")
    lib = kafka_lib_dir()
    paths.root.mkdir(parents=True, exist_ok=True)
    template = (KAFKA_CONF_DIR / "server.properties.in").read_text()
    paths.properties.write_text(
        template.replace("@DATA_DIR@", str(paths.data))
        .replace("@CONTROLLER_PORT@", str(controller_port))
        .replace("@PORT@", str(port))
    )
    classpath = f"{lib}/*"
    if not (paths.data / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            # `--cluster-id=` form: a base64url id may start with "-", which would read as an option.
            [java, "-cp", classpath, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
             "-c", str(paths.properties), "-g"],
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
    deadline = started + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevstackError(f"Kafka exited with {process.returncode}:\n{tail(paths.log, offset)}")
        if KAFKA_READY_LINE in tail(paths.log, offset, limit=None):
            log(f"Kafka ready in {time.monotonic() - started:.1f}s")
            return f"127.0.0.1:{port}"
        time.sleep(0.25)
    stop_pid(process.pid, "kafka")
    raise DevstackError(f"Kafka did not start within {timeout:.0f}s:\n{tail(paths.log, offset)}")


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


def pg_url_file() -> Path:
    # Beside the data directory, so the URL (with its generated password) lives and dies
    # with the cluster it opens.
    return pg_data_dir().parent / "database-url"


def pg_up() -> str:
    """Return a DATABASE_URL that answers, starting the private cluster if needed."""
    external = os.environ.get("DATABASE_URL")
    if external:
        if database_answers(external):
            return external
        log("DATABASE_URL does not answer; starting the private local cluster instead")
    bin_dir = pg_bin_dir() or install_postgres()
    data = pg_data_dir()
    user = pg_run_as()
    port = pg_port()
    url_file = pg_url_file()
    if not (data / "PG_VERSION").exists():
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
    ours = (data / "postmaster.pid").exists()
    if port_open("127.0.0.1", port) and not ours:
        raise DevstackError(
            f"127.0.0.1:{port} is taken by another PostgreSQL (another checkout's?). Stop it, "
            "pick another port with ALFI_PG_PORT, or point at a server with DATABASE_URL."
        )
    if not port_open("127.0.0.1", port):
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


def pg_down() -> None:
    data = pg_data_dir()
    bin_dir = pg_bin_dir()
    if bin_dir and (data / "postmaster.pid").exists():
        log("stopping PostgreSQL")
        run_pg([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], pg_run_as())


# --------------------------------------------------------------------------- run

# (name, python module started with `python -m`, port): filled in as services land.
SERVICES: list[tuple[str, str, int]] = [
    ("intake", "services.intake", 8001),
    ("casework", "services.casework", 8002),
    ("veille", "services.veille", 8003),
    ("stats", "services.stats", 8004),
]


def issue_token(scopes: str, url: str, label: str) -> str:
    """A token for the local stack (services.common.auth; needs the project's venv)."""
    result = subprocess.run(
        [sys.executable, "-m", "services.common.auth", "issue", "--scopes", scopes, "--label", label],
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
            print(issue_token(argv[2] if len(argv) > 2 else "all", pg_up(), "make token"))
        elif command == "run":
            return run_foreground()
        elif command == "down":
            kafka_down()
            pg_down()
        elif command == "kafka-down":
            kafka_down()
        elif command == "pg-down":
            pg_down()
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
