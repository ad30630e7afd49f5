"""The loravet CLI as a user runs it: a fresh `python -m loravet.cli` process, for tests and scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["cli_json", "run_cli"]


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `loravet ARGS` in a subprocess (five minutes at most); its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "loravet.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def cli_json(*args: str) -> tuple[int, dict[str, Any]]:
    """Exit code and parsed JSON of `loravet ARGS --format json`."""
    proc = run_cli(*args, "--format", "json")
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)
