"""Real tiny models and real PEFT adapters for tests, and the ground truth of what PEFT does."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=128, max_position_embeddings=64)


def build_base(folder: Path, model_type: str = "qwen2", head: str = "causal", seed: int = 0,
               **overrides: Any) -> Path:
    """Save a tiny random model of `model_type` (head: causal, seq_cls, or bare `*Model`) to `folder`."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(seed)
    if model_type == "gpt2":
        kw: dict[str, Any] = dict(n_embd=32, n_layer=2, n_head=4, vocab_size=128, n_positions=64)
    elif model_type == "bert":
        kw = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=128,
                  max_position_embeddings=64)
    else:
        kw = dict(SMALL)
    kw.update(overrides)
    cfg = AutoConfig.for_model(model_type, **kw)
    cfg.pad_token_id = 0
    cls = {"seq_cls": AutoModelForSequenceClassification, "bare": AutoModel}.get(head, AutoModelForCausalLM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls.from_config(cfg)
        model.save_pretrained(folder, safe_serialization=True)
    return folder


def load_base(folder: Path) -> Any:
    """The base loaded as saved: its `architectures` class (a bare `*Model` stays bare)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    cfg = AutoConfig.from_pretrained(folder)
    arch = (cfg.architectures or [""])[0]
    if arch.endswith("ForSequenceClassification"):
        cls: Any = AutoModelForSequenceClassification
    elif arch.endswith("Model") and not arch.endswith("LMHeadModel"):
        cls = AutoModel
    else:
        cls = AutoModelForCausalLM
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.from_pretrained(folder).eval()


def make_adapter(base_folder: Path, out: Path, seed: int = 1, zero_b: bool = False, keep: tuple[str, ...] = (),
                 **lora_kwargs: Any) -> Path:
    """Train-free but real: get_peft_model on the base, random nonzero weights, save_pretrained. Parameters
    whose name contains an entry of `keep` stay at PEFT's own initialisation."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = load_base(base_folder)
    lora_kwargs.setdefault("r", 4)
    lora_kwargs.setdefault("lora_alpha", 8)
    if "target_modules" not in lora_kwargs:
        lora_kwargs["target_modules"] = ["q_proj", "v_proj"]
    config = LoraConfig(**lora_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if any(k in name for k in keep):
                continue
            if "lora_" in name or "modules_to_save" in name:
                if zero_b and ("lora_B" in name or "lora_embedding_B" in name):
                    p.zero_()
                else:
                    p.copy_(torch.randn_like(p) * 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model.save_pretrained(out)
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(base_folder)
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return out


def edit_weights(adapter: Path, fn: Any) -> None:
    path = adapter / "adapter_model.safetensors"
    sd = load_file(path)
    sd = fn(dict(sd))
    save_file({k: v.contiguous() for k, v in sd.items()}, path)


def edit_config(adapter: Path, **changes: Any) -> None:
    path = adapter / "adapter_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg, indent=2))


@dataclass
class Truth:
    outcome: str
    matched: int | None = None
    missing: int | None = None
    unexpected: int | None = None
    error: str | None = None


def _inputs(model: Any) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    ids = torch.randint(1, 100, (2, 7))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def peft_truth(base_folder: Path, adapter: Path) -> Truth:
    """Run real PeftModel.from_pretrained and observe: raise -> fails; else compare outputs and keys."""
    from peft import PeftModel
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    reference = load_base(base_folder)
    model = load_base(base_folder)
    torch.manual_seed(7)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peft_model = PeftModel.from_pretrained(model, str(adapter))
    except Exception as exc:  # any raise is "fails"
        return Truth("fails", error=f"{type(exc).__name__}: {str(exc)[:200]}")
    peft_model.eval()
    inputs = _inputs(model)
    with torch.no_grad():
        ref = reference(**inputs)[0]
        out = peft_model(**inputs)[0]
    changed = not torch.equal(ref, out)
    # keys, counted exactly as SPEC defines them, from a second load of the same weights
    weights = load_peft_weights(str(adapter), device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = set_peft_model_state_dict(peft_model, weights)
    missing = [k for k in result.missing_keys
               if ".default" in k and ("lora_" in k or "modules_to_save" in k)]
    unexpected = list(result.unexpected_keys)
    matched = len(weights) - len(unexpected)
    if not changed:
        outcome = "inert"
    elif missing or unexpected:
        outcome = "partial"
    else:
        outcome = "loads"
    return Truth(outcome, matched, len(missing), len(unexpected))


def meta_model(config: Any) -> Any:
    """The transformers model of `config` on the meta device: real module tree, no weights."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoModelForCausalLM.from_config(config)


def meta_adapter(config: Any, out: Path, base_name: str, seed: int = 1, **lora_kwargs: Any) -> Path:
    """A LoRA adapter whose tensors have exactly the shapes real PEFT creates on `config` (random values)."""
    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(meta_model(config), LoraConfig(**lora_kwargs))
        out.mkdir(parents=True, exist_ok=True)
        peft_model.peft_config["default"].save_pretrained(out)
        state = get_peft_model_state_dict(peft_model, save_embedding_layers=False)
    save_file({k: torch.randn(tuple(v.shape)) * 0.5 for k, v in state.items()}, out / "adapter_model.safetensors")
    edit_config(out, base_model_name_or_path=base_name)
    return out


def meta_truth(config: Any, adapter: Path) -> Truth:
    """Real PeftModel.from_pretrained on the meta-device base: raises -> fails; else PEFT's own key result.
    (Values are random and nonzero, so a load where every key lands changes the output.)"""
    from peft import PeftModel

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peft_model = PeftModel.from_pretrained(meta_model(config), str(adapter), low_cpu_mem_usage=True)
            result = peft_model.load_adapter(str(adapter), adapter_name="probe", low_cpu_mem_usage=True)
    except Exception as exc:  # any raise is "fails"
        return Truth("fails", error=f"{type(exc).__name__}: {str(exc)[:200]}")
    missing = [k for k in result.missing_keys if ".probe" in k and "lora_" in k]
    unexpected = list(result.unexpected_keys)
    return Truth("partial" if missing or unexpected else "loads", None, len(missing), len(unexpected))
