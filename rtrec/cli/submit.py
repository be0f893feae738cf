"""``rtrec submit flink|spark JOB --env ENV [--set k=v ...] [--dry-run]``: run a job file on a
cluster through ``flink run`` / ``spark-submit`` (docs/submit.md)."""

from __future__ import annotations

import argparse

from rtrec.cli import add_config_arguments
from rtrec.config import load_settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = commands.add_parser(
        "submit",
        help="submit a Flink or Spark job to a cluster",
        description="Package the code and run `flink run` / `spark-submit` for jobs/<runtime>/"
        "<JOB>.py; the job reads the same --env/--set configuration.",
    )
    runtimes = submit.add_subparsers(dest="runtime", required=True, metavar="RUNTIME")
    for runtime, flag, key, text in (
        ("flink", "--jobmanager", "flink.jobmanager", "detached `flink run -py` to a JobManager"),
        ("spark", "--master", "spark.master", "`spark-submit` in client mode to a master"),
    ):
        parser = runtimes.add_parser(runtime, help=text, description=text)
        parser.add_argument("job", metavar="JOB", help=f"a file of jobs/{runtime}/, without .py")
        add_config_arguments(parser)
        parser.add_argument(
            "--job-args",
            default="",
            metavar="'ARGS'",
            help="the job's own arguments, one shell-quoted string: --job-args='--user-id u042'",
        )
        parser.add_argument(
            flag, dest="address", metavar="ADDRESS", help=f"the cluster (default: {key})"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print the command instead of running it"
        )
        parser.set_defaults(func=_submit)


def _submit(args: argparse.Namespace) -> int:
    import shlex

    from rtrec.submit import submit

    settings = load_settings(args.env, args.overrides)
    return submit(
        settings,
        args.runtime,
        args.job,
        args.overrides,
        address=args.address,
        job_args=shlex.split(args.job_args),
        dry_run=args.dry_run,
    )
