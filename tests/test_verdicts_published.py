"""Issue #11, a stranger's inputs: the three wrong definite answers found by feeding the predictor and the
replay adapters the authors did not write (truth: real PeftModel.from_pretrained + a forward pass)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from loravet.testing.models import build_base, load_base
from loravet.testing.peft_truth import peft_truth


def _adapter(base: Path, out: Path, **lora: Any) -> Path:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = get_peft_model(load_base(base), LoraConfig(r=4, lora_alpha=8, **lora))
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if ".default" in n or "modules_to_save" in n:
                    p.copy_(torch.randn_like(p) * 0.3)
        pm.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base)
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return out


def _verdicts(adapter: Path, base: Path) -> tuple[str, str]:
    from loravet.testing.peft_cases import predicted_and_replayed

    pred, repl = predicted_and_replayed(adapter, base)
    return pred.load_outcome, repl.load_outcome


def _never_wrong(adapter: Path, base: Path) -> str:
    truth = peft_truth(base, adapter).outcome
    predicted, replayed = _verdicts(adapter, base)
    assert predicted in (truth, "unknown"), (predicted, truth)
    assert replayed == truth, (replayed, truth)
    return truth


def test_file_keys_that_kept_the_adapter_name(tmp_path: Path) -> None:
    """`lora_A.default.weight` in the file (a hand conversion / older layout): PEFT loads it as is; the
    replay called it inert because it looked the values up without `.default`."""
    base = build_base(tmp_path / "base", "qwen2")
    ad = _adapter(base, tmp_path / "ad", target_modules=["q_proj", "v_proj"])
    path = ad / "adapter_model.safetensors"
    sd = load_file(path)
    save_file({k.replace(".weight", ".default.weight"): v.contiguous() for k, v in sd.items()}, path)
    assert _never_wrong(ad, base) == "loads"


def test_seq_cls_head_of_another_size_than_the_bases(tmp_path: Path) -> None:
    """A 3-label head on a 2-label *ForSequenceClassification base: PEFT raises a size mismatch; the replay
    built the head to fit the file and said loads."""
    trained = build_base(tmp_path / "base3", "bert", num_labels=3)
    base = build_base(tmp_path / "base2", "bert")
    ad = _adapter(trained, tmp_path / "ad", target_modules=["query", "value"], task_type="SEQ_CLS")
    assert _never_wrong(ad, base) == "fails"


@pytest.mark.parametrize("family", ["qwen2", "gpt2"])
def test_causal_lm_task_on_a_bare_model(tmp_path: Path, family: str) -> None:
    """task_type CAUSAL_LM on a base saved as the bare `*Model`: PeftModelForCausalLM raises (no
    prepare_inputs_for_generation); the predictor said inert."""
    trained = build_base(tmp_path / "causal", family)
    bare = build_base(tmp_path / "bare", f"{family}-bare" if family == "qwen2" else "gpt2-bare")
    target = ["q_proj", "v_proj"] if family == "qwen2" else ["c_attn"]
    ad = _adapter(trained, tmp_path / "ad", target_modules=target, task_type="CAUSAL_LM")
    assert _never_wrong(ad, bare) == "fails"


def test_seq_cls_adapter_on_a_causal_base_taken_as_saved(tmp_path: Path) -> None:
    """A SEQ_CLS adapter whose base folder is a *ForCausalLM: loaded as saved, the head tensor lands
    nowhere (partial); the replay built AutoModelForSequenceClassification instead and said loads."""
    trained = build_base(tmp_path / "cls", "qwen2")
    from transformers import AutoConfig, Qwen2ForSequenceClassification

    cfg = AutoConfig.from_pretrained(trained)
    cfg.num_labels = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Qwen2ForSequenceClassification(cfg).save_pretrained(tmp_path / "cls3")
    ad = _adapter(tmp_path / "cls3", tmp_path / "ad", target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS")
    assert _never_wrong(ad, trained) == "partial"


def test_roberta_head_is_classifier_out_proj(tmp_path: Path) -> None:
    """RoBERTa's head ends in `classifier.out_proj`: the replay read no head size from the file, built 2
    labels and said fails for a 3-label adapter that PEFT loads."""
    from transformers import AutoConfig, RobertaForSequenceClassification

    cfg = AutoConfig.for_model("roberta", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, vocab_size=128, max_position_embeddings=64, num_labels=3)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        RobertaForSequenceClassification(cfg).save_pretrained(tmp_path / "base")
    ad = _adapter(tmp_path / "base", tmp_path / "ad", target_modules=["query", "value"], task_type="SEQ_CLS")
    assert _never_wrong(ad, tmp_path / "base") == "loads"
