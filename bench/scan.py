"""`hf:` checks and `loravet scan` against the local hub (loravet.testing.hub_server), measured.

A. Bytes: five k-fold adapters (r=8, q/k/v/o, f32) of a real-size Qwen2.5-1.5B-Instruct whose 3.1 GB bf16
   weights are random (bench/static_check.py's generator), all served by the local hub.
   `loravet compare hf:bench/fold0..4 --base hf:Qwen/Qwen2.5-1.5B-Instruct` and `check` of one: bytes the
   client fetched and the server sent, against adapter + base weight bytes (target <= 1%); then the same
   commands again (target: nothing fetched).
B. Scan: N generated adapter repos of Qwen2.5-0.5B-Instruct (r=2, q/v, f16) on the local hub, a mix of
   clean 60%, wrong base 10% (Qwen2.5-1.5B shapes), inert 10%, unsafe pickle 10%, huge 10% (a 4 MiB
   optimizer.pt), `loravet scan --base Qwen/Qwen2.5-0.5B-Instruct` with an empty cache at N = 100 and
   1,000: wall time, adapters/s, requests and bytes per adapter, peak RSS (target >= 50/s, memory flat).
C. Resume: the 1,000 scan killed (SIGKILL) half-way, rerun with the same --results: same summary.

    python bench/scan.py [--workdir /tmp/loravet-bench-scan] [--skip-a] [--sizes 100,1000] [--workers N]
                         [--processes N]          (default: the scan's own layout)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter
from loravet.testing.hub_repos import write_adapter_repo
from loravet.testing.hub_server import HubServer

BIG = "Qwen/Qwen2.5-1.5B-Instruct"
SMALL = "Qwen/Qwen2.5-0.5B-Instruct"
MIX = [("clean", 60), ("wrong-base", 10), ("inert", 10), ("unsafe-pickle", 10), ("huge", 10)]


def _process_tree(pid: int) -> list[int]:
    """pid and every process below it, from /proc."""
    out = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                out += _process_tree(int(child))
    except (OSError, ValueError):
        pass
    return out


def _vm_hwm(pid: int) -> int | None:
    """A process's peak resident set (KiB), or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _poll_peaks(pid: int, done: Any, peak: list[int]) -> None:
    """Sum over the process tree of each process's VmHWM, polled until `done` is set."""
    peaks: dict[int, int] = {}
    time.sleep(0.3)  # past exec: VmHWM is the new program's
    while not done.is_set():
        for p in _process_tree(pid):
            hwm = _vm_hwm(p)
            if hwm is not None:
                peaks[p] = max(peaks.get(p, 0), hwm)
        peak[0] = sum(peaks.values())
        time.sleep(0.05)


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int, str, str]:
    """Wall seconds, exit code, the peak RSS of the child and its worker processes together (KiB: the sum of
    each process's VmHWM polled from /proc; ru_maxrss would count the pages of this process that the child
    shares until exec, and only the largest process), stdout, stderr."""
    import tempfile
    import threading

    peak = [0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        done = threading.Event()
        watcher = threading.Thread(target=_poll_peaks, args=(proc.pid, done, peak), daemon=True)
        watcher.start()
        while True:  # reap with wait4 for the child's own CPU time; /proc/PID stays readable until then
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.01)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        LAST_CPU[0] = usage.ru_utime + usage.ru_stime
        LAST_CPU[1] = usage.ru_stime
        done.set()
        watcher.join()
        out.seek(0)
        err.seek(0)
        return wall, proc.returncode, peak[0], out.read(), err.read()


LAST_CPU = [0.0, 0.0]  # the last measured command's CPU seconds: all, of which in the kernel


