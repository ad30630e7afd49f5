"""The results model: one AdapterReport per adapter, the comparison across them, serialised as schema
"loravet/1" (docs/contract.md). The renderers (loravet.reports) read it; it knows nothing about them: a
notebook's display of a Report goes through the views loravet.reports.display registers here."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from loravet.findings import Finding, Severity

__all__ = [
    "SCHEMA",
    "VIEWS",
    "AdapterReport",
    "BaseVariantHint",
    "Cell",
    "Comparison",
    "ComparisonRow",
    "Evaluation",
    "FindingSink",
    "Report",
    "ScoreBlock",
    "Submission",
    "Timing",
]

SCHEMA = "loravet/1"


class FindingSink(Protocol):
    """Anything findings can be added to: an AdapterReport, or the pipeline's collector that hands them on to
    the one place that adds them to a report (loravet.pipeline)."""

    def add(self, finding: Finding) -> None: ...


@dataclass(frozen=True)
class BaseVariantHint:
    """Where a quantized variant of the config's (generic) base is named: the card, the folder's name..."""

    where: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {"where": self.where, "text": self.text}


@dataclass
class AdapterReport:
    name: str
    path: str
    source: str
    peft_type: str | None = None
    task_type: str | None = None
    base_model_name_or_path: str | None = None
    peft_version: str | None = None
    r: int | None = None
    lora_alpha: float | None = None
    scaling: float | None = None
    use_rslora: bool | None = None
    use_dora: bool | None = None
    target_modules: Any = None
    lora_dropout: float | None = None
    trainable_params: int | None = None
    weights: dict[str, Any] | None = None
    base: dict[str, Any] | None = None
    architecture: dict[str, Any] | None = None
    load_outcome: str = "unknown"
    verdict: dict[str, Any] | None = None
    """How load_outcome was decided: {"source": "predicted" | "replayed", "peft": version} (SPEC)."""
    keys: dict[str, int | None] = field(
        default_factory=lambda: {"matched": None, "missing": None, "unexpected": None, "shape_mismatch": None}
    )
    kfold: dict[str, Any] | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    base_variant_hint: BaseVariantHint | None = None
    """Set by the provenance stage; the comparison's named-base row reads it."""
    training_evidence: list[str] | None = None
    """The files that show how the adapter was trained (provenance stage; None: not checked)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields added beyond docs/contract.md's (the schema allows additions), for the JSON and the reporters'
    display only: nothing decides on them."""

    def add(self, finding: Finding) -> None:
        """One finding per code per adapter; a second one with the same code merges into the first, losing
        nothing: the higher severity wins, distinct messages are joined, lists concatenate (no duplicates),
        numbers add, and any other evidence value that differs becomes the list of both."""
        for existing in self.findings:
            if existing.code == finding.code:
                if finding.severity > existing.severity:
                    existing.severity = finding.severity
                    first, second = finding.message, existing.message
                else:
                    first, second = existing.message, finding.message
                parts = [p for p in first.split("; ") if p]
                parts += [p for p in second.split("; ") if p and p not in parts]
                # a part said whole inside another ("r must be ..." in "PEFT rejects the config: r must be
                # ...") adds nothing: kept once, in its longer form
                parts = [
                    p for i, p in enumerate(parts) if not any(i != j and p in q and p != q for j, q in enumerate(parts))
                ]
                existing.message = "; ".join(parts)
                for k, v in finding.evidence.items():
                    existing.evidence[k] = _merge_evidence(existing.evidence[k], v) if k in existing.evidence else v
                return
        self.findings.append(finding)

    def finding(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "path": self.path,
            "source": self.source,
            "peft_type": self.peft_type,
            "task_type": self.task_type,
            "base_model_name_or_path": self.base_model_name_or_path,
            "peft_version": self.peft_version,
            "r": self.r,
            "lora_alpha": self.lora_alpha,
            "scaling": self.scaling,
            "use_rslora": self.use_rslora,
            "use_dora": self.use_dora,
            "target_modules": self.target_modules,
            "lora_dropout": self.lora_dropout,
            "trainable_params": self.trainable_params,
            "weights": self.weights,
            "base": self.base,
            "architecture": self.architecture,
            "load_outcome": self.load_outcome,
            "verdict": self.verdict,
            "keys": self.keys,
            "kfold": self.kfold,
            "artifacts": self.artifacts,
            "findings": [f.to_json() for f in sorted(self.findings, key=lambda f: -f.severity)],
        }
        for k, v in self.extra.items():
            out.setdefault(k, v)
        if self.base_variant_hint is not None:
            out.setdefault("base_variant_hint", self.base_variant_hint.to_json())
        if self.training_evidence is not None:
            out.setdefault("training_evidence", self.training_evidence)
        return out


