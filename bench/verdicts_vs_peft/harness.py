"""Verdicts vs real PEFT (#11): every ../shared/adapter-corpus config rebuilt on a tiny real base of its family
with PEFT itself, then loravet check (predictor), check --replay and real PEFT (from_pretrained + forward) compared.
Run from the repo root: PYTHONPATH=src python bench/verdicts_vs_peft/harness.py /tmp/work [name-filter]
variants.py / variants2.py: published variants (key layouts, .bin, dtypes, heads, bare bases, patterns);
realw.py: the real weights in ../shared/adapter-corpus/weights on random bases of their real shapes.
The bases, PEFT's truth and loravet's two answers come from loravet.testing (models, peft_truth, peft_cases);
what is here is the corpus side: which tiny family stands for each real config (FAM, family_for). Unlike
scripts/agreement_table.py (a grid of synthetic cases), the inputs are the corpus's published configs."""

from __future__ import annotations

import json
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch

from loravet.testing.models import FAMILIES, Family, load_base
from loravet.testing.models import build_base as testing_build_base
from loravet.testing.peft_truth import peft_truth


def _from_families(name: str) -> tuple[str, str, dict[str, Any]]:
    """A family of the differential suite's table (loravet.testing.models.FAMILIES), as this harness
    names it: model type, class, config kwargs."""
    fam = FAMILIES[name]
    return fam.model_type, fam.cls, fam.kwargs


FAM: dict[str, tuple[str, str, dict[str, Any]]] = {
    **{name: _from_families(name) for name in ("qwen2", "qwen3", "llama", "mistral", "phi3", "gpt_neox")},
    "gemma3": _from_families("gemma3_text"),
    "gpt2-cls": (
        "gpt2",
        "GPT2ForSequenceClassification",
        dict(n_embd=32, n_layer=2, n_head=4, vocab_size=128, n_positions=64, pad_token_id=0),
    ),
    "bert-cls": _from_families("bert"),
    "roberta-cls": ("roberta", "RobertaForSequenceClassification", FAMILIES["bert"].kwargs),
    "distilbert-cls": _from_families("distilbert"),
}


def family_for(name: str, cfg: dict[str, Any]) -> str | None:
    n = name.lower() + " " + str(cfg.get("base_model_name_or_path", "")).lower()
    for key, fam in (
        ("distilbert", "distilbert-cls"),
        ("roberta", "roberta-cls"),
        ("bert-gpt2", "bert-cls"),
        ("gpt2", "gpt2-cls"),
        ("open-calm", "gpt_neox"),
        ("phi-3", "phi3"),
        ("phi3", "phi3"),
        ("qwen3-", "qwen3"),
        ("qwen3", "qwen3"),
        ("qwen2.5-vl", None),
        ("qwen3.5", None),
        ("qwen", "qwen2"),
        ("deepseek", "qwen2"),
        ("gemma-3", "gemma3"),
        ("gemma3", None),
        ("gemma-4", None),
        ("mistral", "mistral"),
        ("llama", "llama"),
        ("nemotron", None),
    ):
        if key in n:
            return fam
    return None


def build_base(folder: Path, fam: str, **over: Any) -> Path:
    """A tiny random base of one of FAM's families, by loravet.testing's builder (seed 0, reused if built)."""
    mt, cls, kw = FAM[fam]
    return testing_build_base(folder, Family(mt, cls, kw, ()), **over)


def write_adapter(
    base: Path, cfgdict: dict[str, Any], out: Path, form: str = "safetensors", dtype: torch.dtype | None = None
) -> Path:
    import peft
    from peft import get_peft_model

    d = {k: v for k, v in cfgdict.items()}
    pt = d.get("peft_type", "LORA")
    cls = peft.mapping.PEFT_TYPE_TO_CONFIG_MAPPING[pt]
    import dataclasses

    fields = {f.name for f in dataclasses.fields(cls)}
    d = {
        k: v
        for k, v in d.items()
        if k in fields and k not in ("peft_type", "revision", "base_model_name_or_path", "auto_mapping")
    }
    conf = cls(**d)
    torch.manual_seed(1)
    model = load_base(base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = get_peft_model(model, conf)
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if ".default" in n or "modules_to_save" in n:
                    p.copy_(torch.randn_like(p) * 0.3)
        if dtype is not None:
            pm = pm.to(dtype)
        pm.save_pretrained(out, safe_serialization=form != "bin")
    c = json.loads((out / "adapter_config.json").read_text())
    c["base_model_name_or_path"] = str(base)
    (out / "adapter_config.json").write_text(json.dumps(c, indent=2))
    return out


def verdicts(adapter: Path, base: Path) -> tuple[str, str, str, str]:
    from loravet.testing.peft_cases import predicted_and_replayed

    pred, repl = predicted_and_replayed(adapter, base)
    return (
        pred.load_outcome,
        repl.load_outcome,
        str(pred.extra.get("load_reason", "")),
        str(repl.extra.get("load_reason", "")),
    )


def judge(name: str, adapter: Path, base: Path, rows: list[Any]) -> None:
    t = peft_truth(base, adapter)
    p, r, pr, rr = verdicts(adapter, base)
    pv = "unknown" if p == "unknown" else ("agree" if p == t.outcome else "WRONG")
    rv = "unknown" if r == "unknown" else ("agree" if r == t.outcome else "WRONG")
    rows.append((name, t.outcome, p, pv, r, rv))
    print(f"{name[:60]:60s} truth={t.outcome:8s} pred={p:8s}[{pv}] replay={r:8s}[{rv}]", flush=True)
    if "WRONG" in (pv, rv):
        print("   truth:", t, "\n   pred:", pr[:300], "\n   replay:", rr[:300], flush=True)


if __name__ == "__main__":
    work = Path(sys.argv[1])
    work.mkdir(exist_ok=True, parents=True)
    corpus = Path("../shared/adapter-corpus/configs")
    rows: list[Any] = []
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    for f in sorted(corpus.glob("*.json")):
        if only and only not in f.name:
            continue
        cfg = json.loads(f.read_text())
        fam = family_for(f.name, cfg)
        if fam is None or cfg.get("peft_type") not in ("LORA",):
            print(f"{f.name[:60]:60s} SKIP (family {fam}, type {cfg.get('peft_type')})")
            continue
        base = build_base(work / f"base-{fam}", fam)
        ad = work / f.stem
        try:
            if not (ad / "adapter_config.json").exists():
                write_adapter(base, cfg, ad)
        except Exception as e:
            print(f"{f.name[:60]:60s} PEFT cannot build: {type(e).__name__}: {str(e)[:150]}")
            continue
        try:
            judge(f.stem, ad, base, rows)
        except Exception:
            traceback.print_exc()
    import collections

    print(collections.Counter(r[3] for r in rows), collections.Counter(r[5] for r in rows))
