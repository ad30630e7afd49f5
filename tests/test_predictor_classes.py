"""Issue #11's wrong-answer classes, each built with real transformers + peft and compared with real PEFT.

Where the predictor answers, it must give PEFT's outcome; where it cannot model a case it answers `unknown`
with a reason (never a false fails / partial / loads)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from loravet import api  # noqa: E402
from loravet.testing.models import build_base  # noqa: E402
from loravet.testing.peft_truth import (  # noqa: E402
    edit_config,
    edit_weights,
    make_adapter,
    meta_adapter,
    meta_truth,
    peft_truth,
)

pytestmark = pytest.mark.peft


def predicted(adapter: Path, base: Path) -> dict[str, Any]:
    """The predictor's own answer (replay=False: where it says unknown, `check` would otherwise replay)."""
    return api.check([str(adapter)], base=str(base), replay=False).to_json()["adapters"][0]


def agrees(adapter: Path, base: Path, expect: str) -> dict[str, Any]:
    """PEFT gives `expect`, and the predictor gives exactly that."""
    truth = peft_truth(base, adapter)
    assert truth.outcome == expect, truth
    got = predicted(adapter, base)
    assert got["load_outcome"] == truth.outcome, (got["load_outcome"], got.get("load_reason"), truth)
    return got


def abstains(adapter: Path, base: Path, expect: str) -> dict[str, Any]:
    """PEFT gives `expect`; the predictor does not claim an outcome (unknown, with its reason)."""
    truth = peft_truth(base, adapter)
    assert truth.outcome == expect, truth
    got = predicted(adapter, base)
    assert got["load_outcome"] == "unknown", (got["load_outcome"], got.get("load_reason"), truth)
    assert got.get("load_reason")
    return got


def codes(report: dict[str, Any]) -> set[str]:
    return {f["code"] for f in report["findings"]}


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bases")
    return {
        "qwen2": build_base(root / "qwen2"),
        "qwen2_bare": build_base(root / "qwen2_bare", head="bare"),
        "gpt2_bare": build_base(root / "gpt2_bare", "gpt2", head="bare"),
        "phi3": build_base(root / "phi3", "phi3", pad_token_id=0),
    }


# class 2: bases saved as a bare *Model class


