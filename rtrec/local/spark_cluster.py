"""A Spark standalone cluster on loopback from the spark runtime's pip-installed Spark: one master
and ``workers`` workers, each started with ``spark-class`` (pyspark ships no start-master.sh or
start-worker.sh), for running the Spark jobs in cluster mode on one machine
(``spark-submit --master <master_url> jobs/spark/<job>.py``).

Jobs find Delta and the Kafka source on the cluster as they do in local mode: spark-submit
reads the runtime's spark-defaults.conf (``make setup``), and the driver ships ``spark.jars``
and ``spark.pyspark.python`` to the executors. Everything the cluster writes (daemon logs,
executor logs, scratch space) stays under one run directory.

By hand: ``.venvs/app/bin/python -m rtrec.local.spark_cluster --run-dir /tmp/spark-cluster``
prints the master URL and keeps the cluster up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtrec.config import Settings, load_settings
from rtrec.errors import RtrecError
from rtrec.launch import runtime_bin
from rtrec.local.process import group_members, pid_alive, start_detached, tail
from rtrec.local.process import stop as stop_process

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
STOP_TIMEOUT_S = 30.0


@dataclass
class SparkCluster:
    """A running cluster: its addresses, run directory and daemon processes (master first)."""

    master_url: str  # spark://127.0.0.1:<port>, for spark-submit --master
    ui_url: str  # the master's web UI; <ui_url>/json/ is its state
    run_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        """The master's view: workers, cores, active and completed applications."""
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as response:
            state: dict[str, Any] = json.load(response)
        return state

    def alive_workers(self) -> int:
        try:
            return int(self.state()["aliveworkers"])
        except (OSError, ValueError, KeyError):  # not serving yet
            return 0

    def completed_apps(self) -> list[str]:
        """Names of the applications that ran here and finished, oldest first."""
        apps = sorted(self.state()["completedapps"], key=lambda app: app["starttime"])
        return [str(app["name"]) for app in apps]

    def log_tails(self, lines: int = 15) -> str:
        return "\n".join(f"--- {log}\n{tail(log, lines)}" for log in self.logs)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the workers (their executors and Python workers are in their process groups),
        then the master; raise if anything of them is left."""
        for process in reversed(self.processes):
            stop_process(process.pid, timeout_s)
        left = {
            p.pid: group_members(p.pid)
            for p in self.processes
            if pid_alive(p.pid) or group_members(p.pid)
        }
        if left:
            raise RtrecError(f"Spark cluster processes left after stop: {left}")


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that are free right now."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def daemon_environment(settings: Settings, scratch: Path) -> dict[str, str]:
    """The environment of a master or worker: the spark runtime first on PATH (spark-class finds
    its Spark home through that runtime's Python), loopback only, and executor scratch space
    under ``scratch`` instead of /tmp."""
    python = runtime_bin(settings, "spark", "python")
    return {
        **os.environ,
        "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": str(python),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOCAL_DIRS": str(scratch),
        # REST submission is not used, and its fixed default port (6066) would be shared by
        # every cluster on the machine.
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
    }


def start_spark_cluster(
    settings: Settings,
    run_dir: Path,
    workers: int = 2,
    cores: int = 1,
    memory: str = "1g",
    timeout_s: float = 120.0,
) -> SparkCluster:
    """Start a master and ``workers`` workers (``cores`` and ``memory`` each) on free loopback
    ports and wait until every worker has registered; on failure, stop what started and raise
    with the logs' tails."""
    spark_class = str(runtime_bin(settings, "spark", "spark-class"))
    run_dir.mkdir(parents=True, exist_ok=True)
    port, ui_port = free_ports(2)
    cluster = SparkCluster(f"spark://{HOST}:{port}", f"http://{HOST}:{ui_port}", run_dir)
    master = [spark_class, MASTER_CLASS, "--host", HOST, "--port", str(port)]
    commands = [("master", [*master, "--webui-port", str(ui_port)])]
    for n in range(1, workers + 1):
        work_dir = run_dir / f"worker-{n}"  # the executors' working directories and logs
        worker = [spark_class, WORKER_CLASS, cluster.master_url, "--host", HOST]
        # Port 0: the worker's RPC and UI ports are chosen by the worker and found through the
        # master, so only the master's two ports are picked here.
        worker += ["--port", "0", "--webui-port", "0", "--cores", str(cores)]
        worker += ["--memory", memory, "--work-dir", str(work_dir)]
        commands.append((f"worker-{n}", worker))
    scratch = run_dir / "scratch"
    scratch.mkdir(exist_ok=True)
    env = daemon_environment(settings, scratch)
    try:
        for name, command in commands:
            log = run_dir / f"{name}.log"
            cluster.processes.append(start_detached(command, run_dir, log, env))
            cluster.logs.append(log)
        _wait_until_up(cluster, workers, timeout_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_until_up(cluster: SparkCluster, workers: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while cluster.alive_workers() < workers:
        dead = [p.args for p in cluster.processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            what = f"{dead[0]!r:.120} exited" if dead else f"not up within {timeout_s:.0f} s"
            raise RtrecError(f"Spark cluster: {what}:\n{cluster.log_tails()}")
        time.sleep(1)


@contextlib.contextmanager
def spark_cluster(settings: Settings, run_dir: Path, workers: int = 2) -> Iterator[SparkCluster]:
    """``start_spark_cluster`` for the duration of a ``with`` block."""
    cluster = start_spark_cluster(settings, run_dir, workers)
    try:
        yield cluster
    finally:
        cluster.stop()


def main() -> None:
    from rtrec.cli import add_config_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_config_arguments(parser)
    parser.add_argument("--run-dir", type=Path, required=True, help="logs and scratch space")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the cluster as on Ctrl-C
    with spark_cluster(load_settings(args.env, args.overrides), args.run_dir, args.workers) as c:
        print(f"{c.master_url} (UI {c.ui_url}, logs in {c.run_dir}); Ctrl-C stops", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.poll() is None for p in c.processes):
                time.sleep(1)


if __name__ == "__main__":
    main()
