"""The DataStream environment for jobs whose logic needs keyed Python state (online CF).

It runs with the same configuration as the table-only jobs (``flink_options``), plus a table
environment on the same stream environment so a job can read Kafka through the shared SQL DDL.
"""

from __future__ import annotations

from typing import Any

from rtrec.config import Settings
from rtrec.streaming.environment import flink_options, prepare_process


def create_stream_env(
    settings: Settings, job_name: str, extra: dict[str, str] | None = None
) -> tuple[Any, Any]:
    """A (StreamExecutionEnvironment, StreamTableEnvironment) pair configured for ``job_name``
    (``extra``: the job's own Flink options, before the configured ones)."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import EnvironmentSettings, StreamTableEnvironment

    prepare_process()
    config = Configuration()
    for key, value in {**(extra or {}), **flink_options(settings, job_name)}.items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    t_env = StreamTableEnvironment.create(
        env, environment_settings=EnvironmentSettings.in_streaming_mode()
    )
    return env, t_env
