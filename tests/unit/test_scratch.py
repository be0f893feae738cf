"""A Flink job process's scratch directory goes with the process: removed at exit, on SIGTERM,
and, after SIGKILL, by the next process that creates one."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rtrec.streaming.scratch import PREFIX, sweep

pytestmark = pytest.mark.unit

HOLDER = """
import sys, time
from pathlib import Path
from rtrec.streaming.scratch import scratch_dir
scratch = scratch_dir(Path(sys.argv[1]))
(scratch / "minicluster_x").mkdir()
print(scratch, flush=True)
time.sleep(float(sys.argv[2]))
"""


def holder(root: Path, sleep_s: float) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), str(sleep_s)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    scratch = Path(process.stdout.readline().strip())
    assert scratch.parent == root and scratch.name.startswith(f"{PREFIX}{process.pid}-")
    assert (scratch / "minicluster_x").is_dir()
    return process, scratch


def test_a_process_that_ends_removes_its_scratch(tmp_path: Path) -> None:
    process, scratch = holder(tmp_path, 0)
    assert process.wait(30) == 0
    assert not scratch.exists()


def test_sigterm_removes_the_scratch(tmp_path: Path) -> None:
    process, scratch = holder(tmp_path, 60)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 128 + signal.SIGTERM
    assert not scratch.exists()


def test_the_scratch_of_a_killed_process_is_swept(tmp_path: Path) -> None:
    killed, left = holder(tmp_path, 60)
    killed.kill()
    killed.wait(30)
    assert left.exists()  # SIGKILL cannot be caught
    running, kept = holder(tmp_path, 60)
    try:
        assert not left.exists()  # swept by the next one
        assert kept.exists()
        assert sweep(tmp_path) == []  # a running process's scratch is never taken
        assert kept.exists()
    finally:
        running.terminate()
        running.wait(30)
    assert not kept.exists()


def test_a_local_run_gives_the_jvm_its_scratch_as_temp_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rtrec.streaming import environment

    monkeypatch.setattr(environment, "scratch_dir", lambda: tmp_path)
    monkeypatch.setenv(environment.PYTHON_WORKER_MODE, "process")  # restored after the test
    monkeypatch.delenv("PYFLINK_GATEWAY_PORT", raising=False)
    monkeypatch.setenv("JVM_ARGS", "-Xss4m")
    environment.prepare_process()
    environment.prepare_process()  # once only, however many environments the process creates
    assert environment.os.environ["JVM_ARGS"] == f"-Xss4m -Djava.io.tmpdir={tmp_path}"


def test_under_flink_run_the_cluster_keeps_its_own_temp_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rtrec.streaming import environment

    monkeypatch.setattr(environment, "scratch_dir", lambda: tmp_path)
    monkeypatch.setenv(environment.PYTHON_WORKER_MODE, "process")  # restored after the test
    monkeypatch.setenv("PYFLINK_GATEWAY_PORT", "41234")
    monkeypatch.delenv("JVM_ARGS", raising=False)
    environment.prepare_process()
    assert "JVM_ARGS" not in environment.os.environ
