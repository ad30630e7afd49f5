"""The README, as a user runs it: every example command runs on the folders `loravet demo` creates, every
output block is exactly what its command prints, and the notebook snippet runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loravet.testing.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SETUP = ("python3 -m venv", ". .venv/bin/activate && python -m pytest")
PLACEHOLDER = "./my-adapter"  # the headline command names the user's own folder


def _bash_blocks() -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", README, re.S)]


def _commands() -> list[str]:
    return [line.strip() for b in _bash_blocks() if not b.startswith(SETUP) for line in b.splitlines()
            if line.strip().startswith("loravet ") and PLACEHOLDER not in line]


def _output_blocks() -> list[tuple[str, str]]:
    """(command, expected output): a ```bash block of one command followed by a ```text block."""
    return [(cmd.strip(), out) for cmd, out in re.findall(r"```bash\n([^\n]*)\n```\s*\n```text\n(.*?)```", README,
                                                          re.S)]


def _param(command: str) -> object:
    slow = command.startswith("loravet eval")  # runs a real model: the slow tier
    return pytest.param(command, marks=[pytest.mark.slow] if slow else [], id=command[:70])


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `loravet demo --static loravet-demo` leaves in the user's working directory."""
    cwd = tmp_path_factory.mktemp("readme")
    proc = run_cli("demo", "--static", "loravet-demo", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "120", "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


def test_readme_has_examples_and_outputs() -> None:
    cmds = _commands()
    for verb in ("inspect", "check", "compare", "eval", "explain"):
        assert any(c.startswith(f"loravet {verb}") for c in cmds), verb
    assert len(_output_blocks()) >= 2
    assert "../shared" not in README and "SPEC" not in README


def test_readme_links_stay_inside_the_repository() -> None:
    for target in re.findall(r"\]\(([^)]+)\)", README):
        assert not target.startswith(("http", "/", "..")), target
        assert (ROOT / target).exists(), target


@pytest.mark.parametrize("command", [_param(c) for c in _commands()])
def test_readme_command_runs(demo_dir: Path, command: str) -> None:
    if command.startswith("loravet eval"):
        pytest.importorskip("transformers")
        from loravet.demo.base_model import demo_base

        link = demo_dir / "loravet-demo" / "base"  # what the full demo links; --static has no model
        if not link.exists():
            link.symlink_to(demo_base()[0].resolve(), target_is_directory=True)
    proc = subprocess.run(["bash", "-c", command], cwd=demo_dir, capture_output=True, text=True, env=_env(),
                          timeout=900)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    written = re.search(r"-o (\S+)", command)
    if written:
        assert (demo_dir / written.group(1)).stat().st_size > 0
    else:
        assert proc.stdout.strip()


@pytest.mark.parametrize("command,expected", _output_blocks(), ids=lambda v: str(v)[:60])
def test_readme_output_blocks_are_what_the_commands_print(demo_dir: Path, command: str, expected: str) -> None:
    proc = subprocess.run(["bash", "-c", command], cwd=demo_dir, capture_output=True, text=True, env=_env(),
                          timeout=300)
    printed = [line.rstrip() for line in proc.stdout.rstrip("\n").splitlines()]
    assert printed == [line.rstrip() for line in expected.rstrip("\n").splitlines()]


def test_readme_python_snippet(demo_dir: Path) -> None:
    snippet = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    cwd = os.getcwd()
    os.chdir(demo_dir)
    try:
        scope: dict[str, object] = {}
        exec(compile(snippet, "README.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    data = scope["data"]
    assert isinstance(data, dict)
    # the impostor fails on its base: the usable fold is the one to depend on
    assert data["comparison"]["preferred"] == "jigsaw-smollm-fold0"
