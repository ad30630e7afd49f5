"""Pickle scanners compared on loravet's hostile/benign corpus (loravet.testing.hostile), in one run:
loravet, picklescan, fickling, modelscan, modelaudit.

Each hostile case is an adapter folder whose file runs `touch CANARY` when opened the usual way
(tests/test_pickles.py proves it); each benign case is a folder of real files from real tools. A case
counts as detected when the tool reports a problem for a file inside its folder (loravet:
`unsafe-pickle` or `scan-incomplete`; modelscan: any issue; modelaudit: an issue above info/debug
severity; picklescan: a dangerous or unknown global or a scan error; fickling: `is_likely_safe` false).
Every tool runs with its working directory in a temporary folder (fickling writes
safety_results.json into its cwd), and the canaries are checked after every tool.

Wall time: each tool over the whole corpus, median of --repeats runs (CLIs pay their start-up once).

    python bench/pickle_scan.py [--repeats 3] [--scanners-python /tmp/scanners-venv/bin/python]

The other scanners are looked up next to --scanners-python (a separate virtualenv keeps their pinned
dependencies out of loravet's: `python -m venv /tmp/scanners-venv && /tmp/scanners-venv/bin/pip install
modelscan modelaudit fickling`); a tool that is absent is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from loravet.testing.hostile import benign_cases, hostile_cases, write_adapter_files  # noqa: E402


def build_corpus(root: Path) -> tuple[dict[str, Path], dict[str, Path], Path]:
    hostile: dict[str, Path] = {}
    benign: dict[str, Path] = {}
    canaries = root / "canaries"
    canaries.mkdir(parents=True)
    for case in hostile_cases():
        case_dir = root / "hostile" / case.name
        folder = case_dir / ("models--someone--lora/snapshots/rev0" if case.klass == "hub cache" else "adapter")
        write_adapter_files(folder)
        case.build(folder, f"touch {canaries / case.name}")
        hostile[case.name] = case_dir
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for bcase in benign_cases():
            staging = root / "staging" / bcase.name
            staging.mkdir(parents=True)
            for rel in bcase.build(staging):  # one folder per benign file: false positives counted by file
                name = f"{bcase.name}/{rel}"
                case_dir = root / "benign" / bcase.name / rel.replace("/", "_")
                folder = case_dir / "adapter"
                write_adapter_files(folder)
                (staging / rel).rename(folder / Path(rel).name)
                benign[name] = case_dir
    shutil.rmtree(root / "staging")
    return hostile, benign, canaries


def _owner(path: str, cases: dict[str, Path]) -> str | None:
    p = os.path.abspath(path)
    for name, case_dir in cases.items():
        if p == str(case_dir) or p.startswith(str(case_dir) + os.sep):
            return name
    return None


# ---- the tools: each returns the set of flagged file paths (absolute) for the whole corpus

def run_loravet(corpus: Path, cases: dict[str, Path], out: Path) -> set[str]:
    import loravet

    folders = sorted({str(p.parent) for p in corpus.rglob("adapter_config.json")})
    report = loravet.check(folders)
    flagged: set[str] = set()
    for a in report.adapters:
        if a.finding("unsafe-pickle") or a.finding("scan-incomplete"):
            flagged.add(a.path)
    return flagged


def run_picklescan(corpus: Path, cases: dict[str, Path], out: Path) -> set[str]:
    import logging

    from picklescan.scanner import scan_file_path

    logging.getLogger("picklescan").setLevel(logging.CRITICAL)
    flagged: set[str] = set()
    for dirpath, _, files in os.walk(corpus):
        for f in files:
            path = os.path.join(dirpath, f)
            try:
                r = scan_file_path(path)
            except Exception:
                continue
            if r.infected_files > 0 or r.issues_count > 0 or r.scan_err:
                flagged.add(path)
    return flagged


_FICKLING_DRIVER = r"""
import json, os, sys
import fickling
flagged = []
for dirpath, _, files in os.walk(sys.argv[1]):
    if "/canaries" in dirpath:
        continue
    for f in files:
        path = os.path.join(dirpath, f)
        try:
            if not fickling.is_likely_safe(path):
                flagged.append(path)
        except Exception:
            pass
