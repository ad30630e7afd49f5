"""Round two of issue #10's attacks: hostile inputs the corpus (loravet.testing.hostile) did not hold.

Each pickle payload is first shown to run under the loader a user would call (in a throwaway subprocess,
a canary file is the proof), then loravet must call the file unsafe or unreadable, never clean, and must
print no control character of the adapter's on any report a terminal may show."""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import loravet
from loravet.reports.render import render
from loravet.testing.hostile import call, g, s, wrap, write_adapter_files


def _cmd(canary: Path) -> str:
    return f"touch {canary}"


def _obj_protocol1(cmd: str) -> bytes:  # MARK class args OBJ: cls(*args) with no REDUCE in sight
    return b"(cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd.encode() + b"o."


def _names_from_str_calls(cmd: str) -> bytes:  # STACK_GLOBAL whose module and name are str("posix"), str("system")
    st = g("builtins", "str", True)
    return wrap(call(call(st, s("posix")) + call(st, s("system")) + b"\x93", s(cmd)), True)


def _names_from_memo(cmd: str) -> bytes:  # STACK_GLOBAL fed from the memo (BINGET), not from string opcodes
    return b"\x80\x04" + s("posix") + b"\x94" + s("system") + b"\x94" + b"h\x00h\x01\x93" + s(cmd) + b"\x85R."


def _setstate_on_instance(cmd: str) -> bytes:  # BUILD puts __setstate__ in an instance dict; the next BUILD calls it
    body = (g("collections", "OrderedDict", False) + b")R" + b"}" + s("__setstate__") + g("posix", "system", False)
            + b"sb" + s(cmd) + b"b")
    return wrap(body, False)


PICKLES: dict[str, Callable[[str], bytes]] = {
    "obj-protocol-1": _obj_protocol1,
    "stack-global-names-from-str": _names_from_str_calls,
    "stack-global-names-from-memo": _names_from_memo,
    "build-setstate-in-instance-dict": _setstate_on_instance,
}


def _fires(code: str, canary: Path) -> bool:
    canary.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    return canary.exists()


def _unsafe(folder: Path, file: str) -> str:
    """the finding that keeps `file` from being called clean: 'unsafe-pickle' or 'unreadable-file'"""
    report = loravet.check([str(folder)])
    for f in report.adapters[0].findings:
        if f.code in ("unsafe-pickle", "unreadable-file") and file in f.message:
            return f.code
    return "clean"


@pytest.mark.parametrize("name", sorted(PICKLES))
def test_opcode_tricks_run_under_pickle_load_and_are_unsafe(tmp_path: Path, name: str) -> None:
    canary = tmp_path / "CANARY"
    folder = tmp_path / "a"
    write_adapter_files(folder)
    (folder / "train.pkl").write_bytes(PICKLES[name](_cmd(canary)))
    assert _fires(f"import pickle; pickle.load(open({str(folder / 'train.pkl')!r}, 'rb'))", canary)
    canary.unlink()
    report = loravet.check([str(folder)])
    f = report.adapters[0].finding("unsafe-pickle")
    assert f is not None and f.severity.name.lower() == "critical", [x.message for x in report.adapters[0].findings]
    assert not canary.exists()


def _npz_object(cmd: str) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
    npy += wrap(call(g("os", "system", False), s(cmd)), False)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.npy", npy)
    return buf.getvalue()


