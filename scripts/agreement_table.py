"""The differential suite's agreement table: predictor and replay each against real PEFT on real tiny
models, per family, PEFT type and variant. Writes docs/agreement.md.

    python scripts/agreement_table.py [--work /tmp/loravet-agreement] [--random 40] [--subset fast|all]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from loravet.testing.peft_cases import agreement_markdown, all_cases, random_cases, run_case

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/loravet-agreement")
    ap.add_argument("--random", type=int, default=40, help="seeded random cases on top")
    ap.add_argument("--families", default="", help="comma-separated subset of families")
    ap.add_argument("--output", default=str(ROOT / "docs" / "agreement.md"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cases = all_cases() + random_cases(args.random)
    if args.families:
        keep = set(args.families.split(","))
        cases = [c for c in cases if c.family in keep]
    seen = set()
    rows = []
    skipped = 0
    start = time.perf_counter()
    for i, case in enumerate(cases):
        if case.name in seen:
            continue
        seen.add(case.name)
        row = run_case(work, case)
        if row is None:
            skipped += 1
            continue
        rows.append(row)
        flag = "" if row.replay_agrees else "  REPLAY DISAGREES"
        print(f"[{i + 1}/{len(cases)}] {case.name}: PEFT {row.truth.outcome}, replay {row.replayed}, "
              f"predictor {row.predicted}{flag}", file=sys.stderr)
    text = agreement_markdown(rows)
    text += (f"\n{skipped} case(s) peft cannot build on that model (e.g. a type that needs a module the family "
             f"lacks) are not counted. {len(rows)} cases in {time.perf_counter() - start:.0f} s.\n"
             "Regenerate: `python scripts/agreement_table.py`.\n")
    Path(args.output).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
