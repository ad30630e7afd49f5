from __future__ import annotations

import collections
import json
import sys
import traceback
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))
from harness import FAM, build_base, judge, write_adapter

FAM.update(
    {
        "gemma2": ("gemma2", "Gemma2ForCausalLM", FAM["qwen2"][2]),
        "qwen3-bare": ("qwen3", "Qwen3Model", FAM["qwen2"][2]),
        "gemma2-bare": ("gemma2", "Gemma2Model", FAM["qwen2"][2]),
        "phi3-bare": ("phi3", "Phi3Model", FAM["phi3"][2]),
        "gpt2-bare": ("gpt2", "GPT2Model", {k: v for k, v in FAM["gpt2-cls"][2].items()}),
        "gpt2": ("gpt2", "GPT2LMHeadModel", {k: v for k, v in FAM["gpt2-cls"][2].items()}),
        "bert-bare": ("bert", "BertModel", FAM["bert-cls"][2]),
        "qwen2-tied": ("qwen2", "Qwen2ForCausalLM", {**FAM["qwen2"][2], "tie_word_embeddings": True}),
        "qwen2-wide": ("qwen2", "Qwen2ForCausalLM", {**FAM["qwen2"][2], "hidden_size": 64, "head_dim": 16}),
        "qwen2-deep": ("qwen2", "Qwen2ForCausalLM", {**FAM["qwen2"][2], "num_hidden_layers": 3}),
        "bert-cls3": ("bert", "BertForSequenceClassification", {**FAM["bert-cls"][2], "num_labels": 3}),
        "qwen2-cls3": ("qwen2", "Qwen2ForSequenceClassification", {**FAM["qwen2"][2], "num_labels": 3}),
    }
)
W = Path(sys.argv[1])
W.mkdir(parents=True, exist_ok=True)
only = sys.argv[2] if len(sys.argv) > 2 else ""
rows: list = []
L = dict(peft_type="LORA", r=4, lora_alpha=8)
QV = ["q_proj", "v_proj"]


def sd_edit(ad: Path, fn):
    p = ad / "adapter_model.safetensors"
    sd = fn(dict(load_file(p)))
    save_file({k: v.contiguous() for k, v in sd.items()}, p)


def to_bin(ad: Path, legacy: bool):
    p = ad / "adapter_model.safetensors"
    sd = load_file(p)
    p.unlink()
    torch.save(sd, ad / "adapter_model.bin", _use_new_zipfile_serialization=not legacy)


def cfg_edit(ad: Path, **ch):
    p = ad / "adapter_config.json"
    c = json.loads(p.read_text())
    c.update(ch)
    p.write_text(json.dumps(c))


