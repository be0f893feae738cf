"""Erase one user: delete their rows from every Delta table about users, then VACUUM with
`lake.vacuum_retention_hours` (docs/erasure.md). Prints one line per table.

Usage: spark-submit --master local[2] jobs/spark/erase_user.py --env local --user-id USER
       [--report erasure.json]
"""

import argparse
import sys
from pathlib import Path

from rtrec.batch.erase import run_erase_user_job
from rtrec.jobs import run_job_with_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user-id", required=True, help="the user's id as the lake stores it (the pseudonym)"
    )
    parser.add_argument("--report", type=Path, help="also write what was erased here, as JSON")


if __name__ == "__main__":
    sys.exit(
        run_job_with_arguments(
            __doc__ or "",
            add_arguments,
            lambda settings, args: run_erase_user_job(settings, args.user_id, args.report),
        )
    )
