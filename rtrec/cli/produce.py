"""`rtrec produce simulate|replay`: send simulated or replayed events to Kafka."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from rtrec.cli import add_config_arguments
from rtrec.config import load_settings
from rtrec.errors import RtrecError
from rtrec.sources import paced
from rtrec.sources.replay import FORMATS


def register(commands: Any) -> None:
    """Add the ``produce`` command group to the ``rtrec`` subparsers."""
    produce = commands.add_parser(
        "produce", help="send events to Kafka", description="send events to Kafka"
    )
    sources = produce.add_subparsers(dest="source", required=True, metavar="SOURCE")

    simulate = sources.add_parser(
        "simulate",
        help="the seeded shop simulator (docs/sources.md)",
        description="Produce simulated events; defaults come from the simulator settings.",
    )
    simulate.add_argument("--events", type=_count, help="valid events (simulator.events)")
    simulate.add_argument(
        "--malformed", type=_count, help="malformed payloads on top (simulator.malformed_share)"
    )
    simulate.add_argument(
        "--duplicates", type=_count, help="exact re-sends on top (simulator.duplicate_share)"
    )
    simulate.add_argument("--seed", type=int, help="random seed (simulator.seed)")
    _add_speed(simulate)
    add_config_arguments(simulate)
    simulate.set_defaults(func=_simulate)

    replay = sources.add_parser(
        "replay",
        help="replay a public dataset file in event-time order (docs/sources.md)",
        description="Replay a dataset file; rows that cannot be mapped go to the DLQ topic.",
    )
    replay.add_argument("--format", required=True, choices=sorted(FORMATS), dest="fmt")
    replay.add_argument("--path", required=True, type=Path, help="the file (.gz accepted)")
    replay.add_argument("--limit", type=_count, help="stop after this many events of the file")
    _add_speed(replay)
    add_config_arguments(replay)
    replay.set_defaults(func=_replay)


def _simulate(args: argparse.Namespace) -> int:
    from rtrec.producer import produce
    from rtrec.sources.simulator import Simulator

    settings = load_settings(args.env, args.overrides)
    simulator = Simulator(
        settings.simulator,
        events=args.events,
        duplicates=args.duplicates,
        malformed=args.malformed,
        seed=args.seed,
    )
    produce(settings, paced(simulator.stream(), args.speed), source="simulator")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from rtrec.producer import produce
    from rtrec.sources.replay import replay

    path: Path = args.path
    if not path.is_file():
        raise RtrecError(f"{path}: no such file")
    settings = load_settings(args.env, args.overrides)
    records = replay(args.fmt, path, limit=args.limit)
    produce(settings, paced(records, args.speed), source=f"replay:{args.fmt}:{path}")
    return 0


def _add_speed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speed",
        type=_speed,
        default=0.0,
        metavar="X",
        help="X times real time between event timestamps; 0 or 'max' = as fast as possible "
        "(default: max)",
    )


def _speed(text: str) -> float:
    if text.strip().lower() == "max":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'max'") from None
    if value < 0 or math.isnan(value):
        raise argparse.ArgumentTypeError("speed must be >= 0")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value