CASES = [
    # name, train family, load family, config, post-edit
    ("plain", "qwen2", "qwen2", dict(L, target_modules=QV), None),
    (
        "keys-with-default",
        "qwen2",
        "qwen2",
        dict(L, target_modules=QV),
        lambda a: sd_edit(a, lambda s: {k.replace(".weight", ".default.weight"): v for k, v in s.items()}),
    ),
    (
        "keys-model-dup-prefix",
        "qwen2",
        "qwen2",
        dict(L, target_modules=QV),
        lambda a: sd_edit(
            a,
            lambda s: {
                k.replace("base_model.model.model.", "base_model.model.model.model.", 1): v for k, v in s.items()
            },
        ),
    ),
    (
        "keys-no-prefix",
        "qwen2",
        "qwen2",
        dict(L, target_modules=QV),
        lambda a: sd_edit(a, lambda s: {k.replace("base_model.model.", "", 1): v for k, v in s.items()}),
    ),
    ("bin-legacy", "qwen2", "qwen2", dict(L, target_modules=QV), lambda a: to_bin(a, True)),
    ("bin-zip", "qwen2", "qwen2", dict(L, target_modules=QV), lambda a: to_bin(a, False)),
    ("bf16", "qwen2", "qwen2", dict(L, target_modules=QV), "bf16"),
    ("fp16", "qwen2", "qwen2", dict(L, target_modules=QV), "fp16"),
    ("mts-lm_head", "qwen2", "qwen2", dict(L, target_modules=QV, modules_to_save=["lm_head"]), None),
    ("mts-lm_head-tied", "qwen2-tied", "qwen2-tied", dict(L, target_modules=QV, modules_to_save=["lm_head"]), None),
    ("target-lm_head-tied", "qwen2-tied", "qwen2-tied", dict(L, target_modules=["q_proj", "lm_head"]), None),
    ("target-embed-tied", "qwen2-tied", "qwen2-tied", dict(L, target_modules=["q_proj", "embed_tokens"]), None),
    ("mts-embed-tied", "qwen2-tied", "qwen2-tied", dict(L, target_modules=QV, modules_to_save=["embed_tokens"]), None),
    ("tm-regex", "qwen2", "qwen2", dict(L, target_modules=r".*\.1\.self_attn\.(q|v)_proj"), None),
    (
        "tm-regex-nomatch-on-load",
        "qwen2",
        "qwen2",
        dict(L, target_modules=QV),
        lambda a: cfg_edit(a, target_modules=r".*\.7\.self_attn\.q_proj"),
    ),
    (
        "layers-pattern",
        "qwen2",
        "qwen2",
        dict(L, target_modules=QV, layers_to_transform=[1], layers_pattern="layers"),
        None,
    ),
    (
        "layers-pattern-list",
        "qwen2",
        "qwen2",
        dict(L, target_modules=QV, layers_to_transform=[0], layers_pattern=["layers"]),
        None,
    ),
    (
        "rank-pattern-regex",
        "qwen2",
        "qwen2",
        dict(
            L,
            target_modules=QV,
            rank_pattern={r"^model\.layers\.1\.self_attn\.q_proj": 2, "v_proj": 3},
            alpha_pattern={r".*\.0\..*q_proj": 3},
        ),
        None,
    ),
    (
        "rank-pattern-edited",
        "qwen2",
        "qwen2",
        dict(L, target_modules=QV, rank_pattern={"q_proj": 2}),
        lambda a: cfg_edit(a, rank_pattern={}),
    ),
    ("bare-qwen3", "qwen3", "qwen3-bare", dict(L, target_modules=QV), None),
    ("bare-gemma2", "gemma2", "gemma2-bare", dict(L, target_modules=QV), None),
    ("bare-phi3", "phi3", "phi3-bare", dict(L, target_modules=["qkv_proj", "o_proj"]), None),
    ("bare-gpt2", "gpt2", "gpt2-bare", dict(L, target_modules=["c_attn"]), None),
    ("bare-bert", "bert-cls", "bert-bare", dict(L, target_modules=["query", "value"], task_type="SEQ_CLS"), None),
    ("bare-to-bare-qwen3", "qwen3-bare", "qwen3-bare", dict(L, target_modules=QV), None),
    ("bare-train-causal-load", "qwen3-bare", "qwen3", dict(L, target_modules=QV), None),
    (
        "bare-phi3-task-causal",
        "phi3-bare",
        "phi3-bare",
        dict(L, target_modules=["qkv_proj"], task_type="CAUSAL_LM"),
        None,
    ),
    (
        "bare-gemma2-mts-lm_head",
        "gemma2",
        "gemma2-bare",
        dict(L, target_modules=QV, modules_to_save=["lm_head"], task_type="CAUSAL_LM"),
        None,
    ),
    ("seqcls3-bert", "bert-cls3", "bert-cls3", dict(L, target_modules=["query", "value"], task_type="SEQ_CLS"), None),
    (
        "seqcls3-bert-on2",
        "bert-cls3",
        "bert-cls",
        dict(L, target_modules=["query", "value"], task_type="SEQ_CLS"),
        None,
    ),
    ("seqcls3-qwen2", "qwen2-cls3", "qwen2-cls3", dict(L, target_modules=QV, task_type="SEQ_CLS"), None),
    (
        "seqcls3-qwen2-mts",
        "qwen2-cls3",
        "qwen2-cls3",
        dict(L, target_modules=QV, task_type="SEQ_CLS", modules_to_save=["score"]),
        None,
    ),
    ("sibling-wide", "qwen2", "qwen2-wide", dict(L, target_modules=QV), None),
    ("sibling-deep", "qwen2", "qwen2-deep", dict(L, target_modules=QV), None),
    ("sibling-wide-mts", "qwen2", "qwen2-wide", dict(L, target_modules=QV, modules_to_save=["lm_head"]), None),
    ("gpt2-fifo-bf16", "gpt2", "gpt2", dict(L, target_modules=["c_attn"], fan_in_fan_out=True), "bf16"),
    ("dora-fp16", "qwen2", "qwen2", dict(L, target_modules=QV, use_dora=True), "fp16"),
    ("dora-bin", "qwen2", "qwen2", dict(L, target_modules=QV, use_dora=True), lambda a: to_bin(a, False)),
    (
        "ia3-bin-legacy",
        "qwen2",
        "qwen2",
        dict(peft_type="IA3", target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"]),
        lambda a: to_bin(a, True),
    ),
]
for name, tf, lf, cfg, post in CASES:
    if only and only not in name:
        continue
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
        traceback.print_exc(limit=2)
print(collections.Counter(r[3] for r in rows), collections.Counter(r[5] for r in rows))
