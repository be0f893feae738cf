"""A Flink standalone cluster on loopback from the flink runtime's pip-installed Flink: one
JobManager and one TaskManager, each started in the foreground with the distribution's own
``jobmanager.sh`` / ``taskmanager.sh`` (``pyflink/bin``), for submitting the Flink jobs with
``flink run`` (``rtrec submit flink JOB --jobmanager <rest_address>``) on one machine.

The cluster reads a configuration of its own: ``FLINK_CONF_DIR`` is a directory under the run
directory holding a written ``config.yaml`` (free ports, loopback, small memory) and the
distribution's logging files, so the package's default configuration is never edited and two
clusters never share a port, a log or a scratch directory.

By hand: ``.venvs/app/bin/python -m rtrec.local.flink_cluster --run-dir /tmp/flink-cluster``
prints the JobManager's REST address and keeps the cluster up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rtrec.config import Settings, load_settings
from rtrec.errors import RtrecError
from rtrec.launch import flink_home, runtime_bin
from rtrec.local.daemons import HOST, Daemons, free_ports, serve_until_interrupted

# The distribution's logging configurations: the daemons (console), and the `flink` CLI.
LOGGING_FILES = ("log4j-console.properties", "log4j-cli.properties", "log4j.properties")


@dataclass(kw_only=True)
class FlinkCluster(Daemons):
    """A running cluster: its REST address, configuration, run directory and daemons
    (JobManager first)."""

    rest_address: str  # 127.0.0.1:<port>, for `flink run -m` / `rtrec submit --jobmanager`
    conf_dir: Path  # FLINK_CONF_DIR of the daemons (and of a CLI that wants their settings)

    @property
    def rest_url(self) -> str:
        return f"http://{self.rest_address}"

    def get(self, path: str) -> Any:
        """A GET on the REST API (``/taskmanagers``, ``/jobs/overview`` ...), decoded."""
        with urllib.request.urlopen(f"{self.rest_url}{path}", timeout=5) as response:
            return json.load(response)

    def taskmanagers(self) -> int:
        try:
            return len(self.get("/taskmanagers")["taskmanagers"])
        except (OSError, ValueError, KeyError):  # not serving yet
            return 0

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the cluster knows: ``jid``, ``name``, ``state`` ..., oldest first."""
        jobs: list[dict[str, Any]] = self.get("/jobs/overview")["jobs"]
        return sorted(jobs, key=lambda job: job["start-time"])

    def cancel(self, job_id: str) -> None:
        """Cancel a job through the REST API (what ``flink cancel`` asks for)."""
        request = urllib.request.Request(f"{self.rest_url}/jobs/{job_id}", method="PATCH")
        with urllib.request.urlopen(request, timeout=10):
            pass


def cluster_config(
    settings: Settings, home: Path, run_dir: Path, rpc_port: int, rest_port: int, slots: int
) -> dict[str, Any]:
    """The daemons' config.yaml: loopback only, the chosen ports, small memory, scratch space
    under ``run_dir``, and the flink runtime's interpreter for the Python workers."""
    packaged = yaml.safe_load((home / "conf" / "config.yaml").read_text()) or {}
    # The JVM flags the distribution needs on Java 17 (--add-opens ...), kept as shipped.
    java_opts = packaged.get("env", {}).get("java", {}).get("opts", {}).get("all", "")
    python = str(runtime_bin(settings, "flink", "python"))
    return {
        "env.java.opts.all": java_opts,
        "jobmanager.bind-host": HOST,
        "jobmanager.rpc.address": HOST,
        "jobmanager.rpc.port": rpc_port,
        "jobmanager.memory.process.size": "1024m",
        "jobmanager.execution.failover-strategy": "region",
        "rest.address": HOST,
        "rest.bind-address": HOST,
        "rest.port": rest_port,
        "taskmanager.bind-host": HOST,
        "taskmanager.host": HOST,
        "taskmanager.numberOfTaskSlots": slots,
        "taskmanager.memory.process.size": "2048m",
        # RocksDB and the Python workers share the managed memory of a slot.
        "taskmanager.memory.managed.fraction": 0.5,
        # 0: the TaskManager's RPC and data ports and the blob server's are picked by the
        # operating system, so only the JobManager's two ports are chosen here.
        "taskmanager.rpc.port": 0,
        "taskmanager.data.port": 0,
        "blob.server.port": 0,
        "parallelism.default": settings.flink.parallelism,
        "python.executable": python,
        "io.tmp.dirs": str(run_dir / "tmp"),
        "web.tmpdir": str(run_dir / "web"),
        "web.upload.dir": str(run_dir / "web"),
    }


