"""``rtrec local up | down | status``: the local Kafka, MLflow and Redis."""

from __future__ import annotations

import argparse

from rtrec.cli import add_config_arguments
from rtrec.config import load_settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``local`` and its actions to the top-level subcommands."""
    local = commands.add_parser(
        "local", help="start, stop and inspect the local Kafka, MLflow and Redis"
    )
    actions = local.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, text in (
        ("up", _up, "start the services that are not running and wait until all are healthy"),
        ("down", _down, "stop the services (SIGTERM, then SIGKILL after 30 s)"),
        ("status", _status, "one line per service; exit code 0 only if all are healthy"),
    ):
        parser = actions.add_parser(name, help=text, description=text)
        add_config_arguments(parser)
        parser.set_defaults(func=handler)


# rtrec.local is imported in the handlers: it needs the Kafka and Redis clients, which the
# parser (built for every rtrec command, in every runtime environment) must not require.


def _up(args: argparse.Namespace) -> int:
    from rtrec.local import up

    up(load_settings(args.env, args.overrides))
    return 0


def _down(args: argparse.Namespace) -> int:
    from rtrec.local import down

    down(load_settings(args.env, args.overrides))
    return 0


def _status(args: argparse.Namespace) -> int:
    from rtrec.local import State, status

    statuses = status(load_settings(args.env, args.overrides))
    for service in statuses:
        print(service.line())
    return 0 if all(service.state is State.HEALTHY for service in statuses) else 1
