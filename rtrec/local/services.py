"""The local services: one ``Service`` each for Kafka (KRaft), MLflow and Redis.

A service knows its address, how to prepare its run directory (configuration, storage), the
command that runs it in the foreground, and a quick health probe. Starting, waiting and stopping
are orchestrated by ``rtrec.local.stack``.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from rtrec.config import Settings
from rtrec.config.settings import LocalServicesSettings
from rtrec.errors import RtrecError
from rtrec.local.process import (
    accepts_connections,
    pid_alive,
    read_pid,
    rotate_log,
    runs_in,
    start_detached,
    tail,
)

# librdkafka logs at info level to stderr by default, and a short-lived admin client prints
# teardown notices ("Purging ... unserved events") there; warnings and errors still show.
QUIET_CLIENT = {"log_level": 4}
# One probe must stay short: `status` runs one per service and `up` polls them.
PROBE_TIMEOUT_S = 2.0


class State(StrEnum):
    """What ``status`` reports for a service."""

    HEALTHY = "healthy"
    UNHEALTHY = "running-unhealthy"
    STOPPED = "stopped"
    # A pid file whose process is gone (or is now some other program).
    STALE = "stale"


def format_line(name: str, address: str, text: str) -> str:
    """One aligned report line: service name, address, free text."""
    return f"{name:<7} {address:<21} {text}"


@dataclass(frozen=True)
class ServiceStatus:
    """A service's state as seen from its pid file, its process and its health probe."""

    name: str
    address: str
    state: State
    pid: int | None

    def line(self) -> str:
        """E.g. ``kafka   127.0.0.1:9092        healthy (pid 1234)``."""
        pid = f" (pid {self.pid})" if self.pid is not None else ""
        return format_line(self.name, self.address, f"{self.state}{pid}")


def require_local(settings: Settings) -> LocalServicesSettings:
    """The local_services section; environments without one have no local services."""
    if settings.local_services is None:
        raise RtrecError(
            f"environment {settings.env!r} defines no local_services: "
            "`rtrec local` only manages services of a local environment (e.g. --env local)"
        )
    return settings.local_services


class Service(ABC):
    """One local server process with its run directory ``<run_dir>/<name>``."""

    name: str

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.settings = settings
        self.local = require_local(settings)
        self.host = host
        self.port = port
        self.dir = self.local.run_dir / self.name

    @property
    def address(self) -> str:
        """``host:port`` that clients use."""
        return f"{self.host}:{self.port}"

    @property
    def ports(self) -> dict[str, int]:
        """Every port the service listens on, by its setting (checked before a start)."""
        return {f"local_services.{self.name}.port": self.port}

    @property
    def pid_file(self) -> Path:
        """Where ``start`` records the pid."""
        return self.dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """The service's stdout and stderr."""
        return self.dir / f"{self.name}.log"

    @abstractmethod
    def check(self) -> None:
        """Raise RtrecError if something the service needs is missing (before any start)."""

    @abstractmethod
    def prepare(self) -> None:
        """Write configuration and initialise storage in ``self.dir`` (which exists)."""

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs the service in the foreground."""

    def environment(self) -> dict[str, str] | None:
        """The environment for the process; None inherits ours."""
        return None

    @abstractmethod
    def healthy(self) -> bool:
        """One quick probe (bounded by PROBE_TIMEOUT_S): does the service answer?"""

    def start(self) -> subprocess.Popen[bytes]:
        """Prepare the run directory, start the process detached and write its pid file."""
        self.dir.mkdir(parents=True, exist_ok=True)
        rotate_log(self.log_file)
        self.prepare()
        process = start_detached(self.command(), self.dir, self.log_file, self.environment())
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def inspect(self) -> ServiceStatus:
        """The state from the pid file, the process behind it and (if running) the probe."""
        pid = read_pid(self.pid_file)
        if pid is None:
            state = State.STOPPED
        elif not (pid_alive(pid) and runs_in(pid, self.dir)):
            state = State.STALE
        else:
            state = State.HEALTHY if self.healthy() else State.UNHEALTHY
        return ServiceStatus(self.name, self.address, state, pid)

    def log_excerpt(self, lines: int = 10) -> str:
        """``see <log>`` plus its last lines, for error messages."""
        excerpt = tail(self.log_file, lines)
        indented = "".join(f"\n    {line}" for line in excerpt.splitlines())
        return f"see {self.log_file}{':' if indented else ''}{indented}"


# --- Kafka -----------------------------------------------------------------------------------

# Kafka 4.x logs through log4j2. Console only: the process's stdout already goes to its log.
LOG4J2_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <!-- Every client and server config is dumped at INFO (~2,000 lines per start);
         server.properties next to the log says what was set. -->
    <Logger name="org.apache.kafka.common.config.AbstractConfig" level="warn"/>
    <Logger name="kafka.request.logger" level="warn"/>
    <Root level="info">
      <AppenderRef ref="stdout"/>
    </Root>
  </Loggers>
</Configuration>
"""


