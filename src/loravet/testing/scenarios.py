"""Scenarios of adapter folders built from synthetic weights (no training, no torch): the static demo's (k-fold
siblings published with their splits, an impostor, an inert adapter, one carrying a harmless, never executed
malicious pickle) and the seed document's at full size. `loravet demo --static` builds the first; tests,
benchmarks and the docs scripts build both from here."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.checks.provenance import normalise_text
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter
from loravet.testing.data import generate_rows, write_csv
from loravet.testing.hostile import write_malicious_bin

__all__ = [
    "CANARY",
    "DEMO_BASE",
    "build_seed_scenario",
    "build_static_scenario",
    "grouped_kfold",
    "model_card",
    "write_split",
]

CANARY = "CANARY-if-this-exists-a-pickle-ran"
DEMO_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
IMPOSTOR_SHAPES = "HuggingFaceTB/SmolLM2-360M-Instruct"


def grouped_kfold(texts: Sequence[str], k: int, seed: int = 0) -> list[int]:
    """Fold index per row; rows with the same normalised text always share a fold."""
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        groups.setdefault(normalise_text(t), []).append(i)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    sizes = [0] * k
    fold_of = [0] * len(texts)
    for key in sorted(keys, key=lambda g: -len(groups[g])):
        f = min(range(k), key=lambda j: sizes[j])
        for i in groups[key]:
            fold_of[i] = f
        sizes[f] += len(groups[key])
    return fold_of


def write_split(rows: list[dict[str, Any]], path: Path) -> Path:
    """A DataFrame pickle when pandas is installed (as Kaggle authors publish them), else CSV."""
    try:
        import pandas as pd
    except ImportError:
        return write_csv(rows, path.with_suffix(".csv"))
    pd.DataFrame(rows).to_pickle(path)
    return path


def model_card(base: str, body: str) -> str:
    return f"---\nbase_model: {base}\nlibrary_name: peft\n---\n\n{body}\n"


def build_static_scenario(root: Path, rows: int = 180, folds: int = 3, seed: int = 0) -> dict[str, Any]:
    """Adapters with synthetic weights (no training) around the catalog's SmolLM2-135M-Instruct."""
    adapters_dir = root / "adapters"
    adapters_dir.mkdir(parents=True, exist_ok=True)
    data = generate_rows(rows, seed=seed)
    entry = lookup_catalog(DEMO_BASE)
    impostor_entry = lookup_catalog(IMPOSTOR_SHAPES)
    assert entry is not None and impostor_entry is not None
    arch = catalog_architecture(entry)
    fold_of = grouped_kfold([r["body"] for r in data], folds, seed)
    names: list[str] = []
    for f in range(folds):
        folder = adapters_dir / f"jigsaw-smollm-fold{f}"
        cfg = lora_config_dict(DEMO_BASE, 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj"], dropout=0.1)
        write_synthetic_adapter(folder, arch, cfg, seed=100 + f)
        write_split([r for r, g in zip(data, fold_of, strict=True) if g != f], folder / "train.pkl")
        write_split([r for r, g in zip(data, fold_of, strict=True) if g == f], folder / "val.pkl")
        (folder / "trainer_state.json").write_text(
            json.dumps(
                {
                    "global_step": 40,
                    "epoch": 1.0,
                    "log_history": [{"step": s, "loss": round(0.7 - 0.01 * s, 4)} for s in range(5, 41, 5)],
                },
                indent=1,
            )
        )
        (folder / "README.md").write_text(model_card(DEMO_BASE, f"Fold {f} of a {folds}-fold grouped split."))
        names.append(folder.name)
    impostor = adapters_dir / "reddit-360m-think"
    write_synthetic_adapter(
        impostor,
        catalog_architecture(impostor_entry),
        lora_config_dict(DEMO_BASE, 16, 32, ["q_proj", "v_proj"], dropout=0.05),
        seed=7,
    )
    blank = adapters_dir / "blank-adapter"
    write_synthetic_adapter(blank, arch, lora_config_dict(DEMO_BASE, 8, 16, ["q_proj", "v_proj"]), seed=8, zero_b=True)
    (blank / "README.md").write_text(model_card(DEMO_BASE, "## Training Details\n\nTrained for 3 epochs, lr 2e-4."))
    pickled = adapters_dir / "pickled-adapter"
    pickled.mkdir(exist_ok=True)
    (pickled / "adapter_config.json").write_text(
        json.dumps(lora_config_dict(DEMO_BASE, 8, 16, ["q_proj", "v_proj"]), indent=2)
    )
    canary = root / CANARY
    write_malicious_bin(pickled / "adapter_model.bin", canary)
    seen = {normalise_text(r["body"]) for r in data}
    fresh = [r for r in generate_rows(rows, seed=seed + 1000) if normalise_text(r["body"]) not in seen]
    holdout = write_csv(fresh[: max(12, rows // 6)], root / "holdout.csv")
    digest = hashlib.sha256(json.dumps(data[:5]).encode()).hexdigest()[:12]
    return {
        "adapters": [*(adapters_dir / n for n in names), impostor, blank, pickled],
        "canary": canary,
        "holdout": holdout,
        "base": DEMO_BASE,
        "data_digest": digest,
    }


SEED_NAMED = "Qwen/Qwen2.5-1.5B-Instruct"
SEED_GPTQ = "Qwen/Qwen2.5-1.5B-Instruct-GPTQ-Int4"


def build_seed_scenario(root: Path, rows: list[dict[str, Any]], folds: int = 5, seed: int = 42) -> list[Path]:
    """The seed document's situation at full size: "reddit-4b-think" (config names Qwen2.5-1.5B, tensors
    shaped for a 36-layer Qwen3-4B, no artifacts) and k-fold "jigsaw-qwen-foldN" siblings on the GPTQ base
    with train/val pickles from a grouped split of `rows` (ACRC schema)."""
    impostor_entry, named_entry = lookup_catalog("Qwen/Qwen3-4B"), lookup_catalog(SEED_NAMED)
    assert impostor_entry is not None and named_entry is not None
    impostor = write_synthetic_adapter(
        root / "reddit-4b-think",
        catalog_architecture(impostor_entry),
        lora_config_dict(SEED_NAMED, 16, 32, ["q_proj", "v_proj"], dropout=0.05),
        seed=4,
    )
    fold_of = grouped_kfold([r["body"] for r in rows], folds, seed=seed)
    out = [impostor]
    for f in range(folds):
        folder = write_synthetic_adapter(
            root / f"jigsaw-qwen-fold{f}",
            catalog_architecture(named_entry),
            lora_config_dict(SEED_GPTQ, 8, 16, ["q_proj", "v_proj", "k_proj", "o_proj"], dropout=0.1),
            seed=10 + f,
        )
        write_split([r for r, g in zip(rows, fold_of, strict=True) if g != f], folder / "train.pkl")
        write_split([r for r, g in zip(rows, fold_of, strict=True) if g == f], folder / "val.pkl")
        out.append(folder)
    return out
