"""loravet: vet third-party LoRA adapters (Hugging Face PEFT format) before you depend on them.

    >>> import loravet
    >>> report = loravet.check(["./my-adapter"], base="Qwen/Qwen2.5-1.5B-Instruct")
    >>> report.to_json()["adapters"][0]["load_outcome"]
    >>> report = loravet.evaluate(["./fold0", "./fold1"], base="./SmolLM2-135M-Instruct", data="train.csv")
    >>> report.predictions            # per-row scores: base, each adapter, ensemble, ensemble_rank
"""

from loravet.api import check, compare, exit_code, inspect
from loravet.errors import BaseResolutionError, EvaluationError, LoravetError, SourceError, UnsafeArchiveError
from loravet.evaluation.runner import evaluate
from loravet.findings import RULES, Finding, Severity
from loravet.report import SCHEMA, AdapterReport, Report

__all__ = [
    "RULES",
    "SCHEMA",
    "AdapterReport",
    "BaseResolutionError",
    "EvaluationError",
    "Finding",
    "LoravetError",
    "Report",
    "Severity",
    "SourceError",
    "UnsafeArchiveError",
    "check",
    "compare",
    "evaluate",
    "exit_code",
    "inspect",
]