def render_server_properties(local: LocalServicesSettings, partitions: int, data_dir: Path) -> str:
    """server.properties for a single-node KRaft broker (combined broker and controller)."""
    kafka = local.kafka
    plaintext = f"{kafka.host}:{kafka.port}"
    controller = f"{kafka.host}:{kafka.controller_port}"
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://{plaintext},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{plaintext}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.quorum.bootstrap.servers": controller,
        "log.dirs": str(data_dir),
        "num.partitions": str(partitions),
        # One broker: every internal topic must accept a single replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # The defaults (50 partitions each) make the first consumer group or transactional
        # producer wait while 50 logs are created; a local broker serves a handful of each.
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.num.partitions": "4",
        # Flink's exactly-once Kafka sink uses a 1 h transaction timeout; the broker's default
        # 15 min ceiling would reject its producers.
        "transaction.max.timeout.ms": "3600000",
        "group.initial.rebalance.delay.ms": "0",
        # Topics are created explicitly (ensure_topics), so a typo fails instead of creating one.
        "auto.create.topics.enable": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def new_cluster_id() -> str:
    """A random KRaft cluster id: a UUID as 22 base64url characters, like Kafka's own."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # A leading '-' would be read as an option on the format command line (Kafka avoids it).
        if not cluster_id.startswith("-"):
            return cluster_id


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not Path(java).exists():
        raise RtrecError("kafka: java not found (JAVA_HOME or PATH): install Java 17")
    return java


class Kafka(Service):
    """A single-node KRaft broker on the Kafka jars resolved by ``make setup``."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        local = require_local(settings)
        super().__init__(settings, local.kafka.host, local.kafka.port)
        self.jars_dir = settings.root / ".jars" / "kafka"
        self.data_dir = self.dir / "data"
        self.properties_file = self.dir / "server.properties"
        self.log4j_file = self.dir / "log4j2.xml"

    @property
    def ports(self) -> dict[str, int]:
        """The client port and the controller port."""
        return {
            **super().ports,
            "local_services.kafka.controller_port": self.local.kafka.controller_port,
        }

    def check(self) -> None:
        """Java and the broker jars must be present."""
        _java()
        if not any(self.jars_dir.glob("kafka_*.jar")):
            raise RtrecError(f"kafka: broker jars not found in {self.jars_dir}: run `make setup`")

    def _java_command(self, *args: str, heap: str | None = None) -> list[str]:
        return [
            _java(),
            *([f"-Xmx{heap}", f"-Xms{heap}"] if heap else []),
            "-Djava.awt.headless=true",
            # log4j2's own shutdown hook would stop logging while Kafka's is still shutting
            # down, cutting the end of the log exactly where a failed stop is diagnosed.
            "-Dlog4j2.shutdownHookEnabled=false",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            "-cp",
            f"{self.jars_dir}/*",
            *args,
        ]

    def prepare(self) -> None:
        """Write server.properties and the log4j2 config; format the storage on first start."""
        self.properties_file.write_text(
            render_server_properties(self.local, self.settings.kafka.partitions, self.data_dir)
        )
        self.log4j_file.write_text(LOG4J2_XML)
        if (self.data_dir / "meta.properties").exists():
            return
        command = self._java_command(
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.properties_file),
        )
        with self.log_file.open("ab") as log:
            try:
                result = subprocess.run(
                    command,
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=self.local.startup_timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise RtrecError(
                    f"kafka: formatting {self.data_dir} did not finish within "
                    f"{self.local.startup_timeout_s:g} s; {self.log_excerpt()}"
                ) from None
        if result.returncode != 0:
            raise RtrecError(
                f"kafka: formatting {self.data_dir} failed (exit {result.returncode}); "
                f"{self.log_excerpt()}"
            )

    def command(self) -> list[str]:
        """``java kafka.Kafka server.properties`` with a fixed heap."""
        return self._java_command(
            "kafka.Kafka", str(self.properties_file), heap=self.local.kafka.heap
        )

    def healthy(self) -> bool:
        """The admin client can list topics."""
        # The TCP check first: a client against a closed port retries and logs to stderr.
        if not accepts_connections(self.host, self.port, PROBE_TIMEOUT_S):
            return False
        admin = AdminClient({"bootstrap.servers": self.address, **QUIET_CLIENT})
        try:
            admin.list_topics(timeout=PROBE_TIMEOUT_S)
        except KafkaException:
            return False
        return True


# --- MLflow ----------------------------------------------------------------------------------


class Mlflow(Service):
    """An MLflow tracking server: SQLite backend and registry, artifacts served by the server."""

    name = "mlflow"

    def __init__(self, settings: Settings) -> None:
        local = require_local(settings)
        super().__init__(settings, local.mlflow.host, local.mlflow.port)
        self.database = self.dir / "mlflow.db"
        self.artifacts_dir = self.dir / "artifacts"

    def check(self) -> None:
        """MLflow must be installed in this interpreter's environment."""
        if importlib.util.find_spec("mlflow") is None:
            raise RtrecError(
                f"mlflow: not installed for {sys.executable}: run rtrec from .venvs/app"
            )

    def prepare(self) -> None:
        """Create the artifact directory."""
        self.artifacts_dir.mkdir(exist_ok=True)

    def command(self) -> list[str]:
        """``mlflow server`` with one worker.

        Artifacts are proxied (``mlflow-artifacts:/`` URIs): a client needs only the tracking
        URI, not a path on this machine's disk, as it will on a cluster.
        """
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.database}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.artifacts_dir),
            "--workers",
            "1",
        ]

    def environment(self) -> dict[str, str]:
        """Ours, without MLflow's job runner."""
        # The job runner (GenAI scorers, trace rollups) adds eight processes and ~700 MB RSS;
        # the project uses neither.
        return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

    def healthy(self) -> bool:
        """GET /health answers 200."""
        url = f"http://{self.address}/health"
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


