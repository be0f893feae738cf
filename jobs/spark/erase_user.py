"""Erase one user: delete their rows from every Delta table about users, then VACUUM with
`lake.vacuum_retention_hours` (docs/erasure.md). Prints one line per table.

Usage: spark-submit --master local[2] jobs/spark/erase_user.py --env local --user-id USER
"""

import sys

from rtrec.batch.erase import run_erase_user_job
from rtrec.jobs import run_job_with_arguments

if __name__ == "__main__":
    sys.exit(
        run_job_with_arguments(
            __doc__ or "",
            lambda parser: parser.add_argument(
                "--user-id", required=True, help="the user's id as the lake stores it"
            ),
            lambda settings, args: run_erase_user_job(settings, args.user_id),
        )
    )
