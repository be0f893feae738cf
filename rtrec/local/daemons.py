"""The daemons of a local standalone cluster (Spark's master and workers, Flink's JobManager and
TaskManager): started in order, each leading its own process group with its log under the
cluster's run directory, waited for, and stopped with everything they forked."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rtrec.errors import RtrecError
from rtrec.local.process import group_members, pid_alive, start_detached, tail
from rtrec.local.process import stop as stop_process

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 30.0


@dataclass
class Daemons:
    what: str  # "Spark cluster", "Flink cluster": how errors name it
    run_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def boot(
        self,
        commands: Sequence[tuple[str, Sequence[str]]],
        env: Mapping[str, str],
        ready: Callable[[], bool],
        timeout_s: float,
    ) -> None:
        """Start each named command in order (its log: ``<run_dir>/<name>.log``), then wait
        until ``ready``; on any failure stop what started and raise."""
        try:
            for name, command in commands:
                log = self.run_dir / f"{name}.log"
                self.processes.append(start_detached(command, self.run_dir, log, env))
                self.logs.append(log)
            self.wait_until(ready, timeout_s)
        except BaseException:
            self.stop()
            raise

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def log_tails(self, lines: int = 15) -> str:
        return "\n".join(f"--- {log}\n{tail(log, lines)}" for log in self.logs)

    def wait_until(self, ready: Callable[[], bool], timeout_s: float) -> None:
        """Poll ``ready`` until it holds; raise with the logs' tails if a daemon exits first or
        ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            dead = [p.args for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{dead[0]!r:.120} exited" if dead else f"not up within {timeout_s:.0f} s"
                raise RtrecError(f"{self.what}: {why}:\n{self.log_tails()}")
            time.sleep(1)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the daemons in reverse start order, each with its process group (executors,
        Python workers); raise if anything of them is left."""
        for process in reversed(self.processes):
            stop_process(process.pid, timeout_s)
        left = {
            p.pid: group_members(p.pid)
            for p in self.processes
            if pid_alive(p.pid) or group_members(p.pid)
        }
        if left:
            raise RtrecError(f"{self.what} processes left after stop: {left}")


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that are free right now."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def serve_until_interrupted(daemons: Daemons, banner: str) -> None:
    """For ``python -m rtrec.local.<engine>_cluster``: print ``banner``, keep the cluster up
    until Ctrl-C, SIGTERM or a daemon's exit, then stop it."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the cluster as on Ctrl-C
    print(f"{banner}; Ctrl-C stops", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            while daemons.alive():
                time.sleep(1)
    finally:
        # A second Ctrl-C (or a SIGTERM after it) must not cut the stop short: that would
        # leave daemons running with nobody to stop them.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        daemons.stop()
