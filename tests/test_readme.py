"""Every `loravet ...` command and the Python snippet in the README run, on the folders they name."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme_fixture import build_readme_fixture

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)[2:]  # the two setup commands run elsewhere
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip().startswith("loravet ")]


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    return build_readme_fixture(tmp_path_factory.mktemp("readme"))


def test_readme_has_examples() -> None:
    cmds = _commands()
    assert any(c.startswith("loravet check") for c in cmds)
    assert any(c.startswith("loravet compare") for c in cmds)
    assert any(c.startswith("loravet eval") for c in cmds)


@pytest.mark.parametrize("command", _commands())
def test_readme_command_runs(fixture_dir: Path, command: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-c", command], cwd=fixture_dir, capture_output=True, text=True, env=env,
                          timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_readme_python_snippet(fixture_dir: Path) -> None:
    snippet = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    cwd = os.getcwd()
    os.chdir(fixture_dir)
    try:
        scope: dict[str, object] = {}
        exec(compile(snippet, "README.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    report = scope["report"]
    assert report.comparison["preferred"] == "jigsaw-qwen-fold3"  # type: ignore[attr-defined]
