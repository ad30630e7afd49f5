"""loravet's static check against the PEFT way, measured in the same run.

A. Five k-fold adapters (r=8, q/k/v/o) of a real-size Qwen2.5-1.5B-Instruct whose 3.1 GB bf16 weights are
   random, generated here. loravet: one `loravet check fold0..fold4 --base BASE` process (config.json and
   safetensors headers only). PEFT: one process that loads the base and `PeftModel.from_pretrained` for ONE
   adapter. Medians of --repeats runs each, and the ratio. Target: loravet's five >= 20x faster.
R. The replay (`check --replay`): five of those adapters replayed by the installed PEFT on a meta-device
   base built from config.json alone, one process, imports included, vs PEFT's real load of one with the
   base's files in the page cache (warm) and evicted from it (cold, as just downloaded); imports and work
   split on both sides. Target: at most a third of the real load; under 0.5 s per further adapter.
B. Scale, as when auditing a whole collection: N generated adapters (Qwen2.5-0.5B, r=4, q/v) in one
   `loravet check` call, N = 10, 100, 1000: wall time and peak RSS. Target: linear time, flat memory,
   1,000 in under 30 s.

C. Cold start (`--part c`): `loravet check` on the five adapters of A as a cold process, against the floor
   for a check that looks at values: a cold `python` that imports safetensors and numpy and reads the same
   five configs, headers and tensors. Each side, and the PEFT side of A, split into interpreter start,
   imports (`-X importtime`) and the rest (work). Target: loravet <= 1.5x the floor.
   `--instructions`: instead of timing, each command's instruction count under valgrind's callgrind (needs
   valgrind; ~10 s per command), with "imports only" commands for the split: deterministic, so it compares
   two trees on a machine too busy for wall times to mean anything.
   `--stages`: where loravet's work goes, per pipeline stage (and the JSON), in a cold process's first run:
   the minimum over --repeats processes.

    python bench/static_check.py [--workdir /tmp/loravet-bench] [--repeats 3] [--skip-peft] [--part a|b|c|ab]
                                 [--baseline-src OTHER_CHECKOUT/src]   (part C: before/after in the same runs)
                                 [--instructions]                      (part C: instruction counts, not times)
                                 [--stages]                            (part C: loravet's work per stage)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter

BASE = "Qwen/Qwen2.5-1.5B-Instruct"
SMALL = "Qwen/Qwen2.5-0.5B-Instruct"
SHARED_CONFIG = Path(__file__).resolve().parents[2] / "shared" / "base-configs" / "Qwen2.5-1.5B-Instruct.json"


def write_random_base(folder: Path) -> Path:
    """config.json + bf16 safetensors shards with random N(0, 0.02) weights, as transformers saves them."""
    if (folder / "model.safetensors.index.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    entry = lookup_catalog(BASE)
    assert entry is not None
    config = json.loads(SHARED_CONFIG.read_text()) if SHARED_CONFIG.exists() else {
        **entry.config(), "architectures": ["Qwen2ForCausalLM"], "torch_dtype": "bfloat16"}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    arch = catalog_architecture(entry)
    rng = np.random.default_rng(0)
    shapes = {k: v for k, v in arch.state_dict_shapes().items() if k != "lm_head.weight"}  # tied
    shard: dict[str, np.ndarray] = {}
    weight_map: dict[str, str] = {}
    shard_bytes, index = 0, 1
    names = list(shapes)

    def flush() -> None:
        nonlocal shard, shard_bytes, index
        import torch
        from safetensors.torch import save_file as save_torch

        name = f"model-{index:05d}.safetensors"
        save_torch({k: torch.from_numpy(v.view(np.int16)).view(torch.bfloat16) for k, v in shard.items()},
                   str(folder / name), metadata={"format": "pt"})
        for k in shard:
            weight_map[k] = name
        shard, shard_bytes, index = {}, 0, index + 1

    for k in names:
        values = (rng.standard_normal(shapes[k], dtype=np.float32) * 0.02) if len(shapes[k]) > 1 else \
            np.ones(shapes[k], dtype=np.float32)
        bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)
        shard[k] = bf16
        shard_bytes += bf16.nbytes
        if shard_bytes > 1_500_000_000:
            flush()
    if shard:
        flush()
    total = sum(int(np.prod(s)) * 2 for s in shapes.values())
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    return folder


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) of the child, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0, 1):
        raise SystemExit(f"failed: {' '.join(cmd[:4])}...: {proc.stderr[-500:]}")
    return wall, max(peak, before) if peak > before else peak, proc.stdout


PEFT_SCRIPT = """
import sys, warnings, torch
warnings.filterwarnings("ignore")
from transformers import AutoModelForCausalLM
from peft import PeftModel
base = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16)
model = PeftModel.from_pretrained(base, sys.argv[2])
print(type(model).__name__)
"""


def part_a(work: Path, repeats: int, skip_peft: bool) -> None:
    base = write_random_base(work / "qwen2.5-1.5b-random")
    size = sum(f.stat().st_size for f in base.glob("*.safetensors"))
    entry = lookup_catalog(BASE)
    assert entry is not None
    arch = catalog_architecture(entry)
    folds = [write_synthetic_adapter(work / f"jigsaw-qwen-fold{i}", arch, lora_config_dict(
        BASE, 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj"], dropout=0.1), seed=i) for i in range(5)]
    lv = [sys.executable, "-m", "loravet.cli", "check", *map(str, folds), "--base", str(base), "--format", "json",
          "--fail-on", "never"]
    loravet_times = []
    for _ in range(repeats):
        wall, _, out = timed(lv)
        loravet_times.append(wall)
        outcomes = [a["load_outcome"] for a in json.loads(out)["adapters"]]
        assert outcomes == ["loads"] * 5, outcomes
    print(f"A. base: {base} ({size / 1e9:.2f} GB bf16 safetensors, random weights)")
    print(f"   loravet check, 5 adapters, one process: median {statistics.median(loravet_times):.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in loravet_times)})")
    if skip_peft:
        return
    peft_times = []
    for _ in range(repeats):
        wall, _, _ = timed([sys.executable, "-c", PEFT_SCRIPT, str(base), str(folds[0])])
        peft_times.append(wall)
    pm, lm = statistics.median(peft_times), statistics.median(loravet_times)
    print(f"   PEFT (load base + PeftModel.from_pretrained), 1 adapter: median {pm:.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in peft_times)})")
    print(f"   ratio: loravet checks 5 adapters {pm / lm:.1f}x faster than PEFT loads 1 "
          f"({5 * pm / lm:.0f}x per adapter); target >= 20x")


REPLAY_SCRIPT = """
import sys, time, json
t0 = time.perf_counter()
import loravet
from loravet.extras import replay_available
assert replay_available()
t_lv = time.perf_counter()
base, folds = sys.argv[1], sys.argv[2:]
import torch, transformers, peft  # noqa: F401  (counted apart: what every replay process pays once)
t_imp = time.perf_counter()
times = []
for f in folds:
    s = time.perf_counter()
    r = loravet.check([f], base=base, replay=True).adapters[0]
    assert r.verdict["source"] == "replayed" and r.load_outcome == "loads", (r.load_outcome, r.verdict)
    times.append(time.perf_counter() - s)
