"""The Flink table environment every streaming job starts from (PyFlink imported lazily)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.streaming.scratch import scratch_dir

# Read by PyFlink when a job is submitted. On a local mini-cluster PyFlink otherwise runs every
# Python worker as a thread of the client process ("loopback"), so the Python operators of all
# subtasks share one interpreter lock; "process" gives each slot its own worker process, as a
# cluster does. The online CF job ran 1.9x faster (59 -> 111 events/s, bench/streaming.py).
PYTHON_WORKER_MODE = "_python_worker_execution_mode"
# Extra options of the JVM PyFlink starts for a local run (pyflink_gateway_server reads it).
JVM_ARGS = "JVM_ARGS"


def prepare_process() -> None:
    """What must be set before PyFlink starts its JVM: one Python worker process per slot, also
    on a local mini-cluster (the environment can still choose ``loopback``, for a debugger), and
    for a local run the JVM's temp directory in this process's scratch space
    (rtrec.streaming.scratch). Flink's temp directories default to it: the mini-cluster's
    working directory with RocksDB's files, spilled buffers, unpacked Python files; and the
    table planner unpacks a 46 MB jar into it at each start."""
    os.environ.setdefault(PYTHON_WORKER_MODE, "process")
    if submitted_by_flink_client():
        return
    jvm_args = os.environ.get(JVM_ARGS, "")
    if "-Djava.io.tmpdir=" not in jvm_args:
        os.environ[JVM_ARGS] = f"{jvm_args} -Djava.io.tmpdir={scratch_dir()}".strip()


def submitted_by_flink_client() -> bool:
    """Whether this job's Python was started by ``flink run`` (whose JVM PyFlink connects to,
    and which submits to a cluster), rather than by a plain ``python`` that starts its own JVM
    and mini-cluster."""
    return "PYFLINK_GATEWAY_PORT" in os.environ


def connector_jars(settings: Settings) -> list[Path]:
    """The pinned connector jars (resolved by `make setup` from jvm/flink/pom.xml)."""
    jars = sorted(settings.flink.jars_dir.glob("*.jar"))
    if not jars:
        raise RtrecError(f"no Flink connector jars in {settings.flink.jars_dir}: run `make setup`")
    return jars


def flink_options(settings: Settings, job_name: str) -> dict[str, str]:
    """The configuration every rtrec Flink job runs with (Table or DataStream API)."""
    options = {
        "pipeline.name": job_name,
        "pipeline.jars": ";".join(jar.as_uri() for jar in connector_jars(settings)),
        # Python workers must run this interpreter: the one holding rtrec and the pinned pyflink.
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "parallelism.default": str(settings.flink.parallelism),
        "execution.checkpointing.interval": f"{settings.flink.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": _uri(settings.flink.checkpoint_dir),
        # Kept when the job stops, so a restart (or a new version) can resume from it.
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "state.backend.type": settings.flink.state_backend,
        "execution.checkpointing.incremental": "true",
        # A failing job must fail visibly, not retry forever.
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "3",
        "restart-strategy.fixed-delay.delay": "2 s",
        "table.exec.source.idle-timeout": "5 s",
        # Window boundaries and timestamp conversions must not depend on the machine's zone.
        "table.local-time-zone": "UTC",
        # Unbounded keyed state (deduplication, running totals) expires; windows clean up by
        # watermark anyway.
        "table.exec.state.ttl": f"{settings.flink.state_ttl_ms} ms",
    }
    restore = restore_path(settings)
    if restore is not None:
        options["execution.state-recovery.path"] = restore
    options.update(settings.flink.conf)
    return options


def restore_path(settings: Settings) -> str | None:
    """Where the job resumes from: ``flink.restore_from`` as given, or with ``latest`` the newest
    completed checkpoint under ``flink.checkpoint_dir`` (None: start fresh)."""
    wanted = settings.flink.restore_from
    if not wanted:
        return None
    if wanted != "latest":
        return wanted
    found = latest_checkpoint(Path(settings.flink.checkpoint_dir))
    if found is None:
        raise RtrecError(
            f"no completed checkpoint under {settings.flink.checkpoint_dir} to restore"
        )
    return found.as_uri()


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest completed checkpoint (``<job id>/chk-<n>`` holding ``_metadata``)."""
    completed = [meta.parent for meta in checkpoint_dir.glob("*/chk-*/_metadata")]
    return max(completed, key=lambda chk: chk.stat().st_mtime, default=None)


def create_table_env(settings: Settings, job_name: str) -> Any:
    """A streaming TableEnvironment with connectors, checkpointing and this interpreter for UDFs."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    prepare_process()
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    for key, value in flink_options(settings, job_name).items():
        conf.set(key, value)
    return t_env


def _uri(location: str) -> str:
    return location if "://" in location else Path(location).as_uri()
