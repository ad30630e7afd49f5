from __future__ import annotations

import collections
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import variants  # noqa  (registers families, runs nothing when argv filter matches none)
from harness import FAM, build_base, write_adapter, judge
from variants import sd_edit, cfg_edit, to_bin, L, QV

D = FAM["qwen2"][2]
FAM.update(
    {
        "gemma2-cls3": ("gemma2", "Gemma2ForSequenceClassification", {**D, "num_labels": 3}),
        "phi3-cls3": ("phi3", "Phi3ForSequenceClassification", {**FAM["phi3"][2], "num_labels": 3}),
        "qwen2-bf16": ("qwen2", "Qwen2ForCausalLM", {**D, "torch_dtype": "bfloat16"}),
        "qwen2-bare": ("qwen2", "Qwen2Model", D),
        "roberta-cls3": ("roberta", "RobertaForSequenceClassification", {**FAM["roberta-cls"][2], "num_labels": 3}),
    }
)
W = Path(sys.argv[1])
W.mkdir(parents=True, exist_ok=True)
rows: list = []
CASES = [
    ("cls3-on-causal", "qwen2-cls3", "qwen2", dict(L, target_modules=QV, task_type="SEQ_CLS"), None),
    ("cls3-gemma2", "gemma2-cls3", "gemma2-cls3", dict(L, target_modules=QV, task_type="SEQ_CLS"), None),
    ("cls3-phi3", "phi3-cls3", "phi3-cls3", dict(L, target_modules=["qkv_proj"], task_type="SEQ_CLS"), None),
    (
        "cls3-roberta",
        "roberta-cls3",
        "roberta-cls3",
        dict(L, target_modules=["query", "value"], task_type="SEQ_CLS"),
        None,
    ),
    (
        "cls3-roberta-on2",
        "roberta-cls3",
        "roberta-cls",
        dict(L, target_modules=["query", "value"], task_type="SEQ_CLS"),
        None,
    ),
    ("cls3-bert-all-linear", "bert-cls3", "bert-cls3", dict(L, target_modules="all-linear", task_type="SEQ_CLS"), None),
    (
        "mts-key-kept-segment",
        "qwen2",
        "qwen2",
        dict(L, target_modules=QV, modules_to_save=["lm_head"]),
        lambda a: sd_edit(
            a,
            lambda s: {k.replace("lm_head.weight", "lm_head.modules_to_save.default.weight"): v for k, v in s.items()},
        ),
    ),
    ("qwen3-on-qwen2", "qwen3", "qwen2", dict(L, target_modules=QV), None),
    ("qwen2-on-bf16-base", "qwen2", "qwen2-bf16", dict(L, target_modules=QV), None),
    (
        "layers-pattern-wrong",
        "qwen2",
        "qwen2",
        dict(L, target_modules=QV, layers_to_transform=[1], layers_pattern="layers"),
        lambda a: cfg_edit(a, layers_pattern="h"),
    ),
    ("rank-pattern-nomatch", "qwen2", "qwen2", dict(L, target_modules=QV, rank_pattern={"zzz": 2}), None),
    ("exclude-regex", "qwen2", "qwen2", dict(L, target_modules=[*QV, "k_proj"], exclude_modules=r".*\.0\..*"), None),
    ("all-linear-bare", "qwen2-bare", "qwen2-bare", dict(L, target_modules="all-linear"), None),
    ("all-linear-causal-on-bare", "qwen2", "qwen2-bare", dict(L, target_modules="all-linear"), None),
    (
        "fifo-missing-gpt2",
        "gpt2",
        "gpt2",
        dict(L, target_modules=["c_attn"], fan_in_fan_out=True),
        lambda a: cfg_edit(a, fan_in_fan_out=False),
    ),
    (
        "mts-lm_head-bin-legacy",
        "qwen2",
        "qwen2",
        dict(L, target_modules=QV, modules_to_save=["lm_head"]),
        lambda a: to_bin(a, True),
    ),
    ("bf16-mts", "qwen2", "qwen2", dict(L, target_modules=QV, modules_to_save=["lm_head"]), "bf16"),
    ("rslora-dora-fp16", "qwen2", "qwen2", dict(L, target_modules=QV, use_dora=True, use_rslora=True), "fp16"),
]
for name, tf, lf, cfg, post in CASES:
    try:
        tb = build_base(W / f"base-{tf}", tf)
        lb = build_base(W / f"base-{lf}", lf)
        ad = W / name
        if not (ad / "adapter_config.json").exists():
            dt = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(post) if isinstance(post, str) else None
            write_adapter(tb, cfg, ad, dtype=dt)
            if callable(post):
                post(ad)
        judge(name, ad, lb, rows)
    except Exception as e:
        print(name, "HARNESS ERROR", type(e).__name__, str(e)[:200])
print(collections.Counter(r[3] for r in rows), collections.Counter(r[5] for r in rows))
