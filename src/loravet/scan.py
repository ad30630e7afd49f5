"""`loravet scan`: a population audit of adapters, header-only, in parallel, resumable.

Targets come from the hub (`--base BASE_ID`: the adapters the hub records for that base, through
`HfApi.list_models(filter="base_model:adapter:BASE_ID")`) or from a file (ids or local paths, one a line).
Each is checked by the same static pipeline as `loravet check` in a bounded thread pool (the work is
mostly waiting on the network), from 100 adapters in two worker processes where there are two CPUs
(:func:`scan_layout`). Every result, a failure included, is appended to a JSONL file as it
comes; a rerun with the same file skips what is already there. The summary is computed from that file
alone, streaming, so memory stays flat and an interrupted-then-resumed scan ends with the same summary.
"""

from __future__ import annotations

import heapq
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loravet.api import run_static
from loravet.errors import LoravetError, SourceError
from loravet.findings import Severity
from loravet.sources.remote import _api, hub_error_line, offline

__all__ = [
    "ScanSummary",
    "list_base_adapters",
    "read_results",
    "read_targets",
    "run_scan",
    "scan_layout",
    "scan_one",
    "summarise",
]

SCHEMA = "loravet-scan/1"
OUTCOMES = ("loads", "partial", "inert", "fails", "unknown", "error")
WORST_KEPT = 20
LISTED_KEPT = 50


def read_targets(path: Path) -> list[str]:
    """Ids (hf:OWNER/NAME, or OWNER/NAME when no such local path exists) or local paths, one a line;
    blank lines and # comments skipped; duplicates dropped, order kept."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot be read ({exc})") from None
    out: list[str] = []
    seen: set[str] = set()
    for raw in lines:
        line = raw.split("#", 1)[0].strip() if not raw.strip().startswith("hf:") else raw.strip()
        if not line:
            continue
        if (
            not line.startswith("hf:")
            and not Path(line).expanduser().exists()
            and line.count("/") == 1
            and not line.startswith((".", "/", "~"))
        ):
            line = f"hf:{line}"
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def list_base_adapters(base_id: str, limit: int | None = None) -> list[str]:
    """hf: ids of the adapters the hub records for BASE_ID (its base_model:adapter: relation)."""

    base_id = base_id.removeprefix("hf:")
    if offline():
        raise SourceError(
            f"--base {base_id}: listing the hub's adapters needs the network and HF_HUB_OFFLINE "
            "is set (use --from FILE)"
        )
    try:
        models = _api().list_models(filter=f"base_model:adapter:{base_id}", limit=limit)
        return [f"hf:{m.id}" for m in models]
    except Exception as exc:  # one line whatever huggingface_hub raised
        raise SourceError(hub_error_line(f"--base {base_id}", exc)) from None


def scan_one(spec: str, base: str | None) -> dict[str, Any]:
    """One result line: the adapter's check (without bulky per-module statistics), or the error."""
    started = time.perf_counter()
    try:
        # without the per-module update statistics: a record leaves them out, and they cost ~13% of a scan's CPU
        report = run_static([spec], base, resolve=True, command="check", update_stats=False)
        adapter = report.adapters[0].to_json()
        record: dict[str, Any] = {"spec": spec, "status": "checked", "adapter": adapter}
    except LoravetError as exc:
        record = {"spec": spec, "status": "error", "error": str(exc)}
    except Exception as exc:  # a bug in one adapter's check is that adapter's result, not the end of the scan
        record = {"spec": spec, "status": "error", "error": f"internal error: {type(exc).__name__}: {str(exc)[:200]}"}
    record["seconds"] = round(time.perf_counter() - started, 4)
    return record


def _done(results: Path) -> set[str]:
    """Specs already in the results file (a torn last line from an interruption is ignored)."""
    done: set[str] = set()
    if not results.exists():
        return done
    for record in read_results(results):
        done.add(str(record.get("spec")))
    return done


