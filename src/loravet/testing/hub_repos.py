"""Generated hub repositories for the local hub (tests and benchmarks): a small random-weight base and
adapters of the kinds an audit meets (clean, wrong base, inert, unsafe pickle, huge weight file)."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from loravet.base.architecture import BaseArchitecture
from loravet.base.rules import architecture_from_config
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter

__all__ = ["KINDS", "tiny_qwen2_config", "write_adapter_repo", "write_base_repo"]

KINDS = ("clean", "wrong-base", "inert", "unsafe-pickle", "huge")


def tiny_qwen2_config(layers: int = 2, hidden: int = 64, name: str = "tiny/qwen2-base") -> dict[str, Any]:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 256,
        "max_position_embeddings": 512,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "rms_norm_eps": 1e-6,
        "_name_or_path": name,
    }


def _arch(cfg: dict[str, Any], name: str) -> BaseArchitecture:
    return architecture_from_config(cfg, name, "local")


def write_base_repo(folder: Path, cfg: dict[str, Any], *, seed: int = 0) -> Path:
    """config.json + model.safetensors of random float32 weights (as transformers saves them)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    arch = _arch(cfg, str(cfg.get("_name_or_path", "base")))
    rng = np.random.default_rng(seed)
    tensors = {
        k: (rng.standard_normal(s).astype(np.float32) * 0.02)
        for k, s in arch.state_dict_shapes().items()
        if not (cfg.get("tie_word_embeddings") and k == "lm_head.weight")
    }
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def _torch_zip_with_payload(path: Path, module: str, name: str) -> None:
    """A torch-style zip (archive/data.pkl) whose pickle calls module.name("echo"): bytes written by hand,
    never executed by anyone (loravet only scans them)."""
    arg = b"echo"
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X" + len(arg).to_bytes(4, "little") + arg + b"\x85R."
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/version", "3\n")


def write_adapter_repo(
    folder: Path,
    kind: str,
    base_cfg: dict[str, Any],
    base_id: str,
    *,
    seed: int = 0,
    wrong_cfg: dict[str, Any] | None = None,
    huge_bytes: int = 0,
    rank: int = 4,
    dtype: str = "float32",
) -> Path:
    """One adapter repository of `kind` (see KINDS) named for `base_id`."""
    shape_cfg = wrong_cfg if kind == "wrong-base" and wrong_cfg is not None else base_cfg
    arch = _arch(shape_cfg, base_id)
    config = lora_config_dict(base_id, rank, 2 * rank, ["q_proj", "v_proj"])
    write_synthetic_adapter(folder, arch, config, seed=seed, zero_b=(kind == "inert"), dtype=dtype)
    (folder / "README.md").write_text(
        f"---\nbase_model: {base_id}\nlibrary_name: peft\n---\n# adapter {folder.name}\n"
        "Trained for 2 epochs with lr 2e-4 on 1,000 rows.\n"
    )
    if kind == "unsafe-pickle":
        _torch_zip_with_payload(folder / "training_args.bin", "os", "system")
    if kind == "huge" and huge_bytes:
        # a torch zip whose tensor data is large
        with zipfile.ZipFile(folder / "optimizer.pt", "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("archive/data.pkl", pickle.dumps({"state": {}, "param_groups": []}, protocol=2))
            with zf.open("archive/data/0", "w", force_zip64=True) as member:
                chunk = b"\0" * (1 << 20)
                left = huge_bytes
                while left > 0:
                    member.write(chunk[: min(left, len(chunk))])
                    left -= len(chunk)
    return folder
