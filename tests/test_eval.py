"""`loravet eval` on a tiny real model: inert adapters score like the base, AUCs equal scikit-learn's,
the ensemble and the submission are right, and the base is in memory once."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("sklearn")

from sklearn.metrics import roc_auc_score

from loravet.evaluation.runner import evaluate
from loravet.testing.cli import run_cli
from loravet.testing.data import generate_rows, write_csv
from loravet.testing.models import build_tiny_lm
from loravet.testing.peft_truth import edit_weights, make_adapter

pytestmark = pytest.mark.peft


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("eval")
    base = build_tiny_lm(root / "base")
    data = write_csv(generate_rows(36, seed=5), root / "data.csv")
    active = [make_adapter(base, root / f"fold{i}", seed=10 + i, target_modules=["q_proj", "v_proj", "o_proj"])
              for i in range(2)]
    inert = make_adapter(base, root / "inert", zero_b=True)
    broken = make_adapter(base, root / "broken")
    edit_weights(broken, lambda sd: {k: v[:, :-1] if "lora_A" in k else v for k, v in sd.items()})
    preds, sub = root / "preds.csv", root / "sub.csv"
    report = evaluate([*map(str, active), str(inert), str(broken)], str(base), str(data), batch_size=5,
                      predictions=str(preds), submission=str(sub), progress=False)
    return {"root": root, "base": base, "data": data, "report": report, "preds": preds, "sub": sub,
            "active": active}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_inert_adapter_scores_exactly_like_the_base(world: dict[str, Any]) -> None:
    rows = _read(world["preds"])
    assert all(r["inert"] == r["base"] for r in rows)
    inert = next(a for a in world["report"].adapters if a.name == "inert")
    f = inert.finding("degenerate-predictions")
    assert f is not None and f.severity.label == "high"
    assert inert.load_outcome == "inert"  # the static verdict agrees with the behaviour


def test_active_adapters_differ_from_the_base(world: dict[str, Any]) -> None:
    rows = _read(world["preds"])
    for name in ("fold0", "fold1"):
        diff = max(abs(float(r[name]) - float(r["base"])) for r in rows)
        assert diff > 1e-4, name
        a = next(a for a in world["report"].adapters if a.name == name)
        assert a.finding("degenerate-predictions") is None


def test_failing_adapter_is_reported_not_loaded(world: dict[str, Any]) -> None:
    ev = world["report"].evaluation
    assert "broken" in ev["skipped"] and "broken" not in ev["scores"]
    rows = _read(world["preds"])
    assert "broken" not in rows[0]


def test_reported_aucs_equal_sklearn_on_the_written_predictions(world: dict[str, Any]) -> None:
    data = {r["row_id"]: r for r in _read(world["data"])}
    rows = _read(world["preds"])
    ev = world["report"].evaluation
    for name in ("base", "fold0", "fold1", "ensemble"):
        y = [int(data[r["row_id"]]["rule_violation"]) for r in rows]
        s = [float(r[name]) for r in rows]
        assert ev["scores"][name]["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
        per_rule = []
        for rule in sorted({data[r["row_id"]]["rule"] for r in rows}):
            yy = [yv for yv, r in zip(y, rows, strict=True) if data[r["row_id"]]["rule"] == rule]
            ss = [sv for sv, r in zip(s, rows, strict=True) if data[r["row_id"]]["rule"] == rule]
            if len(set(yy)) == 2:
                per_rule.append(roc_auc_score(yy, ss))
        assert ev["scores"][name]["rule_mean_auc"] == pytest.approx(float(np.mean(per_rule)), abs=1e-6)
    assert ev["metric"] == "rule_mean_auc" and ev["prompt_version"] == "acrc-1" and ev["rows"] == 36


def test_ensemble_and_submission(world: dict[str, Any]) -> None:
    rows = _read(world["preds"])
    ev = world["report"].evaluation
    assert ev["scores"]["ensemble"]["members"] == ["fold0", "fold1"]  # the inert one is left out
    for r in rows:
        assert float(r["ensemble"]) == pytest.approx((float(r["fold0"]) + float(r["fold1"])) / 2, abs=1e-7)
    sub = _read(world["sub"])
    assert list(sub[0]) == ["row_id", "rule_violation"]
    assert [s["row_id"] for s in sub] == [r["row_id"] for r in rows]
    assert all(float(s["rule_violation"]) == pytest.approx(float(r["ensemble"]), abs=1e-7)
               for s, r in zip(sub, rows, strict=True))


def test_one_base_copy_in_memory(world: dict[str, Any]) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    base_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(world["base"]).parameters())
    lora = sum(t.numel() for a in (*world["active"], world["root"] / "inert")
               for t in load_file(Path(a) / "adapter_model.safetensors").values())
    assert world["report"].evaluation["parameters_in_memory"] == base_params + lora


def test_deterministic(world: dict[str, Any], tmp_path: Path) -> None:
    again = evaluate([str(world["active"][0])], str(world["base"]), str(world["data"]), batch_size=7,
                     predictions=str(tmp_path / "p.csv"), progress=False)
    first = {r["row_id"]: float(r["fold0"]) for r in _read(world["preds"])}
    second = {r["row_id"]: float(r["fold0"]) for r in _read(tmp_path / "p.csv")}
    assert all(abs(first[k] - second[k]) < 1e-6 for k in first)  # batch composition does not matter
    assert again.evaluation["scores"]["fold0"]["auc"] == pytest.approx(
        world["report"].evaluation["scores"]["fold0"]["auc"], abs=1e-6)


def test_cli_eval_and_limit(world: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = run_cli("eval", str(world["active"][0]), "--base", str(world["base"]), "--data", str(world["data"]),
                   "--limit", "12", "--format", "json", "-o", str(out), "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr
    import json

    ev = json.loads(out.read_text())["evaluation"]
    assert ev["rows"] == 12


def test_cli_eval_without_weights_exits_2(tmp_path: Path, world: dict[str, Any]) -> None:
    proc = run_cli("eval", str(world["active"][0]), "--base", "Qwen/Qwen2.5-1.5B-Instruct",
                   "--data", str(world["data"]))
    assert proc.returncode == 2 and proc.stdout == "" and "weights" in proc.stderr


def test_binary_task(world: dict[str, Any], tmp_path: Path) -> None:
    report = evaluate([str(world["active"][0])], str(world["base"]), str(world["data"]), task="binary",
                      template="Comment: {body}\nIs this spam? Answer Yes or No.", label_column="rule_violation",
                      progress=False)
    ev = report.evaluation
    assert ev["metric"] == "auc" and ev["scores"]["fold0"]["auc"] is not None


def test_seq_cls_adapter_scores_through_its_head(world: dict[str, Any], tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(3)
    model = AutoModelForSequenceClassification.from_pretrained(world["base"], num_labels=2)
    model.config.pad_token_id = 0
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  task_type="SEQ_CLS"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name or "modules_to_save" in name:
                p.copy_(torch.randn_like(p) * 0.5)
    out = tmp_path / "cls"
    peft_model.save_pretrained(out)
    report = evaluate([str(out)], str(world["base"]), str(world["data"]), limit=8, progress=False,
                      predictions=str(tmp_path / "p.csv"))
    rows = _read(tmp_path / "p.csv")
    assert report.adapters[0].load_outcome == "loads"
    # the same number by hand: the classification head's softmax, positive index 1
    tok = AutoTokenizer.from_pretrained(world["base"])
    ref = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(world["base"], num_labels=2),
                                    str(out)).eval()
    ref.config.pad_token_id = 0
    from loravet.evaluation.backend import TransformersBackend
    from loravet.evaluation.tasks import load_task

    task = load_task(str(world["data"]), limit=8)
    backend = TransformersBackend(Path(world["base"]))
    backend.load()
    text = backend.format_prompt(task.prompt(task.rows[0]))
    enc = tok([text], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        expected = torch.softmax(ref(**enc).logits, dim=-1)[0, 1].item()
    got = next(float(r["cls"]) for r in rows if r["row_id"] == task.rows[0]["row_id"])
    assert abs(got - expected) < 1e-5


def test_fast_auc_equals_sklearn() -> None:
    from loravet.evaluation.metrics import _fast_auc

    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 50)
        s = np.round(rng.random(50), 1)  # many ties
        if len(set(y.tolist())) == 2:
            assert _fast_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