def write_conf_dir(settings: Settings, home: Path, run_dir: Path, config: dict[str, Any]) -> Path:
    conf_dir = run_dir / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True))
    for name in LOGGING_FILES:
        shutil.copyfile(home / "conf" / name, conf_dir / name)
    for scratch in ("tmp", "web", "log"):
        (run_dir / scratch).mkdir(exist_ok=True)
    return conf_dir


def write_lib_dir(home: Path, run_dir: Path) -> Path:
    """The daemons' classpath: the distribution's ``lib/`` plus its Python runtime jar, which it
    keeps in ``opt/``. The JobManager deserialises a Python job's operators when the job is
    submitted, so the classes must be on its classpath, as in a PyFlink cluster image."""
    lib_dir = run_dir / "lib"
    lib_dir.mkdir(parents=True, exist_ok=True)
    python = sorted((home / "opt").glob("flink-python-*.jar"))
    if not python:
        raise RtrecError(f"no flink-python jar in {home / 'opt'}")
    for jar in [*sorted((home / "lib").glob("*.jar")), *python]:
        link = lib_dir / jar.name
        if not link.exists():
            link.symlink_to(jar)
    return lib_dir


def daemon_environment(
    settings: Settings, conf_dir: Path, lib_dir: Path, log_dir: Path
) -> dict[str, str]:
    """The flink runtime first on PATH (the scripts find Flink's home through its Python),
    the cluster's own configuration, classpath and log directory."""
    python = runtime_bin(settings, "flink", "python")
    return {
        **os.environ,
        "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "FLINK_CONF_DIR": str(conf_dir),
        "FLINK_LIB_DIR": str(lib_dir),
        "FLINK_LOG_DIR": str(log_dir),
    }


def start_flink_cluster(
    settings: Settings, run_dir: Path, slots: int = 2, timeout_s: float = 120.0
) -> FlinkCluster:
    """Start a JobManager and one TaskManager of ``slots`` slots on free loopback ports and wait
    until the TaskManager has registered; on failure, stop what started and raise with the
    logs' tails."""
    home = flink_home(settings)
    run_dir.mkdir(parents=True, exist_ok=True)
    rpc_port, rest_port = free_ports(2)
    config = cluster_config(settings, home, run_dir, rpc_port, rest_port, slots)
    conf_dir = write_conf_dir(settings, home, run_dir, config)
    cluster = FlinkCluster(
        "Flink cluster", run_dir, rest_address=f"{HOST}:{rest_port}", conf_dir=conf_dir
    )
    env = daemon_environment(settings, conf_dir, write_lib_dir(home, run_dir), run_dir / "log")
    commands = [
        (name, [str(home / "bin" / f"{name}.sh"), "start-foreground"])
        for name in ("jobmanager", "taskmanager")
    ]
    cluster.boot(commands, env, lambda: cluster.taskmanagers() >= 1, timeout_s)
    return cluster


def main() -> None:
    from rtrec.cli import add_config_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_config_arguments(parser)
    parser.add_argument("--run-dir", type=Path, required=True, help="config, logs, scratch")
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    settings = load_settings(args.env, args.overrides)
    c = start_flink_cluster(settings, args.run_dir.resolve(), args.slots)
    serve_until_interrupted(c, f"{c.rest_address} ({c.rest_url}, logs in {c.run_dir})")


if __name__ == "__main__":
    main()
