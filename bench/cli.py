"""The options every benchmark takes (each script adds its own)."""

from __future__ import annotations

import argparse
import socket
import time
import urllib.request
from collections.abc import Sequence

from rtrec.config import Settings, load_settings


def config_parser(doc: str) -> argparse.ArgumentParser:
    """The configuration options: ``--env`` and repeated ``--set key=value``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--env", default="local")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    return parser


def bench_parser(doc: str, events: int) -> argparse.ArgumentParser:
    """The configuration options and the simulated load's size and span."""
    parser = config_parser(doc)
    parser.add_argument("--events", type=int, default=events)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument(
        "--days",
        type=float,
        default=2.0,
        help="event-time span of the load: 2 days of 200,000 events is a replay of sparse\n"
        "history (every event opens windows of its own, the costly case); 0.0002 starts\n"
        "every session within 17 s, like live traffic",
    )
    return parser


def isolated(
    env: str, overrides: list[str], run: str, extra: Sequence[str] = ()
) -> tuple[Settings, list[str]]:
    """Settings whose topics, consumer group and checkpoints are this run's own (topics
    created; Kafka must be up), and the job arguments that reproduce them."""
    # Here, not at the top: the training benchmarks run in the spark runtime, without Redis.
    from rtrec.launch import config_args
    from rtrec.local import ensure_topics

    base = load_settings(env, overrides)
    topics = [f"kafka.topics.{f}={run}.{f}" for f in type(base.kafka.topics).model_fields]
    own = [*topics, f"flink.consumer_group={run}", f"flink.checkpoint_dir=.run/bench/{run}"]
    full = [*overrides, *own, *extra]
    settings = load_settings(env, full)
    ensure_topics(settings)
    return settings, config_args(env, full)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(port: int, timeout_s: float = 60.0) -> None:
    """Until the API on ``port`` answers its health probe."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the API did not become healthy on :{port}")
