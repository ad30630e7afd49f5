"""Pickle scanners compared on one corpus, in one run: loravet, picklescan, fickling, modelscan.

Corpus: 10 payloads (each would create a canary file if unpickled), each as a raw pickle named
adapter_model.bin, inside a torch zip, and as train.pkl (30 files), alternating GLOBAL / STACK_GLOBAL
forms; benign files: torch.save state dicts, pandas DataFrame pickles (protocols 2 and 5), a NumPy object
array, a real Trainer training_args.bin. Then scan time on a large benign torch checkpoint, loravet against
picklescan (medians of --repeats).

    python bench/pickle_scan.py [--size-mb 512] [--repeats 5] [--modelscan PATH]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pickle_payloads import as_torch_zip, payloads  # noqa: E402

from loravet.checks.pickles import scan_file  # noqa: E402


def build_corpus(root: Path) -> tuple[list[Path], list[Path]]:
    bad: list[Path] = []
    canary = root / "CANARY"
    for i, (name, (build, _)) in enumerate(payloads(f"touch {canary}").items()):
        data = build(i % 2 == 1)
        for form in ("raw-bin", "torch-zip", "train-pkl"):
            folder = root / "bad" / f"{name}-{form}"
            folder.mkdir(parents=True)
            if form == "raw-bin":
                target = folder / "adapter_model.bin"
                target.write_bytes(data)
            elif form == "torch-zip":
                target = folder / "adapter_model.bin"
                target.write_bytes(as_torch_zip(data))
            else:
                target = folder / "train.pkl"
                target.write_bytes(data)
            bad.append(target)
    good_dir = root / "good"
    good_dir.mkdir()
    import numpy as np
    import pandas as pd
    import torch
    from transformers import TrainingArguments

    torch.save({"base_model.model.x.lora_A.weight": torch.zeros(8, 16)}, good_dir / "adapter_model.bin")
    torch.save({"w": torch.ones(3, dtype=torch.bfloat16), "step": 3}, good_dir / "optimizer.pt")
    df = pd.DataFrame({"row_id": [1, 2], "body": ["a", "b"], "rule_violation": [0, 1],
                       "cat": pd.Categorical(["x", "y"]), "s": pd.array(["p", None], dtype="string")})
    df.to_pickle(good_dir / "train.pkl", protocol=5)
    df.to_pickle(good_dir / "val.pkl", protocol=2)
    np.save(good_dir / "labels.npy", np.array(["a", "b"], dtype=object), allow_pickle=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(TrainingArguments(output_dir=str(root / "o"), report_to=[]), good_dir / "training_args.bin")
    good = sorted(good_dir.iterdir())
    assert not canary.exists()
    return bad, good


def by_loravet(path: Path) -> bool | None:
    result = scan_file(path)
    return None if result is None else result.worst != "allowed"


def by_picklescan(path: Path) -> bool | None:
    import logging

    from picklescan.scanner import scan_file_path

    logging.getLogger("picklescan").setLevel(logging.CRITICAL)
    try:
        r = scan_file_path(str(path))
    except Exception:
        return None
    return r.infected_files > 0 or r.issues_count > 0


def by_cli(cmd: list[str]) -> bool | None:
    try:
        # run in the scanned file's (temporary) folder: fickling writes safety_results.json into its cwd
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=Path(cmd[-1]).parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.returncode != 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--modelscan", default=shutil.which("modelscan") or "/tmp/ms-venv/bin/modelscan")
    args = ap.parse_args()
    fickling = shutil.which("fickling") or str(Path(sys.executable).with_name("fickling"))
    tools = {
        "loravet": by_loravet,
        "picklescan": by_picklescan,
        "fickling": (lambda p: by_cli([fickling, "--check-safety", str(p)])) if Path(fickling).exists() else None,
        "modelscan": (lambda p: by_cli([args.modelscan, "-p", str(p)])) if Path(args.modelscan).exists() else None,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bad, good = build_corpus(root)
        print(f"corpus: {len(bad)} malicious files, {len(good)} benign files")
        print(f"{'tool':12} {'detected':>9} {'missed':>7} {'false pos':>10}")
        for name, fn in tools.items():
            if fn is None:
                print(f"{name:12} not installed")
                continue
            detected = sum(1 for p in bad if fn(p))
            false_pos = [p.name for p in good if fn(p)]
            print(f"{name:12} {detected:>6}/{len(bad)} {len(bad) - detected:>7} {len(false_pos):>10}"
                  + (f"  ({', '.join(false_pos)})" if false_pos else ""))
        assert not (root / "CANARY").exists(), "a scanner executed a payload"

        import torch

        big = root / "big.pt"
        n = args.size_mb * 1024 * 1024 // 4 // 64
        torch.save({f"layer{i}.weight": torch.zeros(n // 8, 64) for i in range(8)}, big)
        size = big.stat().st_size
        times: dict[str, list[float]] = {"loravet": [], "picklescan": []}
        for _ in range(args.repeats):
            for name, fn in (("loravet", by_loravet), ("picklescan", by_picklescan)):
                start = time.perf_counter()
                flagged = fn(big)
                times[name].append(time.perf_counter() - start)
                assert not flagged, name
        lm, pm = statistics.median(times["loravet"]), statistics.median(times["picklescan"])
        print(f"large benign torch checkpoint ({size / 1e6:.0f} MB), median of {args.repeats}: "
              f"loravet {lm * 1000:.2f} ms, picklescan {pm * 1000:.2f} ms, ratio {lm / pm:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
