"""``up``, ``down`` and ``status`` of the local services as a whole."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rtrec.config import Settings
from rtrec.config.settings import LocalServicesSettings
from rtrec.errors import RtrecError
from rtrec.local.process import pid_alive, port_in_use, read_pid, runs_in, stop
from rtrec.local.services import (
    Kafka,
    Service,
    ServiceStatus,
    State,
    format_line,
    require_local,
    services,
)
from rtrec.local.topics import ensure_topics

Report = Callable[[str], None]

STOP_TIMEOUT_S = 30.0
# A running `rtrec demo` writes its pid here; `down` stops it before the services it uses.
DEMO_PID = "demo.pid"
DEMO_STOP_TIMEOUT_S = 120.0
_POLL_S = 0.25


def status(settings: Settings) -> list[ServiceStatus]:
    """The state of every local service, in start order."""
    require_local(settings)
    return [service.inspect() for service in services(settings)]


def up(settings: Settings, report: Report = print) -> list[ServiceStatus]:
    """Start what is not running, wait until everything is healthy, create the Kafka topics.

    Idempotent: a running, healthy service is left alone. Services start concurrently and
    share one ``startup_timeout_s``. If one fails, the others are still brought up, the failed
    one is stopped, and a RtrecError names it and its log. Nothing starts if a port is taken.
    """
    local = require_local(settings)
    with _exclusive(local.run_dir):
        return _up(settings, local, report)


def _up(settings: Settings, local: LocalServicesSettings, report: Report) -> list[ServiceStatus]:
    all_services = services(settings)
    to_start: list[Service] = []
    to_wait: list[Service] = []
    for service in all_services:
        current = service.inspect()
        if current.state is State.HEALTHY:
            report(_line(service, f"already running, healthy (pid {current.pid})"))
            continue
        if current.state is State.UNHEALTHY:
            # Most likely still starting (another `up`); it gets the same timeout as ours.
            report(_line(service, f"running but not healthy yet (pid {current.pid}); waiting"))
            to_wait.append(service)
            continue
        if current.state is State.STALE:
            service.pid_file.unlink(missing_ok=True)
            report(_line(service, _stale_message(service, current.pid)))
        to_start.append(service)

    for service in to_start:
        service.check()
    _check_ports(to_start)

    started_at = time.monotonic()
    deadline = started_at + local.startup_timeout_s
    processes: dict[str, subprocess.Popen[bytes]] = {}
    failures: dict[str, str] = {}
    for service in to_start:
        try:
            processes[service.name] = service.start()
        except RtrecError as exc:
            failures[service.name] = str(exc)

    # Poll every pending service in turn, so each one's start time is its own.
    pending = [s for s in [*to_start, *to_wait] if s.name not in failures]
    while pending:
        for service in list(pending):
            process = processes.get(service.name)
            if service.healthy():
                pending.remove(service)
                seconds = time.monotonic() - started_at
                started = "started, " if process is not None else ""
                pid = read_pid(service.pid_file)
                report(_line(service, f"{started}healthy after {seconds:.1f} s (pid {pid})"))
                continue
            failure = _start_failure(service, process, deadline, local.startup_timeout_s)
            if failure is not None:
                pending.remove(service)
                failures[service.name] = failure
                if process is not None:
                    # A half-started process of ours is of no use and would hold the ports.
                    stop(process.pid, STOP_TIMEOUT_S)
                    service.pid_file.unlink(missing_ok=True)
        if pending:
            time.sleep(_POLL_S)

    kafka = next(s for s in all_services if isinstance(s, Kafka))
    if kafka.name not in failures:
        created = ensure_topics(settings, bootstrap_servers=kafka.address)
        topics = f"created {', '.join(created)}" if created else "all present"
        report(_line(kafka, f"topics: {topics}"))
    if failures:
        raise RtrecError("\n".join(failures.values()))
    return status(settings)


def down(settings: Settings, report: Report = print, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop the services in reverse start order: SIGTERM, then SIGKILL after ``timeout_s``.

    A demo running on them is stopped first (it stops its jobs and leaves the services to us),
    outside the lock: the demo takes it too when it stops the services itself."""
    run_dir = require_local(settings).run_dir
    _stop_demo(run_dir, report)
    with _exclusive(run_dir):
        for service in reversed(services(settings)):
            _stop(service, report, timeout_s)


def _stop_demo(run_dir: Path, report: Report) -> None:
    pid = read_pid(run_dir / DEMO_PID)
    if pid is None or pid == os.getpid() or not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    started = time.monotonic()
    while pid_alive(pid) and time.monotonic() - started < DEMO_STOP_TIMEOUT_S:
        time.sleep(_POLL_S)
    state = "still running" if pid_alive(pid) else "stopped its jobs"
    report(f"demo (pid {pid}): {state} after {time.monotonic() - started:.1f} s")


def _stop(service: Service, report: Report, timeout_s: float) -> None:
    pid = read_pid(service.pid_file)
    if pid is None:
        report(_line(service, "not running"))
        return
    if not (pid_alive(pid) and runs_in(pid, service.dir)):
        service.pid_file.unlink(missing_ok=True)
        report(_line(service, _stale_message(service, pid)))
        return
    result = stop(pid, timeout_s)
    service.pid_file.unlink(missing_ok=True)
    if result.killed:
        text = f"did not stop within {timeout_s:g} s of SIGTERM; killed with SIGKILL"
    else:
        text = f"stopped in {result.seconds:.1f} s"
    report(_line(service, f"{text} (pid {pid})"))


@contextlib.contextmanager
def _exclusive(run_dir: Path) -> Iterator[None]:
    """One ``up`` or ``down`` at a time per run directory.

    Concurrent ones would race on the pid files: both would start a service, and the loser's
    pid would overwrite the winner's.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    # The services do not inherit the descriptor (Popen closes fds), so the lock ends with us.
    with (run_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _line(service: Service, text: str) -> str:
    return format_line(service.name, service.address, text)


def _stale_message(service: Service, pid: int | None) -> str:
    return f"stale pid file {service.pid_file} removed (pid {pid} is not a running {service.name})"


def _check_ports(to_start: list[Service]) -> None:
    """Refuse to start anything while a port is held by a process that is not ours."""
    problems = []
    for service in to_start:
        for key, port in service.ports.items():
            try:
                taken = port_in_use(service.host, port)
            except OSError as exc:
                raise RtrecError(
                    f"{service.name}: cannot listen on {service.host}:{port}: {exc.strerror}"
                ) from None
            if taken:
                problems.append(
                    f"{service.name}: port {port} on {service.host} is already in use by another "
                    f"process; stop that process or choose another port with --set {key}=..."
                )
    if problems:
        raise RtrecError("; ".join(problems))


def _start_failure(
    service: Service,
    process: subprocess.Popen[bytes] | None,
    deadline: float,
    timeout_s: float,
) -> str | None:
    """Why a not-yet-healthy service will not become healthy, or None to keep waiting."""
    if process is not None and process.poll() is not None:
        return (
            f"{service.name} exited with code {process.returncode} while starting; "
            f"{service.log_excerpt()}"
        )
    pid = read_pid(service.pid_file)
    if process is None and (pid is None or not pid_alive(pid)):
        return f"{service.name} stopped while starting; {service.log_excerpt()}"
    if time.monotonic() >= deadline:
        return (
            f"{service.name} did not become healthy within {timeout_s:g} s; {service.log_excerpt()}"
        )
    return None
