"""loravet's predicted load_outcome and key counts against what real PEFT does on real tiny models."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from loravet import api  # noqa: E402
from loravet.testing.models import build_base  # noqa: E402
from loravet.testing.peft_truth import edit_config, edit_weights, make_adapter, peft_truth  # noqa: E402

pytestmark = pytest.mark.peft


def predicted(adapter: Path, base: Path) -> dict[str, Any]:
    report = api.check([str(adapter)], base=str(base))
    return report.to_json()["adapters"][0]


def assert_agrees(adapter: Path, base: Path, expect: str | None = None) -> dict[str, Any]:
    truth = peft_truth(base, adapter)
    got = predicted(adapter, base)
    assert got["load_outcome"] == truth.outcome, (got["load_outcome"], truth, got["findings"])
    if truth.outcome != "fails":
        assert got["keys"]["matched"] == truth.matched, (got["keys"], truth)
        assert got["keys"]["missing"] == truth.missing, (got["keys"], truth)
        assert got["keys"]["unexpected"] == truth.unexpected, (got["keys"], truth)
    if expect is not None:
        assert truth.outcome == expect, truth
    return got


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bases")
    return {
        "qwen2": build_base(root / "qwen2"),
        "qwen2_3layers": build_base(root / "qwen2_3layers", num_hidden_layers=3),
        "qwen2_wide": build_base(root / "qwen2_wide", hidden_size=48, num_attention_heads=4, head_dim=12),
        "qwen2_seqcls": build_base(root / "qwen2_seqcls", head="seq_cls"),
        "llama": build_base(root / "llama", "llama"),
        "gpt2": build_base(root / "gpt2", "gpt2"),
        "gpt2_seqcls": build_base(root / "gpt2_seqcls", "gpt2", head="seq_cls"),
        "bert_seqcls": build_base(root / "bert_seqcls", "bert", head="seq_cls"),
    }


def test_clean_adapter_loads(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "clean")
    got = assert_agrees(a, bases["qwen2"], "loads")
    assert got["trainable_params"] == sum(
        t.numel() for t in __import__("safetensors.torch", fromlist=["load_file"]).load_file(
            a / "adapter_model.safetensors").values())


def test_renamed_key_prefix_is_inert(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "renamed")
    edit_weights(a, lambda sd: {k.replace("base_model.model.", "", 1): v for k, v in sd.items()})
    got = assert_agrees(a, bases["qwen2"], "inert")
    codes = {f["code"] for f in got["findings"]}
    assert {"unused-weights", "missing-weights"} <= codes


def test_fewer_layers_than_base_is_partial(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "fewer")
    assert_agrees(a, bases["qwen2_3layers"], "partial")


def test_more_layers_than_base_is_partial(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2_3layers"], tmp_path / "more")
    got = assert_agrees(a, bases["qwen2"], "partial")
    assert any(f["code"] == "unused-weights" for f in got["findings"])


@pytest.mark.parametrize("trained_on,loaded_on", [("qwen2_wide", "qwen2"), ("qwen2", "qwen2_wide")])
def test_hidden_size_mismatch_fails(bases: dict[str, Path], tmp_path: Path, trained_on: str, loaded_on: str) -> None:
    a = make_adapter(bases[trained_on], tmp_path / "width")
    got = assert_agrees(a, bases[loaded_on], "fails")
    assert any(f["code"] == "shape-mismatch" and f["severity"] == "critical" for f in got["findings"])


def test_zero_lora_b_is_inert(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "zero", zero_b=True)
    got = assert_agrees(a, bases["qwen2"], "inert")
    assert any(f["code"] == "zero-update" for f in got["findings"])


def test_config_targets_edited_against_weights(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "targets")
    edit_config(a, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    got = assert_agrees(a, bases["qwen2"], "partial")
    assert any(f["code"] == "config-weights-disagree" for f in got["findings"])


def test_config_rank_edited_against_weights_fails(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "rank")
    edit_config(a, r=8)
    got = assert_agrees(a, bases["qwen2"], "fails")
    codes = {f["code"] for f in got["findings"]}
    assert {"shape-mismatch", "config-weights-disagree"} <= codes


def test_init_false_with_missing_keys_is_partial_and_random(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "initfalse", init_lora_weights=False)
    edit_weights(a, lambda sd: {k: v for k, v in sd.items() if ".layers.1." not in k})
    got = assert_agrees(a, bases["qwen2"], "partial")
    assert any(f["code"] == "random-init-modules" for f in got["findings"])


def test_init_false_missing_everything_changes_output(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "initfalse_all", init_lora_weights=False)
    edit_weights(a, lambda sd: {k.replace("base_model.model.", "x."): v for k, v in sd.items()})
    assert_agrees(a, bases["qwen2"], "partial")


def test_seq_cls_head_on_causal_base_is_partial(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2_seqcls"], tmp_path / "seqcls", task_type="SEQ_CLS")
    got = assert_agrees(a, bases["qwen2"], "partial")
    assert any("score" in t for f in got["findings"] if f["code"] == "unused-weights"
               for t in f["evidence"]["tensors"])


def test_seq_cls_adapter_on_seq_cls_base_loads(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2_seqcls"], tmp_path / "seqcls_ok", task_type="SEQ_CLS")
    assert_agrees(a, bases["qwen2_seqcls"], "loads")


def test_head_saved_without_modules_to_save_overwrites_base(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2_seqcls"], tmp_path / "overwrite", task_type="SEQ_CLS")
    edit_config(a, task_type=None, modules_to_save=None)
    edit_weights(a, lambda sd: {k.replace("score.modules_to_save.default.", "score."): v for k, v in sd.items()})
    got = assert_agrees(a, bases["qwen2_seqcls"], "loads")
    assert any(f["code"] == "base-weights-overwritten" for f in got["findings"])


def test_modules_to_save_missing_from_file_fails(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2_seqcls"], tmp_path / "mts_missing", task_type="SEQ_CLS")
    edit_weights(a, lambda sd: {k: v for k, v in sd.items() if "score" not in k})
    assert_agrees(a, bases["qwen2_seqcls"], "fails")


@pytest.mark.parametrize("kwargs", [
    {"use_dora": True},
    {"use_rslora": True},
    {"rank_pattern": {"v_proj": 2}, "alpha_pattern": {"q_proj": 3}},
    {"layers_to_transform": [1]},
    {"layers_to_transform": [0], "layers_pattern": "layers"},
    {"target_modules": "all-linear"},
    {"target_modules": r".*\.(q_proj|down_proj)"},
    {"target_modules": ["q_proj", "embed_tokens"]},
    {"lora_bias": True},
    {"target_modules": ["q_proj", "v_proj", "up_proj"], "exclude_modules": ["up_proj"]},
])
def test_lora_variants_load(bases: dict[str, Path], tmp_path: Path, kwargs: dict[str, Any]) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "variant", **kwargs)
    assert_agrees(a, bases["qwen2"], "loads")


def test_scaling_zero_is_inert(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "alpha0", lora_alpha=0)
    assert_agrees(a, bases["qwen2"], "inert")


def test_target_not_found_fails(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "notfound")
    edit_config(a, target_modules=["query", "value"])
    got = assert_agrees(a, bases["qwen2"], "fails")
    assert any(f["code"] == "target-not-found" for f in got["findings"])


def test_unsupported_target_type_fails(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "mlp")
    edit_config(a, target_modules=["mlp"])
    assert_agrees(a, bases["qwen2"], "fails")


def test_llama_clean_loads(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["llama"], tmp_path / "llama", target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                          "gate_proj", "up_proj", "down_proj"])
    assert_agrees(a, bases["llama"], "loads")


def test_gpt2_conv1d_fan_in_fan_out(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["gpt2"], tmp_path / "gpt2", target_modules=["c_attn", "c_proj"], fan_in_fan_out=True)
    assert_agrees(a, bases["gpt2"], "loads")


def test_gpt2_seq_cls_with_score(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["gpt2_seqcls"], tmp_path / "gpt2cls", target_modules=["c_attn"], fan_in_fan_out=True,
                     task_type="SEQ_CLS")
    assert_agrees(a, bases["gpt2_seqcls"], "loads")


def test_bert_classifier_via_meta_fallback(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["bert_seqcls"], tmp_path / "bert", target_modules=["query", "value"], task_type="SEQ_CLS")
    assert_agrees(a, bases["bert_seqcls"], "loads")


def test_bert_classifier_missing_layer_is_partial(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["bert_seqcls"], tmp_path / "bert2", target_modules=["query", "value"],
                     task_type="SEQ_CLS")
    edit_weights(a, lambda sd: {k: v for k, v in sd.items() if ".layer.1." not in k})
    assert_agrees(a, bases["bert_seqcls"], "partial")


def test_partial_zero_b_still_loads(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "halfzero")
    edit_weights(a, lambda sd: {k: (v * 0 if ("layers.0" in k and "lora_B" in k) else v) for k, v in sd.items()})
    got = assert_agrees(a, bases["qwen2"], "loads")
    assert any(f["code"] == "zero-update-partial" and f["severity"] == "medium" for f in got["findings"])


def test_dora_zero_b_is_not_inert(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "dorazero", use_dora=True, zero_b=True)
    assert_agrees(a, bases["qwen2"], "loads")


def test_lora_bias_zero_b_weight_is_not_inert(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "biaszero", lora_bias=True)
    edit_weights(a, lambda sd: {k: (v * 0 if k.endswith("lora_B.weight") else v) for k, v in sd.items()})
    assert_agrees(a, bases["qwen2"], "loads")


@pytest.mark.slow
def test_randomised_configs_agree_with_peft(bases: dict[str, Path], tmp_path: Path) -> None:
    rng = random.Random(20261127)
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    base_names = ["qwen2", "qwen2_3layers"]
    outcomes: list[str] = []
    for i in range(24):
        trained = rng.choice(base_names)
        loaded = rng.choice(base_names)
        kwargs: dict[str, Any] = {
            "r": rng.choice([1, 2, 4, 8]),
            "lora_alpha": rng.choice([0, 1, 8, 16]) if rng.random() < 0.9 else 0,
            "target_modules": rng.sample(modules, rng.randint(1, 4)),
            "use_rslora": rng.random() < 0.3,
            "init_lora_weights": rng.random() > 0.2,
        }
        if kwargs["lora_alpha"] == 0 and rng.random() < 0.7:
            kwargs["lora_alpha"] = 8
        if rng.random() < 0.3:
            kwargs["layers_to_transform"] = [rng.randint(0, 1)]
        if rng.random() < 0.2:
            kwargs["use_dora"] = True
        folder = tmp_path / f"rand{i}"
        a = make_adapter(bases[trained], folder, seed=i, zero_b=rng.random() < 0.15, **kwargs)
        mutation = rng.choice(["none", "drop", "extra", "zero_some", "prefix", "edit_targets"])
        if mutation == "drop":
            edit_weights(a, lambda sd: {k: v for j, (k, v) in enumerate(sorted(sd.items())) if j % 3})
        elif mutation == "extra":
            edit_weights(a, lambda sd: {**sd, "base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight":
                                        torch.ones(2, 32)})
        elif mutation == "zero_some":
            edit_weights(a, lambda sd: {k: (v * 0 if "lora_B" in k and "layers.0" in k else v)
                                        for k, v in sd.items()})
        elif mutation == "prefix":
            edit_weights(a, lambda sd: {k.replace("base_model.model.model.", "base_model.model."): v
                                        for k, v in sd.items()})
        elif mutation == "edit_targets":
            cfg = json.loads((a / "adapter_config.json").read_text())
            edit_config(a, target_modules=rng.sample(modules, rng.randint(1, 4)),
                        layers_to_transform=cfg.get("layers_to_transform"))
        outcomes.append(assert_agrees(a, bases[loaded])["load_outcome"])
        shutil.rmtree(folder)
    assert len(set(outcomes)) >= 3, outcomes
