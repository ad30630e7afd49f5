"""Provenance: k-fold sibling consistency, base variant vagueness, identical fold weights, GPTQ bases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

import loravet
from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter

BASE = "Qwen/Qwen2.5-0.5B-Instruct"


def _arch():  # type: ignore[no-untyped-def]
    entry = lookup_catalog(BASE)
    assert entry is not None
    return catalog_architecture(entry)


def test_odd_sibling_is_kfold_inconsistent(tmp_path: Path) -> None:
    folds = [write_synthetic_adapter(tmp_path / f"set-fold{i}", _arch(), lora_config_dict(
        BASE, 16 if i == 3 else 8, 16, ["q_proj", "v_proj"]), seed=i) for i in range(4)]
    report = loravet.check([str(f) for f in folds])
    flagged = [a.name for a in report.adapters if a.finding("kfold-inconsistent")]
    assert flagged == ["set-fold3"]


def test_identical_fold_weights_are_flagged(tmp_path: Path) -> None:
    a = write_synthetic_adapter(tmp_path / "x-fold0", _arch(), lora_config_dict(BASE, 8, 16, ["q_proj"]), seed=1)
    b = tmp_path / "x-fold1"
    shutil.copytree(a, b)
    c = write_synthetic_adapter(tmp_path / "x-fold2", _arch(), lora_config_dict(BASE, 8, 16, ["q_proj"]), seed=2)
    report = loravet.check([str(a), str(b), str(c)])
    f = report.adapters[0].finding("fold-overlap")
    assert f is not None and f.evidence["identical_weights"] == ["x-fold0", "x-fold1"]
    assert report.adapters[2].finding("fold-overlap") is None
    assert report.adapters[0].kfold == {"fold": 0, "siblings": ["x-fold1", "x-fold2"]}


def test_generic_base_in_config_but_quantized_in_card(tmp_path: Path) -> None:
    a = write_synthetic_adapter(tmp_path / "a", _arch(), lora_config_dict(BASE, 8, 16, ["q_proj"]))
    (a / "README.md").write_text("---\nbase_model: Qwen/Qwen2.5-0.5B-Instruct-GPTQ-Int4\n---\n\n# card\n")
    f = loravet.check([str(a)]).adapters[0].finding("base-variant-vague")
    assert f is not None and "GPTQ" in f.message


def test_readme_datasets_and_base_model_name_conflicts(tmp_path: Path) -> None:
    a = write_synthetic_adapter(tmp_path / "my-adapter", _arch(), lora_config_dict(BASE, 8, 16, ["q_proj"]))
    (a / "README.md").write_text("---\nbase_model: Qwen/Qwen3-4B\ndatasets:\n- someone/reddit-4b-think\n---\n")
    f = loravet.check([str(a)]).adapters[0].finding("base-name-conflict")
    assert f is not None
    wheres = {c["where"] for c in f.evidence["conflicts"]}
    assert {"model card base_model", "model card datasets"} <= wheres


def test_local_gptq_base_folder_maps_packed_weights_to_logical_shapes(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    base = tmp_path / "gptq-base"
    base.mkdir()
    cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
           "tie_word_embeddings": True,
           "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 32}}
    (base / "config.json").write_text(json.dumps(cfg))
    tensors: dict[str, np.ndarray] = {"model.embed_tokens.weight": np.zeros((100, 64), np.float16),
                                      "model.norm.weight": np.zeros(64, np.float16)}
    dims = {"q_proj": (64, 64), "k_proj": (32, 64), "v_proj": (32, 64), "o_proj": (64, 64),
            "gate_proj": (128, 64), "up_proj": (128, 64), "down_proj": (64, 128)}
    for i in range(2):
        for name, (out_f, in_f) in dims.items():
            part = "self_attn" if name.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp"
            p = f"model.layers.{i}.{part}.{name}"
            tensors[f"{p}.qweight"] = np.zeros((in_f // 8, out_f), np.int32)
            tensors[f"{p}.qzeros"] = np.zeros((in_f // 32, out_f // 8), np.int32)
            tensors[f"{p}.scales"] = np.zeros((in_f // 32, out_f), np.float16)
            tensors[f"{p}.g_idx"] = np.zeros(in_f, np.int32)
            if part == "self_attn" and name != "o_proj":
                tensors[f"{p}.bias"] = np.zeros(out_f, np.float16)
        tensors[f"model.layers.{i}.input_layernorm.weight"] = np.zeros(64, np.float16)
        tensors[f"model.layers.{i}.post_attention_layernorm.weight"] = np.zeros(64, np.float16)
    save_file(tensors, str(base / "model.safetensors"))
    from loravet.base.resolve import resolve_base

    arch = resolve_base(str(base)).architecture
    assert arch is not None and arch.quantization == "gptq"
    q = arch.module("model.layers.0.self_attn.q_proj")
    assert q is not None and q.quantized and (q.in_features, q.out_features) == (64, 64)
    down = arch.module("model.layers.1.mlp.down_proj")
    assert down is not None and (down.in_features, down.out_features) == (128, 64)
    good = write_synthetic_adapter(tmp_path / "good", arch, lora_config_dict(str(base), 4, 8, ["q_proj", "down_proj"]))
    rep = loravet.check([str(good)], base=str(base)).adapters[0]
    assert rep.load_outcome == "loads" and rep.finding("merge-refused") is not None
    dora = write_synthetic_adapter(tmp_path / "dora", arch, lora_config_dict(str(base), 4, 8, ["q_proj"],
                                                                              use_dora=True))
    assert loravet.check([str(dora)], base=str(base)).adapters[0].load_outcome == "fails"


def test_repr_html_for_notebooks(tmp_path: Path) -> None:
    a = write_synthetic_adapter(tmp_path / "a", _arch(), lora_config_dict(BASE, 8, 16, ["q_proj"]), seed=1)
    b = write_synthetic_adapter(tmp_path / "b", _arch(), lora_config_dict(BASE, 8, 16, ["q_proj"]), seed=2,
                                zero_b=True)
    html = loravet.compare([str(a), str(b)])._repr_html_()
    assert "Depend on:" in html and "<table" in html and "<html" not in html


def test_near_duplicates_between_train_and_val(tmp_path: Path) -> None:
    import pandas as pd

    from loravet.checks.leakage import near_duplicates

    base_text = ("Huge sale this weekend at our downtown store with discounts on every phone laptop and tablet "
                 "so come early and bring your friends")
    def grams(t: str) -> set[str]:
        w = t.lower().split()
        return {" ".join(w[i:i + 3]) for i in range(len(w) - 2)}

    q, c = base_text + " today", base_text + " tomorrow"
    expected = round(len(grams(q) & grams(c)) / len(grams(q) | grams(c)), 3)
    assert expected >= 0.8
    assert near_duplicates([q], [c, "nothing alike at all here"]) == [(0, 0, expected)]
    assert near_duplicates([base_text], [base_text.upper()]) == []  # the same text is overlap, not near
    a = write_synthetic_adapter(tmp_path / "a", _arch(), lora_config_dict(BASE, 8, 16, ["q_proj"]))
    pd.DataFrame({"body": [base_text + " tomorrow", "a perfectly ordinary comment about gardening and tomatoes"],
                  "rule_violation": [1, 0]}).to_pickle(a / "train.pkl")
    pd.DataFrame({"body": [base_text + " today", "something else entirely about the weather in spring"],
                  "rule_violation": [1, 0]}).to_pickle(a / "val.pkl")
    report = loravet.check([str(a)]).adapters[0]
    f = report.finding("train-val-near-duplicate")
    assert f is not None and f.evidence["rows"] == 1 and report.finding("train-val-overlap") is None
