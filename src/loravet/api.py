"""The library API a notebook calls; the CLI is a thin layer over it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loravet.adapter import limits
from loravet.base.resolve import require_base
from loravet.checks.static import analyze_adapter
from loravet.errors import SourceError, UnsafeArchiveError
from loravet.findings import Finding, Severity, make_finding
from loravet.report import AdapterReport, Report
from loravet.sources.resolve import AdapterSource, ArchiveUnreadable, assign_names, resolve_adapter

__all__ = ["check", "compare", "exit_code", "inspect", "run_static"]


def _open_sources(adapters: Sequence[str]) -> list[AdapterSource]:
    if not adapters:
        raise SourceError("no ADAPTER given")
    sources: list[AdapterSource] = []
    try:
        for spec in adapters:
            try:
                sources.append(resolve_adapter(str(spec)))
            except UnsafeArchiveError as exc:  # the archive's content: a finding on that adapter, not the run's end
                path = Path(str(spec))
                sources.append(AdapterSource(str(spec), path, "zip", path.stem, path.resolve().parent.name,
                                             error=str(exc), hostile=not isinstance(exc, ArchiveUnreadable)))
    except Exception:
        for s in sources:
            s.close()
        raise
    assign_names(sources)
    return sources


class _AdapterBudgetExceeded(BaseException):
    """Raised by the per-adapter timer; a BaseException so that no `except Exception` inside a check keeps it."""


def _error_finding(exc: BaseException, stage: str, memory_capped: bool = False) -> Finding:
    if isinstance(exc, _AdapterBudgetExceeded):
        return make_finding("analysis-budget", f"{stage} stopped after the per-adapter budget of "
                            f"{limits.ADAPTER_TIME_BUDGET_S:g} s", budget_s=limits.ADAPTER_TIME_BUDGET_S, stage=stage)
    if isinstance(exc, MemoryError) and memory_capped:
        return make_finding("analysis-budget", f"{stage} stopped: it needed more than the per-adapter memory budget "
                            f"of {limits.ADAPTER_MEMORY_BUDGET_MB:,} MiB", budget_mb=limits.ADAPTER_MEMORY_BUDGET_MB,
                            stage=stage)
    lines = str(exc).strip().splitlines()
    line = (lines[0] if lines else "")[:200]
    return make_finding("analysis-error", f"{stage} stopped on {type(exc).__name__}" + (f": {line}" if line else ""),
                        exception=type(exc).__name__, stage=stage)


def _isolated(reports: list[AdapterReport], stage: str, work: Callable[[], None]) -> None:
    """Run `work` under the per-adapter time budget; any error becomes a finding on `reports`, not a crash."""
    capped = False
    try:
        with limits.deadline(limits.ADAPTER_TIME_BUDGET_S, _AdapterBudgetExceeded), \
                limits.memory_cap(limits.ADAPTER_MEMORY_BUDGET_MB) as capped:
            work()
    except (Exception, _AdapterBudgetExceeded) as exc:  # RecursionError and MemoryError included
        for rep in reports:
            rep.add(_error_finding(exc, stage, capped))


def _analyze(s: AdapterSource, base: str | None, resolve: bool, task_head: bool, replay: bool | None
             ) -> tuple[AdapterReport, dict[str, Any]]:
    """One adapter's static analysis; whatever its files make happen stays a finding on its own report."""
    out: list[tuple[AdapterReport, dict[str, Any]]] = []
    placeholder = AdapterReport(name=s.name, path=str(s.path), source=s.spec)
    if s.error is not None:
        placeholder.add(make_finding("unreadable-file", s.error + (": not extracted" if s.hostile else ""),
                                     severity=Severity.CRITICAL if s.hostile else None, file=s.path.name))
        return placeholder, {"source": s}
    _isolated([placeholder], "the analysis",
              lambda: out.append(analyze_adapter(s, base, resolve=resolve, task_head=task_head, replay=replay)))
    return out[0] if out else (placeholder, {"source": s})


_MAX_MESSAGE = 1000
_MAX_LIST = 100


def _bounded(value: Any, depth: int = 0) -> tuple[Any, bool]:
    """Evidence with every list cut to its first _MAX_LIST items (and whether anything was cut)."""
    if depth > 50:
        return None, True
    if isinstance(value, list):
        cut = len(value) > _MAX_LIST
        items = [_bounded(v, depth + 1) for v in value[:_MAX_LIST]]
        return [v for v, _ in items], cut or any(c for _, c in items)
    if isinstance(value, dict):
        pairs = {k: _bounded(v, depth + 1) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(c for _, c in pairs.values())
    if isinstance(value, str) and len(value) > _MAX_MESSAGE:
        return value[:_MAX_MESSAGE] + f"... ({len(value):,} characters)", True
    return value, False


def _bound_findings(report: AdapterReport) -> None:
    """A finding quoting the config (300,000 modules_to_save) keeps a readable message and bounded evidence."""
    for f in report.findings:
        if len(f.message) > _MAX_MESSAGE:
            f.message = f.message[:_MAX_MESSAGE] + f"... ({len(f.message):,} characters)"
        evidence, cut = _bounded(f.evidence)
        if cut:
            f.evidence = {**evidence, "truncated": True}


def run_static(adapters: Sequence[str], base: str | None, *, resolve: bool, command: str,
               keep_details: bool = False, task_head: bool = False,
               replay: bool | None = None) -> tuple[Report, list[dict[str, Any]]]:
    if resolve and base:
        require_base(base)  # a typed --base that names nothing: the run cannot do what was asked (exit 2)
    sources = _open_sources(adapters)
    reports: list[AdapterReport] = []
    details: list[dict[str, Any]] = []
    try:
        for s in sources:
            rep, det = _analyze(s, base, resolve, task_head, replay)
            reports.append(rep)
            # keep what later stages need, not the weights, facts and predictions of 1,000 adapters
            details.append({k: det[k] for k in ("source", "weights_path", "config") if k in det})
        if resolve:
            from loravet.checks.provenance import cross_adapter_findings, provenance_findings

            for rep, det in zip(reports, details, strict=True):
                if det["source"].error is not None:
                    continue
                def provenance(rep: AdapterReport = rep, det: dict[str, Any] = det) -> None:
                    provenance_findings(rep, det)

                _isolated([rep], "the provenance checks", provenance)
            _isolated(reports, "the cross-adapter checks", lambda: cross_adapter_findings(reports, details))
    finally:
        if not keep_details:
            for s in sources:
                s.close()
    for rep in reports:
        _bound_findings(rep)
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


def compare(adapters: str | Sequence[str], base: str | None = None, eval_data: str | None = None,
            replay: bool | None = None) -> Report:
    """Side-by-side table, a winner per row with its reason, and the adapter to depend on. Replays the
    loads by default when torch and peft are installed (`replay=None`)."""
    from loravet.checks.replay import replay_available
    from loravet.comparison import build_comparison

    if replay is None:
        replay = replay_available()
    report = check(adapters, base=base, eval_data=eval_data, replay=replay)
    report.command = "compare"
    report.comparison = build_comparison(report)
    return report


def exit_code(report: Report, fail_on: str) -> int:
    if fail_on == "never":
        return 0
    threshold = Severity.parse(fail_on)
    worst = report.worst()
    return 1 if worst is not None and worst >= threshold else 0
