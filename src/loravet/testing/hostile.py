"""A corpus of hostile and benign pickle-bearing files, built by code (nothing downloaded).

Each hostile case writes files into an adapter folder; opening its `target` the usual way (`opener`:
pickle.load, a loop of pickle.load, torch.load(weights_only=False), pandas.read_pickle, joblib.load,
numpy.load(allow_pickle=True)) runs `cmd`, which the tests make `touch CANARY` and prove in a throwaway
subprocess (:func:`proof_code`). loravet must flag every case (`unsafe-pickle`, or `scan-incomplete`)
without running it. Benign cases are real files written by real tools (torch, transformers, pandas,
pyarrow, joblib, numpy): loravet must not flag them.

Heavy libraries are imported inside the builders that need them.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BenignCase",
    "HostileCase",
    "as_torch_zip",
    "benign_cases",
    "hostile_cases",
    "opcode_payloads",
    "proof_code",
    "write_adapter_files",
    "write_malicious_bin",
]

BASE = "Qwen/Qwen2.5-0.5B-Instruct"


# ---------------------------------------------------------------- opcode-level builders


def _str(s: str) -> bytes:
    raw = s.encode()
    return b"\x8c" + bytes([len(raw)]) + raw if len(raw) < 256 else b"X" + len(raw).to_bytes(4, "little") + raw


def g(module: str, name: str, stack: bool) -> bytes:
    """Push a global: GLOBAL (protocol 0-3 form) or STACK_GLOBAL (protocol 4+ form, memoised)."""
    if stack:
        return _str(module) + b"\x94" + _str(name) + b"\x94" + b"\x93" + b"\x94"
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def call(fn: bytes, *args: bytes) -> bytes:
    return fn + b"(" + b"".join(args) + b"tR"  # MARK args TUPLE REDUCE


def s(text: str) -> bytes:
    return _str(text)


def b(data: bytes) -> bytes:
    return b"C" + bytes([len(data)]) + data if len(data) < 256 else b"B" + len(data).to_bytes(4, "little") + data


def wrap(body: bytes, stack: bool) -> bytes:
    return (b"\x80\x04" if stack else b"\x80\x02") + body + b"."


def opcode_payloads(cmd: str) -> dict[str, tuple[Callable[[bool], bytes], str]]:
    """name -> (builder(stack) -> pickle bytes, expected verdict 'dangerous' | 'unknown')."""
    return {
        "os.system": (lambda st: wrap(call(g("os", "system", st), s(cmd)), st), "dangerous"),
        "posix.system": (lambda st: wrap(call(g("posix", "system", st), s(cmd)), st), "dangerous"),
        "subprocess.getoutput": (lambda st: wrap(call(g("subprocess", "getoutput", st), s(cmd)), st), "dangerous"),
        "builtins.exec": (
            lambda st: wrap(call(g("builtins", "exec", st), s(f"import os; os.system({cmd!r})")), st),
            "dangerous",
        ),
        "builtins.eval": (
            lambda st: wrap(call(g("builtins", "eval", st), s(f"__import__('os').system({cmd!r})")), st),
            "dangerous",
        ),
        "pydoc.locate": (
            lambda st: wrap(call(call(g("pydoc", "locate", st), s("os.system")), s(cmd)), st),
            "dangerous",
        ),
        "getattr-import": (
            lambda st: wrap(
                call(
                    call(g("builtins", "getattr", st), call(g("builtins", "__import__", st), s("os")), s("system")),
                    s(cmd),
                ),
                st,
            ),
            "dangerous",
        ),
        "_operator.methodcaller": (
            lambda st: wrap(
                call(
                    call(g("_operator", "methodcaller", st), s("system"), s(cmd)),
                    call(g("importlib", "import_module", st), s("os")),
                ),
                st,
            ),
            "dangerous",
        ),
        "_functools.partial": (
            lambda st: wrap(
                call(
                    call(g("_functools", "partial", st), g("nt" if os.name == "nt" else "posix", "system", st), s(cmd))
                ),
                st,
            ),
            "dangerous",
        ),
        "runpy": (
            lambda st: wrap(call(g("runpy", "_run_code", st), s(f"import os; os.system({cmd!r})"), b"}"), st),
            "dangerous",
        ),
        "unknown-import": (lambda st: wrap(call(g("somepkg.helpers", "Loader", st), s(cmd)), st), "unknown"),
    }


def as_torch_zip(pickle_bytes: bytes, extra: int = 0, prefix: str = "archive") -> bytes:
    """A torch.save-style zip whose data.pkl is `pickle_bytes`; `extra` filler members first."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{prefix}/version", "3\n")
        zf.writestr(f"{prefix}/byteorder", "little")
        for i in range(extra):
            zf.writestr(f"{prefix}/extra/{i}", b"")
        zf.writestr(f"{prefix}/data.pkl", pickle_bytes)
    return buf.getvalue()


