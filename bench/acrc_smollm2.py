"""A real run: k-fold LoRA adapters trained with PEFT on SmolLM2-135M-Instruct with rows of the real Jigsaw
ACRC training file, then `loravet eval` on held-out rows: per-fold and ensemble rule-mean AUC next to the bare
base. Sized for a 2-core CPU: a grouped hold-out of --holdout rows, --folds folds over a sample of the rest,
--rows-per-fold training rows each, LoRA r=8 on q/k/v/o of the top --layers layers, a short prompt capped at
--max-length tokens.

    python bench/acrc_smollm2.py [--folds 3] [--rows-per-fold 240] [--steps 40] [--holdout 120]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from pathlib import Path
from typing import Any

from loravet.demo.training import train_fold
from loravet.evaluation.runner import evaluate
from loravet.results import Report
from loravet.testing.scenarios import grouped_kfold, write_split

ROOT = Path(__file__).resolve().parents[1]
ACRC = ROOT.parent / "shared" / "data" / "acrc" / "train.csv"
TEMPLATE = "r/{subreddit} rule: {rule}\nComment: {body}\nDoes the comment violate the rule? Answer Yes or No."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--rows-per-fold", type=int, default=240)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--holdout", type=int, default=120)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--max-length", type=int, default=160)
    ap.add_argument("--workdir", default="/tmp/loravet-acrc")
    args = ap.parse_args()

    # lazy: loravet.demo.base_model imports torch at module level (--help runs without it)
    from loravet.demo.base_model import demo_base

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rest = _holdout_split(work, args.holdout)
    base, note = demo_base()
    print(f"base: {note}")
    t0 = time.perf_counter()
    adapters = _train_folds(args, base, rest, work)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = evaluate(
        [str(a) for a in adapters],
        str(base),
        str(work / "holdout.csv"),
        template=TEMPLATE,
        batch_size=8,
        max_length=args.max_length,
        predictions=str(work / "predictions.csv"),
        progress=sys.stderr.isatty(),
    )
    _print_results(report, time.perf_counter() - t1, train_s)


def _holdout_split(work: Path, holdout_rows: int) -> list[dict[str, Any]]:
    """Writes a grouped hold-out sample to WORK/holdout.csv (no comment text of it is in any training split);
    returns the rest."""
    with ACRC.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:  # keep prompts short: long comments are cut (the prompt keeps its question)
        r["body"] = r["body"][:400]
    group = grouped_kfold([r["body"] for r in rows], 10, seed=1)
    holdout_pool = [r for r, g in zip(rows, group, strict=True) if g == 0]
    rest = [r for r, g in zip(rows, group, strict=True) if g != 0]
    holdout = random.Random(0).sample(holdout_pool, min(holdout_rows, len(holdout_pool)))
    with (work / "holdout.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(holdout)
    return rest


def _train_folds(args: argparse.Namespace, base: Path, rest: list[dict[str, Any]], work: Path) -> list[Path]:
    """One LoRA per fold of `rest` (a fold already trained in WORK is reused), with its splits."""
    fold_of = grouped_kfold([r["body"] for r in rest], args.folds, seed=0)
    rng = random.Random(0)
    adapters = []
    num_layers = 30
    for f in range(args.folds):
        folder = work / f"acrc-smollm-fold{f}"
        adapters.append(folder)
        train = [r for r, g in zip(rest, fold_of, strict=True) if g != f]
        train = rng.sample(train, min(args.rows_per_fold, len(train)))
        val = [r for r, g in zip(rest, fold_of, strict=True) if g == f]
        if not (folder / "adapter_model.safetensors").exists():
            start = time.perf_counter()
            state = train_fold(
                base,
                folder,
                train,
                TEMPLATE,
                layers=list(range(num_layers - args.layers, num_layers)),
                steps=args.steps,
                lr=args.lr,
                seed=f,
                max_length=args.max_length,
                base_name="HuggingFaceTB/SmolLM2-135M-Instruct",
            )
            print(
                f"fold {f}: {len(train)} training rows, {args.steps} steps in {time.perf_counter() - start:.0f} s, "
                f"loss {state['log_history'][0]['loss']:.3f} -> {state['log_history'][-1]['loss']:.3f}",
                flush=True,
            )
            write_split(train, folder / "train.pkl")
            write_split(val, folder / "val.pkl")
    return adapters


def _print_results(report: Report, eval_s: float, train_s: float) -> None:
    ev = report.evaluation or {}
    print(
        f"eval: {ev['rows']} held-out rows x {len(ev['scores'])} models in {eval_s:.0f} s "
        f"({ev['timing']['rows_per_s']} model-rows/s); training {train_s:.0f} s"
    )
    print(f"{'model':20} {'rule_mean_auc':>13} {'95% CI':>15} {'auc':>7}")
    for name, s in ev["scores"].items():
        ci = s.get("ci95")
        print(f"{name:20} {s['rule_mean_auc']:>13.4f} {f'{ci[0]:.3f}-{ci[1]:.3f}' if ci else '-':>15} {s['auc']:>7.4f}")
    for a in report.adapters:
        codes = [f.code for f in a.findings if f.severity.label in ("critical", "high")]
        print(f"{a.name}: load {a.load_outcome}; high/critical findings: {codes or 'none'}")


if __name__ == "__main__":
    main()
