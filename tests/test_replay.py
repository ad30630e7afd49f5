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


def _config_only(base: Path, dest: Path) -> Path:
    """The same base without its weights (config.json alone, as for a hub name not downloaded)."""
    dest.mkdir(exist_ok=True)
    shutil.copy(base / "config.json", dest / "config.json")
    return dest


def _replayed(adapter: Path, base: Path) -> loravet.AdapterReport:
    got = loravet.check(str(adapter), base=str(base), replay=True).adapters[0]
    assert got.verdict is not None and got.verdict["source"] == "replayed"
    return got


def test_dora_zero_b_is_decided_with_the_base_weights(work: Path) -> None:
    """With lora_B zero, DoRA scales the output by magnitude / ||W||. With a local base that has weights the
    replay decides it as the predictor does (its rule, not a copy): PEFT's own magnitude is inert, a
    perturbed one loads. Without the weights: unknown, never inert. Truth: real PEFT, forward vs the base."""
    from loravet.testing.models import build_base
    from loravet.testing.peft_truth import edit_weights, make_adapter, peft_truth

    base = build_base(work / "dora-base")
    at_init = make_adapter(base, work / "dora-init", use_dora=True, zero_b=True, keep=("lora_magnitude_vector",))
    perturbed = work / "dora-perturbed"
    shutil.copytree(at_init, perturbed)
    edit_weights(perturbed, lambda sd: {k: v * 1.01 if "magnitude" in k else v for k, v in sd.items()})
    trained = make_adapter(base, work / "dora-trained", use_dora=True, zero_b=True)
    for adapter, expected in ((at_init, "inert"), (perturbed, "loads"), (trained, "loads")):
        assert peft_truth(base, adapter).outcome == expected, adapter.name
        got = _replayed(adapter, base)
        assert got.load_outcome == expected, (adapter.name, got.extra.get("load_reason"))
    bare = _replayed(at_init, _config_only(base, work / "dora-noweights"))
    assert bare.load_outcome == "unknown" and "base's weights" in str(bare.extra.get("load_reason"))


def _hra_adapter(base: Path, out: Path, vectors: str) -> Path:
    """A real HRA adapter (r=2) made by peft: `init` keeps PEFT's own symmetric init (each vector twice, the
    two reflections cancel only up to rounding); `basis` sets both vectors of each layer to one standard
    basis vector (the reflections cancel exactly); `trained` random vectors."""
    import torch
    from peft import HRAConfig, get_peft_model

    from loravet.testing.models import load_base

    if (out / "adapter_config.json").exists():
        return out
    torch.manual_seed(3)
    pm = get_peft_model(load_base(base), HRAConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for i, p in enumerate(p for n, p in pm.named_parameters() if "hra_u" in n):
            if vectors == "basis":
                p.zero_()
                p[i % p.shape[0], :] = 1.0
            elif vectors == "trained":
                p.copy_(torch.randn_like(p))
    pm.save_pretrained(out)
    return out


@pytest.mark.parametrize("vectors,expected", [("init", "loads"), ("basis", "inert"), ("trained", "loads")])
def test_hra_is_decided_exactly(work: Path, vectors: str, expected: str) -> None:
    """HRA replaces W by W·R, R the product of the reflections. At PEFT's own init R is the identity only up
    to rounding, so W·R differs from W in the last bits and real PEFT's output moves; reflections that cancel
    exactly change nothing. The replay decides it bitwise from PEFT's own R and the base's W."""
    from loravet.testing.models import build_base
    from loravet.testing.peft_truth import peft_truth

    base = build_base(work / "hra-base")
    adapter = _hra_adapter(base, work / f"hra-{vectors}", vectors)
    assert peft_truth(base, adapter).outcome == expected
    got = _replayed(adapter, base)
    assert got.load_outcome == expected, got.extra.get("load_reason")
    bare = _replayed(adapter, _config_only(base, work / "hra-noweights"))
    if vectors == "init":  # the rounding decides, and only the base's weights tell which way
        assert bare.load_outcome == "unknown" and "base's weights" in str(bare.extra.get("load_reason"))
    else:  # an exact identity, or a clear rotation, needs no base weights
        assert bare.load_outcome == expected, bare.extra.get("load_reason")


def test_folds_of_one_layout_share_a_load_but_not_a_verdict(work: Path) -> None:
    """One process replays adapters of the same config and file layout with one PEFT load (a k-fold run):
    each still gets the verdict of its own values, and a file with another layout gets its own load.
    Truth: real PEFT on each."""
    from loravet.testing.models import build_base
    from loravet.testing.peft_truth import edit_weights, make_adapter, peft_truth

    base = build_base(work / "folds-base")
    trained = make_adapter(base, work / "fold-trained")
    zero_b = make_adapter(base, work / "fold-zero-b", seed=2, zero_b=True)
    dropped = work / "fold-dropped"
    shutil.copytree(trained, dropped)
    edit_weights(dropped, lambda sd: {k: v for k, v in sd.items() if "layers.1.self_attn.v_proj.lora_B" not in k})
    expected = [peft_truth(base, a).outcome for a in (trained, zero_b, dropped, trained)]
    assert expected == ["loads", "inert", "partial", "loads"]
    got = loravet.check([str(a) for a in (trained, zero_b, dropped, trained)], base=str(base), replay=True)
    assert [a.load_outcome for a in got.adapters] == expected
    assert [a.keys["missing"] for a in got.adapters] == [0, 0, 1, 0]
