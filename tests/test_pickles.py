"""Default-deny pickle scanning: every payload flagged, never executed; benign files never flagged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import loravet
from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.checks.pickles import scan_file
from loravet.demo.synthetic import lora_config_dict, write_synthetic_adapter
from tests.pickle_payloads import as_torch_zip, payloads

BASE = "Qwen/Qwen2.5-0.5B-Instruct"
FORMS = ["raw-bin", "torch-zip", "train-pkl"]


def _adapter(folder: Path) -> Path:
    entry = lookup_catalog(BASE)
    assert entry is not None
    return write_synthetic_adapter(folder, catalog_architecture(entry), lora_config_dict(BASE, 4, 8, ["q_proj"]))


def test_payloads_are_real(tmp_path: Path) -> None:
    """The corpus is not a strawman: unpickling one payload does run it (in a throwaway subprocess)."""
    canary = tmp_path / "proof"
    data = payloads(f"touch {canary}")["getattr-import"][0](True)
    (tmp_path / "p.pkl").write_bytes(data)
    code = f"import pickle; pickle.loads(open({str(tmp_path / 'p.pkl')!r}, 'rb').read())"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert canary.exists()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("stack", [False, True], ids=["GLOBAL", "STACK_GLOBAL"])
@pytest.mark.parametrize("name", list(payloads("x")))
def test_every_payload_is_flagged_and_never_runs(tmp_path: Path, name: str, stack: bool, form: str) -> None:
    canary = tmp_path / "CANARY"
    build, verdict = payloads(f"touch {canary}")[name]
    data = build(stack)
    folder = tmp_path / "adapter"
    if form == "train-pkl":
        _adapter(folder)
        (folder / "train.pkl").write_bytes(data)
    else:
        folder.mkdir()
        (folder / "adapter_config.json").write_text(
            '{"peft_type": "LORA", "r": 4, "lora_alpha": 8, '
            f'"target_modules": ["q_proj"], "base_model_name_or_path": "{BASE}"}}')
        (folder / "adapter_model.bin").write_bytes(data if form == "raw-bin" else as_torch_zip(data))
    report = loravet.check([str(folder)])
    f = report.adapters[0].finding("unsafe-pickle")
    assert f is not None, (name, form)
    assert f.severity.label == ("critical" if verdict == "dangerous" else "high"), (name, form, f.message)
    assert not canary.exists()
    assert loravet.exit_code(report, "high") == 1


def test_benign_torch_and_pandas_pickles_are_not_flagged(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pd = pytest.importorskip("pandas")
    import numpy as np

    folder = _adapter(tmp_path / "a")
    torch.save({"w": torch.zeros(3, 2), "b": torch.ones(2, dtype=torch.bfloat16)}, folder / "optimizer.pt")
    df = pd.DataFrame({"row_id": [1, 2], "body": ["a", "b"], "rule": ["r", "r"], "rule_violation": [0, 1],
                       "cat": pd.Categorical(["x", "y"]), "when": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                       "s": pd.array(["p", None], dtype="string")})
    df.to_pickle(folder / "train.pkl")
    for proto in (2, 4, 5):
        df.to_pickle(folder / f"val_p{proto}.pkl", protocol=proto)
    np.save(folder / "ids.npy", np.arange(4))
    np.save(folder / "labels.npy", np.array(["a", "b"], dtype=object), allow_pickle=True)
    report = loravet.check([str(folder)])
    a = report.adapters[0]
    assert a.finding("unsafe-pickle") is None, a.finding("unsafe-pickle")
    assert a.finding("unreadable-file") is None
    train = next(x for x in a.artifacts if x["file"] == "train.pkl")
    assert train["rows"] == 2 and train["text_column"] == "body" and train["label_balance"] == {"0": 1, "1": 1}


def test_training_args_bin_from_a_real_trainer_is_not_flagged(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = _adapter(tmp_path / "a")
    torch.save(transformers.TrainingArguments(output_dir=str(tmp_path / "o"), report_to=[]),
               folder / "training_args.bin")
    report = loravet.check([str(folder)])
    assert report.adapters[0].finding("unsafe-pickle") is None
    assert report.adapters[0].finding("no-training-evidence") is None


def test_nested_archives_are_opened(tmp_path: Path) -> None:
    import io
    import zipfile

    inner = as_torch_zip(payloads("touch /nonexistent")["os.system"][0](False))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("checkpoints/model.pt", inner)
    path = tmp_path / "bundle.zip"
    path.write_bytes(buf.getvalue())
    result = scan_file(path)
    assert result is not None and result.worst == "dangerous"


def test_unparsable_pickle_is_reported_not_skipped(tmp_path: Path) -> None:
    folder = _adapter(tmp_path / "a")
    (folder / "val.pkl").write_bytes(b"\x80\x04\x95garbage-not-a-pickle")
    report = loravet.check([str(folder)])
    f = report.adapters[0].finding("unreadable-file")
    assert f is not None and "val.pkl" in f.message
