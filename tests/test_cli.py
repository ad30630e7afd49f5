"""The CLI's contract: formats, exit codes, explain. In-process through click's runner (the static path is fast
that way); one test runs the real `python -m loravet.cli` process for the exit-code contract."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.findings import FINDING_RULES
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter
from loravet.testing.cli import run_cli as run_process


@dataclass
class _Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> _Result:
    from click.testing import CliRunner

    from loravet.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return _Result(result.exit_code, result.stdout, result.stderr)


def cli_json(*args: str) -> tuple[int, dict[str, Any]]:
    res = run_cli(*args, "--format", "json")
    assert res.stdout, res.stderr
    return res.returncode, json.loads(res.stdout)

BASE = "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    entry = lookup_catalog(BASE)
    assert entry is not None
    a = write_synthetic_adapter(tmp_path / "good", catalog_architecture(entry),
                                lora_config_dict(BASE, 4, 8, ["q_proj", "v_proj"]))
    (a / "trainer_state.json").write_text('{"global_step": 3, "log_history": [{"loss": 1.0}]}')
    return a


@pytest.fixture()
def zero(tmp_path: Path) -> Path:
    entry = lookup_catalog(BASE)
    assert entry is not None
    return write_synthetic_adapter(tmp_path / "zero", catalog_architecture(entry),
                                   lora_config_dict(BASE, 4, 8, ["q_proj"]), zero_b=True)


def test_json_schema_fields(good: Path) -> None:
    rc, data = cli_json("check", str(good))
    assert rc == 0
    assert data["schema"] == "loravet/1"
    a = data["adapters"][0]
    for key in ("name", "path", "source", "peft_type", "task_type", "base_model_name_or_path", "peft_version", "r",
                "lora_alpha", "scaling", "use_rslora", "use_dora", "target_modules", "lora_dropout",
                "trainable_params", "weights", "base", "architecture", "load_outcome", "keys", "kfold",
                "artifacts", "findings"):
        assert key in a, key
    assert a["weights"]["format"] == "safetensors" and a["weights"]["dtypes"] == ["F32"]
    assert a["base"]["name"] == BASE and a["base"]["num_layers"] == 24
    assert a["source"] == str(good)


def test_inspect_has_no_base(good: Path) -> None:
    _rc, data = cli_json("inspect", str(good))
    a = data["adapters"][0]
    assert a["base"] is None and a["load_outcome"] == "unknown"
    assert a["architecture"]["best_match"] == BASE


def test_fail_on_gates_the_exit_code(zero: Path) -> None:
    assert run_cli("check", str(zero), "--format", "json").returncode == 1  # zero-update is high
    assert run_cli("check", str(zero), "--format", "json", "--fail-on", "critical").returncode == 0
    assert run_cli("check", str(zero), "--format", "json", "--fail-on", "never").returncode == 0


@pytest.mark.parametrize("fmt", ["table", "md", "html", "sarif", "json"])
def test_every_format_renders(good: Path, zero: Path, fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"report.{fmt}"
    proc = run_cli("compare", str(good), str(zero), "--format", fmt, "-o", str(out), "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "zero" in text
    assert "good" in text or fmt == "sarif"  # SARIF lists findings only, and "good" has none
    if fmt == "sarif":
        doc = json.loads(text)
        assert doc["version"] == "2.1.0"
        assert any(r["ruleId"] == "zero-update" for r in doc["runs"][0]["results"])
    if fmt == "json":
        assert json.loads(text)["comparison"]["preferred"] == "good"


def test_name_collisions_use_parent(tmp_path: Path) -> None:
    entry = lookup_catalog(BASE)
    assert entry is not None
    arch = catalog_architecture(entry)
    a = write_synthetic_adapter(tmp_path / "x" / "adapter", arch, lora_config_dict(BASE, 4, 8, ["q_proj"]))
    b = write_synthetic_adapter(tmp_path / "y" / "adapter", arch, lora_config_dict(BASE, 4, 8, ["q_proj"]))
    _, data = cli_json("inspect", str(a), str(b))
    assert [x["name"] for x in data["adapters"]] == ["x/adapter", "y/adapter"]


def test_explain_every_code() -> None:
    for code in FINDING_RULES:
        proc = run_cli("explain", code)
        assert proc.returncode == 0 and code in proc.stdout and "How to fix" in proc.stdout
    assert run_cli("explain", "no-such-code").returncode == 2


def test_docs_catalog_is_generated_from_rules() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "findings.md"
    from loravet.findings import catalog_markdown

    assert docs.read_text() == catalog_markdown(), "regenerate: loravet explain --all --format md > docs/findings.md"


def test_spec_codes_and_default_severities() -> None:
    spec = {"shape-mismatch": "critical", "target-not-found": "critical", "unsafe-pickle": "critical",
            "missing-weights": "high", "unused-weights": "high", "base-weights-overwritten": "medium",
            "zero-update": "high", "nonfinite-weights": "critical", "architecture-mismatch": "critical",
            "base-name-conflict": "high", "config-weights-disagree": "high", "size-implausible": "medium",
            "unreadable-file": "high", "unsupported-adapter-type": "medium", "no-training-evidence": "medium",
            "train-val-overlap": "high", "fold-overlap": "high", "eval-contamination": "critical",
            "degenerate-predictions": "high"}
    for code, sev in spec.items():
        assert FINDING_RULES[code].severity.label == sev, code


def test_exit_code_contract_in_a_real_process(good: Path, zero: Path, tmp_path: Path) -> None:
    """0: nothing at or above --fail-on; 1: something is; 2: could not run, one line on stderr, empty stdout."""
    ok = run_process("check", str(good), "--format", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["schema"] == "loravet/1"
    assert run_process("check", str(zero), "--format", "json").returncode == 1
    missing = run_process("check", str(tmp_path / "nope"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr


def test_a_base_path_that_does_not_exist_is_exit_2(good: Path, tmp_path: Path) -> None:
    """SPEC: a path that does not exist cannot run (exit 2, one line), not a silent `base-unresolved`."""
    for command in ("check", "compare"):
        args = [command, str(good)] + ([str(good)] if command == "compare" else [])
        result = run_cli(*args, "--base", str(tmp_path / "no-such-base"))
        assert result.returncode == 2, (command, result.stderr)
        assert "no such folder" in result.stderr and not result.stdout.strip()
    # a name is looked up (catalog, cache, hub); one that names nothing is a bad argument too: the base the
    # user typed would not be used (offline, unreachable or 404 alike)
    result = run_cli("check", str(good), "--base", "Nobody/Unknown-7B", "--format", "json")
    assert result.returncode == 2 and not result.stdout.strip(), result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "--base Nobody/Unknown-7B" in result.stderr