json.dump(flagged, open(sys.argv[2], "w"))
"""


def cli_runner(scanners_python: Path, tool: str) -> Callable[[Path, dict[str, Path], Path], set[str]] | None:
    bindir = scanners_python.parent
    if tool == "fickling":
        if not scanners_python.exists() or subprocess.run(
                [str(scanners_python), "-c", "import fickling"], capture_output=True).returncode != 0:
            return None

        def run_fickling(corpus: Path, cases: dict[str, Path], out: Path) -> set[str]:
            driver = out / "fickling_driver.py"
            driver.write_text(_FICKLING_DRIVER)
            subprocess.run([str(scanners_python), str(driver), str(corpus), str(out / "fickling.json")],
                           cwd=out, capture_output=True, timeout=3600)
            return set(json.loads((out / "fickling.json").read_text()))
        return run_fickling
    exe = bindir / tool
    if not exe.exists():
        return None
    if tool == "modelscan":
        def run_modelscan(corpus: Path, cases: dict[str, Path], out: Path) -> set[str]:
            report = out / "modelscan.json"
            subprocess.run([str(exe), "-p", str(corpus), "-r", "json", "-o", str(report)], cwd=out,
                           capture_output=True, timeout=3600)
            data = json.loads(report.read_text())
            return {str(corpus / i["source"].split(":")[0]) for i in data.get("issues", []) if i.get("source")}
        return run_modelscan

    def run_modelaudit(corpus: Path, cases: dict[str, Path], out: Path) -> set[str]:
        report = out / "modelaudit.json"
        subprocess.run([str(exe), "scan", "--format", "json", "--output", str(report), "--no-cache", str(corpus)],
                       cwd=out, capture_output=True, timeout=3600,
                       env={**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1", "MODELAUDIT_TELEMETRY": "0"})
        data = json.loads(report.read_text())
        flagged: set[str] = set()
        for issue in data.get("issues", []):
            if str(issue.get("severity", "")).lower() in ("info", "debug"):
                continue
            loc = str(issue.get("location") or "").split(" (pos")[0]
            if loc:
                flagged.add(loc.split(":")[0])
        return flagged
    return run_modelaudit


def large_checkpoint(root: Path, size_mb: int, repeats: int) -> dict[str, object]:
    """Scan time of one large benign torch.save checkpoint: loravet's scan_file against picklescan."""
    import logging

    import torch
    from picklescan.scanner import scan_file_path

    from loravet.checks.pickles import scan_file

    logging.getLogger("picklescan").setLevel(logging.CRITICAL)
    big = root / "big.pt"
    n = size_mb * 1024 * 1024 // 4 // 64
    torch.save({f"layer{i}.weight": torch.zeros(n // 8, 64) for i in range(8)}, big)
    times: dict[str, list[float]] = {"loravet": [], "picklescan": []}
    for _ in range(repeats):
        start = time.perf_counter()
        scan = scan_file(big)
        times["loravet"].append(time.perf_counter() - start)
        assert scan is not None and scan.worst == "allowed" and not scan.incomplete
        start = time.perf_counter()
        r = scan_file_path(str(big))
        times["picklescan"].append(time.perf_counter() - start)
        assert r.infected_files == 0
    lm, pm = statistics.median(times["loravet"]), statistics.median(times["picklescan"])
    print(f"large benign torch checkpoint ({big.stat().st_size / 1e6:.0f} MB), median of {repeats}: "
          f"loravet {lm * 1000:.2f} ms, picklescan {pm * 1000:.2f} ms, ratio {lm / pm:.2f}x")
    return {"bytes": big.stat().st_size, "loravet_s": lm, "picklescan_s": pm}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scanners-python", type=Path, default=Path("/tmp/scanners-venv/bin/python"))
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--size-mb", type=int, default=256, help="large benign checkpoint for the scan-time row (0: skip)")
    args = ap.parse_args()
    tools: dict[str, Callable[[Path, dict[str, Path], Path], set[str]] | None] = {
        "loravet": run_loravet, "picklescan": run_picklescan,
        "fickling": cli_runner(args.scanners_python, "fickling"),
        "modelscan": cli_runner(args.scanners_python, "modelscan"),
        "modelaudit": cli_runner(args.scanners_python, "modelaudit"),
    }
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = root / "corpus"
        hostile, benign, canaries = build_corpus(corpus)
        cases = {**hostile, **benign}
        print(f"corpus: {len(hostile)} hostile cases, {len(benign)} benign cases "
              f"({sum(1 for _ in corpus.rglob('*') if _.is_file()):,} files)")
        for name, fn in tools.items():
            if fn is None:
                print(f"{name}: not installed, skipped")
                continue
            times: list[float] = []
            flagged_cases: set[str] = set()
            for _ in range(args.repeats):
                out = root / f"out-{name}"
                out.mkdir(exist_ok=True)
                start = time.perf_counter()
                flagged = fn(corpus, cases, out)
                times.append(time.perf_counter() - start)
                flagged_cases = {o for o in (_owner(p, cases) for p in flagged) if o is not None}
                ran = sorted(p.name for p in canaries.iterdir())
                assert not ran, f"{name} executed payloads: {ran}"
            missed = sorted(set(hostile) - flagged_cases)
            false_pos = sorted(flagged_cases & set(benign))
            results[name] = {"detected": len(set(hostile) & flagged_cases), "hostile": len(hostile),
                             "missed": missed, "false_positives": false_pos, "benign": len(benign),
                             "median_s": statistics.median(times), "runs": len(times)}
        print()
        print(f"| tool | detected | missed | false positives (of {len(benign)} benign files) | "
              f"wall time, whole corpus (median of {args.repeats}) |")
        print("|---|---|---|---|---|")
        for name, r in results.items():
            print(f"| {name} | {r['detected']}/{r['hostile']} | {len(r['missed'])} "  # type: ignore[arg-type]
                  f"| {len(r['false_positives'])} | {r['median_s']:.2f} s |")  # type: ignore[arg-type]
        print()
        for name, r in results.items():
            print(f"{name} missed: {', '.join(r['missed']) or '-'}")  # type: ignore[arg-type]
            if r["false_positives"]:
                print(f"{name} false positives: {', '.join(r['false_positives'])}")  # type: ignore[arg-type]
        if args.size_mb:
            results["large_checkpoint"] = large_checkpoint(root, args.size_mb, args.repeats)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