# --- Redis -----------------------------------------------------------------------------------


def render_redis_conf(host: str, port: int, data_dir: Path) -> str:
    """redis.conf for the online store on loopback."""
    return (
        f"bind {host}\n"
        f"port {port}\n"
        "daemonize no\n"
        # stdout, which start_detached sends to the service log like every other service.
        'logfile ""\n'
        f'dir "{data_dir}"\n'
        # RDB snapshots (Redis's default schedule) and a snapshot on shutdown: Kafka and MLflow
        # keep their data across down/up, and a restarted Flink job resumes from its
        # checkpoint without re-emitting old keys, so an emptied online store would stay empty.
        "save 3600 1 300 100 60 10000\n"
        "dbfilename dump.rdb\n"
        "appendonly no\n"
    )


class Redis(Service):
    """The online store: Debian's ``redis-server`` with a generated config."""

    name = "redis"

    def __init__(self, settings: Settings) -> None:
        local = require_local(settings)
        super().__init__(settings, local.redis.host, local.redis.port)
        self.data_dir = self.dir / "data"
        self.conf_file = self.dir / "redis.conf"

    def check(self) -> None:
        """redis-server must be on PATH."""
        if shutil.which("redis-server") is None:
            raise RtrecError("redis: redis-server not found on PATH: install it (make setup)")

    def prepare(self) -> None:
        """Write redis.conf and create the data directory."""
        self.data_dir.mkdir(exist_ok=True)
        self.conf_file.write_text(render_redis_conf(self.host, self.port, self.data_dir))

    def command(self) -> list[str]:
        """``redis-server redis.conf``."""
        return ["redis-server", str(self.conf_file)]

    def healthy(self) -> bool:
        """PING answers."""
        client = redis.Redis(
            host=self.host,
            port=self.port,
            socket_timeout=PROBE_TIMEOUT_S,
            socket_connect_timeout=PROBE_TIMEOUT_S,
        )
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()


def services(settings: Settings) -> list[Service]:
    """The local services in start order (``down`` stops them in reverse)."""
    return [Kafka(settings), Mlflow(settings), Redis(settings)]
