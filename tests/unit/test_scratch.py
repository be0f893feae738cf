"""A Flink job process's scratch directory goes with the process: removed at exit, on SIGTERM,
and, after SIGKILL, by the next process that creates one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rtrec.streaming.scratch import PREFIX, sweep

pytestmark = pytest.mark.unit

HOLDER = """
import sys
from pathlib import Path
from rtrec.streaming.scratch import scratch_dir
scratch = scratch_dir(Path(sys.argv[1]))
(scratch / "minicluster_x").mkdir()
if len(sys.argv) > 2:  # a child that, like the JVM, still writes there as it stops
    import subprocess
    subprocess.Popen([sys.executable, "-c", sys.argv[2], str(scratch)])
print(scratch, flush=True)
sys.stdin.readline()  # until the test says go (or the test closes the pipe)
"""
# On SIGTERM it takes half a second, then writes into the scratch directory, creating the
# directories it needs.
SLOW_CHILD = """
import signal, sys, time
from pathlib import Path

def stop(*_):
    time.sleep(0.5)
    spill = Path(sys.argv[1]) / "tm_0" / "tmp"
    spill.mkdir(parents=True, exist_ok=True)  # as Flink does before writing a file
    (spill / "written-while-stopping").write_text("late")
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""


def holder(root: Path, *child: str) -> tuple[subprocess.Popen[str], Path]:
    """A process holding a scratch directory under ``root``, leading its own process group;
    it ends when its stdin does."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), *child],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    scratch = Path(process.stdout.readline().strip())
    if child:
        assert process.stdout.readline().strip() == "ready"  # the child inherited stdout
    assert scratch.parent == root and scratch.name.startswith(f"{PREFIX}{process.pid}-")
    assert (scratch / "minicluster_x").is_dir()
    return process, scratch


def test_a_process_that_ends_removes_its_scratch(tmp_path: Path) -> None:
    process, scratch = holder(tmp_path)
    process.communicate("\n", timeout=30)
    assert process.returncode == 0
    assert not scratch.exists()


def test_sigterm_removes_the_scratch(tmp_path: Path) -> None:
    process, scratch = holder(tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 128 + signal.SIGTERM
    assert not scratch.exists()


def test_sigterm_to_the_group_removes_the_scratch_after_the_children_stop(
    tmp_path: Path,
) -> None:
    process, scratch = holder(tmp_path, SLOW_CHILD)
    os.killpg(process.pid, signal.SIGTERM)  # as the launcher stops a job
    assert process.wait(30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 30
    while group_alive(process.pid):  # the child too
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not scratch.exists()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_scratch_of_a_killed_process_is_swept(tmp_path: Path) -> None:
    killed, left = holder(tmp_path)
    killed.kill()
    killed.wait(30)
    assert left.exists()  # SIGKILL cannot be caught
    running, kept = holder(tmp_path)
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
