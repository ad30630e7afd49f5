"""The report model: one AdapterReport per adapter, serialised as SPEC schema "loravet/1"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loravet.findings import Finding, Severity

__all__ = ["SCHEMA", "AdapterReport", "Report"]

SCHEMA = "loravet/1"


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
        default_factory=lambda: {"matched": None, "missing": None, "unexpected": None, "shape_mismatch": None})
    kfold: dict[str, Any] | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields added beyond the SPEC's (schema allows additions)."""

    def add(self, finding: Finding) -> None:
        """One finding per code per adapter: a second one merges its evidence into the first."""
        for existing in self.findings:
            if existing.code == finding.code:
                if finding.severity > existing.severity:
                    existing.severity = finding.severity
                    existing.message = finding.message
                for k, v in finding.evidence.items():
                    existing.evidence.setdefault(k, v)
                return
        self.findings.append(finding)

    def finding(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "path": self.path, "source": self.source, "peft_type": self.peft_type,
            "task_type": self.task_type, "base_model_name_or_path": self.base_model_name_or_path,
            "peft_version": self.peft_version, "r": self.r, "lora_alpha": self.lora_alpha,
            "scaling": self.scaling, "use_rslora": self.use_rslora, "use_dora": self.use_dora,
            "target_modules": self.target_modules, "lora_dropout": self.lora_dropout,
            "trainable_params": self.trainable_params, "weights": self.weights, "base": self.base,
            "architecture": self.architecture, "load_outcome": self.load_outcome, "verdict": self.verdict,
            "keys": self.keys,
            "kfold": self.kfold, "artifacts": self.artifacts,
            "findings": [f.to_json() for f in sorted(self.findings, key=lambda f: -f.severity)],
        }
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out


@dataclass
class Report:
    command: str
    adapters: list[AdapterReport]
    comparison: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA, "adapters": [a.to_json() for a in self.adapters]}
        if self.comparison is not None:
            out["comparison"] = self.comparison
        if self.evaluation is not None:
            out["evaluation"] = self.evaluation
        return out

    def worst(self) -> Severity | None:
        return max((a.worst for a in self.adapters if a.worst is not None), default=None)

    def _repr_html_(self) -> str:
        from loravet.reports.html import render_html

        return render_html(self, fragment=True)
