"""Process plumbing for the local services: pid files, liveness, ports, detached start, stop.

Linux only: liveness and process-group membership are read from /proc, because a killed
service whose parent does not reap it stays a zombie, and ``kill(pid, 0)`` calls a zombie alive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_KILL_WAIT_S = 10.0


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file``, or None when the file is absent or unreadable."""
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself contain spaces and parentheses.
    return raw[raw.rindex(")") + 2 :].split()


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process; reaps it first if it is our child."""
    # Services started by this process (e.g. in a test session) are our children: once they
    # exit, only our waitpid removes them. Anyone else's process raises ChildProcessError.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        # After the state come ppid, then pgrp.
        if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def runs_in(pid: int, directory: Path) -> bool:
    """Whether ``pid``'s working directory is inside ``directory``.

    Every service is started with its working directory in its own run directory, so this tells
    our process apart from an unrelated one that got the same pid after a reboot or a crash.
    """
    try:
        cwd = Path(os.readlink(_PROC / str(pid) / "cwd"))
    except OSError:
        return False
    return cwd.is_relative_to(directory.resolve())


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (binding there fails).

    SO_REUSEADDR mirrors what the servers themselves do, so connections of a just-stopped
    service lingering in TIME_WAIT do not count as "in use". Other bind errors (an address that
    is not local, say) propagate as OSError.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def accepts_connections(host: str, port: int, timeout_s: float) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds within ``timeout_s``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def rotate_log(log_file: Path) -> None:
    """Keep the previous run's log as ``<log>.1`` so each start begins a fresh, short log."""
    if log_file.exists():
        log_file.replace(log_file.with_name(log_file.name + ".1"))


def start_detached(
    command: Sequence[str], cwd: Path, log_file: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session with stdout and stderr appended to ``log_file``.

    A new session makes the service the leader of its own process group, so it survives the
    caller's terminal and ``stop`` can signal it together with the children it forks.
    """
    with log_file.open("ab") as log:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass(frozen=True)
class Stopped:
    """How a stop went: seconds taken, and whether SIGTERM was not enough."""

    seconds: float
    killed: bool


def stop(pid: int, timeout_s: float, poll_s: float = 0.1) -> Stopped:
    """SIGTERM ``pid`` (its whole process group if it leads one), SIGKILL after ``timeout_s``."""
    started = time.monotonic()
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return Stopped(0.0, killed=False)

    def remaining() -> bool:
        if leads_group:
            pid_alive(pid)  # reap the leader if it is our child, so it leaves the group
            return bool(group_members(pid))
        return pid_alive(pid)

    def send(signum: signal.Signals) -> None:
        try:
            if leads_group:
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    if _wait_until_gone(remaining, started + timeout_s, poll_s):
        return Stopped(time.monotonic() - started, killed=False)
    send(signal.SIGKILL)
    # SIGKILL cannot be caught; only a process stuck in the kernel outlives this wait.
    _wait_until_gone(remaining, time.monotonic() + _KILL_WAIT_S, poll_s)
    return Stopped(time.monotonic() - started, killed=True)


def _wait_until_gone(remaining: Callable[[], bool], deadline: float, poll_s: float) -> bool:
    while remaining():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def tail(log_file: Path, lines: int = 10) -> str:
    """The last ``lines`` lines of ``log_file`` (empty when it does not exist)."""
    try:
        text = log_file.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
