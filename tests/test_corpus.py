"""Every real-world file in ../shared/adapter-corpus is understood or gets a specific message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import loravet
from loravet.testing.cli import cli_json


def _configs(shared: Path) -> list[Path]:
    return sorted((shared / "adapter-corpus" / "configs").glob("*.json"))


def test_every_corpus_config_is_understood(shared: Path, tmp_path: Path) -> None:
    for cfg in _configs(shared):
        folder = tmp_path / cfg.stem
        folder.mkdir()
        shutil.copy(cfg, folder / "adapter_config.json")
        report = loravet.check([str(folder)])
        a = report.adapters[0]
        codes = {f.code for f in a.findings}
        if a.peft_type == "LORA":
            # config-only snapshots: PEFT would raise for the missing weights when the base is known
            assert "weights-file-missing" in codes, (cfg.name, codes)
            assert a.load_outcome in ("fails", "unknown"), (cfg.name, a.load_outcome)
            if a.load_outcome == "unknown":
                assert "base-unresolved" in codes, cfg.name
        else:
            assert "unsupported-adapter-type" in codes, (cfg.name, codes)
            assert a.load_outcome == "unknown"
        for f in a.findings:
            assert f.message and len(f.message) < 600


@pytest.mark.parametrize("folder,outcome,keys,params,traced", [
    ("MuzammelMokhtar__HIGH-PERFORMANCE-INFERENCE-ENGINE-USING-QWEN-2.5__lora_adapter", "loads",
     {"matched": 96, "missing": 0, "unexpected": 0, "shape_mismatch": 0}, 540_672, "Qwen/Qwen2.5-0.5B-Instruct"),
    ("stathopoan__Apply-Lightweight-Fine-Tuning-to-a-Foundation-LLM-Model__lora_model", "loads",
     {"matched": 25, "missing": 0, "unexpected": 0, "shape_mismatch": 0}, 299_520, "openai-community/gpt2"),
    ("deepbiolab__gpt2-classification-peft__peft_model", "loads",
     {"matched": 73, "missing": 0, "unexpected": 0, "shape_mismatch": 0}, 812_544, "openai-community/gpt2"),
])
def test_real_weight_files(shared: Path, folder: str, outcome: str, keys: dict[str, int], params: int,
                           traced: str) -> None:
    rc, data = cli_json("check", str(shared / "adapter-corpus" / "weights" / folder), "--fail-on", "never")
    a = data["adapters"][0]
    assert rc == 0
    assert a["load_outcome"] == outcome
    assert a["keys"] == keys
    assert a["trainable_params"] == params
    assert a["architecture"]["best_match"] == traced


@pytest.mark.parametrize("folder,fragment", [
    ("BK7195__deltacompression-poc__adapter", "cyberagent/open-calm-1b"),
    ("Hareshjethani__BERT-GPT2-Multitask-Finetuning__root", "bert-base-uncased"),
])
def test_bases_outside_the_catalog_are_said_plainly(shared: Path, folder: str, fragment: str) -> None:
    _rc, data = cli_json("check", str(shared / "adapter-corpus" / "weights" / folder))
    a = data["adapters"][0]
    assert a["load_outcome"] == "unknown"
    f = next(f for f in a["findings"] if f["code"] == "base-unresolved")
    assert fragment in f["message"]
    assert a["trainable_params"] > 0 and a["weights"]["tensors"] > 0


def test_bert_corpus_adapter_on_a_local_bert_base(shared: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from loravet.testing.models import build_base

    base = build_base(tmp_path / "bert", "bert", head="seq_cls", hidden_size=768, num_hidden_layers=12,
                      num_attention_heads=12, intermediate_size=3072, vocab_size=30522,
                      max_position_embeddings=512)
    _rc, data = cli_json("check", str(shared / "adapter-corpus" / "weights" /
                                     "Hareshjethani__BERT-GPT2-Multitask-Finetuning__root"), "--base", str(base))
    a = data["adapters"][0]
    assert a["load_outcome"] == "loads", a["findings"]
    assert a["keys"]["matched"] == 50
