"""Configs a stranger found slipping through: a peft_type PEFT does not know (it raises on load), a lora_alpha
so large that the scaling overflows float32 (every output Inf/NaN), and a malformed `hf:` id as --base.
Truth from real PEFT on a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest

import loravet
from loravet.api import exit_code
from loravet.findings import Severity
from loravet.testing.cli import run_cli

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


@pytest.fixture(scope="module")
def base_and_adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from loravet.testing.models import build_base
    from loravet.testing.peft_truth import make_adapter

    work = tmp_path_factory.mktemp("cfgfail")
    base = build_base(work / "base")
    return base, make_adapter(base, work / "adapter")


def _variant(src: Path, dest: Path, **changes: object) -> Path:
    import shutil

    from loravet.testing.peft_truth import edit_config

    shutil.copytree(src, dest)
    edit_config(dest, **changes)
    return dest


@pytest.mark.parametrize("peft_type", ["lora", "NOPE"])
def test_an_unknown_peft_type_fails_with_a_critical_finding(
    base_and_adapter: tuple[Path, Path], tmp_path: Path, peft_type: str
) -> None:
    from loravet.testing.peft_truth import peft_truth

    base, adapter = base_and_adapter
    bad = _variant(adapter, tmp_path / "bad", peft_type=peft_type)
    assert peft_truth(base, bad).outcome == "fails"  # real PEFT raises
    report = loravet.check(str(bad), base=str(base), replay=False)
    got = report.adapters[0]
    assert got.load_outcome == "fails"
    finding = got.finding("invalid-config")
    assert finding is not None and finding.severity is Severity.CRITICAL, [f.code for f in got.findings]
    assert exit_code(report, "high") == 1


def test_a_scaling_float32_cannot_hold_is_config_nonfinite(base_and_adapter: tuple[Path, Path], tmp_path: Path) -> None:
    from peft import PeftModel

    from loravet.testing.models import load_base
    from loravet.testing.peft_truth import sample_inputs

    base, adapter = base_and_adapter
    huge = _variant(adapter, tmp_path / "huge", lora_alpha=1e300)
    model = PeftModel.from_pretrained(load_base(base), str(huge))
    with torch.no_grad():
        logits = model(**sample_inputs(model)).logits
    assert not torch.isfinite(logits).all()  # real PEFT: the output is Inf/NaN
    got = loravet.check(str(huge), base=str(base), replay=False).adapters[0]
    assert got.finding("config-nonfinite") is not None, [f.code for f in got.findings]
    fine = _variant(adapter, tmp_path / "fine", lora_alpha=1e30)  # large, but float32 holds it
    assert loravet.check(str(fine), base=str(base), replay=False).adapters[0].finding("config-nonfinite") is None


@pytest.mark.parametrize("spec", ["hf:../../etc", "hf:../etc", "hf:a/b/c", "hf:"])
def test_a_malformed_hub_id_as_base_is_a_bad_argument(base_and_adapter: tuple[Path, Path], spec: str) -> None:
    _, adapter = base_and_adapter
    proc = run_cli("check", str(adapter), "--base", spec)
    assert proc.returncode == 2, proc.stdout[-500:]
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "hf:OWNER/NAME" in proc.stderr