class _Reduce:
    """Pickles as `func(*args)`: how the payloads inside real tools' files are made."""

    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def _system_pickle(cmd: str, protocol: int = 2) -> bytes:
    return wrap(call(g("os", "system", protocol >= 4), s(cmd)), protocol >= 4)


# ---------------------------------------------------------------- the cases


@dataclass
class HostileCase:
    name: str
    klass: str
    """the issue's class this stands for"""
    opener: str
    """pickle | pickle-stream | torch | pandas | joblib | numpy | zip-member"""
    target: str
    build: Callable[[Path, str], None]
    expect: str = "unsafe-pickle"


def _write(folder: Path, rel: str, data: bytes) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _gadget_load_from_bytes(folder: Path, cmd: str) -> None:
    body = call(g("torch.storage", "_load_from_bytes", True), b(_system_pickle(cmd)))
    _write(folder, "train.pkl", wrap(body, True))


def _gadget_rebuild_from_type(folder: Path, cmd: str) -> None:
    body = call(
        g("torch._tensor", "_rebuild_from_type_v2", True),
        g("os", "system", True),
        g("builtins", "object", True),
        b"(" + s(cmd) + b"t",
        b"}",
    )
    _write(folder, "train.pkl", wrap(body, True))


def _gadget_in_dataframe(folder: Path, cmd: str) -> None:
    import pandas as pd
    import torch

    payload = _Reduce(torch.storage._load_from_bytes, (_system_pickle(cmd),))
    pd.DataFrame(
        {"body": ["a", "b"], "rule_violation": [0, 1], "extra": pd.Series([payload, 1], dtype=object)}
    ).to_pickle(folder / "train.pkl")


def _training_args_dotted(folder: Path, cmd: str) -> None:
    body = call(g("transformers.training_args", "os.system", True), s(cmd))
    _write(folder, "training_args.bin", as_torch_zip(wrap(body, True)))


def _multi_pickle_memo(folder: Path, cmd: str) -> None:
    # pickle 1 memoises 'builtins' 'print' at 0, 1; pickle 2 memoises 'os' 'system' (at 0, 1 in a real,
    # fresh-memo load; at 2, 3 for a scanner that keeps one memo) and then uses memo 0 and 1
    first = b"\x80\x04" + _str("builtins") + b"\x94" + _str("print") + b"\x94" + b"\x93" + b"0N."
    second = (
        b"\x80\x04" + _str("os") + b"\x94" + _str("system") + b"\x94" + b"00" + b"h\x00h\x01\x93" + s(cmd) + b"\x85R."
    )
    _write(folder, "train.pkl", first + second)


def _torch_zip_many_members(folder: Path, cmd: str) -> None:
    _write(folder, "adapter_model.bin", as_torch_zip(_system_pickle(cmd), extra=10_001))


def _folder_many_files(folder: Path, cmd: str) -> None:
    for i in range(2_100):
        _write(folder, f"logs/{i:05d}.txt", b"step\n")
    _write(folder, "zz_last/train.pkl", _system_pickle(cmd))


def _compressed(kind: str) -> Callable[[Path, str], None]:
    def build(folder: Path, cmd: str) -> None:
        import bz2
        import gzip
        import lzma

        data = _system_pickle(cmd)
        packed = gzip.compress(data) if kind == "gz" else bz2.compress(data) if kind == "bz2" else lzma.compress(data)
        _write(folder, f"train.pkl.{kind}", packed)

    return build


def _at(rel: str, protocol: int = 2) -> Callable[[Path, str], None]:
    def build(folder: Path, cmd: str) -> None:
        _write(folder, rel, _system_pickle(cmd, protocol))

    return build