print(json.dumps({"imports": t_imp - t0, "loravet_import": t_lv - t0, "per_adapter": times}))
"""

# PEFT's real load of one adapter, split into imports, the base's weights, and PeftModel.from_pretrained
PEFT_TIMED_SCRIPT = """
import sys, time, json
t0 = time.perf_counter()
import warnings, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
t1 = time.perf_counter()
warnings.filterwarnings("ignore")
base = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16)
t2 = time.perf_counter()
model = PeftModel.from_pretrained(base, sys.argv[2])
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "base": t2 - t1, "adapter": t3 - t2}))
"""


def evict_page_cache(folder: Path) -> int:
    """Drop the base's weight files from the page cache, as for a user who just downloaded the base (no
    root needed: POSIX_FADV_DONTNEED on each file). Returns the bytes still resident afterwards (fincore)."""
    files = sorted(folder.glob("*.safetensors"))
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    if shutil.which("fincore") is None:
        return -1
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", *map(str, files)],
                         capture_output=True, text=True).stdout
    return sum(int(x) for x in out.split() if x.isdigit())


def _folds(work: Path) -> list[Path]:
    entry = lookup_catalog(BASE)
    assert entry is not None
    arch = catalog_architecture(entry)
    return [write_synthetic_adapter(work / f"jigsaw-qwen-fold{i}", arch, lora_config_dict(
        BASE, 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj"], dropout=0.1), seed=i) for i in range(5)]


def part_r(work: Path, repeats: int, skip_peft: bool) -> None:
    """R. Replay: five fold adapters of the real-size Qwen2.5-1.5B replayed with the installed PEFT on a
    meta-device base built from config.json alone (a folder holding nothing else), one process, imports
    included; against PEFT's real load of one (base weights + PeftModel.from_pretrained), with the base's
    files in the page cache (warm) and evicted from it (cold: a user who just downloaded the base).
    Each round runs every side once (interleaved, so that the load of a shared machine hits all alike).
    Targets: five replays at most a third of one real load; under 0.5 s per further adapter."""
    base = write_random_base(work / "qwen2.5-1.5b-random")
    config_only = work / "qwen2.5-1.5b-config-only"
    config_only.mkdir(parents=True, exist_ok=True)
    (config_only / "config.json").write_text((base / "config.json").read_text())
    folds = _folds(work)
    lv = [sys.executable, "-m", "loravet.cli", "check", "--replay", *map(str, folds), "--base", str(config_only),
          "--format", "json", "--fail-on", "never"]
    peft_cmd = [sys.executable, "-c", PEFT_TIMED_SCRIPT, str(base), str(folds[0])]
    rows: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    resident = []
    for _ in range(repeats):
        wall, _, out = timed(lv)
        adapters = json.loads(out)["adapters"]
        assert [a["load_outcome"] for a in adapters] == ["loads"] * 5, [a["load_outcome"] for a in adapters]
        assert all(a["verdict"]["source"] == "replayed" for a in adapters)
        add("replay_cli", wall)
        wall, _, out = timed([sys.executable, "-c", REPLAY_SCRIPT, str(config_only), *map(str, folds)])
        r = json.loads(out)
        add("replay_inproc", wall)
        add("replay_imports", r["imports"])
        add("replay_loravet_import", r["loravet_import"])
        add("replay_first", r["per_adapter"][0])
        add("replay_further", statistics.mean(r["per_adapter"][1:]))
        if skip_peft:
            continue
        for side in ("warm", "cold"):
            if side == "cold":
                resident.append(evict_page_cache(base))
            wall, _, out = timed(peft_cmd)
            p = json.loads(out)
            add(f"peft_{side}", wall)
            for k in ("imports", "base", "adapter"):
                add(f"peft_{side}_{k}", p[k])
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"R. replay (installed PEFT on a meta-device {BASE} from config.json alone), 5 adapters, one process: "
          f"median {med['replay_cli']:.2f} s (runs: {', '.join(f'{t:.2f}' for t in rows['replay_cli'])})")
    print(f"   in-process: wall {med['replay_inproc']:.2f} s = imports {med['replay_imports']:.2f} s (loravet "
          f"{med['replay_loravet_import']:.2f} s, then torch/transformers/peft), first adapter "
          f"{med['replay_first']:.2f} s (builds the skeleton), each further adapter {med['replay_further']:.3f} s "
          "(target < 0.5 s)")
    work_5 = med["replay_first"] + 4 * med["replay_further"]
    print(f"   replay work for 5 (no imports): {work_5:.2f} s")
    if skip_peft:
        return
    print(f"   cold runs: {', '.join(f'{b / 1e6:.0f} MB' for b in resident)} of the base still in the page cache "
          "after eviction")
    for side in ("warm", "cold"):
        print(f"   PEFT real load of 1, base files {side}: median {med[f'peft_{side}']:.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in rows[f'peft_{side}'])}) = imports "
              f"{med[f'peft_{side}_imports']:.2f} s, base weights {med[f'peft_{side}_base']:.2f} s, "
              f"from_pretrained {med[f'peft_{side}_adapter']:.2f} s")
        work_1 = med[f"peft_{side}_base"] + med[f"peft_{side}_adapter"]
        print(f"   ratio ({side}): replay of 5 / real load of 1 = {med['replay_cli'] / med[f'peft_{side}']:.2f} wall, "
              f"{work_5 / work_1:.2f} excluding imports on both sides (target <= 0.33)")


def part_b(work: Path, sizes: list[int]) -> None:
    entry = lookup_catalog(SMALL)
    assert entry is not None
    arch = catalog_architecture(entry)
    coll = work / "collection"
    coll.mkdir(parents=True, exist_ok=True)
    have = len(list(coll.iterdir()))
    for i in range(have, max(sizes)):
        write_synthetic_adapter(coll / f"adapter-{i:04d}", arch, lora_config_dict(SMALL, 4, 8, ["q_proj", "v_proj"]),
                                seed=i)
    all_adapters = sorted(coll.iterdir())
    print(f"B. collection of generated adapters ({SMALL}, r=4, q/v, "
          f"{(all_adapters[0] / 'adapter_model.safetensors').stat().st_size / 1e6:.2f} MB each)")
    print("   adapters  wall s  ms/adapter  peak RSS MiB")
    for n in sizes:
        cmd = [sys.executable, "-c", "import resource, subprocess, sys; from loravet.cli import main; main()",
               "check", *map(str, all_adapters[:n]), "--format", "json", "--fail-on", "never"]
        # measure peak RSS of this child alone with /usr/bin/time when present
        time_bin = shutil.which("time") or "/usr/bin/time"
        if Path(time_bin).exists():
            start = time.perf_counter()
            proc = subprocess.run([time_bin, "-f", "%M", sys.executable, "-m", "loravet.cli", "check",
                                   *map(str, all_adapters[:n]), "--format", "json", "--fail-on", "never",
                                   "-o", str(work / f"scale-{n}.json")], capture_output=True, text=True)
            wall = time.perf_counter() - start
            peak_kib = int(proc.stderr.strip().splitlines()[-1])
        else:
            wall, peak_kib, _ = timed(cmd)
        print(f"   {n:8d}  {wall:6.2f}  {1000 * wall / n:10.1f}  {peak_kib / 1024:12.0f}")


FLOOR_SCRIPT = """
import json, sys
import numpy
from safetensors import safe_open
for folder in sys.argv[1:]:
    with open(folder + "/adapter_config.json") as fh:
        json.load(fh)
    with safe_open(folder + "/adapter_model.safetensors", framework="np") as f:
        total = sum(float(numpy.abs(f.get_tensor(k)).sum()) for k in f.keys())
