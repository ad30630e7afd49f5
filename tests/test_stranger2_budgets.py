"""A stranger's pass over the per-adapter budgets (issue #9's follow-up): what a notebook user does between and
around checks must find the process as it was, whatever moment a budget runs out at."""

from __future__ import annotations

import json
import math
import os
import random
import resource
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import loravet
from loravet.adapter import limits
from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.findings import Severity
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter

BASE = "Qwen/Qwen2.5-0.5B-Instruct"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX timers and RLIMIT_AS (Linux)")


class Outer(BaseException):
    pass


class Inner(BaseException):
    pass


def _adapter(folder: Path, **config: Any) -> Path:
    entry = lookup_catalog(BASE)
    assert entry is not None
    a = write_synthetic_adapter(folder, catalog_architecture(entry), lora_config_dict(BASE, 4, 8, ["q_proj"]))
    path = a / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return a


def _as_before(rlimit: tuple[int, int], handler: Any) -> None:
    assert resource.getrlimit(resource.RLIMIT_AS) == rlimit
    assert signal.getsignal(signal.SIGALRM) is handler
    assert list(limits._deadlines) == [] and limits._cap_depth == 0 and limits._held == 0


def test_a_budget_that_ran_out_is_not_raised_again_while_it_unwinds() -> None:
    """An adapter's budget that runs out inside a config regex's own deadline was raised again every 0.1 ms
    until its block ended: in the unwinding (a `finally` that takes a moment) and, by chance, in the block's
    own bookkeeping, which then kept the past-due entry for good (every later adapter stopped at once, and a
    leftover inner entry later killed the process with SIGALRM)."""
    hits = 0
    with pytest.raises(Outer), limits.deadline(0.02, Outer):
        try:
            with limits.deadline(10, Inner):
                time.sleep(0.2)  # Outer's time runs out here
        finally:
            try:
                time.sleep(0.02)  # unwinding that takes a moment
            except Outer:
                hits += 1
    assert hits == 0
    assert list(limits._deadlines) == [] and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


class _RaiseOnUse:
    """The hold, with an exception (as a ^C or an alarm does) arriving on its `n`th entry, before it takes
    effect: the first line of a budget's `finally`."""

    def __init__(self, inner: Any, n: int, exc: type[BaseException]) -> None:
        self.inner, self.n, self.exc, self.uses = inner, n, exc, 0

    def __enter__(self) -> Any:
        self.uses += 1
        if self.uses == self.n:
            raise self.exc
        return self.inner.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self.inner.__exit__(*exc)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, Outer])
def test_a_budget_closes_even_when_interrupted_at_its_first_line(
    monkeypatch: pytest.MonkeyPatch, interrupt: type[BaseException]
) -> None:
    rlimit, handler = resource.getrlimit(resource.RLIMIT_AS), signal.getsignal(signal.SIGALRM)
    monkeypatch.setattr(limits, "_hold_alarms", _RaiseOnUse(limits._hold_alarms, 2, interrupt))
    with pytest.raises(interrupt), limits.deadline(5, Outer):
        pass
    _as_before(rlimit, handler)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no timer left for a handler that is gone
    monkeypatch.setattr(limits, "_hold_alarms", _RaiseOnUse(limits._Held(), 2, interrupt))
    with pytest.raises(interrupt), limits.memory_cap(4096) as capped:
        assert capped and resource.getrlimit(resource.RLIMIT_AS) != rlimit
    _as_before(rlimit, handler)


def test_a_budget_running_out_while_a_file_is_opened_is_that_budget_not_a_bad_descriptor(tmp_path: Path) -> None:
    """An alarm raised just after the descriptor became a file object closed it twice: OSError EBADF in place
    of `analysis-budget` (about 1 run in 12 here), and in `scan` possibly another worker's file."""
    path = tmp_path / "adapter_config.json"
    path.write_bytes(b"{}" * 50)
    others: list[str] = []
    for _ in range(800):
        try:
            with limits.deadline(random.choice([1e-4, 2e-4, 5e-4]), Outer):
                while True:
                    with limits.open_regular(path, 1000) as fh:
                        fh.read()
        except Outer:
            pass
        except BaseException as exc:  # anything but the budget's own exception is the defect
            others.append(repr(exc))
    assert others == []


def test_the_callers_periodic_timer_stays_periodic(tmp_path: Path) -> None:
    a = _adapter(tmp_path / "a")
    ticks: list[float] = []

    def tick(signum: int, frame: FrameType | None) -> None:
        ticks.append(time.monotonic())

    old = signal.signal(signal.SIGALRM, tick)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30, 30)
        (ad,) = loravet.check([str(a)]).adapters
        assert ad.finding("analysis-error") is None
        assert signal.getsignal(signal.SIGALRM) is tick
        left, interval = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < left <= 30 and interval == 30  # was given back as a one-shot timer
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_ctrl_c_in_the_middle_of_a_check_leaves_the_process_as_it_was(tmp_path: Path) -> None:
    a = _adapter(tmp_path / "a", target_modules="([a-z_.0-9]+)+zz")  # a regex that runs for a second
    rlimit, handler = resource.getrlimit(resource.RLIMIT_AS), signal.getsignal(signal.SIGALRM)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        signal.setitimer(signal.ITIMER_PROF, 0.3)  # SIGPROF stands in for the user's ^C below
        prof = signal.signal(signal.SIGPROF, lambda s, f: signal.raise_signal(signal.SIGINT))
        try:
            with pytest.raises(KeyboardInterrupt):
                loravet.check([str(a)])
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, prof)
    finally:
        signal.signal(signal.SIGINT, old_int)
    _as_before(rlimit, handler)
    (later,) = loravet.check([str(_adapter(tmp_path / "later"))]).adapters
    assert later.finding("analysis-budget") is None and later.load_outcome == "loads"


