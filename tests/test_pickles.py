"""Pickles are read, never run: every hostile file of the corpus really runs when opened the usual way
(proved in a throwaway subprocess), and loravet flags it without running it; real benign files from
real tools are not flagged, and the data loravet needs is rebuilt from them without unpickling."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

import loravet
from loravet.adapter.pickle_policy import judge_global
from loravet.adapter.pickle_values import Unreconstructable, plain, table_of
from loravet.adapter.pickle_vm import PickleFormatError, PickleLimitError, PickleLimits, read_pickle, walk
from loravet.checks.pickles import ScanLimits, scan_file, scan_folder
from loravet.testing.hostile import (
    HostileCase,
    as_torch_zip,
    benign_cases,
    hostile_cases,
    opcode_payloads,
    proof_code,
    write_adapter_files,
)

CASES = hostile_cases()


def _folder_for(tmp: Path, case: HostileCase) -> Path:
    folder = tmp / ("models--someone--lora/snapshots/rev0" if case.klass == "hub cache" else "adapter")
    write_adapter_files(folder)
    return folder


@pytest.mark.slow
def test_every_payload_really_runs_when_opened_the_usual_way(tmp_path: Path) -> None:
    """The corpus is not a strawman: each file runs its command under pickle.load / torch.load /
    pandas.read_pickle / joblib.load / numpy.load (one throwaway subprocess, one canary per case)."""
    script = ["import os, sys"]
    expected: dict[str, Path] = {}
    for i, case in enumerate(CASES):
        if case.opener == "none":
            continue
        root = tmp_path / f"c{i}"
        folder = _folder_for(root, case)
        canary = root / "CANARY"
        case.build(folder, f"touch {canary}")
        code = proof_code(case.opener, folder / case.target)
        assert code is not None
        script.append("try:\n" + textwrap.indent(code, "    ") + "\nexcept BaseException:\n    pass")
        expected[case.name] = canary
    proc = subprocess.run([sys.executable, "-c", "\n".join(script)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    missing = [name for name, canary in expected.items() if not canary.exists()]
    assert not missing, (missing, proc.stderr[-2000:])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_payload_is_flagged_and_never_runs(tmp_path: Path, case: HostileCase) -> None:
    folder = _folder_for(tmp_path, case)
    canary = tmp_path / "CANARY"
    case.build(folder, f"touch {canary}")
    report = loravet.check([str(folder)])
    adapter = report.adapters[0]
    flag = adapter.finding("unsafe-pickle") or adapter.finding("scan-incomplete")
    assert flag is not None, [f.code for f in adapter.findings]
    assert flag.severity.label in ("critical", "high"), flag.message
    if case.klass in ("allow-listed gadget", "alias / C twin", "training_args context", "multi-pickle stream"):
        assert flag.code == "unsafe-pickle" and flag.severity.label == "critical", flag.message
    assert not canary.exists()
    assert loravet.exit_code(report, "high") == 1


@pytest.mark.parametrize("stack", [False, True], ids=["GLOBAL", "STACK_GLOBAL"])
@pytest.mark.parametrize("form", ["raw-bin", "torch-zip"])
def test_payload_as_adapter_weights_is_refused(tmp_path: Path, form: str, stack: bool) -> None:
    canary = tmp_path / "CANARY"
    data = opcode_payloads(f"touch {canary}")["os.system"][0](stack)
    folder = tmp_path / "adapter"
    write_adapter_files(folder)
    (folder / "adapter_model.bin").write_bytes(data if form == "raw-bin" else as_torch_zip(data))
    report = loravet.check([str(folder)])
    f = report.adapters[0].finding("unsafe-pickle")
    assert f is not None and f.severity.label == "critical"
    assert not canary.exists()


def test_unknown_global_is_high_not_critical(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    write_adapter_files(folder)
    (folder / "train.pkl").write_bytes(opcode_payloads("x")["unknown-import"][0](True))
    f = loravet.check([str(folder)]).adapters[0].finding("unsafe-pickle")
    assert f is not None and f.severity.label == "high"


@pytest.mark.parametrize("case", benign_cases(), ids=[c.name for c in benign_cases()])
def test_benign_files_from_real_tools_are_not_flagged(tmp_path: Path, case: object) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("pandas")
    pytest.importorskip("joblib")
    folder = tmp_path / "adapter"
    write_adapter_files(folder)
    files = case.build(folder)  # type: ignore[attr-defined]
    report = loravet.check([str(folder)])
    a = report.adapters[0]
    for code in ("unsafe-pickle", "scan-incomplete", "unreadable-file"):
        assert a.finding(code) is None, (code, a.finding(code))
    scanned = {s["file"] for s in a.extra["pickles_scanned"]}
    assert set(files) <= scanned


def test_dataframes_are_rebuilt_without_unpickling(tmp_path: Path) -> None:
    """Every pandas pickle layout (protocols 0-5, Arrow-backed and object strings, numeric blocks) gives
    the columns and values pandas itself reads back."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"row_id": [1, 2, 3], "body": ["a", "b", "ç"], "rule_violation": [0, 1, 0],
                       "score": [0.5, 1.5, 2.5], "flag": [True, False, True],
                       "obj": pd.Series(["x", 3, None], dtype=object), "s": pd.array(["p", None, "q"], dtype="string"),
                       "cat": pd.Categorical(["x", None, "y"]),
                       "py": pd.array(["u", "v", None], dtype="string[python]")})
    for proto in range(6):
        buf = io.BytesIO()
        df.to_pickle(buf, protocol=proto)
        truth = pd.read_pickle(io.BytesIO(buf.getvalue()))  # our own file: safe to load for the comparison
        table = table_of(read_pickle(buf.getvalue()).value)
        assert table.columns == list(truth.columns) and table.rows == len(truth)
        for col in truth.columns:
            want = [None if pd.isna(v) else v for v in truth[col].tolist()]
            got = [None if v is None or v != v else v for v in (table.values[col] or [])]
            assert got == want, (proto, col)
    folder = tmp_path / "adapter"
    write_adapter_files(folder)
    df.to_pickle(folder / "train.pkl.gz")
    art = next(x for x in loravet.check([str(folder)]).adapters[0].artifacts if x["file"] == "train.pkl.gz")
    assert art["rows"] == 3 and art["text_column"] == "body" and art["label_balance"] == {"0": 2, "1": 1}


