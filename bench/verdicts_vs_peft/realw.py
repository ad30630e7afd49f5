from __future__ import annotations

import collections
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import FAM, build_base, judge
from safetensors import safe_open

W = Path(sys.argv[1])
W.mkdir(parents=True, exist_ok=True)
C = Path("../shared/adapter-corpus/weights")


def labels(d):
    with safe_open(str(d / "adapter_model.safetensors"), "pt") as f:
        for k in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            if k.endswith(("score.weight", "classifier.weight")):
                return f.get_slice(k).get_shape()[0]
    return 2


G2 = dict(n_embd=768, n_layer=12, n_head=12, vocab_size=128, n_positions=64, pad_token_id=0)
FAM.update(
    {
        "gpt2-real-cls": ("gpt2", "GPT2ForSequenceClassification", G2),
        "gpt2-real-lm": ("gpt2", "GPT2LMHeadModel", G2),
        "bert-real-cls": (
            "bert",
            "BertForSequenceClassification",
            dict(
                hidden_size=768,
                num_hidden_layers=12,
                num_attention_heads=12,
                intermediate_size=64,
                vocab_size=128,
                max_position_embeddings=64,
            ),
        ),
        "qwen25-05b": (
            "qwen2",
            "Qwen2ForCausalLM",
            dict(
                hidden_size=896,
                num_hidden_layers=24,
                num_attention_heads=14,
                num_key_value_heads=2,
                intermediate_size=64,
                vocab_size=128,
                max_position_embeddings=64,
                tie_word_embeddings=True,
            ),
        ),
        "qwen25-05b-short": (
            "qwen2",
            "Qwen2ForCausalLM",
            dict(
                hidden_size=896,
                num_hidden_layers=2,
                num_attention_heads=14,
                num_key_value_heads=2,
                intermediate_size=64,
                vocab_size=128,
                max_position_embeddings=64,
                tie_word_embeddings=True,
            ),
        ),
        "neox-1b": (
            "gpt_neox",
            "GPTNeoXForCausalLM",
            dict(
                hidden_size=2048,
                num_hidden_layers=24,
                num_attention_heads=16,
                intermediate_size=64,
                vocab_size=128,
                max_position_embeddings=64,
            ),
        ),
    }
)
rows: list = []
CASES = [
    ("deepbiolab", "gpt2-real-cls"),
    ("deepbiolab", "gpt2-real-lm"),
    ("stathopoan", "gpt2-real-cls"),
    ("stathopoan", "gpt2-real-lm"),
    ("Hareshjethani", "bert-real-cls"),
    ("MuzammelMokhtar", "qwen25-05b"),
    ("MuzammelMokhtar", "qwen25-05b-short"),
    ("BK7195", "neox-1b"),
]
only = sys.argv[2] if len(sys.argv) > 2 else ""
for pre, fam in CASES:
    if only and only not in pre:
        continue
    src = next(C.glob(pre + "*"))
    over = {"num_labels": labels(src)} if fam.endswith("cls") else {}
    base = build_base(W / f"base-{fam}", fam, **over)
    ad = W / f"{pre}-{fam}"
    if not ad.exists():
        shutil.copytree(src, ad)
        c = json.loads((ad / "adapter_config.json").read_text())
        c["base_model_name_or_path"] = str(base)
        (ad / "adapter_config.json").write_text(json.dumps(c))
    try:
        judge(ad.name, ad, base, rows)
    except Exception as e:
        print(ad.name, "ERROR", type(e).__name__, str(e)[:300])
print(collections.Counter(r[3] for r in rows), collections.Counter(r[5] for r in rows))
