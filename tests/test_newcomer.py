"""The README's first command, exactly as written, in a fresh virtual environment on a clean clone.

Slow (it installs everything and runs the real demo); .ci/run runs it. Set LORAVET_SKIP_NEWCOMER=1 to skip
it locally."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [b.strip() for b in blocks[:2]]


def test_readme_has_two_setup_commands() -> None:
    first, second = readme_commands()
    assert "pip install torch==2.13.0" in first and "loravet demo" in first and "\n" not in first
    assert "pytest" in second
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in ci and "python -m pytest" in second


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("LORAVET_SKIP_NEWCOMER") == "1", reason="LORAVET_SKIP_NEWCOMER=1")
@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None, reason="needs the git checkout")
def test_readme_first_command_in_a_fresh_venv(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    first, _ = readme_commands()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    env["LORAVET_CACHE"] = str(tmp_path / "cache")  # no model converted before
    start = time.perf_counter()
    proc = subprocess.run(["bash", "-c", first], cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = clone / "loravet-demo" / "report.html"
    assert report.exists()
    html = report.read_text()
    for name in ("jigsaw-smollm-fold0", "reddit-360m-think", "blank-adapter", "pickled-adapter"):
        assert name in html
    print(f"README first command: {seconds:.0f} s")
