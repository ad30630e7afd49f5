"""What `check` does, in order: the one place that lists the stages and runs them.

    per adapter, "the analysis" (one time and memory budget for all of it):
        config, weights, weight statistics, config vs weights, k-fold membership, base, architecture,
        load prediction, replay, unmodelled type, update statistics, hub
    per adapter, "the provenance checks" (check and eval; not inspect):
        security, artifacts, provenance, leakage, serving
    across adapters, "the cross-adapter checks":
        fold leakage, k-fold siblings
    across adapters, with data to judge on (check --eval-data, eval):
        contamination

Each stage is a function of the AdapterContext (loravet.context) that returns its findings, registered here
with the finding codes it may raise, like a linter's rules. `_aggregate` is the one place findings are added
to a report, and it refuses a code the stage did not declare. Two stages write into the report themselves
and are marked so (`writes_report`): the replay, which replaces the predictor's verdict and load findings,
and the hub source's finish; their new codes are held to their declarations all the same.

Whatever an adapter's files make happen (an exception, a blown budget) stays a finding on that adapter's
report: a stage that fails ends its phase for that adapter with an analysis-error or analysis-budget finding.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loravet.adapter import limits
from loravet.base.resolve import require_base
from loravet.checks.leakage import contamination_findings, fold_leakage_stage, read_eval_texts, split_overlap_stage
from loravet.checks.provenance import artifacts_stage, kfold_siblings_stage, provenance_stage
from loravet.checks.security import security_stage
from loravet.checks.serving import serving_stage
from loravet.checks.static import (
    architecture_stage,
    base_stage,
    config_stage,
    config_weights_stage,
    import_replay_stack,
    kfold_stage,
    prediction_stage,
    remote_finish_stage,
    replay_stage,
    unmodelled_type_stage,
    update_stats_stage,
    weight_statistics_stage,
    weights_stage,
)
from loravet.context import AdapterContext, CheckOptions
from loravet.errors import SourceError, UnsafeArchiveError
from loravet.extras import replay_available
from loravet.findings import Finding, Severity, make_finding
from loravet.results import AdapterReport, Report
from loravet.sources.resolve import AdapterSource, ArchiveUnreadable, assign_names, resolve_adapter

__all__ = [
    "ANALYSIS",
    "CROSS_ADAPTER",
    "NON_CHECK_CODES",
    "PROVENANCE",
    "Check",
    "CheckRun",
    "CrossCheck",
    "Phase",
    "UndeclaredFinding",
    "analyze_adapter",
    "run_checks",
]


@dataclass(frozen=True)
class Check:
    """One stage of one adapter: `run` fills its part of the context and returns its findings."""

    name: str
    run: Callable[[AdapterContext], list[Finding]]
    codes: frozenset[str]
    writes_report: bool = False
    """The stage adds to (or rewrites) the report itself; see the module's docstring for the two that do."""


@dataclass(frozen=True)
class CrossCheck:
    """A stage across the adapters of a run: each finding comes with the name of the adapter it is about."""

    name: str
    run: Callable[[list[AdapterContext]], list[tuple[str, Finding]]]
    codes: frozenset[str]


@dataclass(frozen=True)
class Phase:
    label: str
    """How an error in the phase is named in the finding ("the analysis stopped on ...")."""
    checks: tuple[Check, ...]


def _codes(*lines: str) -> frozenset[str]:
    return frozenset(code for line in lines for code in line.split())


_LOAD = "missing-weights unused-weights base-weights-overwritten random-init-modules zero-update zero-update-partial"
"""loravet.checks.load_findings: worded once for the predictor and the replay alike."""

# fmt: off
ANALYSIS = Phase("the analysis", (
    # the stage's name, its function, the finding codes it may raise
    Check("config", config_stage, _codes("unreadable-file config-missing path-escape unsupported-adapter-type",
                                         "unknown-config-keys",
                                         "legacy-config-schema invalid-config config-nonfinite")),
    Check("weights", weights_stage, _codes("unreadable-file path-escape unsafe-pickle")),
    Check("weight statistics", weight_statistics_stage, _codes("nonfinite-weights unreadable-file size-implausible")),
    Check("config vs weights", config_weights_stage,
          _codes("config-weights-disagree regex-catastrophic regex-unchecked weights-file-missing")),
    Check("k-fold membership", kfold_stage, _codes()),
    Check("base", base_stage, _codes("base-metadata-unavailable base-unresolved")),
    Check("architecture", architecture_stage, _codes("architecture-mismatch")),
    Check("load prediction", prediction_stage, _codes("regex-catastrophic regex-unchecked shape-mismatch",
                                                      "target-not-found modules-to-save-missing",
                                                      "invalid-config weights-file-missing", _LOAD)),
    Check("replay", replay_stage, _codes("weights-file-missing shape-mismatch target-not-found peft-raises",
                                         "load-undecided", _LOAD), writes_report=True),
    Check("unmodelled type", unmodelled_type_stage, _codes("unsupported-adapter-type")),
    Check("update statistics", update_stats_stage, _codes()),
    Check("hub", remote_finish_stage,
          _codes("unsafe-pickle unreadable-file remote-not-fetched weights-header-only"), writes_report=True),
))

