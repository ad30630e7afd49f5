"""`check --replay`, `compare` (replays by default) and the corpus: predictor and replay agree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import loravet
from loravet.adapter.torch_file import read_torch_file
from loravet.checks.replay import _stage
from loravet.testing.cli import cli_json
from loravet.testing.peft_cases import Case, build_case


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replay")


def test_check_replay_and_compare_default_say_replayed(work: Path) -> None:
    base, adapter = build_case(work, Case("qwen2"))
    _, sibling = build_case(work, Case("qwen2", init="zero-b"))
    _, out = cli_json("check", str(adapter), "--base", str(base))
    assert out["adapters"][0]["verdict"]["source"] == "predicted"
    _, out = cli_json("check", "--replay", str(adapter), str(sibling), "--base", str(base))
    a, b = out["adapters"]
    assert a["verdict"]["source"] == "replayed" and a["verdict"]["peft"]
    assert (a["load_outcome"], b["load_outcome"]) == ("loads", "inert")
    assert "zero-update" in {f["code"] for f in b["findings"]}
    _, out = cli_json("compare", str(adapter), str(sibling), "--base", str(base))
    assert [x["verdict"]["source"] for x in out["adapters"]] == ["replayed", "replayed"]
    assert out["comparison"]["preferred"] == a["name"]


def test_replayed_shape_mismatch_is_a_finding(work: Path) -> None:
    base, adapter = build_case(work, Case("qwen2", edit="sibling-wider"))
    rc, out = cli_json("check", "--replay", str(adapter), "--base", str(base))
    a = out["adapters"][0]
    assert rc == 1 and a["load_outcome"] == "fails"
    assert a["keys"]["shape_mismatch"] == 4
    assert "shape-mismatch" in {f["code"] for f in a["findings"]}


def test_a_bin_is_never_handed_to_peft(work: Path, tmp_path: Path) -> None:
    """PEFT only ever sees a safetensors file: a .bin's values go through loravet's own reader."""
    _, adapter = build_case(work, Case("qwen2", form="bin"))
    weights = read_torch_file(adapter / "adapter_model.bin")
    staged, _, _ = _stage(adapter, weights, tmp_path)
    assert sorted(p.name for p in staged.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    report = loravet.check([str(adapter)], replay=True).adapters[0]
    assert report.verdict is not None and report.verdict["source"] == "replayed"
    assert report.load_outcome in ("loads", "unknown")  # unknown while the .bin's values cannot be decoded


def test_unknown_type_is_replayed_automatically(work: Path) -> None:
    base, adapter = build_case(work, Case("qwen2", "LOHA"))
    report = loravet.check([str(adapter)], base=str(base)).adapters[0]
    assert report.verdict is not None and report.verdict["source"] == "replayed"
    assert report.load_outcome == "loads"
    assert "unsupported-adapter-type" not in {f.code for f in report.findings}


@pytest.mark.slow
def test_corpus_predictor_and_replay_agree(shared: Path, tmp_path: Path) -> None:
    """Every adapter of ../shared/adapter-corpus: the predictor and the replay give the same outcome.
    (Config-only snapshots: both `fails` for the missing weight file, or both `unknown` with no base.)"""
    items = []
    for cfg in sorted((shared / "adapter-corpus" / "configs").glob("*.json")):
        folder = tmp_path / cfg.stem
        folder.mkdir()
        shutil.copy(cfg, folder / "adapter_config.json")
        items.append(folder)
    items += [p for p in sorted((shared / "adapter-corpus" / "weights").iterdir()) if p.is_dir()]
    disagree = []
    for folder in items:
        pred = loravet.check([str(folder)], replay=False).adapters[0]
        rep = loravet.check([str(folder)], replay=True).adapters[0]
        if pred.load_outcome != rep.load_outcome:
            disagree.append((folder.name, pred.load_outcome, rep.load_outcome, rep.extra.get("load_reason")))
    assert not disagree, disagree


def test_hostile_sizes_are_not_replayed(work: Path, tmp_path: Path) -> None:
    """A config asking PEFT for enormous real tensors is not handed to PEFT: unknown, with the reason."""
    import json

    base, adapter = build_case(work, Case("qwen2", "VERA"))
    hostile = tmp_path / "hostile"
    shutil.copytree(adapter, hostile)
    cfg = json.loads((hostile / "adapter_config.json").read_text())
    cfg["r"] = 10**9
    (hostile / "adapter_config.json").write_text(json.dumps(cfg))
    report = loravet.check([str(hostile)], base=str(base), replay=True).adapters[0]
    assert report.load_outcome == "unknown"
    assert "beyond any real adapter" in str(report.extra.get("load_reason"))


def test_seq_cls_head_size_from_the_head_not_pre_classifier(work: Path) -> None:
    """DistilBERT's `pre_classifier.weight` ends like a head: the label count comes from `classifier` itself
    (a .bin lists pre_classifier first; the replay would otherwise build a 32-label head and fail)."""
    base, adapter = build_case(work, Case("distilbert", form="bin"))
    report = loravet.check([str(adapter)], base=str(base), replay=True).adapters[0]
    assert report.load_outcome in ("loads", "unknown"), report.extra.get("load_reason")
    assert report.finding("shape-mismatch") is None


def test_dora_magnitude_with_zero_b_is_never_called_inert(work: Path) -> None:
    """PEFT saves a DoRA magnitude without `.weight`: the replay must still see it. With lora_B zero, a trained
    magnitude changes the output (real PEFT: loads), so a weightless replay may say unknown, never inert."""
    from loravet.testing.models import build_base
    from loravet.testing.peft_truth import make_adapter, peft_truth

    base = build_base(work / "dora-base")
    adapter = make_adapter(base, work / "dora-trained", use_dora=True, zero_b=True)
    assert peft_truth(base, adapter).outcome == "loads"
    got = loravet.check(str(adapter), base=str(base), replay=True).adapters[0]
    assert got.verdict["source"] == "replayed" and got.load_outcome in ("loads", "unknown"), got.load_outcome