def test_object_npy_inside_npz_runs_under_numpy_load_and_is_unsafe(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    folder = tmp_path / "a"
    write_adapter_files(folder)
    (folder / "data.npz").write_bytes(_npz_object(_cmd(canary)))
    assert _fires(f"import numpy; numpy.load({str(folder / 'data.npz')!r}, allow_pickle=True)['x']", canary)
    assert _unsafe(folder, "data.npz") == "unsafe-pickle"


def test_gzip_in_zip_in_tar_is_unsafe(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    write_adapter_files(folder)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("train.pkl.gz", gzip.compress(wrap(call(g("os", "system", True), s("true")), True)))
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w") as tf:
        info = tarfile.TarInfo("bundle.zip")
        info.size = len(inner.getvalue())
        tf.addfile(info, io.BytesIO(inner.getvalue()))
    (folder / "bundle.tar").write_bytes(outer.getvalue())
    assert _unsafe(folder, "bundle.tar") == "unsafe-pickle"


def _joblib_dtype_lie(cmd: str, elsize: int, flags: int) -> bytes:
    """A joblib array wrapper whose dtype is "S1" by its code but `elsize` bytes (or an object array, flags
    63) by its pickled state, which is what numpy applies: joblib steps over `elsize` bytes (or reads a nested
    pickle) where a reader trusting the code steps over one, and then runs the payload the other never sees."""
    dtype = (call(g("numpy", "dtype", False), s("S1"), b"\x89", b"\x88") + b"(K\x03" + s("|") + b"NNN"
             + b"J" + elsize.to_bytes(4, "little", signed=True) + b"K\x01J" + flags.to_bytes(4, "little") + b"tb")
    wrapper = (g("joblib.numpy_pickle", "NumpyArrayWrapper", False) + b")\x81"
               + b"}(" + s("subclass") + g("numpy", "ndarray", False) + s("shape") + b"K\x01\x85"
               + s("order") + s("C") + s("dtype") + dtype + s("allow_mmap") + b"\x89" + b"ub")
    if flags:
        # joblib reads a nested pickle from here: BININT1 67, NEWTRUE, the payload, STOP. The one-byte reader
        # skips "K" and sees SHORT_BINBYTES ("C") of 0x88 bytes that hold all the rest, then STOP.
        region = call(g("os", "system", False), s(cmd)) + b"."
        assert len(region) <= 0x88
        region = b"N0" * ((0x88 - len(region)) // 2) + b"N" * ((0x88 - len(region)) % 2) + region
        return b"\x80\x02" + wrapper + b"KC\x88" + region + b"."
    # one byte of "data", then BINBYTES hiding the payload at offset `elsize`, POP, STOP
    assert elsize == 6
    payload = call(g("os", "system", False), s(cmd)) + b"0."
    return b"\x80\x02" + wrapper + b"x" + b"B" + len(payload).to_bytes(4, "little") + payload + b"0."


@pytest.mark.parametrize("elsize,flags", [(6, 0), (1, 63)], ids=["itemsize-lie", "object-flag-lie"])
def test_joblib_dtype_state_lie_runs_under_joblib_and_is_not_clean(tmp_path: Path, elsize: int, flags: int) -> None:
    canary = tmp_path / "CANARY"
    folder = tmp_path / "a"
    write_adapter_files(folder)
    (folder / "model.joblib").write_bytes(_joblib_dtype_lie(_cmd(canary), elsize, flags))
    assert _fires(f"import joblib; joblib.load({str(folder / 'model.joblib')!r})", canary)
    assert _unsafe(folder, "model.joblib") != "clean"  # was: no finding at all


def test_real_joblib_arrays_still_read(tmp_path: Path) -> None:
    """the dtype check keeps what joblib itself writes: fixed, string and unicode arrays scan as allowed"""
    import joblib
    import numpy as np

    folder = tmp_path / "a"
    write_adapter_files(folder)
    joblib.dump({"f": np.arange(4, dtype=">f4"), "s": np.array([b"ab", b"c"]), "u": np.array(["xyz"]),
                 "t": np.array(["2020-01-01"], dtype="M8[ns]"), "b": np.zeros(3, dtype=bool)},
                folder / "model.joblib")
    assert _unsafe(folder, "model.joblib") == "clean"


ESC = ("\x1b]8;;http://evil.example/\x07CLICK\x1b]8;;\x07\x1b[2J\x1b]0;TITLE\x07\u202e"
       "<script>alert(1)</script>")


def test_html_report_carries_no_adapter_control_characters(tmp_path: Path) -> None:
    """`--format html` without -o prints to the terminal: an OSC 8 link or a bidi override from the
    adapter's config, tensor names or file names must arrive as visible escapes (it used to pass raw)."""
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj" + ESC],
        "base_model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct" + ESC}))
    header = json.dumps({"__metadata__": {"format": "pt" + ESC},
                         "base_model.model." + ESC + ".lora_A.weight":
                             {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]}}).encode()
    (folder / "adapter_model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    (folder / ("x\x1b[2Jy.pkl")).write_bytes(wrap(call(g("evil\x1b]0;T\x07", "f", True), s("x")), True))
    html = render(loravet.check([str(folder)]), "html")
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", html)
    assert "\\x1b]8;;http" in html  # shown, not dropped
    assert "<script>alert" not in html


def _budget_env() -> dict[str, str]:
    import os

    return {**os.environ, "LORAVET_ADAPTER_MEMORY_MB": "512"}


def test_long_dotted_target_module_stays_within_memory(tmp_path: Path) -> None:
    """a 3 MB target_modules entry of 1.5 million dots (the config limit is 4 MB) built every dotted tail:
    26 s and 8 GB before the per-adapter budget stopped the analysis; now a plain disagreement finding"""

    folder = tmp_path / "a"
    write_adapter_files(folder)
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "a." * 1_500_000 + "q"],
        "base_model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"}))
    header = json.dumps({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight":
                         {"dtype": "F32", "shape": [4, 896], "data_offsets": [0, 4 * 4 * 896]}}).encode()
    (folder / "adapter_model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header
                                                      + b"\0" * (4 * 4 * 896))
    proc = subprocess.run([sys.executable, "-m", "loravet.cli", "check", str(folder), "--format", "json"],
                          capture_output=True, text=True, timeout=120, env=_budget_env())
    codes = {f["code"] for f in json.loads(proc.stdout)["adapters"][0]["findings"]}
    assert "analysis-budget" not in codes and "config-weights-disagree" in codes


def test_many_long_tensor_names_stay_within_memory(tmp_path: Path) -> None:
    """50,000 tensors named with 150 characters: every suffix of every name was kept (1.1 GB)"""
    folder = tmp_path / "a"
    write_adapter_files(folder)
    pad = "x" * 100
    header = ("{" + ",".join(f'"base_model.model.{pad}.l{i}.lora_A.weight":'
                             '{"dtype":"F32","shape":[0],"data_offsets":[0,0]}' for i in range(50_000)) + "}").encode()
    (folder / "adapter_model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    proc = subprocess.run([sys.executable, "-m", "loravet.cli", "check", str(folder), "--format", "json"],
                          capture_output=True, text=True, timeout=120, env=_budget_env())
    codes = {f["code"] for f in json.loads(proc.stdout)["adapters"][0]["findings"]}
    assert "analysis-budget" not in codes and "unused-weights" in codes
