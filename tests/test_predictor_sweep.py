"""Seeded random adapters across families, LoRA variants and mutations: the predictor against real PEFT.

Where the predictor answers, it gives PEFT's outcome and key counts; `unknown` is allowed and counted.
Run one seed: `pytest tests/test_predictor_sweep.py -m slow -q` (LORAVET_SWEEP_SEED / _CASES to vary)."""

from __future__ import annotations

import os
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

pytestmark = [pytest.mark.peft, pytest.mark.slow]

FAMILIES: dict[str, dict[str, Any]] = {
    "qwen2": {},
    "llama": {"model_type": "llama"},
    "gemma2": {"model_type": "gemma2", "head_dim": 8},
    "gpt_neox": {"model_type": "gpt_neox"},
    "gpt2": {"model_type": "gpt2"},
    "phi3": {"model_type": "phi3"},
    "qwen2_bare": {"head": "bare"},
    "qwen2_cls": {"head": "seq_cls"},
}
MODULES = {
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h", "embed_in", "embed_out"],
    "gpt2": ["c_attn", "c_proj", "c_fc", "wte", "lm_head"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj", "embed_tokens", "lm_head"],
}
LLAMA_LIKE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens", "lm_head"]
MUTATIONS = [
    "none",
    "none",
    "drop",
    "extra",
    "zero_b",
    "prefix",
    "edit_targets",
    "sibling_layers",
    "sibling_width",
    "trailing",
    "drop_magnitude",
]


def _lora_kwargs(rng: random.Random, fam: str, names: list[str]) -> dict[str, Any]:
    # the draws stay in this order: a seed names the same sweep before and after any refactor
    kw: dict[str, Any] = {"r": rng.choice([1, 2, 4]), "lora_alpha": rng.choice([0, 1, 8]) if rng.random() < 0.2 else 8}
    kw["target_modules"] = _lora_targets(rng, names)
    _lora_variants(rng, fam, names, kw)
    _lora_extras(rng, fam, names, kw)
    return kw


def _lora_targets(rng: random.Random, names: list[str]) -> str | list[str]:
    t = rng.random()
    if t < 0.1:
        return "all-linear"
    if t < 0.2:
        return r".*\.(" + "|".join(rng.sample(names[:4], 2)) + ")"
    return rng.sample(names, rng.randint(1, 3))


def _lora_variants(rng: random.Random, fam: str, names: list[str], kw: dict[str, Any]) -> None:
    """DoRA, rsLoRA, LoRA bias, layer selection, a rank pattern, the init."""
    if rng.random() < 0.2:
        kw["use_dora"] = True
    if rng.random() < 0.2:
        kw["use_rslora"] = True
    if rng.random() < 0.1 and not kw.get("use_dora"):
        kw["lora_bias"] = True
    if rng.random() < 0.15 and isinstance(kw["target_modules"], list):
        kw["layers_to_transform"] = [rng.randint(0, 1)]
        if rng.random() < 0.5:
            kw["layers_pattern"] = {"gpt2": "h"}.get(fam, "layers")
    if rng.random() < 0.15:
        kw["rank_pattern"] = {rng.choice(names[:4]): 2}
    if rng.random() < 0.15:
        kw["init_lora_weights"] = rng.choice([False, "gaussian"])


def _lora_extras(rng: random.Random, fam: str, names: list[str], kw: dict[str, Any]) -> None:
    """The task type or modules_to_save, Conv1D's fan_in_fan_out, bias training, exclusions."""
    if fam.endswith("_cls"):
        kw["task_type"] = "SEQ_CLS"
    elif rng.random() < 0.1:
        kw["modules_to_save"] = [rng.choice(names)]
    if fam == "gpt2":
        kw["fan_in_fan_out"] = True
    if rng.random() < 0.2:
        kw["bias"] = rng.choice(["all", "lora_only"])
    if rng.random() < 0.15 and isinstance(kw["target_modules"], list):
        kw["exclude_modules"] = rng.choice([[names[0]], r".*\.0\..*"])


class _Bases:
    """Tiny bases built on first use, one per (family, layers, hidden size)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[tuple[str, int, int | None], Path] = {}

    def __call__(self, fam: str, layers: int = 2, hidden: int | None = None) -> Path:
        key = (fam, layers, hidden)
        if key not in self.built:
            kw = dict(FAMILIES[fam])
            head, mt = kw.pop("head", "causal"), kw.pop("model_type", "qwen2")
            kw["n_layer" if mt == "gpt2" else "num_hidden_layers"] = layers
            if hidden:
                kw["n_embd" if mt == "gpt2" else "hidden_size"] = hidden
            self.built[key] = build_base(self.root / f"base{len(self.built)}", mt, head=head, **kw)
        return self.built[key]


def _mutate(mutation: str, adapter: Path, rng: random.Random, names: list[str], fam: str, base: _Bases) -> Path:
    """Apply the mutation to the saved adapter; the base it is then loaded on."""
    loaded = base(fam)
    if mutation == "drop":
        edit_weights(adapter, lambda sd: {k: v for j, (k, v) in enumerate(sorted(sd.items())) if j % 3})
    elif mutation == "extra":
        edit_weights(adapter, lambda sd: {**sd, "base_model.model.extra.lora_A.weight": torch.ones(2, 3)})
    elif mutation == "zero_b":
        edit_weights(adapter, lambda sd: {k: (v * 0 if "lora_B" in k else v) for k, v in sd.items()})
    elif mutation == "drop_magnitude":
        edit_weights(adapter, lambda sd: {k: v for k, v in sd.items() if "magnitude" not in k})
    elif mutation == "prefix":
        edit_weights(adapter, lambda sd: {k.replace("base_model.model.", "", 1): v for k, v in sd.items()})
    elif mutation == "edit_targets":
        edit_config(adapter, target_modules=rng.sample(names, rng.randint(1, 3)))
    elif mutation == "sibling_layers":
        loaded = base(fam, layers=3)
    elif mutation == "sibling_width":
        loaded = base(fam, hidden=48)
    elif mutation == "trailing":
        path = adapter / "adapter_model.safetensors"
        path.write_bytes(path.read_bytes() + b"\0" * 8)
    return loaded


def _differs(got: dict[str, Any], truth: Any) -> bool:
    """The predictor's answer is not PEFT's: another outcome, or other key counts for an adapter that loads."""
    keys = (got["keys"]["matched"], got["keys"]["missing"], got["keys"]["unexpected"])
    return bool(
        got["load_outcome"] != truth.outcome
        or (truth.outcome != "fails" and keys != (truth.matched, truth.missing, truth.unexpected))
    )


def test_seeded_sweep_agrees_with_peft(tmp_path: Path) -> None:
    seed = int(os.environ.get("LORAVET_SWEEP_SEED", "5"))
    cases = int(os.environ.get("LORAVET_SWEEP_CASES", "40"))
    rng = random.Random(seed)
    base = _Bases(tmp_path)
    wrong: list[str] = []
    answered = unknown = 0
    for i in range(cases):
        fam = rng.choice(list(FAMILIES))
        names = [m for m in MODULES.get(fam, LLAMA_LIKE) if not (fam.endswith(("_cls", "_bare")) and m == "lm_head")]
        kw = _lora_kwargs(rng, fam, names)
        zero_b = rng.random() < 0.15
        mutation = rng.choice(MUTATIONS)
        adapter = tmp_path / f"a{i}"
        try:
            make_adapter(base(fam), adapter, seed=i, zero_b=zero_b, **kw)
        except Exception:  # PEFT itself refuses to build this config: nothing to compare
            continue
        loaded = _mutate(mutation, adapter, rng, names, fam, base)
        truth = peft_truth(loaded, adapter)
        got = api.check([str(adapter)], base=str(loaded)).to_json()["adapters"][0]
        if got["load_outcome"] == "unknown":
            unknown += 1
        else:
            answered += 1
            if _differs(got, truth):
                wrong.append(
                    f"case {i} {fam} {mutation} {kw} zero_b={zero_b}: PEFT {truth}, predicted "
                    f"{got['load_outcome']} {got['keys']} ({got.get('load_reason')})"
                )
        shutil.rmtree(adapter, ignore_errors=True)
    print(f"seed {seed}: {answered} answered, {unknown} unknown, {len(wrong)} wrong")
    assert not wrong, "\n".join(wrong)
    assert answered >= cases // 2
