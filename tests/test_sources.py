"""hf:OWNER/NAME through a real huggingface_hub cache layout, offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter

BASE = "Qwen/Qwen2.5-0.5B-Instruct"


def _cache_repo(cache: Path, repo: str, files: Path, commit: str = "a" * 40) -> None:
    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    for f in files.iterdir():
        shutil.copy(f, snap / f.name)


def test_hub_adapter_from_the_cache_offline(tmp_path: Path) -> None:
    entry = lookup_catalog(BASE)
    assert entry is not None
    a = write_synthetic_adapter(tmp_path / "src", catalog_architecture(entry),
                                lora_config_dict(BASE, 4, 8, ["q_proj", "v_proj"]))
    cache = tmp_path / "cache"
    _cache_repo(cache, "someone/qwen-lora-fold2", a)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "loravet.cli", "check", "hf:someone/qwen-lora-fold2",
                           "--format", "json"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    data = json.loads(proc.stdout)["adapters"][0]
    assert data["name"] == "qwen-lora-fold2"
    assert data["source"] == "hf:someone/qwen-lora-fold2"
    assert data["load_outcome"] == "loads"
    assert data["kfold"]["fold"] == 2


def test_hub_adapter_not_cached_offline_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "loravet.cli", "check", "hf:nobody/nothing"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "" and "cache" in proc.stderr


def test_hub_base_config_from_the_cache(tmp_path: Path) -> None:
    pytest = __import__("pytest")
    pytest.importorskip("transformers")
    from loravet.testing.models import build_base
    from loravet.testing.peft_truth import make_adapter

    base = build_base(tmp_path / "base")
    adapter = make_adapter(base, tmp_path / "adapter")
    cache = tmp_path / "cache"
    _cache_repo(cache, "acme/tiny-qwen2", base)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "loravet.cli", "check", str(adapter), "--base", "hf:acme/tiny-qwen2",
                           "--format", "json"], capture_output=True, text=True, env=env, timeout=120)
    import json

    data = json.loads(proc.stdout)["adapters"][0]
    assert data["base"]["name"] == "acme/tiny-qwen2" and data["base"]["source"] == "hub"
    assert data["load_outcome"] == "loads"