def test_small_compressed_files_fit_a_modest_memory_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a compressed stream (or an artifact) with `read(cap)` reserved the whole cap first (2 GiB for a
    pickle, 512 MiB for an artifact): under a 300 MiB budget a 100-byte .pkl.gz lost its critical `unsafe-pickle`
    to `analysis-budget`, and two tiny .pkl.xz tables lost their `train-val-overlap`."""
    import gzip
    import lzma
    import pickle

    a = _adapter(tmp_path / "a")
    (a / "extra.pkl.gz").write_bytes(gzip.compress(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R."))
    rows = [{"body": f"text number {i}", "rule_violation": i % 2} for i in range(4)]
    (a / "train.pkl.xz").write_bytes(lzma.compress(pickle.dumps(rows, protocol=4)))
    (a / "val.pkl.xz").write_bytes(lzma.compress(pickle.dumps(rows[:2], protocol=4)))
    monkeypatch.setattr(limits, "ADAPTER_MEMORY_BUDGET_MB", 300)
    (ad,) = loravet.check([str(a)]).adapters
    assert ad.finding("analysis-budget") is None
    unsafe = ad.finding("unsafe-pickle")
    assert unsafe is not None and unsafe.severity is Severity.CRITICAL
    assert ad.finding("train-val-overlap") is not None


_REPLAY_TWICE = """
import sys
from loravet.adapter import limits
import loravet
limits.ADAPTER_TIME_BUDGET_S, limits.ADAPTER_MEMORY_BUDGET_MB = float(sys.argv[2]), int(sys.argv[3])
(first,) = loravet.check([sys.argv[1]], replay=True).adapters
limits.ADAPTER_TIME_BUDGET_S, limits.ADAPTER_MEMORY_BUDGET_MB = 300.0, 8192
(later,) = loravet.check([sys.argv[1]], replay=True).adapters
print("later", later.load_outcome, [f.message for f in later.findings if f.code.startswith("analysis")])
"""


@pytest.mark.parametrize(("seconds", "megabytes"), [(0.3, 8192), (300.0, 450)])
def test_a_replay_cut_by_its_budget_leaves_later_replays_working(
    tmp_path: Path, seconds: float, megabytes: int
) -> None:
    """The first import of torch, transformers and peft ran inside the first adapter's budget. Cut by the time
    budget it left them half-imported: every later replay in the process failed ("Could not import module
    'AutoModel'"). Under a 450 MiB memory cap, torch's mapping failed and the re-import aborted the process
    (C++ "cannot initialize type GradBucket"); at 800 MiB OpenBLAS aborted it."""
    pytest.importorskip("peft")
    import subprocess

    a = _adapter(tmp_path / "a")
    env = {**os.environ, "PYTHONPATH": str(Path(loravet.__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", _REPLAY_TWICE, str(a), str(seconds), str(megabytes)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "later loads []" in proc.stdout, proc.stdout + proc.stderr[-2000:]


@pytest.mark.parametrize("seconds", [math.inf, math.nan, 1e12])
def test_a_budget_of_inf_bounds_nothing_instead_of_failing_every_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: float
) -> None:
    """LORAVET_ADAPTER_BUDGET_S=inf (no budget, as a user would write it) failed every adapter with
    `analysis-error` (OverflowError from the timer; ValueError for NaN)."""
    monkeypatch.setattr(limits, "ADAPTER_TIME_BUDGET_S", seconds)
    (ad,) = loravet.check([str(_adapter(tmp_path / "a"))]).adapters
    assert [f.code for f in ad.findings if f.code.startswith("analysis")] == [] and ad.load_outcome == "loads"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LORAVET_ADAPTER_MEMORY_MB", "1.5", "1"),
        ("LORAVET_ADAPTER_MEMORY_MB", "", "8192"),
        ("LORAVET_ADAPTER_MEMORY_MB", "lots", "8192"),
        ("LORAVET_ADAPTER_MEMORY_MB", "inf", "0"),
        ("LORAVET_ADAPTER_BUDGET_S", "five", "300.0"),
        ("LORAVET_ADAPTER_BUDGET_S", " 20 ", "20.0"),
    ],
)
def test_a_mistyped_budget_setting_does_not_break_import(name: str, value: str, expected: str) -> None:
    """`LORAVET_ADAPTER_MEMORY_MB=1.5` (or an empty or mistyped value) made `import loravet` a traceback."""
    import subprocess

    env = {**os.environ, name: value, "PYTHONPATH": str(Path(loravet.__file__).resolve().parents[1])}
    attr = "ADAPTER_MEMORY_BUDGET_MB" if "MEMORY" in name else "ADAPTER_TIME_BUDGET_S"
    code = f"import loravet; from loravet.adapter import limits; print(limits.{attr})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.strip() == expected
    assert ("is not a number" in proc.stderr) == (value.strip() not in ("", "1.5", "inf", "20"))


def test_a_library_the_memory_cap_would_not_map_is_the_memory_budget() -> None:
    """Under the cap, the dynamic loader's refusal reaches Python as an ImportError, not a MemoryError: it was
    reported as `analysis-error` "ImportError: libtorch_cpu.so: failed to map segment from shared object"."""
    from loravet.pipeline import _error_finding

    refused = ImportError("libtorch_cpu.so: failed to map segment from shared object")
    assert _error_finding(refused, "the analysis", memory_capped=True).code == "analysis-budget"
    assert _error_finding(refused, "the analysis", memory_capped=False).code == "analysis-error"
    assert _error_finding(ImportError("No module named 'x'"), "the analysis", memory_capped=True).code == (
        "analysis-error"
    )
