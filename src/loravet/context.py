"""What the stages of a check carry from one to the next (loravet.pipeline runs them).

`CheckOptions` is fixed for a run. `AdapterContext` is one adapter's: each stage reads what the stages before
it filled and fills its own fields (the stage that fills a field is named next to it); nothing else is passed
between stages. After the per-adapter stages, `release()` drops what only they need (the tensor values, the
prediction) so that a 1,000-adapter run keeps names and paths, not weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loravet.adapter.artifacts import Artifact
from loravet.adapter.config import LoraAdapterConfig
from loravet.adapter.tensors import WeightFile
from loravet.base.architecture import BaseArchitecture
from loravet.checks.fingerprint import AdapterShape
from loravet.checks.peft_load import LoadPrediction
from loravet.checks.weight_stats import TensorFacts
from loravet.findings import Finding
from loravet.results import AdapterReport
from loravet.sources.resolve import AdapterSource

__all__ = ["AdapterContext", "CheckOptions", "Collector"]


@dataclass(frozen=True)
class CheckOptions:
    """How to check: the same for every adapter of a run."""

    base_spec: str | None = None
    """--base as given (None: each adapter's base_model_name_or_path)."""
    resolve: bool = True
    """False for `inspect`: no base, no load prediction, no provenance."""
    compute_stats: bool = True
    """Read the tensor values (weight statistics, zero updates)."""
    update_stats: bool = True
    """Compute the per-module update norms and effective ranks (the report's update_stats)."""
    task_head: bool = False
    """Judge a local base with the head the adapter's task needs (eval loads it that way)."""
    replay: bool | None = None
    """True: replay every load with the installed PEFT; None: only where the predictor says unknown."""
    eval_data: str | None = None
    """A CSV the adapters will be judged on (eval-contamination)."""
    eval_text_column: str = "body"


class Collector(AdapterReport):
    """A scratch report for the functions that take one to write into (the pickle scan, the hub source's
    weight reader): what they add is handed back as a list, in order and unmerged, so that findings merge in
    one place, where the pipeline aggregates them."""

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    @classmethod
    def like(cls, report: AdapterReport) -> Collector:
        return cls(name=report.name, path=report.path, source=report.source)


@dataclass
class AdapterContext:
    """One adapter as the stages see it."""

    source: AdapterSource
    options: CheckOptions
    report: AdapterReport
    """The adapter's report: stages describe the adapter in its fields; findings reach it only through the
    pipeline's aggregation."""
    files: list[str] = field(default_factory=list)
    config: LoraAdapterConfig | None = None  # stage "config"
    weights: WeightFile | None = None  # stage "weights"
    weights_present: bool = False  # stage "weights": a weight file exists, readable or not
    values: dict[str, np.ndarray] = field(default_factory=dict)  # stage "weight statistics"
    facts: dict[str, TensorFacts] = field(default_factory=dict)  # stage "weight statistics"
    shape: AdapterShape = field(default_factory=AdapterShape)  # stage "weight statistics"
    base_resolution: str | None = None  # stage "base": how the base was resolved, or why not
    arch: BaseArchitecture | None = None  # stage "base"
    prediction: LoadPrediction | None = None  # stage "compatibility"
    weights_path: str | None = None  # stage "weights"; kept after release() for the cross-adapter digests
    artifacts: list[Artifact] = field(default_factory=list)  # stage "security": what the scan let be read
    refused_files: set[str] = field(default_factory=set)  # stage "security": files no later stage may parse

    @property
    def folder(self) -> Path:
        return self.source.path

    def release(self) -> None:
        """Drop what only the per-adapter stages need: a long run keeps config, paths and artifacts."""
        self.weights = None
        self.values = {}
        self.facts = {}
        self.shape = AdapterShape()
        self.arch = None
        self.prediction = None
