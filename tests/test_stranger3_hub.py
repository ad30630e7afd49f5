"""A hub (a mirror, a proxy, HF_ENDPOINT pointed elsewhere) that lists hostile file names in its model info:
loravet refuses the repository in one line and writes nothing outside its cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loravet.testing.cli import run_cli
from loravet.testing.hub_repos import tiny_qwen2_config, write_adapter_repo
from loravet.testing.hub_server import HubServer, client_env


class _HostileNames(HubServer):
    """The local hub, plus one listed file of the given name, whose body any unknown path answers."""

    def __init__(self, root: Path, name: str) -> None:
        super().__init__(root, lifetime=120)
        self.hostile = name

    def _info(self, repo: str, blobs: bool) -> dict[str, Any]:
        info = super()._info(repo, blobs)
        info["siblings"].append({"rfilename": self.hostile, "size": 5, "blobId": "1" * 40})
        return info

    def _answer(self, request: Any, response_cls: Any) -> Any:
        known = ("adapter_config.json", "README.md", ".safetensors")
        if not request.path.startswith("/api/") and not request.path.endswith(known):
            return response_cls(b"pwned")
        return super()._answer(request, response_cls)


@pytest.mark.parametrize("kind", ["dot-dot", "absolute", "backslash"])
def test_a_hostile_file_name_is_refused_and_nothing_is_written_outside_the_cache(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "hub"
    write_adapter_repo(root / "eve" / "a", "clean", tiny_qwen2_config(), "tiny/qwen2-base")
    outside = tmp_path / "outside" / "escaped.json"
    name = {
        "dot-dot": "../../../../../outside/escaped.json",  # from HF_HOME/hub/models--eve--a/snapshots/<sha>
        "absolute": str(outside),
        "backslash": "..\\..\\escaped.json",
    }[kind]
    with _HostileNames(root, name) as hub:
        env = client_env(hub.url, str(tmp_path / "home"))
        proc = run_cli("check", "hf:eve/a", "--format", "json", env=env)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.strip().count("\n") == 0 and "hf:eve/a" in proc.stderr and "refused" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not outside.exists() and not list(tmp_path.rglob("escaped.json"))