def _merge_evidence(old: Any, new: Any) -> Any:
    if old == new:
        return old
    if isinstance(old, bool) or isinstance(new, bool):
        return [old, new]
    if isinstance(old, int | float) and isinstance(new, int | float):
        return old + new
    if isinstance(old, list) or isinstance(new, list):
        merged = list(old) if isinstance(old, list) else [old]
        merged += [x for x in (new if isinstance(new, list) else [new]) if x not in merged]
        return merged
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for k, v in new.items():
            out[k] = _merge_evidence(out[k], v) if k in out else v
        return out
    return [old, new]


Cell = str | int | float | None
"""One value of a comparison row: a text, a number, or nothing."""


@dataclass
class ComparisonRow:
    """One aspect compared across the adapters, with its winner (None: no winner) and why."""

    key: str
    aspect: str
    values: dict[str, Cell]
    """adapter name -> the value shown."""
    winner: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "aspect": self.aspect,
            "values": self.values,
            "winner": self.winner,
            "reason": self.reason,
        }


class _JsonMapping(Mapping[str, Any]):
    """Read as a mapping, a typed result is its JSON (`report.evaluation["notes"]`, as it has always been
    read); the reporters read the attributes. Its subclasses are dataclasses with eq=False, so that equality is
    the mapping's: equal to another result, or to a dict, with the same JSON."""

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


@dataclass(eq=False)
class Comparison(_JsonMapping):
    """The side-by-side comparison (loravet.comparison builds it). Read as a mapping it is its JSON, as
    `report.comparison["preferred"]` has always been read."""

    rows: list[ComparisonRow]
    preferred: str | None
    reason: str
    adapters: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": [r.to_json() for r in self.rows],
            "preferred": self.preferred,
            "reason": self.reason,
            "adapters": self.adapters,
        }


@dataclass(eq=False)
class ScoreBlock(_JsonMapping):
    """One model's metrics on the data (loravet.evaluation.runner builds it). Without labels there are no
    metrics; per-rule values, the rules skipped and the CI are there only when the data has them."""

    auc: float | None
    rule_mean_auc: float | None
    labelled: bool = True
    """False: the data has no labels, and the JSON is {"rule_mean_auc": null, "auc": null}."""
    per_rule: dict[str, float | None] | None = None
    """Grouped data only (with rules_skipped): the AUC per group, None where a group has one class."""
    rules_skipped: int | None = None
    ci95: list[float] | None = None
    members: list[str] | None = None
    """Ensembles only: the adapters averaged."""

    @property
    def value(self) -> float | None:
        """The headline number: the rule-mean AUC, else the AUC."""
        return self.rule_mean_auc if self.rule_mean_auc is not None else self.auc

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any]
        if not self.labelled:
            out = {"rule_mean_auc": None, "auc": None}
        else:
            out = {"auc": self.auc, "rule_mean_auc": self.rule_mean_auc}
            if self.per_rule is not None:
                out["per_rule"] = self.per_rule
                out["rules_skipped"] = self.rules_skipped
            out["ci95"] = self.ci95
        if self.members is not None:
            out["members"] = self.members
        return out