def test_adapter_on_bare_base_loads(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2_bare"], tmp_path / "bare")
    got = agrees(a, bases["qwen2_bare"], "loads")
    assert got["keys"]["missing"] == 0 and got["keys"]["unexpected"] == 0


def test_gpt2_adapter_on_bare_base_loads(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["gpt2_bare"], tmp_path / "gpt2bare", target_modules=["c_attn"], fan_in_fan_out=True)
    agrees(a, bases["gpt2_bare"], "loads")


def test_causal_lm_adapter_on_bare_base_is_inert(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "causal")
    agrees(a, bases["qwen2_bare"], "inert")


# class 3: LoRA variants the predictor does not model (BD-LoRA, KaSA) are unknown, never fails / partial


def test_bdlora_is_not_a_false_failure(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "bdlora", target_modules=["q_proj", "o_proj"],
                     use_bdlora={"target_modules_bd_a": ["o_proj"], "target_modules_bd_b": ["q_proj"], "nblocks": 2})
    got = abstains(a, bases["qwen2"], "loads")
    assert "use_bdlora" in got["load_reason"]
    assert "config-weights-disagree" not in codes(got)


def test_kasa_is_not_a_false_partial(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "kasa", kasa_config={})
    got = abstains(a, bases["qwen2"], "loads")
    assert "kasa_config" in got["load_reason"]


# class 5: default target modules come from the installed peft (phi3 has none in 0.21)


def test_phi3_without_target_modules_fails(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["phi3"], tmp_path / "phi3", target_modules=["qkv_proj"])
    edit_config(a, target_modules=None)
    got = agrees(a, bases["phi3"], "fails")
    assert "target_modules" in got["load_reason"]


def test_qwen2_without_target_modules_uses_peft_default(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "default")
    edit_config(a, target_modules=None)
    agrees(a, bases["qwen2"], "loads")


# class 6: the safetensors library validates the file


def test_trailing_bytes_fail_like_peft(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "trailing")
    path = a / "adapter_model.safetensors"
    path.write_bytes(path.read_bytes() + b"\x00" * 64)
    got = agrees(a, bases["qwen2"], "fails")
    f = next(f for f in got["findings"] if f["code"] == "unreadable-file")
    assert "64" in f["message"] and "safetensors library" in f["message"]


# class 7: other PEFT types parsed with their own fields; an unknown peft_type fails


def test_ia3_is_unknown_without_lora_noise(bases: dict[str, Path], tmp_path: Path) -> None:
    from peft import IA3Config, get_peft_model

    from loravet.testing.models import load_base

    model = get_peft_model(load_base(bases["qwen2"]), IA3Config(target_modules=["k_proj", "down_proj"],
                                                              feedforward_modules=["down_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ia3_l" in name:
                p.add_(0.5)
    model.save_pretrained(tmp_path / "ia3")
    a = tmp_path / "ia3"
    edit_config(a, base_model_name_or_path=str(bases["qwen2"]))
    got = abstains(a, bases["qwen2"], "loads")
    assert not codes(got) & {"unknown-config-keys", "invalid-config"}, got["findings"]


@pytest.mark.parametrize("peft_type", ["none", "lora", "NOT_A_TYPE"])
def test_unknown_peft_type_fails(bases: dict[str, Path], tmp_path: Path, peft_type: str) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "ptype")
    edit_config(a, peft_type=peft_type)
    got = agrees(a, bases["qwen2"], "fails")
    assert "KeyError" in got["load_reason"]


def test_supertuning_r_null_is_not_invalid(tmp_path: Path) -> None:
    from loravet.adapter.config import parse_adapter_config

    cfg = parse_adapter_config({"peft_type": "SUPERTUNING", "r": None, "target_modules": ["q_proj"],
                                "select_top": 1, "sparsity": 0.5})
    assert cfg.problems == [] and cfg.unknown_keys == []
    rejected = parse_adapter_config({"peft_type": "SUPERTUNING", "r": 0, "target_modules": ["q_proj"]})
    assert rejected.problems  # PEFT's own __post_init__ check, from the snapshot


def test_peft_rejects_what_the_snapshot_says() -> None:
    """Every recorded rejection really raises in the installed PEFT's LoraConfig, and parse flags it."""
    from peft import LoraConfig

    from loravet.adapter.config import parse_adapter_config
    from loravet.adapter.peft_tables import peft_tables

    for rule in peft_tables()["validations"]["LORA"]["rejected"]:
        with pytest.raises((ValueError, TypeError)):
            LoraConfig(**rule["set"])
        cfg = parse_adapter_config({"peft_type": "LORA", **json.loads(json.dumps(rule["set"]))})
        assert cfg.problems, rule


# class 7/8 helpers: inert decided from values where PEFT's init makes them matter


def test_zero_b_with_gaussian_init_missing_is_inert(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "gauss", init_lora_weights="gaussian", zero_b=True)
    agrees(a, bases["qwen2"], "inert")


def test_unknown_init_string_fails(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "badinit")
    edit_config(a, init_lora_weights="true")
    agrees(a, bases["qwen2"], "fails")


def test_pissa_init_is_unknown(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "pissa")
    edit_config(a, init_lora_weights="pissa")
    abstains(a, bases["qwen2"], "loads")


_ = edit_weights


# class 4: base names resolved exactly; a family + size match is a guess, never a fact.
# The bases are transformers' own model trees (meta device) from the public config.json values.

GEMMA_2B = dict(hidden_size=2048, intermediate_size=16384, num_hidden_layers=18, num_attention_heads=8,
                num_key_value_heads=1, head_dim=256, vocab_size=256000)


def test_gemma_2b_is_gemma_1(tmp_path: Path) -> None:
    from transformers import GemmaConfig

    config = GemmaConfig(**GEMMA_2B)
    a = meta_adapter(config, tmp_path / "gemma", "google/gemma-2b", r=1, target_modules=["q_proj", "v_proj"])
    truth = meta_truth(config, a)
    assert truth.outcome == "loads", truth
    got = api.check([str(a)]).to_json()["adapters"][0]
    assert got["load_outcome"] == "loads", got.get("load_reason")
    assert "architecture-mismatch" not in codes(got)
    assert (got["base"]["num_layers"], got["base"]["hidden_size"]) == (18, 2048)


@pytest.mark.parametrize("named,vocab", [("mistralai/Mistral-7B-v0.1", 32000),
                                         ("mistralai/Mistral-7B-Instruct-v0.2", 32000),
                                         ("mistralai/Mistral-7B-Instruct-v0.3", 32768)])
def test_mistral_versions_differ_in_vocab(tmp_path: Path, named: str, vocab: int) -> None:
    from transformers import MistralConfig

    # lm_head only: the outcome does not depend on the layer count, so a 2-layer tree is the same truth
    trained_on = MistralConfig(vocab_size=32000, num_hidden_layers=2)
    a = meta_adapter(trained_on, tmp_path / "mistral", named, r=1, target_modules=["lm_head"])
    truth = meta_truth(MistralConfig(vocab_size=vocab, num_hidden_layers=2), a)
    got = api.check([str(a)]).to_json()["adapters"][0]
    assert got["load_outcome"] == truth.outcome, (got.get("load_reason"), truth)


def test_family_and_size_match_is_a_guess(tmp_path: Path) -> None:
    from transformers import MistralConfig

    a = meta_adapter(MistralConfig(num_hidden_layers=2), tmp_path / "m", "unsloth/mistral-7b-bnb-4bit", r=1,
                     target_modules=["lm_head"])
    got = api.check([str(a)], replay=False).to_json()["adapters"][0]
    assert got["load_outcome"] == "unknown"
    assert "family" in got["load_reason"] and "--base" in got["load_reason"]
    assert got["base"]["guessed_from"] == "unsloth/mistral-7b-bnb-4bit"
    assert "architecture-mismatch" not in codes(got)


# class 8: decisions that need the base's weights: read from its safetensors, else said to be undecidable


def _without_weights(base: Path, dest: Path) -> Path:
    dest.mkdir()
    shutil.copy(base / "config.json", dest / "config.json")
    return dest


@pytest.fixture(scope="module")
def seqcls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("seqcls") / "qwen2_seqcls", head="seq_cls")


def test_dora_zero_b_with_init_magnitude_is_inert(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "dora", use_dora=True, zero_b=True, keep=("lora_magnitude_vector",))
    agrees(a, bases["qwen2"], "inert")
    got = predicted(a, _without_weights(bases["qwen2"], tmp_path / "noweights"))
    assert got["load_outcome"] == "unknown" and "base's weights" in got["load_reason"]


def test_dora_zero_b_with_trained_magnitude_loads(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "dora2", use_dora=True, zero_b=True)
    agrees(a, bases["qwen2"], "loads")


def test_modules_to_save_copy_equal_to_base_is_inert(seqcls: Path, tmp_path: Path) -> None:
    a = make_adapter(seqcls, tmp_path / "mts", task_type="SEQ_CLS", zero_b=True, keep=("modules_to_save",))
    agrees(a, seqcls, "inert")
    got = predicted(a, _without_weights(seqcls, tmp_path / "noweights"))
    assert got["load_outcome"] == "unknown" and "base's weights" in got["load_reason"]


def test_modules_to_save_copy_trained_loads(seqcls: Path, tmp_path: Path) -> None:
    a = make_adapter(seqcls, tmp_path / "mts2", task_type="SEQ_CLS", zero_b=True)
    agrees(a, seqcls, "loads")


# modules_to_save is matched by suffix against every module after LoRA is injected (found by the sweep)


@pytest.mark.parametrize("modules_to_save", [["default"], ["lora_A"], ["q_proj"]])
def test_modules_to_save_hitting_lora_layers_fails(bases: dict[str, Path], tmp_path: Path,
                                                   modules_to_save: list[str]) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "mtslora")
    edit_config(a, modules_to_save=modules_to_save)
    agrees(a, bases["qwen2"], "fails")


def test_all_linear_seq_cls_pre_classifier_fails(tmp_path: Path) -> None:
    base = build_base(tmp_path / "distilbert", "distilbert", head="seq_cls", dim=32, hidden_dim=64,
                      n_layers=2, n_heads=4)
    a = make_adapter(base, tmp_path / "a", target_modules=["q_lin"], task_type="SEQ_CLS")
    edit_config(a, target_modules="all-linear")
    got = agrees(a, base, "fails")
    assert "pre_classifier" in got["load_reason"]


def test_module_named_exactly_skips_the_layer_filter(bases: dict[str, Path], tmp_path: Path) -> None:
    """target_modules entries equal to a full module name bypass layers_to_transform (found by the sweep)."""
    a = make_adapter(bases["qwen2"], tmp_path / "exact", target_modules=["q_proj", "lm_head"],
                     layers_to_transform=[1])
    agrees(a, bases["qwen2"], "loads")
    edit_config(a, target_modules=["lm_head"])
    agrees(a, bases["qwen2"], "partial")  # lm_head still lands; the q_proj tensors now land nowhere


def test_lora_bias_on_embedding_fails(bases: dict[str, Path], tmp_path: Path) -> None:
    a = make_adapter(bases["qwen2"], tmp_path / "lb", lora_bias=True)
    edit_config(a, target_modules=["q_proj", "embed_tokens"])
    agrees(a, bases["qwen2"], "fails")


def test_tied_lm_head_saved_unchanged_is_inert(tmp_path: Path) -> None:
    """GPT-2's lm_head is tied to wte (not saved in the base file): the comparison reads wte."""
    base = build_base(tmp_path / "gpt2", "gpt2")
    a = make_adapter(base, tmp_path / "a", target_modules=["c_attn", "lm_head"], fan_in_fan_out=True, zero_b=True)
    agrees(a, base, "inert")


def test_dora_on_a_zero_row_makes_nan(tmp_path: Path) -> None:
    """DoRA divides by each row's norm: a zero row (the padding row of a tied embedding) gives NaN, so even a
    zero update changes the output (found by the sweep)."""
    base = build_base(tmp_path / "gemma2", "gemma2", head_dim=8)
    a = make_adapter(base, tmp_path / "a", target_modules=["q_proj"], use_dora=True)
    edit_config(a, target_modules=["lm_head"])
    agrees(a, base, "partial")
    edit_config(a, target_modules=["v_proj"])
    agrees(a, base, "inert")
