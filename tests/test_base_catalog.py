"""The catalog and the rules against real config.json files and transformers' own models."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from loravet.base.catalog import CATALOG, lookup_catalog, parse_model_name
from loravet.base.resolve import resolve_base
from loravet.base.rules import RULE_MODEL_TYPES, architecture_from_config


@pytest.mark.parametrize("file,name", [
    ("Qwen2.5-0.5B-Instruct.json", "Qwen/Qwen2.5-0.5B-Instruct"),
    ("Qwen2.5-1.5B-Instruct.json", "Qwen/Qwen2.5-1.5B-Instruct"),
    ("Qwen2.5-3B.BASE.json", "Qwen/Qwen2.5-3B"),
    ("Qwen2.5-7B.BASE.json", "Qwen/Qwen2.5-7B"),
    ("Qwen2.5-14B.BASE.json", "Qwen/Qwen2.5-14B"),
    ("Qwen2.5-32B.BASE.json", "Qwen/Qwen2.5-32B"),
    ("Qwen3-0.6B.json", "Qwen/Qwen3-0.6B"),
    ("Qwen3-4B.json", "Qwen/Qwen3-4B"),
    ("Qwen3-8B.json", "Qwen/Qwen3-8B"),
])
def test_catalog_matches_real_qwen_configs(shared: Path, file: str, name: str) -> None:
    cfg = json.loads((shared / "base-configs" / file).read_text())
    real = architecture_from_config(cfg, name, "test")
    entry = lookup_catalog(name)
    assert entry is not None, name
    mine = resolve_base(name).architecture
    assert mine is not None
    assert [(m.name, m.params) for m in mine.modules] == [(m.name, m.params) for m in real.modules]


def test_quantized_variants_share_shapes() -> None:
    a = resolve_base("Qwen/Qwen2.5-1.5B-Instruct-GPTQ-Int4").architecture
    b = resolve_base("Qwen/Qwen2.5-1.5B-Instruct").architecture
    assert a is not None and b is not None
    assert a.quantization == "gptq" and b.quantization is None
    assert a.state_dict_shapes() == b.state_dict_shapes()


@pytest.mark.parametrize("text,expected", [
    ("unsloth/qwen2.5-7b-instruct-unsloth-bnb-4bit", ("qwen2.5", "7b", "bnb")),
    ("Qwen/Qwen2.5-1.5B-Instruct-GPTQ-Int4", ("qwen2.5", "1.5b", "gptq")),
    ("reddit-4b-think", (None, "4b", None)),
    ("unsloth/Qwen3-8B-bnb-4bit", ("qwen3", "8b", "bnb")),
    ("jigsaw-qwen-fold3", (None, None, None)),
])
def test_parse_model_name(text: str, expected: tuple[str | None, ...]) -> None:
    assert parse_model_name(text) == expected


def test_vision_language_names_are_not_matched_to_text_models() -> None:
    assert lookup_catalog("Qwen/Qwen2.5-VL-7B-Instruct") is None
    assert lookup_catalog("microsoft/llava-med-v1.5-mistral-7b") is None


def test_windows_path_resolves_by_its_last_component() -> None:
    entry = lookup_catalog("C:\\models-Qwen-del\\Qwen3-0.6B")
    assert entry is not None and entry.name == "Qwen/Qwen3-0.6B"


def test_every_catalog_entry_builds() -> None:
    for entry in CATALOG:
        arch = resolve_base(entry.name).architecture
        assert arch is not None and arch.num_layers == entry.dims[2]


def _tiny(mt: str) -> dict[str, object]:
    base = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=100)
    return {"qwen3": {**base, "head_dim": 32}, "gemma": {**base, "head_dim": 16},
            "gemma2": {**base, "head_dim": 16}, "gemma3_text": {**base, "head_dim": 16},
            "phi3": {**base, "pad_token_id": 0},
            "gpt2": dict(n_embd=64, n_layer=2, n_head=4, vocab_size=100, n_positions=32)}.get(mt, base)


@pytest.mark.parametrize("model_type", sorted(RULE_MODEL_TYPES))
@pytest.mark.parametrize("head", ["causal", "seq_cls"])
def test_rules_reproduce_transformers_named_modules(model_type: str, head: str) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.AutoConfig.for_model(model_type, **_tiny(model_type))
    cfg.pad_token_id = 0
    cls = transformers.AutoModelForSequenceClassification if head == "seq_cls" else transformers.AutoModelForCausalLM
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        model = cls.from_config(cfg)
    d = cfg.to_dict()
    d["architectures"] = [type(model).__name__]
    arch = architecture_from_config(d, model_type, "test")
    real = [(n, type(m).__name__, tuple((k, tuple(v.shape)) for k, v in m.named_parameters(recurse=False)))
            for n, m in model.named_modules()]
    mine = [(m.name, m.type_name, m.params) for m in arch.modules]
    assert mine == real
