"""``rtrec submit flink|spark JOB``: run a job file of ``jobs/<runtime>/`` on a cluster.

The command is the engine's own client, run from the runtime's environment: ``flink run -d -py
jobs/flink/<job>.py`` against a JobManager's REST address, or ``spark-submit --master <master>
jobs/spark/<job>.py``. It ships what the job needs besides the script:

- the code: the ``rtrec`` package as a zip, built from this checkout (``-pyfs`` / ``--py-files``),
  so the cluster's Python workers run the submitted code, not whatever their image holds;
- the pinned jars: Flink's connectors (``flink.jars_dir``) as ``pipeline.jars``, Spark's
  (``.jars/spark`` minus what Spark ships) with ``--jars``, and Delta enabled;
- the interpreter of the runtime for the Python workers (``-pyexec`` / ``spark.pyspark.python``).

The job itself reads the same ``--env``/``--set`` configuration as in local mode; the driver (the
Flink client, the Spark driver in client mode) runs here, so it finds ``conf/`` through
``RTREC_ROOT``. Engines are not imported: everything here is command building.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shlex
import socket
import subprocess
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rtrec.batch.runtime import DELTA_CONF, extra_jars
from rtrec.config import Settings
from rtrec.errors import RtrecError
from rtrec.launch import config_args, flink_home, runtime_bin, spark_home

RUNTIMES = ("flink", "spark")
SPARK_JARS_DIR = Path(".jars") / "spark"  # resolved by `make setup` from jvm/spark/pom.xml
BUILD_DIR = Path(".run") / "submit"  # the code packages, and the Flink client's logs
CONNECT_TIMEOUT_S = 3.0
PACKAGE_TTL_S = 86400.0
# Zip entries get one fixed time, so the same code always makes the same package (and name).
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Submission:
    """A command to run and the environment variables it needs besides the caller's."""

    runtime: str
    job: str
    address: str  # the JobManager's REST address or the Spark master
    command: list[str]
    env: dict[str, str]

    def shell(self) -> str:
        """The command as one shell line, its variables first (what ``--dry-run`` prints)."""
        # PATH is prepended to, so the caller's own PATH is kept (as run_submission does).
        assignments = [
            f"{name}={shlex.quote(value)}{':$PATH' if name == 'PATH' else ''}"
            for name, value in sorted(self.env.items())
        ]
        return " ".join([*assignments, shlex.join(self.command)])


def job_names(settings: Settings, runtime: str) -> list[str]:
    """The jobs of a runtime: the files in ``jobs/<runtime>/``."""
    return sorted(path.stem for path in (settings.root / "jobs" / runtime).glob("*.py"))


