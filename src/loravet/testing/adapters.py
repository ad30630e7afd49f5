"""Write real PEFT-format LoRA adapters with numpy (no torch): for tests, benchmarks and the static demo.

The files follow the layout PEFT's `save_pretrained` writes: an adapter_config.json with the LoRA config's
keys and an adapter_model.safetensors keyed `base_model.model.<module>.lora_A.weight` / `lora_B.weight`. They
are not byte-compared with PEFT's output (tensor order and safetensors metadata may differ); the demo's
trained adapters are the ones PEFT itself saves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from loravet.base.architecture import LINEAR, BaseArchitecture

__all__ = ["lora_config_dict", "write_synthetic_adapter"]


def lora_config_dict(
    base: str,
    r: int,
    alpha: float,
    targets: Sequence[str] | str,
    dropout: float = 0.05,
    task_type: str = "CAUSAL_LM",
    **extra: Any,
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": base,
        "bias": "none",
        "eva_config": None,
        "exclude_modules": None,
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": alpha,
        "lora_bias": False,
        "lora_dropout": dropout,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None,
        "peft_type": "LORA",
        "peft_version": "0.17.1",
        "r": r,
        "rank_pattern": {},
        "revision": None,
        "target_modules": list(targets) if not isinstance(targets, str) else targets,
        "task_type": task_type,
        "trainable_token_indices": None,
        "use_dora": False,
        "use_rslora": False,
    }
    cfg.update(extra)
    return cfg


def write_synthetic_adapter(
    folder: Path,
    arch: BaseArchitecture,
    config: dict[str, Any],
    *,
    seed: int = 0,
    zero_b: bool = False,
    layers: Sequence[int] | None = None,
    dtype: str = "float32",
    scale: float = 0.02,
) -> Path:
    """Adapter for `arch` with the config's targets and rank; B random unless `zero_b`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    targets = config["target_modules"]
    r = int(config["r"])
    tensors: dict[str, np.ndarray] = {}
    for mod in arch.modules:
        if mod.kind != LINEAR or not mod.name or mod.name == arch.output_embedding:
            continue
        leaf = mod.name.rsplit(".", 1)[-1]
        if leaf not in targets:
            continue
        if layers is not None:
            parts = mod.name.split(".")
            idx = next((int(p) for p in parts if p.isdigit()), None)
            if idx is None or idx not in layers:
                continue
        key = f"base_model.model.{mod.name}"
        a = rng.standard_normal((r, mod.in_features or 0)).astype(dtype) * np.asarray(scale, dtype=dtype)
        if zero_b:
            b = np.zeros((mod.out_features or 0, r), dtype=dtype)
        else:
            b = rng.standard_normal((mod.out_features or 0, r)).astype(dtype) * np.asarray(scale, dtype=dtype)
        tensors[f"{key}.lora_A.weight"] = np.ascontiguousarray(a)
        tensors[f"{key}.lora_B.weight"] = np.ascontiguousarray(b)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return folder
