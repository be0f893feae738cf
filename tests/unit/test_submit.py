"""`rtrec submit` without a cluster: the commands it builds, the code package, its errors, and
the local Flink cluster's configuration. Submitting for real is tests/integration/test_submit.py."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rtrec.batch.runtime import extra_jars
from rtrec.cli import main
from rtrec.config import load_settings
from rtrec.errors import RtrecError
from rtrec.launch import flink_home, runtime_bin, spark_home
from rtrec.local.flink_cluster import cluster_config, write_conf_dir, write_lib_dir
from rtrec.submit import (
    PACKAGE_TTL_S,
    SPARK_JARS_DIR,
    build_submission,
    endpoint,
    package_code,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def dry_run(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """The command ``rtrec submit ... --dry-run`` prints, split into words."""
    assert main(["submit", *argv, "--dry-run"]) == 0
    return shlex.split(capsys.readouterr().out.strip())


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def test_flink_command_ships_code_jars_and_interpreter(capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings("local")
    words = dry_run(
        capsys,
        "flink",
        "online_cf",
        "--set",
        "flink.jobmanager=10.1.2.3:8082",
        "--set",
        "flink.parallelism=1",
    )
    flink = str(flink_home(settings) / "bin" / "flink")
    assignments = dict(word.split("=", 1) for word in words[: words.index(flink)])
    assert assignments["RTREC_ROOT"] == str(ROOT)
    command = words[words.index(flink) :]
    assert command[1:3] == ["run", "--detached"]
    assert option(command, "--jobmanager") == "10.1.2.3:8082"  # from the configuration
    python = str(runtime_bin(settings, "flink", "python"))
    assert option(command, "--pyExecutable") == option(command, "--pyClientExecutable") == python
    jars = sorted(settings.flink.jars_dir.glob("*.jar"))
    assert jars and f"-Dpipeline.jars={';'.join(j.as_uri() for j in jars)}" in command
    package = Path(option(command, "--pyFiles"))
    assert package.is_file() and package.name.startswith("rtrec-")
    # The job gets the same configuration the submission was made with.
    script = option(command, "--python")
    assert script == str(ROOT / "jobs" / "flink" / "online_cf.py")
    assert command[command.index("--python") + 2 :] == [
        "--env", "local", "--set", "flink.jobmanager=10.1.2.3:8082", "--set", "flink.parallelism=1"
    ]  # fmt: skip


def test_spark_command_ships_code_jars_delta_and_job_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_settings("local")
    words = dry_run(
        capsys, "spark", "erase_user", "--master", "spark://h:7077", "--job-args=--user-id 'u 1'"
    )
    command = words[words.index(str(runtime_bin(settings, "spark", "spark-submit"))) :]
    assert option(command, "--master") == "spark://h:7077"  # the flag wins over spark.master
    assert option(command, "--deploy-mode") == "client"
    expected = extra_jars(ROOT / SPARK_JARS_DIR, spark_home(settings) / "jars")
    assert option(command, "--jars").split(",") == [str(jar) for jar in expected]
    # Jars Spark ships itself are not shipped twice (they would shadow Spark's own).
    assert not any("jackson-core" in jar.name for jar in expected)
    confs = {option(command[i:], "--conf") for i, w in enumerate(command) if w == "--conf"}
    python = runtime_bin(settings, "spark", "python")
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in confs
    assert f"spark.pyspark.python={python}" in confs
    assert Path(option(command, "--py-files")).is_file()
    tail = command[command.index(str(ROOT / "jobs" / "spark" / "erase_user.py")) + 1 :]
    assert tail == ["--env", "local", "--user-id", "u 1"]


def test_the_default_spark_master_comes_from_the_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    words = dry_run(capsys, "spark", "ingest")
    assert option(words, "--master") == load_settings("local").spark.master == "local[2]"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["flink", "nope"],
            "unknown flink job 'nope': jobs/flink/ holds behaviour_features, online_cf, scoring",
        ),
        (["spark", "ingest", "--env", "staging"], f"{ROOT}/conf/staging.yaml: no such config file"),
        (["spark", "ingest", "--master", "spark://no-port"], "spark cluster address"),
    ],
)
def test_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["submit", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rtrec: error: {message}"), err
    assert err.count("\n") == 1


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_an_unreachable_cluster_is_one_line_naming_where_its_address_came_from(
    capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    assert (
        main(["submit", "flink", "scoring", "--set", f"flink.jobmanager=127.0.0.1:{closed_port}"])
        == 2
    )
    err = capsys.readouterr().err
    assert err == (
        f"rtrec: error: Flink JobManager 127.0.0.1:{closed_port} is not reachable (Connection "
        "refused); set by flink.jobmanager (conf/base.yaml, conf/local.yaml)\n"
    )
    assert main(["submit", "spark", "curate", "--master", f"spark://127.0.0.1:{closed_port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rtrec: error: Spark master") and "set by --master" in err


@pytest.mark.parametrize(
    ("runtime", "address", "expected"),
    [
        ("flink", "jm:8081", ("jm", 8081)),
        ("flink", "http://jm.example:80", ("jm.example", 80)),
        ("spark", "spark://m1:7077,m2:7077", ("m1", 7077)),
        ("spark", "k8s://https://api.example:6443", ("api.example", 6443)),
        ("spark", "local[2]", None),
        ("spark", "yarn", None),
    ],
)
def test_endpoints_to_check_before_submitting(
    runtime: str, address: str, expected: tuple[str, int] | None
) -> None:
    assert endpoint(runtime, address) == expected


def test_the_package_is_the_rtrec_tree_deterministic_and_importable(tmp_path: Path) -> None:
    settings = load_settings("local")
    first = package_code(settings, tmp_path / "a")
    assert package_code(settings, tmp_path / "b").name == first.name  # same code, same package
    names = zipfile.ZipFile(first).namelist()
    assert "rtrec/submit.py" in names and "rtrec/config/settings.py" in names
    assert not [n for n in names if "__pycache__" in n or not n.startswith("rtrec/")]
    # Python imports the packaged code ahead of the editable install (as a worker would).
    code = f"import sys; sys.path.insert(0, {str(first)!r}); import rtrec.submit as m; "
    code += "print(m.__file__)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == f"{first}/rtrec/submit.py"


def test_a_changed_file_makes_a_new_package(tmp_path: Path) -> None:
    settings = load_settings("local")
    copy = tmp_path / "checkout"
    (copy / "rtrec").mkdir(parents=True)
    (copy / "rtrec" / "__init__.py").write_text("")
    moved = settings.model_copy(update={"root": copy})
    before = package_code(moved, tmp_path / "build")
    (copy / "rtrec" / "__init__.py").write_text("VERSION = 2\n")
    assert package_code(moved, tmp_path / "build") != before
    # A new package prunes those older than a day, not newer ones.
    old, recent = tmp_path / "build" / "rtrec-old.zip", tmp_path / "build" / "rtrec-recent.zip"
    old.write_bytes(b"")
    recent.write_bytes(b"")
    os.utime(old, (time.time() - PACKAGE_TTL_S - 60,) * 2)
    (copy / "rtrec" / "__init__.py").write_text("VERSION = 3\n")
    package_code(moved, tmp_path / "build")
    assert not old.exists() and recent.exists() and before.exists()
    empty = settings.model_copy(update={"root": tmp_path / "nothing"})
    with pytest.raises(RtrecError, match="no rtrec package"):
        package_code(empty, tmp_path / "build")


def test_submission_environment_names_the_checkout_and_the_runtime(tmp_path: Path) -> None:
    settings = load_settings("local")
    flink = build_submission(settings, "flink", "scoring", [], "jm:1", build_dir=tmp_path)
    assert flink.env["RTREC_ROOT"] == str(ROOT)
    assert flink.env["PATH"] == str(runtime_bin(settings, "flink", "python").parent)
    assert flink.env["FLINK_LOG_DIR"].startswith(str(tmp_path))  # not inside the package
    assert flink.shell().startswith(f"FLINK_LOG_DIR={tmp_path}/flink-client-logs PATH=")


def test_the_local_flink_cluster_config_is_loopback_free_ports_and_the_runtime(
    tmp_path: Path,
) -> None:
    settings = load_settings("local")
    home = flink_home(settings)
    config = cluster_config(settings, home, tmp_path, rpc_port=41001, rest_port=41002, slots=2)
    conf_dir = write_conf_dir(settings, home, tmp_path, config)
    written = yaml.safe_load((conf_dir / "config.yaml").read_text())
    assert written["rest.port"] == 41002 and written["jobmanager.rpc.port"] == 41001
    assert {written[k] for k in ("rest.address", "jobmanager.rpc.address", "taskmanager.host")} == {
        "127.0.0.1"
    }
    assert written["taskmanager.numberOfTaskSlots"] == 2
    assert written["python.executable"] == str(runtime_bin(settings, "flink", "python"))
    assert "--add-opens" in written["env.java.opts.all"]  # the distribution's Java 17 flags
    assert (conf_dir / "log4j-console.properties").is_file()
    # The classpath is the distribution's lib/ plus its Python runtime from opt/.
    lib = {jar.name for jar in write_lib_dir(home, tmp_path).iterdir()}
    assert {jar.name for jar in (home / "lib").glob("*.jar")} < lib
    assert [name for name in lib if name.startswith("flink-python-")]
    assert written["io.tmp.dirs"] == str(tmp_path / "tmp")
