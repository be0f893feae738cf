"""``rtrec models list | promote VERSION | rollback``: the ML team moves ``champion``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from rtrec.cli import add_config_arguments
from rtrec.config import load_settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = commands.add_parser("models", help="list model versions, promote, roll back")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="versions, newest first, with aliases and NDCG@10")
    listing.set_defaults(func=_list)
    promote = actions.add_parser(
        "promote", help="make VERSION the champion and publish a model_control record"
    )
    promote.add_argument("version")
    promote.set_defaults(func=_promote)
    rollback = actions.add_parser(
        "rollback", help="give champion back to the previous champion and publish the move"
    )
    rollback.set_defaults(func=_rollback)
    for parser in (listing, promote, rollback):
        add_config_arguments(parser)


def _list(args: argparse.Namespace) -> int:
    from rtrec.registry.promotion import list_versions

    rows = list_versions(load_settings(args.env, args.overrides))
    print(f"{'version':>7}  {'created (UTC)':<19}  {'NDCG@10':>8}  aliases")
    for row in rows:
        created = datetime.fromtimestamp(row.created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        metric = "-" if row.metric is None else f"{row.metric:.4f}"
        print(f"{row.version:>7}  {created:<19}  {metric:>8}  {', '.join(row.aliases)}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from rtrec.registry.promotion import promote

    record = promote(load_settings(args.env, args.overrides), args.version)
    print(f"champion -> version {record['version']} (published to model_control)")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from rtrec.registry.promotion import rollback

    record = rollback(load_settings(args.env, args.overrides))
    print(f"champion -> version {record['version']} (rolled back; published to model_control)")
    return 0
