"""What every file in jobs/ shares: parse --env/--set, load settings, run one library function,
and turn a configuration or user error into one readable line instead of a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rtrec.config import ConfigError, Settings, load_settings
from rtrec.errors import RtrecError


def run_job(
    description: str, run: Callable[[Settings], object], argv: Sequence[str] | None = None
) -> int:
    """Entry point of a job file: returns the process exit code."""
    return run_job_with_arguments(
        description, lambda _parser: None, lambda settings, _args: run(settings), argv
    )


def run_job_with_arguments(
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], object],
    run: Callable[[Settings, argparse.Namespace], object],
    argv: Sequence[str] | None = None,
) -> int:
    """``run_job`` for a job with arguments of its own besides ``--env`` and ``--set``."""
    from rtrec.cli import add_config_arguments

    parser = argparse.ArgumentParser(description=description)
    add_config_arguments(parser)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run(load_settings(args.env, args.overrides), args)
    except (RtrecError, ConfigError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0
