"""``rtrec privacy forget USER``: forget one user in Flink state, Delta and Redis, with an
audit record (docs/privacy.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rtrec.cli import add_config_arguments
from rtrec.config import load_settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    privacy = commands.add_parser("privacy", help="forget a user")
    actions = privacy.add_subparsers(dest="action", required=True, metavar="ACTION")
    forget = actions.add_parser(
        "forget",
        help="remove USER from Flink state, the lake and the online store; record an audit row",
        description="USER is the raw id, as the shop knows it; only its pseudonym is used.",
    )
    forget.add_argument("user", metavar="USER")
    forget.add_argument(
        "--spark-master",
        default="local[2]",
        help="where the Spark erase job runs (spark-submit --master; default local[2])",
    )
    forget.add_argument(
        "--log-dir",
        type=Path,
        help="the erase job's log and report (default <root>/.run/privacy)",
    )
    add_config_arguments(forget)
    forget.set_defaults(func=_forget)


def _forget(args: argparse.Namespace) -> int:
    from rtrec.launch import config_args
    from rtrec.privacy.forget import erase_job_runner, forget_user

    settings = load_settings(args.env, args.overrides)
    log_dir = args.log_dir or settings.root / ".run" / "privacy"
    erase = erase_job_runner(
        settings, config_args(args.env, args.overrides), args.spark_master, log_dir
    )
    done = forget_user(settings, args.user, erase, log_dir)
    print(f"forgot user {done.pseudonym}")
    return 0