def _peft_state_dict(tmp_path: Path) -> dict[str, object]:
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    from loravet.testing.models import build_base, load_base

    base = build_base(tmp_path / "base")
    model = get_peft_model(load_base(base), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p))
    sd: dict[str, object] = get_peft_model_state_dict(model)
    return sd


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_save_of_a_real_peft_state_dict_round_trips_exact_values(tmp_path: Path, legacy: bool) -> None:
    """Issue #11 class 1: values of every real torch.save .bin are read (no 'cannot reshape')."""
    torch = pytest.importorskip("torch")
    from loravet.adapter.torch_file import read_torch_file

    sd = _peft_state_dict(tmp_path)
    sd["transposed.weight"] = torch.randn(3, 5).t()
    sd["half.weight"] = torch.randn(4, 2, dtype=torch.bfloat16)
    path = tmp_path / "adapter_model.bin"
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    wf = read_torch_file(path)
    assert set(wf.tensors) == set(sd)
    for name, tensor in sd.items():
        want = tensor.detach().float().numpy()  # type: ignore[attr-defined]
        got = wf.read(name)
        assert got.shape == want.shape and (got == want).all(), name


def test_stride0_and_oversized_tensors_are_refused_without_allocating(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from loravet.adapter.torch_file import read_torch_file

    path = tmp_path / "adapter_model.bin"
    torch.save({"x": torch.zeros(1).expand(30_000, 30_000)}, path)  # 3.6 GB if materialised
    wf = read_torch_file(path)
    tracemalloc.start()
    with pytest.raises(ValueError, match="stride"):
        wf.read("x")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 1024 * 1024
    # a tensor claiming more elements than its storage holds (data.pkl edited, archive rewritten)
    torch.save({"y": torch.zeros(4)}, path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    pkl = next(n for n in members if n.endswith("data.pkl"))
    assert b"K\x04\x85" in members[pkl]  # the size tuple (4,)
    members[pkl] = members[pkl].replace(b"K\x04\x85", b"K\xc8\x85", 1)
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    wf = read_torch_file(path)
    with pytest.raises(ValueError, match=r"refused|outside"):
        wf.read("y")


def test_reader_bounds_hostile_streams() -> None:
    # exponential DAG through memo references: 60 levels of [x, x] is 2**60 leaves unfolded
    body = b"\x80\x04N" + b"\x94" + b"".join(b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86\x94" for i in range(60))
    start = time.monotonic()
    result = read_pickle(body + b".")
    assert sum(1 for _ in walk(result.value)) < 200
    assert time.monotonic() - start < 2
    # a 31-byte request for 2 GB is a record, never an allocation
    big = b"\x80\x02c__builtin__\nbytearray\nJ\x00\x94\x35\x77\x85R."
    assert read_pickle(big).value is not None
    # nesting: deep lists build fine, their plain rebuild is bounded
    deep = b"\x80\x04" + b"]" * 50_000 + b"a" * 49_999 + b"."
    with pytest.raises(Unreconstructable):
        plain(read_pickle(deep).value)
    # op bound and memo-reference bound
    with pytest.raises(PickleLimitError):
        read_pickle(b"\x80\x04N" + b"0N" * 1000 + b".", limits=PickleLimits(max_ops=100))
    with pytest.raises(PickleLimitError):
        read_pickle(body + b".", limits=PickleLimits(max_memo_refs=10))
    with pytest.raises(PickleFormatError):
        read_pickle(b"\x80\x04\x8c\xffabc")


def test_symbolic_reader_matches_pickle_on_data(tmp_path: Path) -> None:
    """Plain data read symbolically equals what pickle itself loads, in every protocol."""
    values: list[object] = [
        {"a": [1, -2, 3.5, "x", b"y", None, True, False, (1, 2), {3}, frozenset({4})], "n": 2**70, "neg": -(2**40)},
        [[], {}, (), "é" * 300, b"\x00" * 300, 1e300, -0.0, 255, 65535, 2**31 - 1, -(2**31)],
    ]
    for value in values:
        for proto in range(6):
            data = pickle.dumps(value, protocol=proto)
            assert plain(read_pickle(data).value) == value, proto


def test_policy_by_module_and_callable() -> None:
    for module, name in [("_operator", "methodcaller"), ("_functools", "partial"), ("_io", "open"),
                         ("posix", "system"), ("nt", "system"), ("_pickle", "loads"),
                         ("numpy.lib._npyio_impl", "load"), ("torch.serialization", "_load"),
                         ("torch.storage", "_load_from_bytes"), ("torch._tensor", "_rebuild_from_type_v2"),
                         ("yaml", "unsafe_load"), ("joblib", "load"), ("transformers.training_args", "os.system")]:
        assert judge_global(module, name) == "dangerous", (module, name)
        assert judge_global(module, name, "training_args") == "dangerous", (module, name)
    assert judge_global("transformers.training_args", "TrainingArguments", "training_args") == "allowed"
    assert judge_global("transformers.training_args", "TrainingArguments") == "unknown"
    assert judge_global("transformers.training_args", "SomethingElse", "training_args") == "unknown"
    assert judge_global("transformers.training_args", "TrainingArguments.x", "training_args") != "allowed"


def test_bounds_reached_are_reported_not_silent(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    write_adapter_files(folder)
    for i in range(8):
        (folder / f"f{i}.txt").write_text("x")
    _, incomplete = scan_folder(folder, ScanLimits(max_files=5))
    assert incomplete and "over 5 files" in incomplete[0]
    (folder / "deep").mkdir()
    (folder / "deep" / "inner").mkdir()
    _, incomplete = scan_folder(folder, ScanLimits(max_dir_depth=1))
    assert any("deeper than 1" in x for x in incomplete)
    many = tmp_path / "many.zip"
    many.write_bytes(as_torch_zip(pickle.dumps({}), extra=30))
    result = scan_file(many, limits=ScanLimits(max_members=10))
    assert result is not None and result.incomplete
    lz4 = tmp_path / "model.joblib"  # joblib can write lz4, which loravet has no decoder for
    lz4.write_bytes(b"\x04\x22\x4d\x18" + b"\x00" * 32)
    result = scan_file(lz4)
    assert result is not None and result.incomplete and "lz4" in result.incomplete[0]
    bomb = tmp_path / "train.pkl.gz"
    import gzip

    bomb.write_bytes(gzip.compress(b"\x00" * 5_000_000))
    result = scan_file(bomb, limits=ScanLimits(max_decompressed=1_000_000))
    assert result is not None and "not read" in result.incomplete[0]
    # a link leaving the folder is never followed, and says so
    outside = tmp_path / "elsewhere.pkl"
    outside.write_bytes(b"\x80\x02}.")
    (folder / "link.pkl").symlink_to(outside)
    f = loravet.check([str(folder)]).adapters[0].finding("scan-incomplete")
    assert f is not None and f.severity.label == "high" and "link.pkl" in f.message


def test_benign_hub_cache_adapter_is_read_through_its_blob_links(tmp_path: Path) -> None:
    """huggingface_hub snapshot files are symlinks into ../../blobs: followed (and scanned)."""
    torch = pytest.importorskip("torch")
    repo = tmp_path / "models--someone--lora"
    snap = repo / "snapshots" / "rev0"
    blobs = repo / "blobs"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    write_adapter_files(tmp_path / "cfg")
    (blobs / "c1").write_bytes((tmp_path / "cfg" / "adapter_config.json").read_bytes())
    torch.save({"w": torch.zeros(2)}, blobs / "c2")
    (snap / "adapter_config.json").symlink_to(Path("../../blobs/c1"))
    (snap / "optimizer.pt").symlink_to(Path("../../blobs/c2"))
    a = loravet.check([str(snap)]).adapters[0]
    assert a.finding("scan-incomplete") is None and a.finding("unsafe-pickle") is None
    assert "optimizer.pt" in {s["file"] for s in a.extra["pickles_scanned"]}


def test_unparsable_pickle_is_reported_not_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    write_adapter_files(folder)
    (folder / "val.pkl").write_bytes(b"\x80\x04\x95garbage-not-a-pickle")
    f = loravet.check([str(folder)]).adapters[0].finding("unreadable-file")
    assert f is not None and "val.pkl" in f.message


def test_text_files_are_not_mistaken_for_pickles(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    write_adapter_files(folder)
    (folder / "README.md").write_text("compile this\nsystem\nIn the beginning\n")
    (folder / "notes").write_text("cat\ndog\n(more)\n")
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": []}))
    (folder / "tokenizer.model").write_bytes(b"\n\x0b\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02")  # protobuf
    a = loravet.check([str(folder)]).adapters[0]
    assert a.finding("unsafe-pickle") is None and a.finding("unreadable-file") is None


def test_no_state_is_shared_between_files(tmp_path: Path) -> None:
    """A BUILD aimed at a storage type in one file changes nothing for the next file read."""
    torch = pytest.importorskip("torch")
    from loravet.adapter.torch_file import TorchFileError, read_torch_file

    hostile = tmp_path / "hostile.bin"
    body = b"ctorch\nFloatStorage\n}(X\x05\x00\x00\x00dtypeX\x04\x00\x00\x00halfub."
    hostile.write_bytes(as_torch_zip(b"\x80\x02" + body))
    with pytest.raises(TorchFileError):
        read_torch_file(hostile)
    good = tmp_path / "good.bin"
    torch.save({"w": torch.arange(4, dtype=torch.float32)}, good)
    wf = read_torch_file(good)
    assert wf.tensors["w"].dtype == "F32" and wf.read("w").tolist() == [0.0, 1.0, 2.0, 3.0]


def test_hostile_structures_in_artifacts_finish_fast(tmp_path: Path) -> None:
    """A row list whose text cell is an exponential DAG, and a DataFrame whose Arrow offsets point
    outside their data: the check finishes at once, the bad column is not rebuilt, nothing crashes."""
    pd = pytest.importorskip("pandas")
    folder = tmp_path / "adapter"
    write_adapter_files(folder)
    dag = b"N\x940" + b"".join(b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86\x940" for i in range(60)) + b"h<"
    rows = b"\x80\x04](}\x8c\x04body" + dag + b"s\x8c\x05label" + b"K\x01" + b"se."
    (folder / "train.pkl").write_bytes(rows)
    buf = io.BytesIO()
    pd.DataFrame({"body": ["ab", "cd"], "label": [0, 1]}).to_pickle(buf, protocol=5)
    offsets = (0).to_bytes(8, "little") + (2).to_bytes(8, "little") + (4).to_bytes(8, "little")
    data = buf.getvalue()
    assert data.count(offsets) == 1
    (folder / "val.pkl").write_bytes(data.replace(offsets, offsets[:16] + (1 << 40).to_bytes(8, "little")))
    start = time.monotonic()
    a = loravet.check([str(folder)]).adapters[0]
    assert time.monotonic() - start < 20
    assert a.finding("unsafe-pickle") is None
    arts = {x["file"]: x for x in a.artifacts}
    assert arts["val.pkl"]["rows"] == 2 and "body" in arts["val.pkl"]["columns_not_rebuilt"]
    assert arts["train.pkl"]["rows"] == 1