def read_results(results: Path) -> Iterator[dict[str, Any]]:
    with results.open("r", encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return  # torn by an interruption: that adapter is redone
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "spec" in record:
                yield record


class _Progress:
    """rich progress bar on a terminal; quiet, line-based progress otherwise (every 10% or 10 s)."""

    def __init__(self, total: int, already: int, quiet: bool) -> None:
        self.total, self.count, self.errors = total, already, 0
        self.quiet = quiet
        self.started = time.perf_counter()
        self.last_line = 0.0
        self.next_pct = 10
        self.bar: Any = None
        self.task: Any = None
        if not quiet and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("scan"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("scan", total=total, completed=already, rate="")

    def advance(self, record: dict[str, Any]) -> None:
        self.count += 1
        self.errors += record.get("status") == "error"
        elapsed = time.perf_counter() - self.started
        rate = f"{(self.count) / elapsed:.1f}/s" if elapsed > 0 else ""
        if self.bar is not None:
            self.bar.update(self.task, advance=1, rate=rate)
            return
        if self.quiet:
            return
        pct = 100 * self.count // max(self.total, 1)
        now = time.perf_counter()
        if pct >= self.next_pct or now - self.last_line > 10 or self.count == self.total:
            self.next_pct = (pct // 10 + 1) * 10
            self.last_line = now
            print(f"loravet scan: {self.count}/{self.total} ({self.errors} errors) {rate}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@dataclass
class ScanRun:
    targets: int
    skipped: int  # already in the results file
    checked: int
    seconds: float


def _thread_pool(threads: int) -> ThreadPoolExecutor:
    """A pool whose threads all exist before the first check starts. The per-adapter memory budget caps the
    whole process's address space while a check runs, and a thread is 8 MiB of it (its stack): started lazily,
    under a small budget the pool's next thread failed ("can't start new thread") and the scan ended."""
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scan")
    gate = threading.Barrier(threads)
    for started in [pool.submit(gate.wait, 30) for _ in range(threads)]:  # each waits: the next gets a new thread
        started.result()
    return pool


def _leave_with_the_scan(parent: int) -> None:
    """A worker process's initializer: when the scan's process dies without closing the pool (SIGKILL, the
    OOM killer), the worker exits too. Its task queue's pipe is held open by the worker itself, so it would
    otherwise wait for work forever (~60 MB each, with the resource tracker beside them)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="scan-parent-watch", daemon=True).start()


def _died(spec: str) -> dict[str, Any]:
    return {
        "spec": spec,
        "status": "error",
        "error": f"{spec}: not checked: the worker process checking it died twice (killed, or out of memory)",
        "seconds": 0.0,
    }


def _scan_chunk(specs: list[str], base: str | None, threads: int) -> list[dict[str, Any]]:
    """One worker process's share: a few adapters checked by its own threads (run in a child process)."""
    with _thread_pool(min(threads, len(specs))) as pool:
        return list(pool.map(lambda spec: scan_one(spec, base), specs))


def _one(check: Callable[[str, str | None], dict[str, Any]], spec: str, base: str | None) -> list[dict[str, Any]]:
    return [check(spec, base)]


AUTO_PROCESSES_FROM = 100  # adapters to check; below, two processes' start-up (~1 s of imports each) outweighs
IN_FLIGHT = 8  # adapters in flight by default, in all: against the real hub's 50-200 ms, 8 keep the CPUs busy


def scan_layout(todo: int, workers: int | None, processes: int | None, custom_check: bool) -> tuple[int, int]:
    """(processes, threads per process) for `todo` adapters. By default two processes of 4 threads from
    AUTO_PROCESSES_FROM adapters on a machine with two or more CPUs (bench/scan.py: 63 against 33 adapters/s
    at 1,000 on this 2-CPU machine, see docs/benchmarks.md: one interpreter's threads contend for its lock and
    spend more time in the kernel than on the checks), else one process of 8; a custom `check` (tests) runs
    in this process, as it cannot be sent to another."""
    if processes is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        processes = 2 if cpus >= 2 and todo >= AUTO_PROCESSES_FROM and not custom_check else 1
    if workers is None:
        workers = max(1, IN_FLIGHT // processes)
    return processes, workers


class _Workers:
    """The pool a scan submits to and the adapters in flight (bounded: never 100,000 futures at once). A
    process pool that a dead worker broke (killed, out of memory, a crash in native code) is replaced: the
    adapters it held are tried once more, alone, and one in flight at a second death is an error result,
    never the end of the scan."""

    def __init__(
        self,
        todo: list[str],
        base: str | None,
        check: Callable[[str, str | None], dict[str, Any]],
        processes: int,
        workers: int,
    ) -> None:
        self.queue, self.base, self.check, self.processes, self.workers = iter(todo), base, check, processes, workers
        self.chunk, self.window = (workers, processes * 2) if processes > 1 else (1, workers * 4)
        self.pools: list[Executor] = []
        self.pending: dict[Future[list[dict[str, Any]]], tuple[list[str], int]] = {}  # -> (specs, pool number)
        self.retry: list[str] = []
        self.retried: set[str] = set()
        self._new_pool()

    def _new_pool(self) -> None:
        if self.processes == 1:
            self.pools.append(_thread_pool(self.workers))
            return
        # process pools pull in multiprocessing, subprocess and socket: imported only for --processes, which
        # every other command (and a one-process scan) would otherwise import at start-up
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pools.append(
            ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_leave_with_the_scan,
                initargs=(os.getpid(),),
            )
        )

    def fill(self) -> None:
        while len(self.pending) < self.window:
            take = (next(self.queue, None) for _ in range(self.chunk))
            specs = [self.retry.pop(0)] if self.retry else [s for s in take if s is not None]
            if not specs:
                return
            pool = self.pools[-1]
            if self.processes > 1:
                fut = pool.submit(_scan_chunk, specs, self.base, self.workers)
            else:
                fut = pool.submit(_one, self.check, specs[0], self.base)
            self.pending[fut] = (specs, len(self.pools))

    def collect(self, fut: Future[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        specs, number = self.pending.pop(fut)
        try:
            return fut.result()
        except BrokenExecutor:
            records = [_died(spec) for spec in specs if spec in self.retried]
            self.retry.extend(spec for spec in specs if spec not in self.retried)
            self.retried.update(specs)
            if number == len(self.pools):  # the first of its pool's futures to fail: a new pool for the rest
                self.pools[-1].shutdown(wait=False, cancel_futures=True)
                self._new_pool()
            return records

    def close(self) -> None:
        for pool in self.pools:
            pool.shutdown(wait=True)


def run_scan(
    targets: list[str],
    base: str | None,
    results: Path,
    *,
    workers: int | None = None,
    processes: int | None = None,
    quiet: bool = False,
    check: Callable[[str, str | None], dict[str, Any]] = scan_one,
) -> ScanRun:
    """Check every target not already in `results`, appending one JSON line per adapter as it completes.

    `workers` threads per process (the work is mostly waiting on the network), in `processes` worker
    processes when that is over 1 (the checks' own CPU time then spreads over cores); both by default as
    :func:`scan_layout` says."""
    done = _done(results)
    todo = [t for t in targets if t not in done]
    processes, workers = scan_layout(len(todo), workers, processes, check is not scan_one)
    results.parent.mkdir(parents=True, exist_ok=True)
    _repair_torn_tail(results)
    progress = _Progress(len(targets), len(targets) - len(todo), quiet)
    started = time.perf_counter()
    checked = 0
    work = _Workers(todo, base, check, processes, workers)
    try:
        with results.open("a", encoding="utf-8") as out:
            work.fill()
            while work.pending:
                finished, _ = wait(work.pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    for record in work.collect(fut):
                        out.write(json.dumps(record, separators=(",", ":")) + "\n")
                        out.flush()
                        checked += 1
                        progress.advance(record)
                work.fill()
    finally:
        work.close()
        progress.close()
    return ScanRun(len(targets), len(targets) - len(todo), checked, time.perf_counter() - started)


def _repair_torn_tail(results: Path) -> None:
    """Cut a last line an interruption left half-written, so appended lines start on their own."""
    if not results.exists() or results.stat().st_size == 0:
        return
    with results.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        data = fh.read()
        cut = data.rfind(b"\n") + 1
        fh.truncate(cut)


@dataclass
class ScanSummary:
    source: str
    total: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: Counter[str] = field(default_factory=Counter)
    severities: Counter[str] = field(default_factory=Counter)
    unsafe_pickles: list[dict[str, Any]] = field(default_factory=list)
    unsafe_count: int = 0
    traced_bases: Counter[str] = field(default_factory=Counter)
    wrong_base: int = 0
    vllm: list[dict[str, Any]] = field(default_factory=list)
    vllm_count: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: list[dict[str, str]] = field(default_factory=list)
    worst: list[dict[str, Any]] = field(default_factory=list)
    fetched_bytes: int = 0
    worst_severity: str | None = None

    def to_json(self) -> dict[str, Any]:
        checked = self.total - self.outcomes.get("error", 0)
        return {
            "schema": SCHEMA,
            "source": self.source,
            "adapters": self.total,
            "checked": checked,
            "outcomes": {k: self.outcomes.get(k, 0) for k in OUTCOMES},
            "findings_by_code": dict(sorted(self.findings.items(), key=lambda kv: (-kv[1], kv[0]))),
            "adapters_by_worst_severity": {
                s: self.severities.get(s, 0) for s in ("critical", "high", "medium", "low", "info", "none")
            },
            "unsafe_pickles": {"count": self.unsafe_count, "adapters": self.unsafe_pickles},
            "traced_bases": dict(sorted(self.traced_bases.items(), key=lambda kv: (-kv[1], kv[0]))),
            "architecture_mismatch": self.wrong_base,
            "vllm_incompatible": {"count": self.vllm_count, "adapters": self.vllm},
            "errors": {
                "count": sum(self.errors.values()),
                "by_reason": dict(self.errors.most_common()),
                "examples": self.error_examples,
            },
            "worst_offenders": self.worst,
            "fetched_bytes": {
                "total": self.fetched_bytes,
                "per_adapter": round(self.fetched_bytes / checked) if checked else 0,
            },
            "worst_severity": self.worst_severity,
        }


def _error_reason(message: str) -> str:
    """Group errors by kind, not by repository: the text after the spec, digits and quotes dropped."""
    text = message.split(": ", 1)[1] if ": " in message else message
    for stop in (" (", ": ", ";"):
        text = text.split(stop, 1)[0]
    return text[:80]


def summarise(records: Iterable[dict[str, Any]], source: str) -> ScanSummary:
    """The summary of a results stream (order-independent, bounded memory)."""
    s = ScanSummary(source)
    heap: list[tuple[int, int, str, dict[str, Any]]] = []
    for rec in records:
        s.total += 1
        spec = str(rec.get("spec"))
        if rec.get("status") != "checked":
            s.outcomes["error"] += 1
            reason = _error_reason(str(rec.get("error", "")))
            s.errors[reason] += 1
            _keep(s.error_examples, {"spec": spec, "error": str(rec.get("error", ""))})
            continue
        a = rec.get("adapter") or {}
        s.outcomes[str(a.get("load_outcome", "unknown"))] += 1
        s.fetched_bytes += int(a.get("fetched_bytes") or 0)
        findings = a.get("findings") or []
        worst = max((Severity.parse(f["severity"]) for f in findings), default=None)
        s.severities[worst.label if worst is not None else "none"] += 1
        if worst is not None and (s.worst_severity is None or worst > Severity.parse(s.worst_severity)):
            s.worst_severity = worst.label
        for f in findings:
            s.findings[f["code"]] += 1
            if f["code"] == "unsafe-pickle":
                s.unsafe_count += 1
                _keep(s.unsafe_pickles, {"spec": spec, "severity": f["severity"], "message": f["message"]})
            elif f["code"] == "vllm-incompatible":
                s.vllm_count += 1
                _keep(s.vllm, {"spec": spec, "message": f["message"]})
            elif f["code"] == "architecture-mismatch":
                s.wrong_base += 1
        traced = (a.get("architecture") or {}).get("best_match")
        if traced:
            s.traced_bases[str(traced)] += 1
        score = sum(10 ** int(Severity.parse(f["severity"])) for f in findings)
        entry = {
            "spec": spec,
            "load_outcome": a.get("load_outcome"),
            "worst_severity": worst.label if worst is not None else None,
            "codes": sorted({f["code"] for f in findings}),
        }
        item = (score, -_stable(spec), spec, entry)
        if len(heap) < WORST_KEPT:
            heapq.heappush(heap, item)
        elif item[:3] > heap[0][:3]:
            heapq.heapreplace(heap, item)
    for key in ("unsafe_pickles", "vllm", "error_examples"):
        kept = getattr(s, key)
        kept.sort(key=lambda d: d["spec"])
        del kept[LISTED_KEPT:]
    s.worst = [e for _, _, _, e in sorted(heap, key=lambda t: (-t[0], t[2]))]
    return s


def _keep(kept: list[dict[str, Any]], item: dict[str, Any]) -> None:
    """The first LISTED_KEPT by spec, whatever the arrival order, in bounded memory."""
    kept.append(item)
    if len(kept) >= 2 * LISTED_KEPT:
        kept.sort(key=lambda d: d["spec"])
        del kept[LISTED_KEPT:]


def _stable(spec: str) -> int:
    import zlib

    return zlib.crc32(spec.encode())


def summary_from_file(results: Path, source: str) -> ScanSummary:
    return summarise(read_results(results) if results.exists() else iter(()), source)
