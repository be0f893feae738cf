"""Scratch space of the Flink runtime a job process starts: the JVM's temp directory, and so
Flink's (the mini-cluster's working directory with RocksDB's files, spilled buffers, unpacked
Python files, the RPC and table-planner jars unpacked at each start).

Flink's default is the system temp directory, and a JVM stopped by a signal, as every
streaming job is, left there 100 to 280 MB per run; 554 runs filled this machine's disk and
failed a CI run. Here each job process gets one directory, named after its pid, that it removes
at exit (SIGTERM included); one left by a process that was killed outright is removed by the
next job that starts.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PREFIX = "rtrec-flink-"
CHILD_EXIT_WAIT_S = 10.0
_lock = threading.Lock()
_created: Path | None = None


def scratch_dir(root: Path | None = None) -> Path:
    """This process's scratch directory under ``root`` (default: the system temp directory),
    created on first use."""
    global _created
    with _lock:
        if _created is None:
            base = root or Path(tempfile.gettempdir())
            sweep(base)
            _created = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
            atexit.register(shutil.rmtree, _created, ignore_errors=True)
            _remove_on_sigterm(_created)
        return _created


def sweep(base: Path) -> list[Path]:
    """Remove the scratch directories of processes that no longer run; returns them."""
    removed = []
    for found in base.glob(f"{PREFIX}*-*"):
        pid = found.name[len(PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(found, ignore_errors=True)
            removed.append(found)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_on_sigterm(scratch: Path) -> None:
    """On SIGTERM (how the launcher, a shell or Kubernetes stops a job) the process still ends
    at once, as by default, but removes its scratch first. It does not exit through Python's
    shutdown: PyFlink's exit handlers would call into the JVM, which is stopping too, and fill
    the job's log with tracebacks. The JVM, in the same process group, got the signal as well;
    it is given a few seconds to finish writing before the removal. A handler someone else
    installed is left alone, and so is a process whose main thread is not this one."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def leave(signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _reap_children(CHILD_EXIT_WAIT_S)
        shutil.rmtree(scratch, ignore_errors=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def _reap_children(timeout_s: float) -> None:
    """Wait until this process has no child left, or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # none left
            return
        if pid == 0:
            time.sleep(0.05)