"""


def import_seconds(cmd: list[str]) -> float:
    """Seconds a command spends importing: the sum of the top-level cumulative times `-X importtime` reports
    (the flag's own bookkeeping makes this a slight overestimate)."""
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True)
    total_us = 0
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[2].startswith(" ") and \
                not parts[2].startswith("  ") and parts[1].strip().isdigit():
            total_us += int(parts[1])
    return total_us / 1e6


BASELINE_RUNNER = """
import runpy, sys
sys.path.insert(0, sys.argv.pop(1))  # the baseline's src/ before the one under test
sys.argv[0] = "loravet"
runpy.run_module("loravet.cli", run_name="__main__", alter_sys=True)
"""


def instructions(cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Instructions the command executes, start to exit (callgrind's total Ir): the same on every run."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"loravet-bench-callgrind.{os.getpid()}"
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd],
                          capture_output=True, text=True, env=env)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"failed under valgrind: {' '.join(cmd[:4])}...: {proc.stderr[-500:]}")
    try:
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    finally:
        out.unlink(missing_ok=True)
    raise SystemExit("callgrind wrote no total")


def part_c_instructions(commands: dict[str, list[str]], baseline_src: Path | None) -> None:
    """Part C in instruction counts, with imports-only commands that split each side."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    imports = {
        "numpy + safetensors imported, no work": [sys.executable, "-c", "import numpy, safetensors"],
        "... + loravet's CLI imported, no work": [sys.executable, "-c", "import numpy, safetensors, loravet.cli"],
    }
    if baseline_src is not None:
        imports["... + baseline's CLI imported, no work"] = [
            sys.executable, "-c", f"import sys; sys.path.insert(0, {str(baseline_src)!r}); "
            "import numpy, safetensors, loravet.cli"]
    counts = {name: instructions(cmd) for name, cmd in {**commands, **imports}.items()}
    print("C. cold start in instructions (valgrind --tool=callgrind; deterministic: one run each)")
    for name, n in counts.items():
        print(f"   {name:45} {n / 1e6:9.1f} M")
    floor, lv = counts["floor (numpy+safetensors, 5 adapters)"], counts["loravet check, 5 adapters"]
    base_imp, lv_imp = counts["numpy + safetensors imported, no work"], counts["... + loravet's CLI imported, no work"]
    print(f"   ratio loravet / floor: {lv / floor:.2f}x (target <= 1.5x, i.e. <= {1.5 * floor / 1e6:.0f} M)")
    print(f"   loravet beyond numpy+safetensors: imports {(lv_imp - base_imp) / 1e6:.0f} M, "
          f"work {(lv - lv_imp) / 1e6:.0f} M; the floor's work {(floor - base_imp) / 1e6:.0f} M")
    if baseline_src is not None:
        bl = counts["loravet check (baseline src)"]
        bl_imp = counts["... + baseline's CLI imported, no work"]
        print(f"   baseline: {bl / floor:.2f}x the floor (imports {(bl_imp - base_imp) / 1e6:.0f} M, work "
              f"{(bl - bl_imp) / 1e6:.0f} M); loravet / baseline: {lv / bl:.2f}x")


STAGES_SCRIPT = """
import dataclasses, io, json, sys, time
from contextlib import redirect_stdout
import loravet.cli, loravet.pipeline as P, loravet.reports.render as R
spent = {}
def timed(name, fn):
    def run(*args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
    return run
for phase in (P.ANALYSIS, P.PROVENANCE):
    object.__setattr__(phase, "checks", tuple(dataclasses.replace(c, run=timed(c.name, c.run)) for c in phase.checks))
R.render_json = timed("render json", R.render_json)
start = time.perf_counter()
with redirect_stdout(io.StringIO()):
    try:
        loravet.cli.main(sys.argv[1:], standalone_mode=False)
    except SystemExit:
        pass
spent["total (imports excluded)"] = time.perf_counter() - start
print(json.dumps(spent))
"""


def part_c_stages(loravet_args: list[str], repeats: int) -> None:
    """loravet's work per stage, first run in a cold process (the minimum over `repeats` processes)."""
    runs = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", STAGES_SCRIPT, *loravet_args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"stage timing failed: {proc.stderr[-500:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"C. loravet's work per stage, ms for the five adapters (first run in a cold process, min of {repeats})")
    for name in sorted(runs[0], key=lambda n: -min(r.get(n, 0.0) for r in runs)):
        best = min(r.get(name, 0.0) for r in runs)
        if best >= 0.00005:
            print(f"   {name:30} {1000 * best:7.1f}")


def part_c(
    work: Path,
    repeats: int,
    skip_peft: bool,
    baseline_src: Path | None = None,
    count_instructions: bool = False,
    stages: bool = False,
) -> None:
    """Cold start: each command's wall time split into interpreter start, imports and work. `baseline_src`: a
    second loravet (another checkout's src/) measured in the same interleaved runs, for a before/after."""
    entry = lookup_catalog(BASE)
    assert entry is not None
    arch = catalog_architecture(entry)
    folds = [write_synthetic_adapter(work / f"jigsaw-qwen-fold{i}", arch, lora_config_dict(
        BASE, 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj"], dropout=0.1), seed=i) for i in range(5)]
    base = work / "qwen2.5-1.5b-random"
    base_arg = str(base) if (base / "config.json").exists() else BASE
    commands = {
        "python (start only)": [sys.executable, "-c", "pass"],
        "floor (numpy+safetensors, 5 adapters)": [sys.executable, "-c", FLOOR_SCRIPT, *map(str, folds)],
        "loravet check, 5 adapters": [sys.executable, "-m", "loravet.cli", "check", *map(str, folds), "--base",
                                      base_arg, "--format", "json", "--fail-on", "never"],
    }
    if baseline_src is not None:
        commands["loravet check (baseline src)"] = [sys.executable, "-c", BASELINE_RUNNER, str(baseline_src),
                                                    *commands["loravet check, 5 adapters"][3:]]
    if not skip_peft and (base / "config.json").exists():
        commands["PEFT, base + 1 adapter"] = [sys.executable, "-c", PEFT_SCRIPT, str(base), str(folds[0])]
    # byte-compile loravet as `pip install` does: with PYTHONDONTWRITEBYTECODE set (as on some CI machines) an
    # editable install would otherwise compile every module from source on every start, unlike numpy's
    import compileall

    import loravet

    compileall.compile_dir(str(Path(loravet.__file__).parent), quiet=1)
    if baseline_src is not None:
        compileall.compile_dir(str(baseline_src / "loravet"), quiet=1)
    if stages:
        part_c_stages(commands["loravet check, 5 adapters"][3:], repeats)
        return
    if count_instructions:
        commands.pop("PEFT, base + 1 adapter", None)  # minutes under valgrind, and not what the split is about
        part_c_instructions(commands, baseline_src)
        return
    walls: dict[str, list[float]] = {k: [] for k in commands}
    cpus: dict[str, list[float]] = {k: [] for k in commands}
    imports: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(repeats):  # interleaved, so that machine noise hits every side alike
        for name, cmd in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            walls[name].append(timed(cmd)[0])
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            imports[name].append(import_seconds(cmd) if name != "python (start only)" else 0.0)
    med = {name: (statistics.median(walls[name]), statistics.median(cpus[name]), statistics.median(imports[name]))
           for name in commands}
    start = med["python (start only)"][0]
    print(f"C. cold start, base {base_arg}; medians of {repeats} interleaved runs of each (imports: -X importtime)")
    print(f"   {'command':40} {'wall s':>7} {'cpu s':>6} {'start s':>8} {'imports s':>10} {'work s':>7}")
    for name, (wall, cpu, imp) in med.items():
        print(f"   {name:40} {wall:7.3f} {cpu:6.3f} {start:8.3f} {imp:10.3f} {max(0.0, wall - start - imp):7.3f}")
    lv, fl = med["loravet check, 5 adapters"], med["floor (numpy+safetensors, 5 adapters)"]
    print(f"   ratio loravet / floor: {lv[0] / fl[0]:.2f}x wall, {lv[1] / fl[1]:.2f}x cpu (target <= 1.5x)")
    if baseline_src is not None:
        bl = med["loravet check (baseline src)"]
        print(f"   ratio baseline / floor: {bl[0] / fl[0]:.2f}x wall, {bl[1] / fl[1]:.2f}x cpu; "
              f"loravet / baseline: {lv[0] / bl[0]:.2f}x wall, {lv[1] / bl[1]:.2f}x cpu")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/loravet-bench")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-peft", action="store_true")
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--part", choices=["a", "b", "c", "ab", "r", "abr"], default="abr")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="Part C: also measure the loravet in this src/ folder (e.g. a checkout of main), interleaved.")
    ap.add_argument("--instructions", action="store_true",
                    help="Part C: instruction counts under valgrind instead of times (deterministic when busy).")
    ap.add_argument("--stages", action="store_true", help="Part C: loravet's work per pipeline stage.")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if "a" in args.part:
        part_a(work, args.repeats, args.skip_peft)
    if "r" in args.part:
        part_r(work, args.repeats, args.skip_peft)
    if "b" in args.part:
        part_b(work, [int(s) for s in args.sizes.split(",")])
    if args.part == "c":
        part_c(work, args.repeats, args.skip_peft, args.baseline_src, args.instructions, args.stages)


if __name__ == "__main__":
    main()
