"""``rtrec demo``: the whole local pipeline with live counts (what `make demo` runs)."""

from __future__ import annotations

import argparse

from rtrec.cli import add_config_arguments
from rtrec.config import load_settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="the whole platform locally: stack, Flink jobs, API and dashboard, simulated "
        "shoppers, one ingest/curate/train pass, promotion and hot swap",
    )
    add_config_arguments(parser)
    parser.add_argument("--rate", type=int, default=200, help="simulated events per second")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--train-after",
        type=float,
        default=60.0,
        help="seconds of traffic before the ingest/curate/train pass (default 60)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    parser.add_argument(
        "--keep-services", action="store_true", help="leave Kafka, MLflow and Redis running"
    )
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from rtrec.demo import run_demo

    settings = load_settings(args.env, args.overrides)
    run_demo(
        settings,
        args.env,
        args.overrides,
        args.rate,
        duration_s=args.duration,
        keep_services=args.keep_services,
        train_after_s=args.train_after,
        epochs=args.epochs,
    )
    return 0
