from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

# LORAVET_SHARED points elsewhere (e.g. a folder that does not exist, to see what a plain clone skips)
SHARED = Path(os.environ.get("LORAVET_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
STRICT = os.environ.get("LORAVET_STRICT") == "1"
"""LORAVET_STRICT=1 (set by .ci/run): a test that would skip (../shared absent, no chromium, a missing extra)
fails instead, so that CI cannot pass while checking less than it claims."""


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"LORAVET_STRICT=1 turns this skip into a failure: {reason}"


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loravet.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def cli_json(*args: str) -> tuple[int, dict[str, Any]]:
    proc = run_cli(*args, "--format", "json")
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)
