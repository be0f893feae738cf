"""The `rtrec` command line. Each command group lives in its own module with a ``register``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rtrec.config import ConfigError
from rtrec.errors import RtrecError


def build_parser() -> argparse.ArgumentParser:
    from rtrec.cli import demo, local, models, privacy, produce, submit

    parser = argparse.ArgumentParser(prog="rtrec", description="real-time recommendations")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (local, produce, demo, models, privacy, submit):
        module.register(commands)
    return parser


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--env and --set, shared by every command and job."""
    parser.add_argument("--env", default="local", help="conf/<env>.yaml to layer on base (local)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set kafka.partitions=4 (repeatable)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (RtrecError, ConfigError) as exc:
        print(f"rtrec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rtrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
