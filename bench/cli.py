"""The options every benchmark takes (each script adds its own)."""

from __future__ import annotations

import argparse


def bench_parser(doc: str, events: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--env", default="local")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
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
