"""The library API a notebook calls; the CLI is a thin layer over it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loravet.checks.static import analyze_adapter
from loravet.errors import SourceError
from loravet.findings import Severity
from loravet.report import AdapterReport, Report
from loravet.sources.resolve import AdapterSource, assign_names, resolve_adapter

__all__ = ["check", "compare", "exit_code", "inspect", "run_static"]


def _open_sources(adapters: Sequence[str]) -> list[AdapterSource]:
    if not adapters:
        raise SourceError("no ADAPTER given")
    sources: list[AdapterSource] = []
    try:
        for spec in adapters:
            sources.append(resolve_adapter(str(spec)))
    except Exception:
        for s in sources:
            s.close()
        raise
    assign_names(sources)
    return sources


def run_static(adapters: Sequence[str], base: str | None, *, resolve: bool, command: str,
               keep_details: bool = False, task_head: bool = False,
               replay: bool | None = None) -> tuple[Report, list[dict[str, Any]]]:
    sources = _open_sources(adapters)
    reports: list[AdapterReport] = []
    details: list[dict[str, Any]] = []
    try:
        for s in sources:
            rep, det = analyze_adapter(s, base, resolve=resolve, task_head=task_head, replay=replay)
            reports.append(rep)
            # keep what later stages need, not the weights, facts and predictions of 1,000 adapters
            details.append({k: det[k] for k in ("source", "weights_path", "config") if k in det})
        if resolve:
            from loravet.checks.provenance import cross_adapter_findings, provenance_findings

            for rep, det in zip(reports, details, strict=True):
                provenance_findings(rep, det)
            cross_adapter_findings(reports, details)
    finally:
        if not keep_details:
            for s in sources:
                s.close()
    return Report(command, reports), (details if keep_details else [])


def inspect(adapters: str | Sequence[str]) -> Report:
    """What each adapter is: config, exact parameter counts, sizes, weight statistics (no base)."""
    specs = [adapters] if isinstance(adapters, str) else list(adapters)
    return run_static(specs, None, resolve=False, command="inspect")[0]


def check(adapters: str | Sequence[str], base: str | None = None, eval_data: str | None = None,
          replay: bool | None = None) -> Report:
    """Everything inspect knows plus compatibility with the base, provenance, security, as findings.

    `replay`: True replays each load with the installed PEFT on a meta-device copy of the base (no
    weights); None (default) replays only where the predictor cannot decide; False never."""
    specs = [adapters] if isinstance(adapters, str) else list(adapters)
    report, details = run_static(specs, base, resolve=True, command="check", keep_details=True, replay=replay)
    try:
        if eval_data:
            from loravet.checks.leakage import contamination_findings

            contamination_findings(report.adapters, details, eval_data)
    finally:
        for d in details:
            d["source"].close()
    return report


def compare(adapters: Sequence[str], base: str | None = None, eval_data: str | None = None,
            replay: bool | None = None) -> Report:
    """Side-by-side table, a winner per row with its reason, and the adapter to depend on. Replays the
    loads by default when torch and peft are installed (`replay=None`)."""
    from loravet.checks.replay import replay_available
    from loravet.comparison import build_comparison

    if replay is None:
        replay = replay_available()
    report = check(list(adapters), base=base, eval_data=eval_data, replay=replay)
    report.command = "compare"
    report.comparison = build_comparison(report)
    return report


def exit_code(report: Report, fail_on: str) -> int:
    if fail_on == "never":
        return 0
    threshold = Severity.parse(fail_on)
    worst = report.worst()
    return 1 if worst is not None and worst >= threshold else 0
