"""The Flink table environment every streaming job starts from (PyFlink imported lazily)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rtrec.config import Settings
from rtrec.errors import RtrecError


def connector_jars(settings: Settings) -> list[Path]:
    """The pinned connector jars (resolved by `make setup` from jvm/flink/pom.xml)."""
    jars = sorted(settings.flink.jars_dir.glob("*.jar"))
    if not jars:
        raise RtrecError(f"no Flink connector jars in {settings.flink.jars_dir}: run `make setup`")
    return jars


def create_table_env(settings: Settings, job_name: str) -> Any:
    """A streaming TableEnvironment with connectors, checkpointing and this interpreter for UDFs."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
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
    for key, value in options.items():
        conf.set(key, value)
    return t_env


def _uri(location: str) -> str:
    return location if "://" in location else Path(location).as_uri()
