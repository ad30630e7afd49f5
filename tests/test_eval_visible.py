"""Issue #14: the evaluation where people look, no silent degradation, cheap checks before the model loads,
scores that do not depend on the batch size, BOS without a chat template, single-token answer sets."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("sklearn")

from loravet.errors import EvaluationError
from loravet.evaluation.runner import evaluate
from loravet.testing.cli import run_cli
from loravet.testing.data import generate_rows, write_csv
from loravet.testing.models import build_tiny_lm
from loravet.testing.peft_truth import make_adapter

pytestmark = pytest.mark.peft

QKV = ["q_proj", "v_proj", "o_proj"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("visible")
    base = build_tiny_lm(root / "base")
    rows = generate_rows(24, seed=7)
    data = write_csv(rows, root / "data.csv")
    folds = [make_adapter(base, root / f"fold{i}", seed=20 + i, target_modules=QKV) for i in range(2)]
    broken = make_adapter(base, root / "broken")
    cfg = json.loads((broken / "adapter_config.json").read_text())
    cfg["layers_to_transform"] = [7]  # the base has 2 layers: PEFT finds no target
    (broken / "adapter_config.json").write_text(json.dumps(cfg))
    # the same base with unloadable weights: a check that fires with it ran before the model was loaded
    no_model = root / "no_model"
    shutil.copytree(base, no_model)
    (no_model / "model.safetensors").write_bytes(b"not a safetensors file")
    preds = root / "preds.csv"
    report = evaluate([*map(str, folds), str(broken)], str(base), str(data), predictions=str(preds), progress=False)
    return {"root": root, "base": base, "data": data, "rows": rows, "folds": folds, "broken": broken,
            "no_model": no_model, "report": report, "preds": preds}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write(rows: list[dict[str, Any]], path: Path, rename: dict[str, str]) -> Path:
    cols = [rename.get(c, c) for c in rows[0]]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            w.writerow(list(r.values()))
    return path


# -- 1. the evaluation in every format, the terminal first ------------------------------------------------

@pytest.mark.slow
def test_default_format_shows_the_evaluation(world: dict[str, Any]) -> None:
    import os

    # the table is laid out for the terminal's width: pin it, so that headers do not wrap
    proc = run_cli("eval", *map(str, world["folds"]), str(world["broken"]), "--base", str(world["base"]),
                   "--data", str(world["data"]), "--fail-on", "never", env={**os.environ, "COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    ev = world["report"].evaluation
    assert "Evaluation" in out and "rule-mean AUC" in out and "agreement with base" in out
    assert f"{ev['scores']['fold0']['rule_mean_auc']:.4f}" in out  # the number itself, not only a header
    assert "ensemble (mean probability of fold0, fold1)" in out and "ensemble_rank" in out
    assert "not loaded broken" in out and "layers_to_transform" in json.dumps(world["report"].to_json())
    assert "answer tokens: yes 'Yes'" in out


def test_markdown_and_html_carry_notes_and_agreement(world: dict[str, Any]) -> None:
    from loravet.reports.render import render

    report = evaluate([str(world["folds"][0])], str(world["base"]), str(world["data"]), limit=10, progress=False)
    note = next(n for n in report.evaluation["notes"] if n.startswith("--limit"))
    for fmt in ("md", "html", "table"):
        text = render(report, fmt)
        assert note in text, fmt
        assert "agreement with base" in text, fmt


def test_short_repr(world: dict[str, Any]) -> None:
    text = repr(world["report"])
    assert len(text) < 1500 and "\n" in text
    assert all(a.name in text for a in world["report"].adapters)
    assert "rule_mean_auc" in text and "report.predictions" in text


# -- 2. loravet.evaluate and its per-row scores ------------------------------------------------------------

def test_evaluate_is_exported_and_carries_per_row_scores(world: dict[str, Any]) -> None:
    import loravet

    assert loravet.evaluate is evaluate
    df = world["report"].predictions
    assert list(df["row_id"]) == [str(r["row_id"]) for r in world["rows"]]  # input order
    assert {"base", "fold0", "fold1", "ensemble", "ensemble_rank", "rule", "rule_violation"} <= set(df.columns)
    written = _read(world["preds"])
    for name in ("base", "fold0", "fold1", "ensemble", "ensemble_rank"):
        assert np.allclose(df[name].to_numpy(), [float(r[name]) for r in written], atol=1e-7), name


def test_ensemble_rank_in_predictions_is_the_per_rule_rank_average(world: dict[str, Any]) -> None:
    from scipy.stats import rankdata

    rows = _read(world["preds"])
    rules = [r["rule"] for r in world["rows"]]
    for rule in set(rules):
        idx = [i for i, x in enumerate(rules) if x == rule]
        expect = np.mean([(rankdata([float(rows[i][m]) for i in idx]) - 1) / (len(idx) - 1)
                          for m in ("fold0", "fold1")], axis=0)
        assert np.allclose([float(rows[i]["ensemble_rank"]) for i in idx], expect, atol=1e-7)


@pytest.mark.slow
def test_progress_is_line_based_off_a_terminal_and_transformers_bars_are_quiet(world: dict[str, Any]) -> None:
    proc = run_cli("eval", str(world["folds"][0]), "--base", str(world["base"]), "--data", str(world["data"]),
                   "--format", "json", "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "loravet: scored base: 24/24 rows" in proc.stderr
    assert any(ln.startswith("loravet: scored fold0: 24/24 rows") for ln in lines)
    assert "Loading weights" not in proc.stderr and "\r" not in proc.stderr


# -- 3. cheap checks before the model loads ----------------------------------------------------------------

def test_unwritable_outputs_fail_before_anything_is_scored(world: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    bad = str(tmp_path / "a-file" / "p.csv")  # a missing folder is created; one under a file cannot be
    with pytest.raises(EvaluationError, match="cannot be written"):
        evaluate([str(world["folds"][0])], str(world["no_model"]), str(world["data"]), predictions=bad)
    proc = run_cli("eval", str(world["folds"][0]), "--base", str(world["no_model"]), "--data", str(world["data"]),
                   "-o", str(tmp_path), "--format", "json")
    assert proc.returncode == 2 and "is a directory" in proc.stderr and proc.stdout == ""


@pytest.mark.slow
def test_label_column_under_another_name_is_said(world: dict[str, Any], tmp_path: Path) -> None:
    data = _write(world["rows"], tmp_path / "d.csv", {"rule_violation": "label"})
    report = evaluate([str(world["folds"][0])], str(world["base"]), str(data), progress=False)
    notes = report.evaluation["notes"]
    assert any("rule_violation is absent" in n and "--label-column label" in n for n in notes), notes
    from loravet.reports.render import render

    assert "--label-column label" in render(report, "table", color=False).replace("\n", " ")
    named = evaluate([str(world["folds"][0])], str(world["base"]), str(data), label_column="label",
                     progress=False)
    assert named.evaluation["scores"]["fold0"]["rule_mean_auc"] == pytest.approx(
        world["report"].evaluation["scores"]["fold0"]["rule_mean_auc"], abs=1e-6)
    with pytest.raises(EvaluationError, match="closest column: label"):
        evaluate([str(world["folds"][0])], str(world["no_model"]), str(data), label_column="lable")


def test_misspelled_example_column_names_the_close_one(world: dict[str, Any], tmp_path: Path) -> None:
    data = _write(world["rows"], tmp_path / "d.csv", {"positive_example_1": "positive_example1"})
    proc = run_cli("eval", str(world["folds"][0]), "--base", str(world["no_model"]), "--data", str(data))
    assert proc.returncode == 2 and proc.stdout == ""
    assert "positive_example_1" in proc.stderr and "positive_example1" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("template,expect", [
    ("Comment: {bdy}\nRule: {rule}", "bdy (closest column: body)"),
    ('Reply in JSON like {"answer": "Yes"}. Comment: {body}', "literal brace"),
    ("Comment: {body} {}", "must name a column"),
])
def test_template_errors_come_first_in_one_line(world: dict[str, Any], template: str, expect: str) -> None:
    proc = run_cli("eval", str(world["folds"][0]), "--base", str(world["no_model"]), "--data", str(world["data"]),
                   "--template", template)
    assert proc.returncode == 2 and proc.stdout == "" and "internal error" not in proc.stderr
    assert expect in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_max_length_cuts_comment_and_examples_never_the_rule(world: dict[str, Any]) -> None:
    from loravet.evaluation.backend import TransformersBackend
    from loravet.evaluation.prompts import build_inputs
    from loravet.evaluation.tasks import load_task

    task = load_task(str(world["data"]))
    backend = TransformersBackend(Path(world["base"]))
    backend.load_tokenizer()
    full, notes = build_inputs(task, backend.encode, backend.tokenizer, 4096)
    assert notes == []
    limit = sorted(len(x) for x in full)[len(full) // 2]  # half the prompts are over it
    cut, notes = build_inputs(task, backend.encode, backend.tokenizer, limit)
    over = sum(len(x) > limit for x in full)
    assert over > 0 and all(len(x) <= limit for x in cut)
    assert len(notes) == 1 and f"{over} of {len(full)} prompts" in notes[0]
    tail = "Does the comment violate the rule? Answer Yes or No."
    for row, ids in zip(task.rows, cut, strict=True):
        text = backend.tokenizer.decode(ids)
        assert f"Rule: {row['rule']}" in text and f"r/{row['subreddit']}" in text
        assert text.rstrip().endswith("<|assistant|>") and tail in text  # header, instruction, answer cue
    # a limit under the fixed part of the prompt: one line before the model is loaded
    with pytest.raises(EvaluationError, match="never cut"):
        evaluate([str(world["folds"][0])], str(world["no_model"]), str(world["data"]), max_length=40)


def test_max_length_note_in_the_report(world: dict[str, Any]) -> None:
    limit = world["report"].evaluation["longest_prompt_tokens"] - 10
    report = evaluate([str(world["folds"][0])], str(world["base"]), str(world["data"]), max_length=limit,
                      progress=False)
    assert report.evaluation["longest_prompt_tokens"] <= limit
    note = next(n for n in report.evaluation["notes"] if n.startswith(f"--max-length {limit}:"))
    from loravet.reports.render import render

    assert note in render(report, "table").replace("\n", " ").replace("  ", " ") or note[:60] in render(report, "table")


# -- 4. BOS and batch-size independence ------------------------------------------------------------------

def _reference_p_yes(base: Path, adapter: Path | None, text: str, yes: list[int], no: list[int]) -> float:
    """Plain transformers + peft, one row, no padding; the tokenizer's own default special tokens."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model: Any = AutoModelForCausalLM.from_pretrained(base).eval()
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter)).eval()
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits[0, -1].float()
    return float(torch.sigmoid(torch.logsumexp(logits[yes], 0) - torch.logsumexp(logits[no], 0)))


