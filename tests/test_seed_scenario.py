"""The seed's own scenario, rebuilt: the "reddit-4b-think" impostor against five k-fold siblings on the
GPTQ base with real grouped ACRC splits. compare must prefer a fold and say why."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pytest

import loravet
from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.reports.render import render
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter
from loravet.testing.scenarios import build_seed_scenario, grouped_kfold

pd = pytest.importorskip("pandas")

NAMED = "Qwen/Qwen2.5-1.5B-Instruct"
GPTQ = "Qwen/Qwen2.5-1.5B-Instruct-GPTQ-Int4"


def _acrc(shared: Path) -> list[dict[str, Any]]:
    with (shared / "data" / "acrc" / "train.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def scenario(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("seed")
    rows = _acrc(shared)
    folders = build_seed_scenario(root, rows)
    report = loravet.compare([str(p) for p in folders])
    return {"root": root, "report": report, "rows": rows, "fold_of": grouped_kfold([r["body"] for r in rows], 5, 42)}


def test_compare_prefers_a_fold_and_recommends_the_ensemble(scenario: dict[str, Any]) -> None:
    comp = scenario["report"].comparison
    assert comp["preferred"].startswith("jigsaw-qwen-fold")
    assert "ensemble" in comp["reason"]
    assert "reddit-4b-think (fails)" in comp["reason"]


def test_impostor_traced_to_qwen3_4b(scenario: dict[str, Any]) -> None:
    imp = scenario["report"].adapters[0]
    assert imp.name == "reddit-4b-think"
    assert imp.architecture["best_match"] == "Qwen/Qwen3-4B" and imp.architecture["num_layers"] == 36
    assert imp.load_outcome == "fails"
    mismatch = imp.finding("architecture-mismatch")
    assert mismatch is not None and "Qwen/Qwen3-4B" in mismatch.message
    conflict = imp.finding("base-name-conflict")
    assert conflict is not None and "4b" in conflict.message
    assert imp.finding("no-training-evidence") is not None
    # exact: 36 layers x (16*(2560+4096) + 16*(2560+1024))
    assert imp.trainable_params == 36 * (16 * (2560 + 4096) + 16 * (2560 + 1024)) == 5_898_240


def test_folds_are_clean_with_exact_numbers(scenario: dict[str, Any]) -> None:
    folds = scenario["report"].adapters[1:]
    for a in folds:
        assert a.load_outcome == "loads"
        assert a.trainable_params == 2_179_072
        assert a.kfold is not None and len(a.kfold["siblings"]) == 4
        assert a.base is not None and a.base["quantization"] == "gptq"
        codes = {f.code for f in a.findings}
        assert not codes & {"train-val-overlap", "fold-overlap", "no-training-evidence", "base-name-conflict"}, codes
        kinds = {x["kind"]: x["rows"] for x in a.artifacts}
        assert kinds["train"] + kinds["val"] == 2029


def test_rows_say_what_the_seed_got_wrong(scenario: dict[str, Any]) -> None:
    rows = {r["key"]: r for r in scenario["report"].comparison["rows"]}
    assert rows["rank"]["winner"] is None
    assert rows["trainable_params"]["values"]["jigsaw-qwen-fold3"] == 2_179_072
    assert "same shapes" in rows["named_base"]["reason"]
    assert rows["traced_base"]["winner"] == "jigsaw-qwen-fold0"
    assert rows["training_evidence"]["winner"] == "jigsaw-qwen-fold0"


def test_html_report_shows_the_verdict(scenario: dict[str, Any]) -> None:
    html = render(scenario["report"], "html")
    assert "Depend on:" in html and "Qwen/Qwen3-4B" in html and "architecture-mismatch" in html
    assert "2,179,072" in html


def test_ungrouped_split_shows_the_real_duplicates(shared: Path, tmp_path: Path) -> None:
    """A random (ungrouped) split of the real data leaks duplicate comments across folds."""
    import random

    rows = _acrc(shared)
    rng = random.Random(0)
    fold_of = [rng.randrange(5) for _ in rows]
    from loravet.checks.provenance import normalise_text

    folders = []
    entry = lookup_catalog(NAMED)
    assert entry is not None
    for f in range(2):
        folder = write_synthetic_adapter(tmp_path / f"leaky-fold{f}", catalog_architecture(entry),
                                         lora_config_dict(NAMED, 8, 16, ["q_proj"]), seed=f)
        train = [r for r, g in zip(rows, fold_of, strict=True) if g != f]
        val = [r for r, g in zip(rows, fold_of, strict=True) if g == f]
        pd.DataFrame(train).to_pickle(folder / "train.pkl")
        pd.DataFrame(val).to_pickle(folder / "val.pkl")
        folders.append((folder, train, val))
    report = loravet.check([str(f[0]) for f in folders])
    for a, (_, train, val) in zip(report.adapters, folders, strict=True):
        train_norm = {normalise_text(r["body"]) for r in train}
        expected = sum(1 for r in val if normalise_text(r["body"]) in train_norm)
        assert expected >= 10  # the real data has 154 duplicate rows
        f = a.finding("train-val-overlap")
        assert f is not None and f.evidence["rows"] == expected


def test_eval_rows_drawn_from_training_are_contamination(scenario: dict[str, Any], tmp_path: Path) -> None:
    rows, fold_of = scenario["rows"], scenario["fold_of"]
    holdout = tmp_path / "holdout.csv"
    picked = [r for r, g in zip(rows, fold_of, strict=True) if g == 0][:40]
    with holdout.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(picked)
    folder = scenario["root"]
    report = loravet.check([str(folder / "jigsaw-qwen-fold0"), str(folder / "jigsaw-qwen-fold1")],
                           eval_data=str(holdout))
    f0, f1 = report.adapters
    assert f0.finding("eval-contamination") is None  # fold 0 never trained on its own val rows
    c = f1.finding("eval-contamination")
    assert c is not None and c.severity.label == "critical" and c.evidence["rows"] == 40
    shutil.rmtree(tmp_path, ignore_errors=True)
