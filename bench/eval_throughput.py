"""Evaluation throughput on SmolLM2-135M-Instruct and real ACRC rows, base + 5 adapters, in one run:

  loravet  `evaluate()`: one base, five adapters attached with PEFT, batched last-position scoring
  floor    six plain batched forward passes of the bare base with logits_to_keep=1 (no PEFT at all)
  naive    for each model: load the base again (+ PeftModel), one generate() per row asking for the
           answer as text, parsed

Each method runs in its own process (peak RSS is per method). Prints rows/s (model-rows scored per second),
ratios, and peak RSS. Attention-only adapters (q/k/v/o) by default; --all-linear for all linear layers.

    python bench/eval_throughput.py [--rows 16] [--batch-size 8] [--all-linear] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACRC = ROOT.parent / "shared" / "data" / "acrc" / "train.csv"
N_ADAPTERS = 5


def _rows(n: int) -> list[dict[str, str]]:
    from loravet.evaluation.tasks import _stratified

    with ACRC.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return _stratified(rows, ["rule", "rule_violation"], n, seed=0)


def _prompts(tokenizer: object, rows: list[dict[str, str]]) -> list[str]:
    from loravet.evaluation.tasks import ACRC_PROMPT

    out = []
    for r in rows:
        msg = [{"role": "user", "content": ACRC_PROMPT.format_map(r)}]
        out.append(tokenizer.apply_chat_template(msg, tokenize=False, add_generation_prompt=True))  # type: ignore[attr-defined]
    return out


def phase_loravet(work: Path, base: Path, adapters: list[Path], batch: int, device: str) -> dict[str, float]:
    from loravet.evaluation.runner import evaluate

    start = time.perf_counter()
    report = evaluate(
        [str(a) for a in adapters], str(base), str(work / "rows.csv"), batch_size=batch, device=device, progress=False
    )
    wall = time.perf_counter() - start
    ev = report.evaluation or {}
    return {"wall_s": wall, "score_s": ev["timing"]["score_s"], "model_rows": ev["rows"] * (len(adapters) + 1)}


def phase_floor(work: Path, base: Path, batch: int, device: str) -> dict[str, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(base)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).to(device).eval()
    rows = list(csv.DictReader((work / "rows.csv").open(newline="", encoding="utf-8")))
    prompts = sorted(_prompts(tok, rows), key=len)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for _ in range(N_ADAPTERS + 1):
            for i in range(0, len(prompts), batch):
                enc = tok(prompts[i : i + batch], return_tensors="pt", padding=True, add_special_tokens=False).to(
                    device
                )
                model(**enc, logits_to_keep=1)
    score = time.perf_counter() - t0
    return {"wall_s": time.perf_counter() - start, "score_s": score, "model_rows": len(prompts) * (N_ADAPTERS + 1)}


def phase_naive(work: Path, base: Path, adapters: list[Path], device: str) -> dict[str, float]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    rows = list(csv.DictReader((work / "rows.csv").open(newline="", encoding="utf-8")))
    answers = 0
    for adapter in [None, *adapters]:
        tok = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).to(device).eval()
        if adapter is not None:
            model = PeftModel.from_pretrained(model, str(adapter)).eval()
        for p in _prompts(tok, rows):
            enc = tok(p + "", return_tensors="pt", add_special_tokens=False).to(device)
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=3, do_sample=False, pad_token_id=tok.eos_token_id)
            text = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip().lower()
            answers += text.startswith("yes")
        del model
    wall = time.perf_counter() - start
    return {"wall_s": wall, "score_s": wall, "model_rows": len(rows) * (len(adapters) + 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--all-linear", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--phase", default=None)
    args = ap.parse_args()
    if args.phase:
        work = Path(args.workdir)
        meta = json.loads((work / "meta.json").read_text())
        base, adapters = Path(meta["base"]), [Path(a) for a in meta["adapters"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if args.phase == "loravet":
                res = phase_loravet(work, base, adapters, args.batch_size, args.device)
            elif args.phase == "floor":
                res = phase_floor(work, base, args.batch_size, args.device)
            else:
                res = phase_naive(work, base, adapters, args.device)
        res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return

    from loravet.base.resolve import resolve_base
    from loravet.demo.base_model import demo_base
    from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter

    base, note = demo_base()
    arch = resolve_base(str(base)).architecture
    assert arch is not None
    targets = (
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        if args.all_linear
        else ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = _rows(args.rows)
        with (work / "rows.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        adapters = [
            write_synthetic_adapter(work / f"fold{i}", arch, lora_config_dict(str(base), 8, 16, targets), seed=i)
            for i in range(N_ADAPTERS)
        ]
        (work / "meta.json").write_text(json.dumps({"base": str(base), "adapters": [str(a) for a in adapters]}))
        print(
            f"base: {note}\nrows: {len(rows)} ACRC rows, full default prompt (acrc-1); {N_ADAPTERS} adapters "
            f"r=8 on {'all linear layers' if args.all_linear else 'q/k/v/o'}; batch {args.batch_size}; "
            f"device {args.device}"
        )
        results = {}
        for phase in ("loravet", "floor", "naive"):
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--phase",
                    phase,
                    "--workdir",
                    str(work),
                    "--batch-size",
                    str(args.batch_size),
                    "--device",
                    args.device,
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{phase} failed: {proc.stderr[-800:]}")
            results[phase] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{'method':10} {'model-rows':>10} {'score s':>8} {'rows/s':>7} {'wall s':>7} {'peak RSS MiB':>13}")
        for phase, r in results.items():
            print(
                f"{phase:10} {r['model_rows']:>10} {r['score_s']:>8.1f} {r['model_rows'] / r['score_s']:>7.2f} "
                f"{r['wall_s']:>7.1f} {r['peak_rss_mib']:>13.0f}"
            )
        lv, fl, nv = results["loravet"], results["floor"], results["naive"]
        print(f"loravet scoring time / floor: {lv['score_s'] / fl['score_s']:.2f}x (target <= 1.3x for attention-only)")
        print(f"naive wall / loravet wall: {nv['wall_s'] / lv['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