def _protocol0(rel: str) -> Callable[[Path, str], None]:
    def build(folder: Path, cmd: str) -> None:
        _write(folder, rel, pickle.dumps(_Reduce(os.system, (cmd,)), protocol=0))

    return build


def _inst_opcode(folder: Path, cmd: str) -> None:
    _write(folder, "val.pkl", b"(S'" + cmd.encode() + b"'\nios\nsystem\n.")


def _bad_crc(folder: Path, cmd: str) -> None:
    data = bytearray(as_torch_zip(_system_pickle(cmd)))
    i = data.rfind(b"PK\x01\x02")  # central directory entry of data.pkl (the last member)
    data[i + 16] ^= 0xFF
    _write(folder, "adapter_model.bin", bytes(data))


def _decoy_member(folder: Path, cmd: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))  # the decoy: first of two entries
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zf.writestr("archive/data.pkl", _system_pickle(cmd))  # the one torch.load reads
    _write(folder, "adapter_model.bin", buf.getvalue())


def _pickle_before_zip(folder: Path, cmd: str) -> None:
    # pickle.load reads the front; a zip reader (and a scanner that trusts it) sees a benign torch zip
    _write(folder, "train.pkl", _system_pickle(cmd) + as_torch_zip(pickle.dumps({}, protocol=2)))


def _nested_zip(folder: Path, cmd: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("checkpoints/model.pt", as_torch_zip(_system_pickle(cmd)))
    _write(folder, "bundle.zip", buf.getvalue())


def _joblib(compress: int) -> Callable[[Path, str], None]:
    def build(folder: Path, cmd: str) -> None:
        import joblib
        import numpy as np

        joblib.dump({"w": np.arange(4.0), "x": _Reduce(os.system, (cmd,))}, folder / "model.joblib", compress=compress)

    return build


def _npy_object(folder: Path, cmd: str) -> None:
    import numpy as np

    arr = np.empty(1, dtype=object)
    arr[0] = _Reduce(os.system, (cmd,))
    np.save(folder / "labels.npy", arr, allow_pickle=True)


def _legacy_torch(folder: Path, cmd: str) -> None:
    _write(folder, "adapter_model.bin", _system_pickle(cmd))


def _hub_cache(folder: Path, cmd: str) -> None:
    # folder is <repo>/snapshots/<rev>: the file is a symlink into <repo>/blobs
    blobs = folder.parent.parent / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / "0123abcd").write_bytes(_system_pickle(cmd))
    (folder / "train.pkl").symlink_to(Path("../../blobs/0123abcd"))


def _c_twin(module: str, name: str) -> Callable[[Path, str], None]:
    def build(folder: Path, cmd: str) -> None:
        # the twin named alone; a real load imports and calls it with the command
        _write(folder, "val.pkl", wrap(call(g(module, name, True), s(cmd)), True))

    return build