def test_bos_is_present_without_a_chat_template(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from loravet.evaluation.tasks import load_task

    base = build_tiny_lm(tmp_path / "llama", model_type="llama", chat_template=False, bos=True)
    tok = AutoTokenizer.from_pretrained(base)
    bos = tok.bos_token_id
    data = write_csv(generate_rows(6, seed=3), tmp_path / "d.csv")
    adapter = make_adapter(base, tmp_path / "a", seed=4, target_modules=QKV)
    report = evaluate([str(adapter)], str(base), str(data), progress=False)
    assert any("no chat template" in n and f"(id {bos})" in n for n in report.evaluation["notes"])
    ans = report.evaluation["answer_tokens"]
    task = load_task(str(data))
    text = task.prompt(task.rows[0]) + "\nAnswer:"
    assert tok(text).input_ids[0] == bos
    got = report.predictions
    for col, ad in (("base", None), ("a", adapter)):
        ref = _reference_p_yes(base, ad, text, ans["yes"], ans["no"])
        assert abs(float(got[col][0]) - ref) < 1e-5, col


@pytest.mark.parametrize("model_type,targets", [("llama", QKV), ("gpt2", ["c_attn"])])
def test_batch_size_does_not_change_scores(tmp_path: Path, model_type: str, targets: list[str]) -> None:
    base = build_tiny_lm(tmp_path / model_type, model_type=model_type)
    extra = {"fan_in_fan_out": True} if model_type == "gpt2" else {}
    adapter = make_adapter(base, tmp_path / "a", seed=5, target_modules=targets, **extra)
    data = write_csv(generate_rows(16, seed=11), tmp_path / "d.csv")
    one = evaluate([str(adapter)], str(base), str(data), batch_size=1, progress=False)
    eight = evaluate([str(adapter)], str(base), str(data), batch_size=8, progress=False)
    assert one.adapters[0].load_outcome == "loads"
    for col in ("base", "a"):
        a, b = one.predictions[col].to_numpy(), eight.predictions[col].to_numpy()
        assert np.max(np.abs(a - b)) < 1e-5, (model_type, col, float(np.max(np.abs(a - b))))
    assert np.max(np.abs(one.predictions["a"] - one.predictions["base"])) > 1e-4  # the adapter does something


# -- 5/6. target-not-found names the cause; answer sets of single tokens ---------------------------------

def test_target_not_found_names_layers_to_transform(world: dict[str, Any]) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    broken = next(a for a in world["report"].adapters if a.name == "broken")
    f = broken.finding("target-not-found")
    # eval replays the load: PEFT's own message, which names layers_to_transform
    assert f is not None and "layers_to_transform" in f.message and "[7]" in f.message, broken.findings
    import loravet

    predicted = loravet.check(str(world["broken"]), base=str(world["base"]), replay=False).adapters[0]
    pf = predicted.finding("target-not-found")
    assert pf is not None and "layers_to_transform [7]" in pf.message, predicted.findings
    with pytest.raises(Exception):  # noqa: B017 - real PEFT refuses it, whatever the exception type
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(world["base"]), str(world["broken"]))


def test_answer_sets_hold_only_single_token_variants(world: dict[str, Any]) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(world["base"])
    ans = world["report"].evaluation["answer_tokens"]
    assert len(tok.encode("YES", add_special_tokens=False)) == 2  # this tokenizer splits YES into Y + ES
    first_piece = tok.encode("YES", add_special_tokens=False)[0]
    assert "YES" not in ans["yes_strings"] and first_piece not in ans["yes"]
    for ids, texts in ((ans["yes"], ans["yes_strings"]), (ans["no"], ans["no_strings"])):
        assert len(set(ids)) == len(ids)
        for i, t in zip(ids, texts, strict=True):
            assert tok.encode(t, add_special_tokens=False) == [i]
    assert not set(ans["yes"]) & set(ans["no"])
    assert {"Yes", " Yes", "yes", " yes", " YES"} == set(ans["yes_strings"])


def test_csv_cells_are_not_formulas() -> None:
    from loravet.reports.sanitize import csv_cell

    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and csv_cell("@x") == "'@x"
    assert csv_cell("-3") == "-3" and csv_cell("12") == "12"
