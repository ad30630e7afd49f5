"""`loravet scan` with worker processes, when the scan's own process is killed outright."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loravet.testing.hub_repos import tiny_qwen2_config, write_adapter_repo
from loravet.testing.hub_server import Fault, HubServer, client_env


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _population(tmp_path: Path, n: int) -> tuple[Path, Path]:
    root = tmp_path / "hub"
    for i in range(n):
        write_adapter_repo(root / "pop" / f"a{i}", "clean", tiny_qwen2_config(), "tiny/qwen2-base", seed=i)
    targets = tmp_path / "targets.txt"
    targets.write_text("".join(f"hf:pop/a{i}\n" for i in range(n)))
    return root, targets


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc to find the worker processes")
def test_a_worker_process_killed_mid_scan_is_replaced_and_every_adapter_checked(tmp_path: Path) -> None:
    """The OOM killer taking one worker ended the whole scan with 'internal error: BrokenProcessPool'."""
    root, targets = _population(tmp_path, 6)
    results = tmp_path / "r.jsonl"
    with HubServer(root, lifetime=120) as hub:
        hub.faults.append(Fault(latency=1.0))
        env = client_env(hub.url, str(tmp_path / "home"))
        args = ["scan", "--from", str(targets), "--results", str(results), "--processes", "2", "--workers", "1"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "loravet.cli", *args, "--format", "json", "--fail-on", "never", "--quiet"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 3 and time.monotonic() < deadline:  # two workers + resource tracker
            time.sleep(0.1)
        time.sleep(1.5)  # the workers are checking their first adapters
        busy = [c for c in _children(proc.pid) if "resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text()]
        os.kill(busy[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["spec"] for r in records) == sorted(targets.read_text().split())
    assert all(r["status"] == "checked" for r in records), [r.get("error") for r in records]
    assert json.loads(out)["checked"] == 6 and "Traceback" not in err and "internal error" not in err


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc to find the worker processes")
def test_worker_processes_exit_when_the_scan_is_killed(tmp_path: Path) -> None:
    """SIGKILL (or the OOM killer) on the scan left its two workers and the resource tracker running for good."""
    root, targets = _population(tmp_path, 4)
    with HubServer(root, lifetime=120) as hub:
        hub.faults.append(Fault(latency=2.0))  # the workers are mid-scan when the kill comes
        env = client_env(hub.url, str(tmp_path / "home"))
        args = ["scan", "--from", str(targets), "--results", str(tmp_path / "r.jsonl"), "--processes", "2"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "loravet.cli", *args, "--workers", "1", "--quiet"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 3 and time.monotonic() < deadline:  # two workers + resource tracker
            time.sleep(0.1)
        workers = _children(proc.pid)
        assert len(workers) >= 2, workers
        time.sleep(1.0)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [w for w in workers if _alive(w)]
        for w in left:  # never leave them behind, even when the test fails
            os.kill(w, signal.SIGKILL)
    assert not left, f"orphaned worker processes: {left}"