@dataclass(eq=False)
class Timing(_JsonMapping):
    load_s: float
    score_s: float
    rows_per_s: float
    """model-rows scored per second (every row by the base and each adapter)"""

    def to_json(self) -> dict[str, Any]:
        return {"load_s": self.load_s, "score_s": self.score_s, "rows_per_s": self.rows_per_s}


@dataclass(eq=False)
class Submission(_JsonMapping):
    file: str
    source: str
    """The column written: "ensemble", an adapter's name, or "base" (the JSON's "from")."""

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "from": self.source}


@dataclass(eq=False)
class Evaluation(_JsonMapping):
    """What `loravet eval` measured (loravet.evaluation.runner builds it; docs/contract.md's "evaluation").
    Read as a mapping it is its JSON, so `report.evaluation["notes"]` keeps working."""

    metric: str
    """"rule_mean_auc" for grouped data, else "auc"."""
    rows: int
    prompt_version: str
    prompt: str
    task: str
    scores: dict[str, ScoreBlock]
    """model name ("base", each scored adapter, "ensemble", "ensemble_rank") -> its metrics."""
    skipped: dict[str, str] | None
    """adapter name -> why it was not loaded (None: none skipped)."""
    notes: list[str] | None
    answer_tokens: dict[str, list[Any]]
    """"yes", "yes_strings", "no", "no_strings": the token ids and texts scored as the answer."""
    max_length: int
    longest_prompt_tokens: int
    degenerate: dict[str, str] | None
    """adapter name -> why its scores are degenerate (None: none)."""
    timing: Timing
    device: str
    dtype: str
    parameters_in_memory: int
    agreement: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """Rank correlation between every two models' scores."""
    histograms: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    roc: dict[str, dict[str, list[list[float]]]] | None = None
    """Labelled grouped data only: ROC points per group, per model."""
    predictions_file: str | None = None
    submission: Submission | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "rows": self.rows,
            "prompt_version": self.prompt_version,
            "prompt": self.prompt,
            "task": self.task,
            "scores": {n: b.to_json() for n, b in self.scores.items()},
            "skipped": self.skipped,
            "notes": self.notes,
            "answer_tokens": self.answer_tokens,
            "max_length": self.max_length,
            "longest_prompt_tokens": self.longest_prompt_tokens,
            "degenerate": self.degenerate,
            "timing": self.timing.to_json(),
            "device": self.device,
            "dtype": self.dtype,
            "parameters_in_memory": self.parameters_in_memory,
            "agreement": self.agreement,
            "histograms": self.histograms,
        }
        if self.roc is not None:
            out["roc"] = self.roc
        if self.predictions_file is not None:
            out["predictions_file"] = self.predictions_file
        if self.submission is not None:
            out["submission"] = self.submission.to_json()
        return out


VIEWS: dict[str, Callable[[Report], str]] = {}
"""How a Report shows itself: "repr" (a notebook's print) and "html" (its rich display), registered by
loravet.reports.display, which the package imports."""


@dataclass
class Report:
    command: str
    adapters: list[AdapterReport]
    comparison: Comparison | None = None
    evaluation: Evaluation | None = None
    predictions: Any = field(default=None, repr=False, compare=False)
    """`evaluate` only: per-row scores in input order (a pandas DataFrame when pandas is installed); not in
    the JSON (the --predictions CSV holds the same numbers)."""

    def __repr__(self) -> str:  # a notebook's print(report): the verdicts, not a 30k-character dataclass dump
        view = VIEWS.get("repr")
        return view(self) if view is not None else f"Report({self.command!r}, {len(self.adapters)} adapter(s))"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("Report(...)" if cycle else repr(self))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA, "adapters": [a.to_json() for a in self.adapters]}
        if self.comparison is not None:
            out["comparison"] = self.comparison.to_json()
        if self.evaluation is not None:
            out["evaluation"] = self.evaluation.to_json()
        return out

    def worst(self) -> Severity | None:
        return max((a.worst for a in self.adapters if a.worst is not None), default=None)

    def _repr_html_(self) -> str | None:
        view = VIEWS.get("html")
        return view(self) if view is not None else None
