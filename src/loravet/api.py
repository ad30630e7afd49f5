"""The library API a notebook calls; the CLI is a thin layer over it. What each call runs is listed in
loravet.pipeline."""

from __future__ import annotations

from collections.abc import Sequence

from loravet.context import CheckOptions
from loravet.extras import replay_available
from loravet.findings import Severity
from loravet.pipeline import run_checks
from loravet.results import Report

__all__ = ["check", "compare", "exit_code", "inspect", "run_static"]


def run_static(
    adapters: Sequence[str], base: str | None, *, resolve: bool, command: str, update_stats: bool = True
) -> Report:
    """The static stages over `adapters` (sources closed when it returns). `update_stats=False` leaves out the
    per-module update statistics (a scan's records do not carry them)."""
    options = CheckOptions(base_spec=base, resolve=resolve, update_stats=update_stats)
    with run_checks(adapters, options, command) as run:
        return run.report


def inspect(adapters: str | Sequence[str]) -> Report:
    """What each adapter is: config, exact parameter counts, sizes, weight statistics (no base)."""
    specs = [adapters] if isinstance(adapters, str) else list(adapters)
    return run_static(specs, None, resolve=False, command="inspect")


def check(
    adapters: str | Sequence[str], base: str | None = None, eval_data: str | None = None, replay: bool | None = None
) -> Report:
    """Everything inspect knows plus compatibility with the base, provenance, security, as findings.

    `replay`: True replays each load with the installed PEFT on a meta-device copy of the base (no
    weights); None (default) replays only where the predictor cannot decide; False never."""
    specs = [adapters] if isinstance(adapters, str) else list(adapters)
    options = CheckOptions(base_spec=base, resolve=True, replay=replay, eval_data=eval_data)
    with run_checks(specs, options, "check") as run:
        return run.report


def compare(
    adapters: str | Sequence[str], base: str | None = None, eval_data: str | None = None, replay: bool | None = None
) -> Report:
    """Side-by-side table, a winner per row with its reason, and the adapter to depend on. Replays the
    loads by default when torch and peft are installed (`replay=None`)."""
    if replay is None:
        replay = replay_available()
    report = check(adapters, base=base, eval_data=eval_data, replay=replay)
    report.command = "compare"
    # lazy (cold start, #12): the comparison's rules load only for compare, never for a check
    from loravet.comparison import build_comparison

    report.comparison = build_comparison(report)
    return report


def exit_code(report: Report, fail_on: str) -> int:
    if fail_on == "never":
        return 0
    threshold = Severity.parse(fail_on)
    worst = report.worst()
    return 1 if worst is not None and worst >= threshold else 0
