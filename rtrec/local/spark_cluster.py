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
import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtrec.config import Settings, load_settings
from rtrec.launch import runtime_bin
from rtrec.local.daemons import HOST, Daemons, free_ports, serve_until_interrupted

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


@dataclass(kw_only=True)
class SparkCluster(Daemons):
    """A running cluster: its addresses, run directory and daemons (master first)."""

    master_url: str  # spark://127.0.0.1:<port>, for spark-submit --master
    ui_url: str  # the master's web UI; <ui_url>/json/ is its state

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
    cluster = SparkCluster(
        "Spark cluster",
        run_dir,
        master_url=f"spark://{HOST}:{port}",
        ui_url=f"http://{HOST}:{ui_port}",
    )
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
    cluster.boot(commands, env, lambda: cluster.alive_workers() >= workers, timeout_s)
    return cluster


def main() -> None:
    from rtrec.cli import add_config_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_config_arguments(parser)
    parser.add_argument("--run-dir", type=Path, required=True, help="logs and scratch space")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    c = start_spark_cluster(load_settings(args.env, args.overrides), args.run_dir, args.workers)
    serve_until_interrupted(c, f"{c.master_url} (UI {c.ui_url}, logs in {c.run_dir})")


if __name__ == "__main__":
    main()
