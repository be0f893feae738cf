"""Where the behaviour-features job spends its time: the pipeline cut after each stage.

Each variant runs the job's own pipeline (``build_behaviour_features_pipeline``) as a bounded
job on a local mini-cluster over the same file of simulated events, with the selected tables
written to blackhole sinks, and prints the job's events/s from Flink's net runtime. Start-up
(Python workers, the first checkpoint) is inside that runtime, which is why the runs are
compared with each other rather than read as absolute figures. Usage (the flink runtime):

    .venvs/flink/bin/python bench/features_profile.py [--events 100000]
        [--variants source,parse,...] [--set key=value ...]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from cli import bench_parser

from rtrec.config import Settings, load_settings
from rtrec.schema import encode
from rtrec.sources.simulator import Simulator

# Variant -> what is computed: the raw source, then each stage the job adds on top of it.
VARIANTS = {
    "source": ["SELECT payload FROM raw_file"],
    "parse": ["SELECT event_id, user_id, event_ts FROM parsed"],
    "dedup": ["SELECT event_id, user_id, event_ts FROM accepted"],
    "totals": ["user_totals"],
    "user windows+sessions+recent": ["user_features"],
    "recent arrays (SQL)": ["recent"],
    "recent maps (SQL + Python)": ["recent maps"],
    "item windows": ["item_features"],
    "whole job": ["dead_letters", "late_events", "user_totals", "user_features", "item_features"],
}


def write_events(path: Path, settings: Settings, events: int, days: float) -> None:
    with path.open("wb") as out:
        for event in Simulator(settings.simulator, events=events, days=days).events():
            out.write(encode(event) + b"\n")


def run_variant(settings: Settings, events_file: Path, outputs: list[str]) -> float:
    """Seconds of net job runtime for the pipeline cut to ``outputs``."""
    from rtrec.streaming.behaviour_features import build_behaviour_features_pipeline
    from rtrec.streaming.environment import create_table_env
    from rtrec.streaming.kafka import raw_file_ddl

    t_env = create_table_env(settings, "rtrec-features-profile")
    t_env.execute_sql(raw_file_ddl("raw_file", events_file))
    tables = build_behaviour_features_pipeline(t_env, "raw_file", settings.scoring.ab)
    recent = {
        "recent": "SELECT user_id, event_ts, items FROM recent_events",
        "recent maps": "SELECT user_id, event_ts, g.* FROM recent_events, LATERAL TABLE("
        "recent_features(items, categories, event_types, timestamps)) AS g(grp, features)",
    }
    statements = t_env.create_statement_set()
    for n, output in enumerate(outputs):
        if output in recent:
            table: Any = t_env.sql_query(recent[output])
        elif output.startswith("SELECT"):
            table = t_env.sql_query(output)
        else:
            table = getattr(tables, output)
        sink = f"sink_{n}"
        t_env.create_temporary_table(sink, _blackhole(table))
        statements.add_insert(sink, table)
    result = statements.execute()
    client = result.get_job_client()
    started = time.monotonic()
    runtime_ms = client.get_job_execution_result().result().get_net_runtime()
    return float(runtime_ms) / 1000 if runtime_ms else time.monotonic() - started


def _blackhole(table: Any) -> Any:
    from pyflink.table import Schema, TableDescriptor

    schema = Schema.new_builder().from_row_data_type(table.get_schema().to_row_data_type())
    return TableDescriptor.for_connector("blackhole").schema(schema.build()).build()


def main() -> None:
    parser = bench_parser(__doc__ or "", events=100_000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rtrec-profile-") as tmp:
        base = Path(tmp)
        settings = load_settings(
            args.env,
            [
                f"flink.checkpoint_dir={base / 'checkpoints'}",
                f"simulator.users={args.users}",
                *args.overrides,
            ],
        )
        events_file = base / "events.jsonl"
        write_events(events_file, settings, args.events, args.days)
        print(
            f"{args.events:,} events, parallelism {settings.flink.parallelism}, "
            f"state backend {settings.flink.state_backend}, "
            f"checkpoint every {settings.flink.checkpoint_interval_ms} ms"
        )
        for name in args.variants.split(","):
            seconds = run_variant(settings, events_file, VARIANTS[name])
            print(f"  {name:<30} {args.events / seconds:>9,.0f} events/s  ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