def hostile_cases() -> list[HostileCase]:
    """Every class of issue #10 ("runs attacker code" gadgets, "calls malicious files clean")."""
    cases = [
        HostileCase("gadget-load-from-bytes", "allow-listed gadget", "pickle", "train.pkl", _gadget_load_from_bytes),
        HostileCase(
            "gadget-rebuild-from-type-v2", "allow-listed gadget", "pickle", "train.pkl", _gadget_rebuild_from_type
        ),
        HostileCase("gadget-in-dataframe", "allow-listed gadget", "pandas", "train.pkl", _gadget_in_dataframe),
        HostileCase(
            "training-args-dotted-name", "training_args context", "torch", "training_args.bin", _training_args_dotted
        ),
        HostileCase("multi-pickle-memo", "multi-pickle stream", "pickle-stream", "train.pkl", _multi_pickle_memo),
        HostileCase("torch-zip-10001-members", "silent cap", "torch", "adapter_model.bin", _torch_zip_many_members),
        HostileCase("folder-2100-files", "silent cap", "pickle", "zz_last/train.pkl", _folder_many_files),
        HostileCase("pkl-gz", "compressed", "pandas", "train.pkl.gz", _compressed("gz")),
        HostileCase("pkl-bz2", "compressed", "pandas", "train.pkl.bz2", _compressed("bz2")),
        HostileCase("pkl-xz", "compressed", "pandas", "train.pkl.xz", _compressed("xz")),
        HostileCase(
            "hidden-folder",
            "never opened",
            "pickle",
            ".ipynb_checkpoints/train-checkpoint.pkl",
            _at(".ipynb_checkpoints/train-checkpoint.pkl"),
        ),
        HostileCase("deep-folder", "never opened", "pickle", "a/b/c/d/e/f/train.pkl", _at("a/b/c/d/e/f/train.pkl")),
        HostileCase("protocol0-no-extension", "not recognised", "pickle", "train", _protocol0("train")),
        HostileCase("protocol0-as-json", "not recognised", "pickle", "data.json", _protocol0("data.json")),
        HostileCase("protocol1-as-txt", "not recognised", "pickle", "notes.txt", _at("notes.txt", 1)),
        HostileCase("inst-opcode", "not recognised", "pickle", "val.pkl", _inst_opcode),
        HostileCase("torch-zip-bad-crc", "corrupt archive", "torch", "adapter_model.bin", _bad_crc),
        HostileCase("torch-zip-decoy-member", "corrupt archive", "torch", "adapter_model.bin", _decoy_member),
        HostileCase("nested-zip", "nested archive", "zip-member", "bundle.zip", _nested_zip),
        HostileCase("pickle-before-zip", "polyglot", "pickle", "train.pkl", _pickle_before_zip),
        HostileCase("joblib-compressed", "joblib", "joblib", "model.joblib", _joblib(3)),
        HostileCase("joblib-plain", "joblib", "joblib", "model.joblib", _joblib(0)),
        HostileCase("npy-object", "numpy object array", "numpy", "labels.npy", _npy_object),
        HostileCase("legacy-torch-raw-pickle", "legacy torch", "torch", "adapter_model.bin", _legacy_torch),
        HostileCase("hub-cache-symlink", "hub cache", "pickle", "train.pkl", _hub_cache),
    ]
    return [*cases, *_twin_cases(), *_classic_cases()]


# Aliases and C twins of the dangerous callables (each must be refused like the name it stands for).
_TWINS = (
    ("_operator", "attrgetter"),
    ("_io", "open"),
    ("numpy.lib._npyio_impl", "load"),
    ("torch.serialization", "_load"),
    ("yaml", "unsafe_load"),
    ("joblib", "load"),
    ("nt", "system"),
    ("_pickle", "loads"),
    ("_posixsubprocess", "fork_exec"),
)


def _twin_cases() -> list[HostileCase]:
    return [
        HostileCase(f"twin-{module}.{name}", "alias / C twin", "none", "val.pkl", _c_twin(module, name))
        for module, name in _TWINS
    ]


def _classic_cases() -> list[HostileCase]:
    """Every dangerous opcode payload, with its callable reached through GLOBAL and through STACK_GLOBAL."""
    return [
        HostileCase(
            f"{pname}-{'stack' if stack else 'global'}",
            "classic payload",
            "pickle",
            "train.pkl",
            _classic(pname, stack),
        )
        for pname, (_builder, verdict) in opcode_payloads("{cmd}").items()
        if verdict == "dangerous"
        for stack in (False, True)
    ]


def _classic(pname: str, stack: bool) -> Callable[[Path, str], None]:
    def build(folder: Path, cmd: str) -> None:
        _write(folder, "train.pkl", opcode_payloads(cmd)[pname][0](stack))

    return build


# ---------------------------------------------------------------- benign files from real tools


@dataclass
class BenignCase:
    name: str
    build: Callable[[Path], list[str]]
    """writes files into the folder; returns their relative paths"""


