"""The folders the README's examples name, built for real so that every README command runs in a test."""

from __future__ import annotations

import os
from pathlib import Path

from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.demo.data import generate_rows, write_csv
from loravet.demo.scenario import build_seed_scenario


def build_readme_fixture(root: Path, with_model: bool = True) -> Path:
    """reddit-4b-think/, jigsaw-qwen-fold0..4/ (seed scenario with generated ACRC-style splits), and for the
    eval example fold0..2/ on SmolLM2-135M-Instruct (./SmolLM2-135M-Instruct) with ./train.csv."""
    root.mkdir(parents=True, exist_ok=True)
    build_seed_scenario(root, generate_rows(300, seed=3))
    write_csv(generate_rows(60, seed=4), root / "train.csv")
    if with_model:
        from loravet.base.resolve import resolve_base
        from loravet.demo.base_model import demo_base
        from loravet.demo.synthetic import lora_config_dict, write_synthetic_adapter

        base, _ = demo_base()
        link = root / "SmolLM2-135M-Instruct"
        if not link.exists():
            os.symlink(base, link)
        arch = resolve_base(str(base)).architecture
        assert arch is not None
        for i in range(3):
            write_synthetic_adapter(root / f"fold{i}", arch, lora_config_dict(str(link), 8, 16,
                                                                               ["q_proj", "v_proj"]), seed=i)
    entry = lookup_catalog("Qwen/Qwen2.5-1.5B-Instruct")
    assert entry is not None and catalog_architecture(entry) is not None
    return root
