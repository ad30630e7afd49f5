"""The pipeline's registry: every finding code has a declared place, and a stage raising a code it did not
declare is caught, on real adapters."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import loravet
from loravet.findings import FINDING_RULES, make_finding
from loravet.pipeline import (
    ANALYSIS,
    CONTAMINATION_CODES,
    CROSS_ADAPTER,
    NON_CHECK_CODES,
    PROVENANCE,
    UndeclaredFinding,
    _aggregate,
)
from loravet.results import AdapterReport
from loravet.testing.data import generate_rows
from loravet.testing.scenarios import build_static_scenario


def _declared() -> set[str]:
    codes = set(NON_CHECK_CODES) | set(CONTAMINATION_CODES)
    for check in (*ANALYSIS.checks, *PROVENANCE.checks, *CROSS_ADAPTER):
        codes |= check.codes
    return codes


def test_every_finding_code_is_raised_by_a_registered_stage_or_a_named_place() -> None:
    declared = _declared()
    assert sorted(set(FINDING_RULES) - declared) == []
    assert sorted(declared - set(FINDING_RULES)) == []  # no stage declares a code the catalog does not document


def test_stage_names_are_unique() -> None:
    names = [c.name for c in (*ANALYSIS.checks, *PROVENANCE.checks, *CROSS_ADAPTER)]
    assert len(names) == len(set(names))


def test_a_stage_raising_an_undeclared_code_is_refused() -> None:
    report = AdapterReport(name="a", path=".", source=".")
    with pytest.raises(UndeclaredFinding, match="zero-update"):
        _aggregate(report, "serving", frozenset({"vllm-settings"}), [make_finding("zero-update", "x")])
    assert report.findings == []


def test_on_the_demo_adapters_every_stage_keeps_to_its_codes(tmp_path: Path) -> None:
    """The aggregation refuses an undeclared code as an analysis-error: none on adapters that raise a dozen
    codes across the stages (compatibility, security, provenance, leakage, k-fold, contamination)."""
    scenario = build_static_scenario(tmp_path / "demo")
    folders = [str(p) for p in scenario["adapters"]]
    eval_csv = tmp_path / "eval.csv"  # the rows the folds were trained on: contamination
    with open(eval_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["body"])
        writer.writerows([r["body"]] for r in generate_rows(180, seed=0))
    report = loravet.check(folders, eval_data=str(eval_csv))
    codes = {f.code for a in report.adapters for f in a.findings}
    assert "analysis-error" not in codes, [f.message for a in report.adapters for f in a.findings]
    assert {
        "unsafe-pickle",
        "zero-update",
        "shape-mismatch",
        "architecture-mismatch",
        "base-name-conflict",
        "no-training-evidence",
        "eval-contamination",
    } <= codes


def test_a_typed_comparison_still_equals_its_json(tmp_path: Path) -> None:
    """Notebooks compared `report.comparison` (a dict before it was typed) with dicts: still equal to its JSON."""
    scenario = build_static_scenario(tmp_path / "demo")
    report = loravet.compare([str(p) for p in scenario["adapters"]])
    assert report.comparison is not None
    as_json = report.to_json()["comparison"]
    assert report.comparison == as_json
    assert report.comparison["preferred"] == as_json["preferred"] and report.comparison["preferred"]