PROVENANCE = Phase("the provenance checks", (
    Check("security", security_stage, _codes("unsafe-pickle scan-incomplete unreadable-file")),
    Check("artifacts", artifacts_stage, _codes()),
    Check("provenance", provenance_stage, _codes("base-name-conflict base-variant-vague no-training-evidence")),
    Check("leakage", split_overlap_stage, _codes("train-val-overlap train-val-near-duplicate")),
    Check("serving", serving_stage, _codes("vllm-incompatible vllm-settings merge-refused merge-lossy")),
))

CROSS_ADAPTER_LABEL = "the cross-adapter checks"
CROSS_ADAPTER: tuple[CrossCheck, ...] = (
    CrossCheck("fold leakage", fold_leakage_stage, _codes("fold-overlap fold-unvalidated")),
    CrossCheck("k-fold siblings", kfold_siblings_stage, _codes("kfold-inconsistent fold-overlap")),
)
# fmt: on

CONTAMINATION_CODES = _codes("eval-contamination")

NON_CHECK_CODES: dict[str, str] = {
    "analysis-error": "loravet.pipeline: a stage that raised",
    "analysis-budget": "loravet.pipeline: a stage over the per-adapter time or memory budget",
    "unreadable-file": "loravet.pipeline: an archive that could not be opened",
    "unsafe-archive": "loravet.pipeline: an archive refused as built to escape its folder or as a bomb",
    "degenerate-predictions": "loravet.evaluation.runner: scores on the data",
    "eval-contamination": "loravet.pipeline.run_checks: rows of the data in the training artifacts",
}
"""Codes raised outside the registered stages, and where."""


class UndeclaredFinding(AssertionError):
    """A stage raised a finding code it did not declare (a bug in loravet, reported as analysis-error)."""


def _aggregate(report: AdapterReport, stage: str, codes: frozenset[str], findings: list[Finding]) -> None:
    """The one place findings are added to a report (same-code findings merge there, in stage order)."""
    for f in findings:
        if f.code not in codes:
            raise UndeclaredFinding(f"stage {stage!r} raised {f.code!r}, which it does not declare")
        report.add(f)


def _run_check(check: Check, ctx: AdapterContext) -> None:
    if not check.writes_report:
        _aggregate(ctx.report, check.name, check.codes, check.run(ctx))
        return
    before = {f.code for f in ctx.report.findings}
    check.run(ctx)
    new = {f.code for f in ctx.report.findings} - before - check.codes
    if new:
        raise UndeclaredFinding(f"stage {check.name!r} raised {sorted(new)}, which it does not declare")


_ERROR_CODES = frozenset({"analysis-budget", "analysis-error"})


class _AdapterBudgetExceeded(BaseException):
    """Raised by the per-adapter timer; a BaseException so that no `except Exception` inside a check keeps it."""