def _benign_torch(folder: Path) -> list[str]:
    import torch

    lin = torch.nn.Linear(8, 8)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3)
    lin(torch.ones(2, 8)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LinearLR(opt)
    opt.step()
    sched.step()
    torch.save(opt.state_dict(), folder / "optimizer.pt")
    torch.save(sched.state_dict(), folder / "scheduler.pt")
    torch.save(
        {
            "python": __import__("random").getstate(),
            "numpy": __import__("numpy").random.get_state(),
            "cpu": torch.get_rng_state(),
        },
        folder / "rng_state.pth",
    )
    torch.save(
        {"w": torch.randn(4, 4), "b": torch.ones(2, dtype=torch.bfloat16)},
        folder / "state_legacy.bin",
        _use_new_zipfile_serialization=False,
    )
    return ["optimizer.pt", "scheduler.pt", "rng_state.pth", "state_legacy.bin"]


def _benign_training_args(folder: Path) -> list[str]:
    import warnings

    import torch
    from transformers import TrainingArguments

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(TrainingArguments(output_dir=str(folder / "out"), report_to=[]), folder / "training_args.bin")
    return ["training_args.bin"]


def _benign_pandas(folder: Path) -> list[str]:
    import pandas as pd

    df = pd.DataFrame(
        {
            "row_id": [1, 2, 3],
            "body": ["a", "b", "c"],
            "rule_violation": [0, 1, 0],
            "score": [0.5, 1.5, None],
            "flag": [True, False, True],
            "obj": pd.Series(["x", 3, None], dtype=object),
            "cat": pd.Categorical(["x", "y", "x"]),
            "s": pd.array(["p", None, "q"], dtype="string"),
        }
    )
    out = []
    for proto in (0, 2, 4, 5):
        df.to_pickle(folder / f"train_p{proto}.pkl", protocol=proto)
        out.append(f"train_p{proto}.pkl")
    df.to_pickle(folder / "val.pkl.gz")
    out.append("val.pkl.gz")
    return out


def _benign_pyarrow_joblib_numpy(folder: Path) -> list[str]:
    import joblib
    import numpy as np
    import pyarrow as pa

    (folder / "table.pkl").write_bytes(pickle.dumps(pa.table({"a": [1, 2], "b": ["x", None]}), protocol=5))
    joblib.dump(
        {"w": np.arange(6.0).reshape(2, 3), "labels": np.array(["a", "b"], dtype=object)}, folder / "plain.joblib"
    )
    joblib.dump({"w": np.arange(6.0)}, folder / "compressed.joblib", compress=3)
    np.save(folder / "ids.npy", np.arange(5))
    np.save(folder / "names.npy", np.array(["a", None], dtype=object), allow_pickle=True)
    np.savez(folder / "arrays.npz", a=np.zeros(3), b=np.array(["x"], dtype=object))
    return ["table.pkl", "plain.joblib", "compressed.joblib", "ids.npy", "names.npy", "arrays.npz"]


def benign_cases() -> list[BenignCase]:
    return [
        BenignCase("torch-optimizer-scheduler-rng-legacy", _benign_torch),
        BenignCase("trainer-training-args", _benign_training_args),
        BenignCase("pandas-frames", _benign_pandas),
        BenignCase("pyarrow-joblib-numpy", _benign_pyarrow_joblib_numpy),
    ]


# ---------------------------------------------------------------- helpers for tests and benches


def write_adapter_files(folder: Path, base: str = BASE) -> None:
    """A minimal adapter folder (config only): enough for `loravet check` to run its scans."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "r": 4,
                "lora_alpha": 8,
                "target_modules": ["q_proj"],
                "base_model_name_or_path": base,
            }
        )
    )


def proof_code(opener: str, path: Path) -> str | None:
    """Python source that opens `path` the usual way for `opener` (run it in a throwaway subprocess)."""
    p = repr(str(path))
    return {
        "pickle": f"import pickle\npickle.load(open({p}, 'rb'))",
        "pickle-stream": f"import pickle\nf = open({p}, 'rb')\nwhile f.peek(1):\n    pickle.load(f)",
        "torch": f"import torch\ntorch.load({p}, weights_only=False)",
        "pandas": f"import pandas\npandas.read_pickle({p})",
        "joblib": f"import joblib\njoblib.load({p})",
        "numpy": f"import numpy\nnumpy.load({p}, allow_pickle=True)",
        "zip-member": (
            f"import io, zipfile, torch\nz = zipfile.ZipFile({p})\n"
            "torch.load(io.BytesIO(z.read(z.namelist()[0])), weights_only=False)"
        ),
    }.get(opener)


# ---------------------------------------------------------------- the demo's malicious adapter file


class _Payload:
    """Pickles to a call of os.system; only ever written, never loaded."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def write_malicious_bin(path: Path, canary: Path) -> Path:
    """A torch-zip adapter_model.bin whose data.pkl would run `touch canary` if unpickled (the demo's
    pickled-adapter; pickled by the standard pickler, so it names the platform's os module, e.g. posix)."""
    payload = pickle.dumps(
        {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": _Payload(f"touch {canary}")}, protocol=2
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/byteorder", "little")
    return path
