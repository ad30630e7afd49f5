"""The ground truth of what PEFT does, observed by running the installed peft on real tiny models, and the
real adapters it is observed on (made by peft's own get_peft_model + save_pretrained).

- make_adapter / meta_adapter: a LoRA adapter on a saved tiny base / on a meta-device model of any config;
  edit_weights / edit_config rewrite one afterwards.
- peft_truth: `PeftModel.from_pretrained` on the real model: raises -> fails; else the output against the bare
  base (equal -> inert) and the keys. meta_truth: the same on the meta device (no output, keys only).

The one place tests, benchmarks and scripts get PEFT's answer from. Imports torch, transformers and peft.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from loravet.testing.models import load_base, meta_model

__all__ = [
    "Truth",
    "edit_config",
    "edit_weights",
    "make_adapter",
    "meta_adapter",
    "meta_truth",
    "peft_truth",
    "sample_inputs",
]


def make_adapter(
    base_folder: Path, out: Path, seed: int = 1, zero_b: bool = False, keep: tuple[str, ...] = (), **lora_kwargs: Any
) -> Path:
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
        peft_model.save_pretrained(str(out))
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(base_folder)
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return out


def edit_weights(adapter: Path, fn: Any) -> None:
    """Rewrite the adapter's safetensors through `fn` (a dict of tensors in, a dict out)."""
    path = adapter / "adapter_model.safetensors"
    sd = load_file(path)
    sd = fn(dict(sd))
    save_file({k: v.contiguous() for k, v in sd.items()}, path)


def edit_config(adapter: Path, **changes: Any) -> None:
    """Set keys of the adapter's adapter_config.json."""
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
    notes: list[str] = field(default_factory=list)


def sample_inputs(model: Any) -> dict[str, torch.Tensor]:
    """A fixed batch of token ids (two rows of seven) for `model`, with decoder ids for an encoder-decoder."""
    gen = torch.Generator().manual_seed(123)
    ids = torch.randint(1, 100, (2, 7), generator=gen)
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if getattr(model.config, "is_encoder_decoder", False):
        out["decoder_input_ids"] = torch.randint(1, 100, (2, 5), generator=gen)
    return out


def _output(out: Any) -> torch.Tensor:
    for name in ("logits", "last_hidden_state"):
        v = getattr(out, name, None)
        if v is not None:
            return v  # type: ignore[no-any-return]
    return out[0]  # type: ignore[no-any-return]


_SHARED = ("vblora_vector_bank", "prompt_encoder", ".tinylora_v.")


def peft_truth(base_folder: Path, adapter: Path) -> Truth:
    """Real PeftModel.from_pretrained on the real model: raise -> fails; else output vs the bare base, and
    the keys counted as SPEC defines them, from a second load of the same weights."""

    from peft import PeftModel
    from peft.mapping import PEFT_TYPE_TO_PREFIX_MAPPING
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
    inputs = sample_inputs(reference)
    notes = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _output(reference(**inputs))
        try:
            out = _output(peft_model(**inputs))
            changed = ref.shape != out.shape or not torch.equal(ref, out)
        except Exception as exc:
            changed = True
            notes.append(f"forward raises {type(exc).__name__}: {str(exc)[:120]}")
    weights = load_peft_weights(str(adapter), device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result: Any = set_peft_model_state_dict(peft_model, weights)
    seg = re.compile(r"\.default(?=\.|$)")
    peft_type = peft_model.peft_config["default"].peft_type
    prefix = PEFT_TYPE_TO_PREFIX_MAPPING.get(peft_type, "")  # type: ignore[call-overload]
    missing = [
        k
        for k in result.missing_keys
        if seg.search(k)
        and not any(s in k for s in _SHARED)
        and ((prefix and prefix in k) or "modules_to_save" in k or "trainable_tokens" in k)
    ]
    # prompt embeddings: unexpected for the model-level load, then loaded into the prompt encoder strictly
    unexpected = [k for k in result.unexpected_keys if not (k == "prompt_embeddings" and k in weights)]
    matched = len(weights) - len(unexpected)
    if not changed:
        outcome = "inert"
    elif missing or unexpected:
        outcome = "partial"
    else:
        outcome = "loads"
    return Truth(outcome, matched, len(missing), len(unexpected), notes=notes)


def meta_adapter(config: Any, out: Path, base_name: str, seed: int = 1, **lora_kwargs: Any) -> Path:
    """A LoRA adapter whose tensors have exactly the shapes real PEFT creates on `config` (random values)."""
    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(meta_model(config), LoraConfig(**lora_kwargs))
        out.mkdir(parents=True, exist_ok=True)
        peft_model.peft_config["default"].save_pretrained(str(out))
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
