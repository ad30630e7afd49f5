"""The predictor's PEFT tables are the installed peft's: regenerated in memory, they equal the snapshot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import gen_peft_tables  # noqa: E402

from loravet.adapter.peft_tables import SNAPSHOT_PEFT_VERSION, default_target_modules  # noqa: E402


@pytest.fixture(scope="module")
def regenerated() -> str:
    return gen_peft_tables.render(gen_peft_tables.generate())


def test_snapshot_matches_installed_peft(regenerated: str) -> None:
    checked_in = gen_peft_tables.OUT.read_text(encoding="utf-8")
    assert checked_in == regenerated, "peft_tables.json differs from the installed peft: run scripts/gen_peft_tables.py"


def test_hand_edit_is_detected(regenerated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads(gen_peft_tables.OUT.read_text(encoding="utf-8"))
    data["target_modules"]["LORA"]["phi3"] = ["qkv_proj"]  # the drift the old hand-copied table had
    edited = tmp_path / "peft_tables.json"
    edited.write_text(gen_peft_tables.render(data), encoding="utf-8")
    monkeypatch.setattr(gen_peft_tables, "OUT", edited)
    assert gen_peft_tables.main(["--check"]) == 1
    assert edited.read_text(encoding="utf-8") != regenerated


def test_snapshot_version_is_the_installed_one() -> None:
    import peft

    assert peft.__version__ == SNAPSHOT_PEFT_VERSION


def test_default_targets_are_peft_constants() -> None:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as table

    for model_type in ("qwen2", "llama", "gpt2", "phi3", "bert", "t5"):
        expected = table.get(model_type)
        assert default_target_modules("LORA", model_type) == (list(expected) if expected is not None else None)


def test_every_init_mode_of_the_snapshot_is_classified() -> None:
    from loravet.adapter.peft_tables import peft_tables
    from loravet.checks.peft_load import init_mode_is_special

    for mode in peft_tables()["lora_init_modes"]:
        concrete = mode.replace("_[number of iters]", "_4")
        assert mode == "gaussian" or init_mode_is_special(concrete), mode
