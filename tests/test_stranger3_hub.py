"""A hub (a mirror, a proxy, HF_ENDPOINT pointed elsewhere) that lists hostile file names in its model info:
loravet refuses the repository in one line and writes nothing outside its cache."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
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


class _Rewritten(HubServer):
    """The local hub whose model info is passed through `rewrite` before it is sent."""

    def __init__(self, root: Path, rewrite: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(root, lifetime=120)
        self.rewrite = rewrite

    def _info(self, repo: str, blobs: bool) -> dict[str, Any]:
        info = super()._info(repo, blobs)
        self.rewrite(info)
        return info


def _same_blob_for_all(info: dict[str, Any]) -> None:
    for s in info["siblings"]:
        s["blobId"] = "ab" * 20


def _traversing_commit(info: dict[str, Any]) -> None:
    info["sha"] = "../../../../outside"


@pytest.mark.parametrize(
    ("rewrite", "words"),
    [(_same_blob_for_all, "do not match their listed blob id"), (_traversing_commit, "malformed commit id")],
)
def test_model_info_that_lies_about_ids_is_refused(
    tmp_path: Path, rewrite: Callable[[dict[str, Any]], None], words: str
) -> None:
    """Every file claiming one blob id made the cache link adapter_config.json to another file's bytes (the
    report said 'adapter_config.json is not UTF-8 text'); a commit id of '../..' names paths outside the cache."""
    root = tmp_path / "hub"
    write_adapter_repo(root / "eve" / "a", "clean", tiny_qwen2_config(), "tiny/qwen2-base")
    home = tmp_path / "home"
    with _Rewritten(root, rewrite) as hub:
        proc = run_cli("check", "hf:eve/a", "--format", "json", env=client_env(hub.url, str(home)))
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.strip().count("\n") == 0 and words in proc.stderr, proc.stderr
    ref = home / "hub" / "models--eve--a" / "refs" / "main"  # what a later HF_HUB_OFFLINE=1 run would follow
    assert not ref.exists() or re.fullmatch(r"[0-9a-f]{40}", ref.read_text()), ref.read_text()


def test_an_lfs_file_named_by_its_sha256_is_accepted(tmp_path: Path) -> None:
    """The real hub names an LFS file's blob by the sha256 of its bytes: that id checks out and is kept."""
    root = tmp_path / "hub"
    folder = write_adapter_repo(root / "eve" / "a", "clean", tiny_qwen2_config(), "tiny/qwen2-base")
    weights = folder / "adapter_model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()

    def as_lfs(info: dict[str, Any]) -> None:
        for s in info["siblings"]:
            if s["rfilename"] == weights.name:
                s["lfs"] = {"sha256": digest, "size": s["size"], "pointerSize": 134}

    home = tmp_path / "home"
    with _Rewritten(root, as_lfs) as hub:
        proc = run_cli(
            "check", "hf:eve/a", "--format", "json", "--fail-on", "never", env=client_env(hub.url, str(home))
        )
    assert proc.returncode == 0, proc.stderr
    assert (home / "hub" / "models--eve--a" / "blobs" / digest).is_file()


def test_an_adapter_config_over_the_small_file_cap_is_one_line_not_called_missing(tmp_path: Path) -> None:
    """Unfetched, the config was reported 'no adapter_config.json: PEFT cannot build the adapter' (high)."""
    root = tmp_path / "hub"
    write_adapter_repo(root / "eve" / "a", "clean", tiny_qwen2_config(), "tiny/qwen2-base")
    with HubServer(root, lifetime=120) as hub:
        env = {**client_env(hub.url, str(tmp_path / "home")), "LORAVET_HUB_SMALL_CAP": "100"}
        proc = run_cli("check", "hf:eve/a", "--format", "json", env=env)
    assert proc.returncode == 2, proc.stdout
    assert "adapter_config.json" in proc.stderr and "LORAVET_HUB_SMALL_CAP" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


class _Drip(HubServer):
    """The local hub, whose README.md bodies arrive a byte every half second (each read well inside the timeout)."""

    def _answer(self, request: Any, response_cls: Any) -> Any:
        if not request.path.endswith("/README.md"):
            return super()._answer(request, response_cls)
        data = (self.root / "eve" / "a" / "README.md").read_bytes()

        def body() -> Iterator[bytes]:
            for b in data:
                time.sleep(0.5)
                yield bytes([b])

        return response_cls(body(), headers={"Content-Length": str(len(data))}, direct_passthrough=True)


def test_a_body_dripped_slower_than_the_timeout_allows_is_one_line(tmp_path: Path) -> None:
    """The timeout bounded each read, not the body: a 116-byte README at 2 B/s held a check for a minute (with
    LORAVET_HUB_TIMEOUT=2), a safetensors header's 100 kB range would have held it for 14 hours."""
    root = tmp_path / "hub"
    write_adapter_repo(root / "eve" / "a", "clean", tiny_qwen2_config(), "tiny/qwen2-base")
    with _Drip(root, lifetime=120) as hub:
        env = {**client_env(hub.url, str(tmp_path / "home")), "LORAVET_HUB_TIMEOUT": "2"}
        started = time.monotonic()
        proc = run_cli("check", "hf:eve/a", "--format", "json", env=env)
        took = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout
    assert "did not answer within 2 s" in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert took < 30
