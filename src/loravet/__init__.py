"""loravet: vet third-party LoRA adapters (Hugging Face PEFT format) before you depend on them.

>>> import loravet
>>> report = loravet.check(["./my-adapter"], base="Qwen/Qwen2.5-1.5B-Instruct")
>>> report.to_json()["adapters"][0]["load_outcome"]
>>> report = loravet.evaluate(["./fold0", "./fold1"], base="./SmolLM2-135M-Instruct", data="train.csv")
>>> report.predictions            # per-row scores: base, each adapter, ensemble, ensemble_rank
"""

# loravet.reports.display registers how a Report shows itself in a notebook (the results model does not
# import its renderers)
import loravet.reports.display  # noqa: F401  (imported for its registration)
from loravet.api import check, compare, exit_code, inspect
from loravet.errors import BaseResolutionError, EvaluationError, LoravetError, SourceError, UnsafeArchiveError
from loravet.findings import FINDING_RULES, Finding, Severity
from loravet.results import SCHEMA, AdapterReport, Report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from loravet.evaluation.runner import evaluate

__all__ = [
    "FINDING_RULES",
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


def __getattr__(name: str) -> object:
    # `evaluate` is imported on first use: the static path (check/inspect) does not pay for the eval modules
    if name == "evaluate":
        from loravet.evaluation.runner import evaluate

        return evaluate
    raise AttributeError(f"module 'loravet' has no attribute {name!r}")
