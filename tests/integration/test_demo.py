"""`make demo` as a newcomer runs it (`rtrec demo`, here on a stack of its own): it comes up,
streams, runs the lake pass, promotes the trained version and shows the scoring job swap to it;
then `rtrec local down` from another process stops the demo, its jobs and the services. Ctrl-C
(SIGINT) stops it as cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import free_ports, stack_overrides

from rtrec.config import load_settings
from rtrec.local import State, status
from rtrec.local.process import group_members

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RTREC = Path(sys.executable).parent / "rtrec"
SWAPPED = re.compile(r"swap: v(\d+) promoted; its first list at ([+-][\d.]+) s")
TIMEOUT_S = 720  # the pytest timeout (900 s) leaves room for the stop checks


def processes_naming(path: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if str(path) in text:
            found.append(text[:200])
    return found


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    log: Path
    overrides: list[str]  # a stack of its own: free ports, everything under tmp_path
    sets: list[str]  # the same as --set arguments


def start_demo(tmp_path: Path, *args: str) -> Demo:
    (api_port,) = free_ports(1)
    overrides = [*stack_overrides(tmp_path), f"serving.port={api_port}"]
    sets = [arg for item in overrides for arg in ("--set", item)]
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(RTREC), "demo", "--rate", "100", *args, *sets],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Demo(process, log, overrides, sets)


def test_demo_runs_to_the_swap_and_stops_on_local_down(tmp_path: Path) -> None:
    started = start_demo(tmp_path, "--train-after", "30", "--epochs", "1")
    demo, log, overrides, sets = started.process, started.log, started.overrides, started.sets
    try:
        deadline = time.monotonic() + TIMEOUT_S
        swap = None
        while swap is None and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(2)
            swap = SWAPPED.search(log.read_text())
        text = log.read_text()
        assert swap is not None, f"no swap within {TIMEOUT_S} s:\n{text[-3000:]}"
        # The banner's dashboard link works while the demo runs.
        link = re.search(r"dashboard:\s+(\S+)", text)
        assert link is not None
        with urllib.request.urlopen(link.group(1), timeout=10) as page:
            assert page.status == 200
        assert "lake: train" in text and "gate:" in text
        # Recommendation lists of the promoted version were counted on the screen.
        # The screen that showed the swap counted the new version's lists.
        assert re.search(rf"by model version: .*\b{swap.group(1)}: [\d,]+", text)
        settings = load_settings("local", overrides)
        down = subprocess.run(
            [str(RTREC), "local", "down", *sets],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert down.returncode == 0, down.stderr
        assert re.search(r"demo \(pid \d+\): stopped its jobs", down.stdout), down.stdout
        assert demo.wait(timeout=30) == 0, log.read_text()[-3000:]
        assert [s.state for s in status(settings)] == [State.STOPPED] * 3
        # Nothing the demo started outlives it: every job's command line names this tmp_path.
        assert not group_members(demo.pid)
        assert not processes_naming(tmp_path)
        assert "Traceback" not in log.read_text()
    finally:
        if demo.poll() is None:
            demo.terminate()
            demo.wait(timeout=120)
        subprocess.run([str(RTREC), "local", "down", *sets], cwd=ROOT, capture_output=True)


def test_ctrl_c_stops_the_demo_its_jobs_and_the_services(tmp_path: Path) -> None:
    # No lake pass within the test: only the streaming side runs.
    started = start_demo(tmp_path, "--train-after", "3600")
    demo, log, overrides, sets = started.process, started.log, started.overrides, started.sets
    counted = re.compile(r"counted by Flink\s+[1-9]")
    try:
        deadline = time.monotonic() + 300
        while demo.poll() is None and time.monotonic() < deadline:
            if counted.search(log.read_text()):
                break
            time.sleep(2)
        assert counted.search(log.read_text()), log.read_text()[-3000:]
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=180) == 0, log.read_text()[-3000:]
        text = log.read_text()
        assert "stopping ..." in text and "Traceback" not in text
        settings = load_settings("local", overrides)
        assert [s.state for s in status(settings)] == [State.STOPPED] * 3
        assert not processes_naming(tmp_path)
    finally:
        if demo.poll() is None:
            demo.kill()
        subprocess.run([str(RTREC), "local", "down", *sets], cwd=ROOT, capture_output=True)
