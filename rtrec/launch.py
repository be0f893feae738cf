"""Starting jobs locally, each in its runtime's environment (.venvs/<runtime>), as the demo and
the integration tests do. Cluster submission is a separate concern (`rtrec submit`)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.local.process import start_detached, stop, tail


def runtime_bin(settings: Settings, runtime: str, program: str) -> Path:
    path = settings.root / ".venvs" / runtime / "bin" / program
    if not path.exists():
        raise RtrecError(f"{path} not found: run `make setup`")
    return path


def flink_job_command(settings: Settings, job: str, config_args: Sequence[str]) -> list[str]:
    """``python jobs/flink/<job>.py`` in the flink runtime (a local mini-cluster)."""
    script = settings.root / "jobs" / "flink" / f"{job}.py"
    return [str(runtime_bin(settings, "flink", "python")), str(script), *config_args]


def app_job_command(settings: Settings, job: str, config_args: Sequence[str]) -> list[str]:
    """``python jobs/<job>.py`` in the app runtime (plain Python services such as the
    online-store sync)."""
    script = settings.root / "jobs" / f"{job}.py"
    return [str(runtime_bin(settings, "app", "python")), str(script), *config_args]


def spark_job_command(
    settings: Settings, job: str, config_args: Sequence[str], master: str = "local[2]"
) -> list[str]:
    """``spark-submit --master <master> jobs/spark/<job>.py`` in the spark runtime."""
    script = settings.root / "jobs" / "spark" / f"{job}.py"
    submit = runtime_bin(settings, "spark", "spark-submit")
    return [str(submit), "--master", master, str(script), *config_args]


def config_args(env: str, overrides: Sequence[str]) -> list[str]:
    """The ``--env``/``--set`` arguments that reproduce a settings object in a child job."""
    return ["--env", env, *(arg for item in overrides for arg in ("--set", item))]


@dataclass
class RunningJob:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Stop the job with everything it started (its process group holds the Flink
        mini-cluster or Spark JVM); returns its exit code."""
        stop(self.process.pid, timeout_s)
        return self.process.poll()

    def tail(self, lines: int = 20) -> str:
        return tail(self.log, lines)


def start_job(name: str, command: Sequence[str], log: Path, cwd: Path | None = None) -> RunningJob:
    """Run ``command`` in its own process group with output appended to ``log``.

    The directory of the command's program goes first on PATH, as if its environment were
    activated: spark-submit finds its Spark home through the ``python3`` on PATH. A Flink
    job's own logs (its mini-cluster's, and RocksDB's) go to ``<log>.flink/`` beside ``log``:
    PyFlink's default is one file inside the installed package, which each job overwrites."""
    log.parent.mkdir(parents=True, exist_ok=True)
    path = f"{Path(command[0]).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    flink_logs = log.with_name(f"{log.name}.flink")
    env = {
        **os.environ,
        "PATH": path,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "FLINK_LOG_DIR": str(flink_logs),
    }
    return RunningJob(name, start_detached(command, cwd or Path.cwd(), log, env), log)


def run_to_completion(name: str, command: Sequence[str], log: Path, timeout_s: float) -> None:
    """Run a job that ends by itself; raise with the log's tail if it fails or overruns."""
    job = start_job(name, command, log)
    deadline = time.monotonic() + timeout_s
    while job.alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    if job.alive():
        job.stop()
        raise RtrecError(f"{name} did not finish within {timeout_s:.0f} s; see {log}")
    if job.process.returncode != 0:
        raise RtrecError(f"{name} failed (exit {job.process.returncode}); see {log}:\n{job.tail()}")


def _runtime_package(settings: Settings, runtime: str, package: str, marker: str) -> Path:
    """``package``'s directory in the runtime's site-packages, checked by a file it holds."""
    lib = runtime_bin(settings, runtime, "python").parent.parent / "lib"
    for found in sorted(lib.glob(f"python3*/site-packages/{package}")):
        if (found / marker).exists():
            return found
    raise RtrecError(f"no {package}/{marker} under {lib}: run `make setup`")


def flink_home(settings: Settings) -> Path:
    """The Flink distribution the flink runtime's pyflink package holds (``bin/flink``,
    ``bin/jobmanager.sh``, ``lib/``, ``opt/``, ``conf/``)."""
    return _runtime_package(settings, "flink", "pyflink", "bin/flink")


def spark_home(settings: Settings) -> Path:
    """The Spark distribution the spark runtime's pyspark package holds (``jars/``, ``bin/``)."""
    return _runtime_package(settings, "spark", "pyspark", "jars")
