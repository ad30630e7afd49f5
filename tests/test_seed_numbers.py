"""The seed's numbers, computed: both adapters have exactly 2,179,072 parameters on Qwen2.5-1.5B."""

from __future__ import annotations

from pathlib import Path

import loravet
from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter


def test_seed_adapters_exact_parameters_and_sizes(tmp_path: Path) -> None:
    entry = lookup_catalog("Qwen/Qwen2.5-1.5B-Instruct")
    assert entry is not None
    arch = catalog_architecture(entry)
    a = write_synthetic_adapter(tmp_path / "mahmoud", arch,
                                lora_config_dict("Qwen/Qwen2.5-1.5B-Instruct", 16, 32, ["q_proj", "v_proj"]))
    b = write_synthetic_adapter(tmp_path / "fold3", arch, lora_config_dict(
        "Qwen/Qwen2.5-1.5B-Instruct-GPTQ-Int4", 8, 16, ["q_proj", "v_proj", "k_proj", "o_proj"], dropout=0.1))
    report = loravet.check([str(a), str(b)])
    ra, rb = report.adapters
    # r=16 on q (1536->1536) and v (1536->256): 28 * (16*(1536+1536) + 16*(1536+256)) = 2,179,072
    assert ra.trainable_params == rb.trainable_params == 2_179_072
    assert ra.weights and 8.7e6 < ra.weights["bytes"] < 8.8e6
    assert ra.scaling == rb.scaling == 2.0
    assert ra.load_outcome == rb.load_outcome == "loads"
    # the GPTQ base resolves to the same shapes: no mismatch
    assert rb.base and rb.base["quantization"] == "gptq"
    assert not rb.finding("shape-mismatch")