def job_script(settings: Settings, runtime: str, job: str) -> Path:
    if runtime not in RUNTIMES:
        raise RtrecError(f"unknown runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    known = job_names(settings, runtime)
    if job not in known:
        raise RtrecError(
            f"unknown {runtime} job {job!r}: jobs/{runtime}/ holds {', '.join(known) or 'none'}"
        )
    return settings.root / "jobs" / runtime / f"{job}.py"


def package_code(settings: Settings, build_dir: Path) -> Path:
    """The ``rtrec`` package as ``<build_dir>/rtrec-<hash>.zip`` (built once per code state).

    A zip is what both clients take as a Python dependency (a wheel would need a build step and
    its build backend); entries sit at ``rtrec/...`` so the zip's root goes on PYTHONPATH."""
    package = settings.root / "rtrec"
    files = sorted(
        path
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    if not files:
        raise RtrecError(f"no rtrec package under {settings.root}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            entry = zipfile.ZipInfo(str(path.relative_to(settings.root)), _ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, path.read_bytes())
    data = buffer.getvalue()
    target = build_dir / f"rtrec-{hashlib.sha256(data).hexdigest()[:12]}.zip"
    if not target.exists():
        build_dir.mkdir(parents=True, exist_ok=True)
        # Another submission may build the same package at the same time: write aside, rename.
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(target)
        _prune_packages(build_dir, keep=target)
    return target


def _prune_packages(build_dir: Path, keep: Path) -> None:
    """Remove packages older than PACKAGE_TTL_S: each code change makes a new one, and a
    submission in flight uses its package only for seconds (the cluster keeps its own copy)."""
    cutoff = time.time() - PACKAGE_TTL_S
    for package in build_dir.glob("rtrec-*.zip"):
        with contextlib.suppress(FileNotFoundError):  # pruned by a concurrent submission
            if package != keep and package.stat().st_mtime < cutoff:
                package.unlink()


def flink_jars(settings: Settings) -> list[Path]:
    """The pinned connectors of ``flink.jars_dir``. (Flink's Python runtime, flink-python, must
    be on the cluster's own classpath: the JobManager needs it to accept a Python job.)"""
    jars = sorted(settings.flink.jars_dir.glob("*.jar"))
    if not jars:
        raise RtrecError(f"no Flink connector jars in {settings.flink.jars_dir}: run `make setup`")
    return jars


def spark_jars(settings: Settings) -> list[Path]:
    """The pinned jars Spark does not ship itself (as spark-defaults.conf lists them)."""
    resolved = settings.root / SPARK_JARS_DIR
    jars = extra_jars(resolved, spark_home(settings) / "jars")
    if not jars:
        raise RtrecError(f"no Spark jars in {resolved}: run `make setup`")
    return jars


def flink_command(
    settings: Settings, job: str, args: Sequence[str], jobmanager: str, package: Path
) -> list[str]:
    """``flink run -d`` of ``jobs/flink/<job>.py`` to the JobManager at ``jobmanager``."""
    script = job_script(settings, "flink", job)
    python = str(runtime_bin(settings, "flink", "python"))
    jars = ";".join(jar.as_uri() for jar in flink_jars(settings))
    return [
        str(flink_home(settings) / "bin" / "flink"),
        "run",
        "--detached",  # a streaming job outlives its submission
        "--jobmanager",
        jobmanager,
        # The jars travel with the job graph to the cluster's blob server, so no node needs a
        # copy. The job adds its connectors again itself (rtrec.streaming.environment), which
        # PyFlink merges into this list.
        f"-Dpipeline.jars={jars}",
        "--pyClientExecutable",
        python,
        "--pyExecutable",
        python,
        "--pyFiles",
        str(package),
        "--python",
        str(script),
        *args,
    ]


def spark_command(
    settings: Settings, job: str, args: Sequence[str], master: str, package: Path
) -> list[str]:
    """``spark-submit --master <master>`` of ``jobs/spark/<job>.py``: the driver runs here
    (client mode), executors on the cluster."""
    script = job_script(settings, "spark", job)
    python = str(runtime_bin(settings, "spark", "python"))
    conf = {
        **DELTA_CONF,
        "spark.pyspark.python": python,
        "spark.pyspark.driver.python": python,
    }
    return [
        str(runtime_bin(settings, "spark", "spark-submit")),
        "--master",
        master,
        "--deploy-mode",
        "client",
        "--jars",
        ",".join(str(jar) for jar in spark_jars(settings)),
        "--py-files",
        str(package),
        *(arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")),
        str(script),
        *args,
    ]


def cluster_address(settings: Settings, runtime: str, given: str | None) -> str:
    """The address from the command line, else from the configuration."""
    if given:
        return given
    return settings.flink.jobmanager if runtime == "flink" else settings.spark.master


def endpoint(runtime: str, address: str) -> tuple[str, int] | None:
    """The host and port to reach ``address`` at (None: nothing to reach before submitting,
    as for ``local[*]`` or ``yarn``, whose client finds its cluster itself)."""
    if runtime == "flink":
        parsed = urlsplit(address if "://" in address else f"http://{address}")
    elif address.startswith("spark://"):
        # A standalone master list (spark://h1:p1,h2:p2): the first is enough to find it up.
        parsed = urlsplit(address.split(",")[0])
    elif address.startswith("k8s://"):
        inner = address.removeprefix("k8s://")
        parsed = urlsplit(inner if "://" in inner else f"https://{inner}")
    else:
        return None
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None:
        raise RtrecError(f"{runtime} cluster address {address!r}: expected host:port")
    return parsed.hostname, port


def check_reachable(runtime: str, address: str, source: str) -> None:
    """Fail with one line when the cluster does not accept connections."""
    target = endpoint(runtime, address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=CONNECT_TIMEOUT_S):
            return
    except OSError as exc:
        what = "Flink JobManager" if runtime == "flink" else "Spark master"
        raise RtrecError(
            f"{what} {address} is not reachable ({exc.strerror or exc}); set by {source}"
        ) from None


def build_submission(
    settings: Settings,
    runtime: str,
    job: str,
    overrides: Sequence[str],
    address: str | None = None,
    job_args: Sequence[str] = (),
    build_dir: Path | None = None,
) -> Submission:
    """The command that submits ``job`` with the configuration ``settings.env`` + ``overrides``
    (packaging the code into ``build_dir``, default ``.run/submit``, on the way)."""
    job_script(settings, runtime, job)  # an unknown job fails before anything is built
    target = cluster_address(settings, runtime, address)
    build_dir = build_dir or settings.root / BUILD_DIR
    package = package_code(settings, build_dir)
    args = [*config_args(settings.env, overrides), *job_args]
    if runtime == "flink":
        command = flink_command(settings, job, args, target, package)
        # The client's log would otherwise go inside the installed package.
        extra = {"FLINK_LOG_DIR": str(build_dir / "flink-client-logs")}
    else:
        command = spark_command(settings, job, args, target, package)
        extra = {}
    env = {
        # The client scripts find their engine's home through the runtime's Python on PATH.
        "PATH": str(runtime_bin(settings, runtime, "python").parent),
        # The driver imports rtrec from the package, which has no conf/ beside it.
        "RTREC_ROOT": str(settings.root),
        **extra,
    }
    return Submission(runtime, job, target, command, env)


def run_submission(submission: Submission, environ: Mapping[str, str] | None = None) -> int:
    """Run the command in the foreground (output to this process's); its exit code."""
    base = dict(os.environ if environ is None else environ)
    env = {**base, **submission.env}
    env["PATH"] = f"{submission.env['PATH']}{os.pathsep}{base.get('PATH', '')}"
    return subprocess.run(submission.command, env=env, check=False).returncode


def submit(
    settings: Settings,
    runtime: str,
    job: str,
    overrides: Sequence[str],
    address: str | None = None,
    job_args: Sequence[str] = (),
    dry_run: bool = False,
    report: Callable[[str], object] = print,
) -> int:
    """Submit ``job``; with ``dry_run`` only report the command. Returns the client's exit
    code; an unknown job, a missing runtime or an unreachable cluster raise RtrecError."""
    submission = build_submission(settings, runtime, job, overrides, address, job_args)
    if dry_run:
        report(submission.shell())
        return 0
    key = "flink.jobmanager" if runtime == "flink" else "spark.master"
    flag = "--jobmanager" if runtime == "flink" else "--master"
    source = flag if address else f"{key} (conf/base.yaml, conf/{settings.env}.yaml)"
    check_reachable(runtime, submission.address, source)
    report(f"submitting {runtime} job {job} to {submission.address}")
    code = run_submission(submission)
    if code != 0:
        raise RtrecError(f"{runtime} job {job}: the client exited with {code} (output above)")
    return code