def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or what the cap does to a library being loaded (the dynamic loader's mmap refused): under
    the memory budget, "ImportError: libtorch_cpu.so: failed to map segment from shared object" is the budget."""
    if isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM):
        return True
    text = str(exc).lower()
    return isinstance(exc, ImportError) and ("failed to map segment" in text or "cannot allocate memory" in text)


def _error_finding(exc: BaseException, stage: str, memory_capped: bool = False) -> Finding:
    if isinstance(exc, _AdapterBudgetExceeded):
        return make_finding(
            "analysis-budget",
            f"{stage} stopped after the per-adapter budget of {limits.ADAPTER_TIME_BUDGET_S:g} s",
            budget_s=limits.ADAPTER_TIME_BUDGET_S,
            stage=stage,
        )
    if memory_capped and _out_of_memory(exc):
        return make_finding(
            "analysis-budget",
            f"{stage} stopped: it needed more than the per-adapter memory budget "
            f"of {limits.ADAPTER_MEMORY_BUDGET_MB:,} MiB",
            budget_mb=limits.ADAPTER_MEMORY_BUDGET_MB,
            stage=stage,
        )
    lines = str(exc).strip().splitlines()
    line = (lines[0] if lines else "")[:200]
    return make_finding(
        "analysis-error",
        f"{stage} stopped on {type(exc).__name__}" + (f": {line}" if line else ""),
        exception=type(exc).__name__,
        stage=stage,
    )


def _isolated(reports: list[AdapterReport], stage: str, work: Callable[[], None]) -> bool:
    """Run `work` under the per-adapter time and memory budget; any error becomes a finding on `reports`, not a
    crash. False when it did not finish."""
    capped = False
    try:
        with (
            limits.memory_cap(limits.ADAPTER_MEMORY_BUDGET_MB) as capped,
            limits.deadline(limits.ADAPTER_TIME_BUDGET_S, _AdapterBudgetExceeded),
        ):
            work()
    except (Exception, _AdapterBudgetExceeded) as exc:  # RecursionError and MemoryError included
        for rep in reports:
            _aggregate(rep, stage, _ERROR_CODES, [_error_finding(exc, stage, capped)])
        return False
    return True


def _new_context(source: AdapterSource, options: CheckOptions) -> AdapterContext:
    return AdapterContext(source, options, AdapterReport(name=source.name, path=str(source.path), source=source.spec))


def _run_phase(phase: Phase, ctx: AdapterContext) -> None:
    for check in phase.checks:
        _run_check(check, ctx)


def _phase_runner(phase: Phase, ctx: AdapterContext) -> Callable[[], None]:
    return lambda: _run_phase(phase, ctx)


def analyze_adapter(
    source: AdapterSource,
    base_spec: str | None,
    *,
    resolve: bool = True,
    compute_stats: bool = True,
    task_head: bool = False,
    replay: bool | None = None,
) -> tuple[AdapterReport, AdapterContext]:
    """One adapter through the analysis phase, without the budget (a test or benchmark's direct call)."""
    ctx = _new_context(
        source,
        CheckOptions(
            base_spec=base_spec, resolve=resolve, compute_stats=compute_stats, task_head=task_head, replay=replay
        ),
    )
    _run_phase(ANALYSIS, ctx)
    return ctx.report, ctx


def _analysis(source: AdapterSource, options: CheckOptions) -> AdapterContext:
    """The analysis phase under the budget. An archive that could not be opened, or an analysis that stopped,
    leaves the report with its name and the finding that says why: nothing half-read."""
    ctx = _new_context(source, options)
    if source.error is not None:
        _aggregate(
            ctx.report,
            "open",
            frozenset({"unreadable-file", "unsafe-archive"}),
            [
                make_finding(
                    "unsafe-archive" if source.hostile else "unreadable-file",
                    source.error + (": not extracted" if source.hostile else ""),
                    severity=Severity.CRITICAL if source.hostile else None,
                    file=source.path.name,
                )
            ],
        )
        return ctx
    if not _isolated([ctx.report], ANALYSIS.label, _phase_runner(ANALYSIS, ctx)):
        error = ctx.report.findings[-1]
        ctx = _new_context(source, options)
        ctx.report.findings.append(error)
    return ctx


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
                sources.append(
                    AdapterSource(
                        str(spec),
                        path,
                        "zip",
                        path.stem,
                        path.resolve().parent.name,
                        error=str(exc),
                        hostile=not isinstance(exc, ArchiveUnreadable),
                    )
                )
    except Exception:
        for s in sources:
            s.close()
        raise
    assign_names(sources)
    return sources


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


@dataclass
class CheckRun:
    """A run's report and each adapter's context (its source still open: an eval loads from it)."""

    report: Report
    contexts: list[AdapterContext]

    def close(self) -> None:
        for c in self.contexts:
            c.source.close()


def _cross_adapter(contexts: list[AdapterContext]) -> None:
    by_name = {c.report.name: c.report for c in contexts}

    def work() -> None:
        for check in CROSS_ADAPTER:
            for name, finding in check.run(contexts):
                _aggregate(by_name[name], check.name, check.codes, [finding])

    _isolated([c.report for c in contexts], CROSS_ADAPTER_LABEL, work)


def _contamination(contexts: list[AdapterContext], options: CheckOptions) -> None:
    """eval-contamination, after the budgeted phases: an unreadable CSV is the run's error, not a finding."""
    if not options.eval_data:
        return
    texts = read_eval_texts(options.eval_data, options.eval_text_column)
    for c in contexts:
        _aggregate(
            c.report,
            "contamination",
            CONTAMINATION_CODES,
            contamination_findings(texts, options.eval_data, c.artifacts),
        )


@contextmanager
def run_checks(adapters: Sequence[str], options: CheckOptions, command: str) -> Iterator[CheckRun]:
    """Every stage over every adapter; the sources stay open until the `with` block ends."""
    if options.resolve and options.base_spec:
        require_base(options.base_spec)  # a typed --base that names nothing: the run cannot do what was asked (exit 2)
    sources = _open_sources(adapters)
    contexts: list[AdapterContext] = []
    if options.replay and replay_available():
        # An asked-for replay imports torch, transformers and peft here, before any adapter's budget: inside it
        # the memory cap failed their mappings (or OpenBLAS aborted the process) and the time budget left them
        # half-imported, for every later replay in the process. A failure here is each adapter's finding below.
        with suppress(Exception):
            import_replay_stack()
    try:
        for s in sources:
            ctx = _analysis(s, options)
            ctx.release()  # keep what later stages need, not the weights, facts and predictions of 1,000 adapters
            contexts.append(ctx)
        if options.resolve:
            for ctx in contexts:
                if ctx.source.error is None:
                    _isolated([ctx.report], PROVENANCE.label, _phase_runner(PROVENANCE, ctx))
            _cross_adapter(contexts)
        for ctx in contexts:
            _bound_findings(ctx.report)
        run = CheckRun(Report(command, [c.report for c in contexts]), contexts)
        _contamination(contexts, options)
        yield run
    finally:
        for s in sources:
            s.close()