def own_cpu() -> float:
    """CPU seconds of this process (the local hub's threads: the main thread only sleeps while a child runs)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "loravet.cli", *args]


def fresh_env(url: str, home: Path) -> dict[str, str]:
    """A client environment with an empty HF_HOME: a new folder beside `home` (never the removal of an old one
    here: on this machine's ext4, which has no journal, each new inode skips every inode deleted in the last
    minutes, so deleting the last run's 17,000 cache files just before a run would bill their removal to the
    scan; the bench removes its HF_HOMEs when it ends)."""
    import tempfile

    home.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f"{home.name}-", dir=home.parent))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LORAVET_HUB_"))}
    # opted in to the adapters' own values (the default is header-only): the bytes below include them
    env.update(
        {
            "HF_ENDPOINT": url,
            "HF_HOME": str(fresh),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "LORAVET_HUB_VALUES_CAP": str(64 << 20),
        }
    )
    return env


def remove_homes(work: Path) -> None:
    """The HF_HOMEs of this and earlier runs of the bench (at its end, after every measurement)."""
    for prefix in ("hf-a", "hf-b", "hf-c"):
        for folder in work.glob(f"{prefix}*"):
            shutil.rmtree(folder, ignore_errors=True)


def part_a(work: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from static_check import write_random_base  # the project's own real-size random base

    hub_root = work / "hub-a"
    base = write_random_base(hub_root / "Qwen" / "Qwen2.5-1.5B-Instruct")
    entry = lookup_catalog(BIG)
    assert entry is not None
    arch = catalog_architecture(entry)
    folds = []
    for i in range(5):
        folder = hub_root / "bench" / f"fold{i}"
        if not (folder / "adapter_model.safetensors").exists():
            write_synthetic_adapter(
                folder,
                arch,
                lora_config_dict(BIG, 8, 16, ["q_proj", "k_proj", "v_proj", "o_proj"], dropout=0.1),
                seed=i,
            )
        folds.append(folder)
    base_bytes = sum(f.stat().st_size for f in base.glob("*.safetensors"))
    adapter_bytes = [(f / "adapter_model.safetensors").stat().st_size for f in folds]
    print(
        f"A. local hub: {BIG} with {base_bytes / 1e9:.2f} GB of random bf16 weights; 5 adapters of "
        f"{adapter_bytes[0] / 1e6:.2f} MB (r=8, q/k/v/o, f32)"
    )
    with HubServer(hub_root, keep_paths=False) as hub:
        env = fresh_env(hub.url, work / "hf-a")
        for label, args, weights in [
            ("check hf:bench/fold0 --base hf:" + BIG, ["check", "hf:bench/fold0"], adapter_bytes[0] + base_bytes),
            (
                "compare hf:bench/fold0..4 --base hf:" + BIG,
                ["compare", *(f"hf:bench/fold{i}" for i in range(5))],
                sum(adapter_bytes) + base_bytes,
            ),
        ]:
            for attempt in ("first run", "second run"):
                hub.reset_stats()
                wall, rc, _, out, err = run_measured(
                    cli(*args, "--base", f"hf:{BIG}", "--format", "json", "--fail-on", "never"), env
                )
                assert rc == 0, err
                adapters = json.loads(out)["adapters"]
                fetched = sum(a["fetched_bytes"] for a in adapters)
                outcomes = sorted({a["load_outcome"] for a in adapters})
                print(
                    f"   {label} ({attempt}): {wall:.2f} s, outcomes {outcomes}, "
                    f"client fetched {fetched:,} B of adapter files, server sent {hub.stats.bytes:,} B in "
                    f"{hub.stats.requests} requests {dict(sorted(hub.stats.by_kind.items()))} = "
                    f"{100 * hub.stats.bytes / weights:.3f}% of the {weights / 1e9:.3f} GB of weights"
                )
            env = fresh_env(hub.url, work / "hf-a")
        hub.reset_stats()
        wall, rc, _, out, err = run_measured(
            cli(
                "compare",
                *(f"hf:bench/fold{i}" for i in range(5)),
                "--base",
                f"hf:{BIG}",
                "--format",
                "json",
                "--fail-on",
                "never",
            ),
            {**env, "LORAVET_HUB_VALUES_CAP": "0"},
        )
        assert rc == 0, err
        outcomes = sorted({a["load_outcome"] for a in json.loads(out)["adapters"]})
        weights = sum(adapter_bytes) + base_bytes
        print(
            f"   compare, strictly header-only (LORAVET_HUB_VALUES_CAP=0): {wall:.2f} s, outcomes {outcomes}, "
            f"server sent {hub.stats.bytes:,} B in {hub.stats.requests} requests = "
            f"{100 * hub.stats.bytes / weights:.3f}% of the weights"
        )


def build_population(root: Path, n: int) -> None:
    small, big = lookup_catalog(SMALL), lookup_catalog(BIG)
    assert small is not None and big is not None
    base_folder = root / "Qwen" / "Qwen2.5-0.5B-Instruct"
    base_folder.mkdir(parents=True, exist_ok=True)
    (base_folder / "config.json").write_text(json.dumps({**small.config(), "architectures": ["Qwen2ForCausalLM"]}))
    small_cfg = {**small.config(), "architectures": ["Qwen2ForCausalLM"]}
    big_cfg = {**big.config(), "architectures": ["Qwen2ForCausalLM"]}
    kinds = [k for k, share in MIX for _ in range(share)]
    for i in range(n):
        folder = root / "pop" / f"adapter-{i:04d}"
        if (folder / "adapter_config.json").exists():
            continue
        kind = kinds[i % len(kinds)]
        write_adapter_repo(
            folder, kind, small_cfg, SMALL, seed=i, wrong_cfg=big_cfg, huge_bytes=4 << 20, rank=2, dtype="float16"
        )


def part_b(work: Path, sizes: list[int], workers: int | None, processes: int | None) -> dict[int, Any]:
    summaries: dict[int, Any] = {}
    print(
        f"B. scan of generated adapter repos of {SMALL} (r=2, q/v, f16) on the local hub; mix "
        + ", ".join(f"{k} {s}%" for k, s in MIX)
        + "; "
        + (
            f"{processes or 'default'} process(es) x {workers or 'default'} threads"
            if workers or processes
            else "the scan's default layout (2 processes x 4 threads from 100 adapters on 2+ CPUs, else 1 x 8)"
        )
        + "; empty cache each run (RSS: the scan's processes, summed)"
    )
    print(
        "   adapters  wall s  adapters/s  requests/adapter  bytes/adapter  peak RSS MiB  "
        "CPU ms/adapter: scan (of it kernel) + hub"
    )
    for n in sizes:
        root = work / f"hub-b-{n}"
        build_population(root, n)
        with HubServer(root, keep_paths=False) as hub:
            env = fresh_env(hub.url, work / "hf-b")
            results = work / f"scan-{n}.jsonl"
            results.unlink(missing_ok=True)
            server_cpu = own_cpu()
            wall, rc, peak, out, err = run_measured(
                scan_cmd(results, workers, processes),
                env,
            )
            server_cpu = own_cpu() - server_cpu
            assert rc in (0, 1), err
            summary = json.loads(out)
            summaries[n] = summary
            assert summary["adapters"] == n, summary["adapters"]
            print(
                f"   {n:8}  {wall:6.1f}  {n / wall:10.1f}  {hub.stats.requests / n:16.1f}  "
                f"{hub.stats.bytes / n:13,.0f}  {peak / 1024:12.0f}  {1000 * LAST_CPU[0] / n:6.1f} "
                f"({1000 * LAST_CPU[1] / n:.1f}) + {1000 * server_cpu / n:.1f}"
            )
    print(f"   (load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    last = summaries[max(sizes)]
    print(
        f"   summary at {max(sizes)}: outcomes {last['outcomes']}, unsafe pickles {last['unsafe_pickles']['count']}, "
        f"traced bases {last['traced_bases']}, errors {last['errors']['count']}"
    )
    return summaries


def scan_cmd(results: Path, workers: int | None, processes: int | None) -> list[str]:
    """`loravet scan` of the small base's adapters on the local hub, JSON summary, no progress; the scan's own
    default layout where --workers / --processes are not given."""
    layout = ["--workers", str(workers)] if workers else []
    layout += ["--processes", str(processes)] if processes else []
    return cli("scan", "--base", SMALL, "--results", str(results), *layout, "--format", "json", "--quiet")


def part_c(work: Path, n: int, workers: int | None, processes: int | None, expected: dict[str, Any]) -> None:
    root = work / f"hub-b-{n}"
    with HubServer(root, keep_paths=False) as hub:
        env = fresh_env(hub.url, work / "hf-c")
        results = work / "scan-resume.jsonl"
        results.unlink(missing_ok=True)
        cmd = scan_cmd(results, workers, processes)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        while not results.exists() or sum(1 for _ in results.open()) < n // 2:
            time.sleep(0.05)
            if proc.poll() is not None:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = sum(1 for _ in results.open())
        hub.reset_stats()
        wall, rc, _, out, err = run_measured(cmd, env)
        assert rc in (0, 1), err
        resumed = json.loads(out)
        # fetch accounting differs by design: what the killed run had already cached is not fetched again
        same = {k: v for k, v in resumed.items() if k != "fetched_bytes"} == {
            k: v for k, v in expected.items() if k != "fetched_bytes"
        }
        print(
            f"C. scan of {n} killed (SIGKILL) after {done} results; resumed in {wall:.1f} s with "
            f"{hub.stats.requests} requests; final summary identical to the uninterrupted run: {same} "
            f"(fetched bytes {resumed['fetched_bytes']['total']:,} vs {expected['fetched_bytes']['total']:,}: "
            "the killed run's in-flight downloads were already cached)"
        )
        if not same:
            raise SystemExit("resumed summary differs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/loravet-bench-scan"))
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--workers", type=int, default=None, help="Threads per process (default: the scan's).")
    ap.add_argument("--processes", type=int, default=None, help="Worker processes (default: the scan's).")
    ap.add_argument("--skip-a", action="store_true", help="Skip the 3.1 GB real-size base (part A).")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not args.skip_a:
        part_a(args.workdir)
    sizes = [int(s) for s in args.sizes.split(",")]
    summaries = part_b(args.workdir, sizes, args.workers, args.processes)
    part_c(args.workdir, max(sizes), args.workers, args.processes, summaries[max(sizes)])
    remove_homes(args.workdir)


if __name__ == "__main__":
    main()
