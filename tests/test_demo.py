"""`loravet demo` runs end to end, names every adapter, and the canary never appears."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli


def test_demo_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = run_cli("demo", "--static", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Depend on: jigsaw-smollm-fold" in proc.stdout
    assert "canary file created by a pickle: no" in proc.stdout
    assert not list(out.glob("CANARY*"))
    data = json.loads((out / "report.json").read_text())
    outcomes = {a["name"]: a["load_outcome"] for a in data["adapters"]}
    assert outcomes["reddit-360m-think"] == "fails"
    assert outcomes["blank-adapter"] == "inert"
    assert data["comparison"]["preferred"].startswith("jigsaw-smollm-fold")
    impostor = next(a for a in data["adapters"] if a["name"] == "reddit-360m-think")
    codes = {f["code"] for f in impostor["findings"]}
    assert {"architecture-mismatch", "base-name-conflict", "no-training-evidence", "shape-mismatch"} <= codes
    pickled = next(a for a in data["adapters"] if a["name"] == "pickled-adapter")
    assert any(f["code"] == "unsafe-pickle" and f["severity"] == "critical" for f in pickled["findings"])
    html = (out / "report.html").read_text()
    for name in outcomes:
        assert name in html
    assert "<script" not in html and "http://" not in html.split("</style>")[0]


@pytest.mark.slow
def test_real_demo_trains_evaluates_and_prefers_a_fold(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    out = tmp_path / "real"
    proc = run_cli("demo", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((out / "report.json").read_text())
    scores = data["evaluation"]["scores"]
    assert scores["blank-adapter"]["rule_mean_auc"] == scores["base"]["rule_mean_auc"]
    blank = next(a for a in data["adapters"] if a["name"] == "blank-adapter")
    assert any(f["code"] == "degenerate-predictions" for f in blank["findings"])
    assert data["comparison"]["preferred"].startswith("jigsaw-smollm-fold")
    for f in range(3):
        folder = out / "adapters" / f"jigsaw-smollm-fold{f}"
        assert (folder / "train.pkl").exists() and (folder / "trainer_state.json").exists()
    assert not list(out.glob("CANARY*"))
    assert "Depend on: jigsaw-smollm-fold" in proc.stdout
