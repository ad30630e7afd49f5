"""adapter_model.bin (torch.save, zip or legacy format) read for names, dtypes, shapes and values
without torch and without unpickling.

The state dict's pickle is interpreted by loravet's symbolic reader (loravet.adapter.pickle_vm): the
globals it names are judged by the policy (anything outside the allow-list refuses the file), tensor
records are recognised by layout, and values are decoded with NumPy from the storage bytes. Stride-0,
overlapping, out-of-storage and oversized tensors are refused before anything is allocated.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from loravet.adapter.limits import MAX_TENSOR_ELEMENTS, MAX_TENSORS
from loravet.adapter.pickle_policy import judge_global
from loravet.adapter.pickle_values import TensorRecord, Unreconstructable, state_dict_tensors
from loravet.adapter.pickle_vm import LEGACY_TORCH_MAGIC, PickleError, PickleResult, read_pickle
from loravet.adapter.tensors import DTYPE_BITS, TensorInfo, WeightFile, decode_values

__all__ = ["TorchFileError", "TorchStateDict", "UnsafeTorchFile", "read_torch_file", "read_torch_state_dict",
           "torch_zip_pickle_member"]

MAX_PICKLE_BYTES = 256 * 1024 * 1024
MAX_TENSOR_BYTES = 8 * 1024**3


class TorchFileError(ValueError):
    """Not a readable torch checkpoint."""


class UnsafeTorchFile(TorchFileError):
    """The checkpoint's pickle names a global outside the allow-list: not interpreted further."""

    def __init__(self, module: str, name: str, verdict: str) -> None:
        self.module, self.name, self.verdict = module, name, verdict
        super().__init__(f"pickle imports {module}.{name}, which is not on loravet's allow-list")


@dataclass
class TorchStateDict:
    """Tensor records of a torch checkpoint and a way to read a storage's bytes."""

    tensors: dict[str, TensorRecord]
    storage_bytes: Callable[[str], bytes]
    storage_sizes: dict[str, int]
    """storage key -> bytes available for it in the file"""
    format: str  # "zip" | "legacy"


def torch_zip_pickle_member(names: list[str]) -> str | None:
    """The member torch.load reads: `<first entry's folder>/data.pkl` (torch's reader takes the archive
    name from the first record)."""
    if not names:
        return None
    first = names[0].split("/", 1)[0] if "/" in names[0] else ""
    want = f"{first}/data.pkl" if first else "data.pkl"
    if want in names:
        return want
    return next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)


def _check_globals(result: PickleResult) -> None:
    for use in result.globals:
        verdict = judge_global(use.module, use.name)
        if verdict != "allowed":
            raise UnsafeTorchFile(use.module, use.name, verdict)


def _interpret(path: Path, payload: bytes | memoryview, pos: int = 0) -> tuple[PickleResult, dict[str, TensorRecord]]:
    try:
        result = read_pickle(payload, pos)
    except PickleError as exc:
        for use in exc.globals:
            verdict = judge_global(use.module, use.name)
            if verdict != "allowed":
                raise UnsafeTorchFile(use.module, use.name, verdict) from None
        raise TorchFileError(f"{path.name}: the state dict's pickle cannot be read ({exc})") from None
    _check_globals(result)
    try:
        tensors = state_dict_tensors(result.value, MAX_TENSORS)
    except Unreconstructable as exc:
        raise TorchFileError(f"{path.name}: {exc}") from None
    return result, tensors


def _read_zip(path: Path) -> TorchStateDict:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError, NotImplementedError, RuntimeError, EOFError) as exc:
        raise TorchFileError(f"cannot open {path.name}: {exc}") from None
    with archive:
        names = archive.namelist()
        member = torch_zip_pickle_member(names)
        if member is None:
            raise TorchFileError(f"{path.name} is a zip without a data.pkl: not a torch checkpoint")
        info = archive.getinfo(member)
        if info.flag_bits & 0x1:
            raise TorchFileError(f"{path.name}: data.pkl is encrypted")
        if info.file_size > MAX_PICKLE_BYTES:
            raise TorchFileError(f"{path.name}: data.pkl is {info.file_size:,} bytes, over the limit")
        prefix = member[: -len("data.pkl")]
        try:
            payload = archive.read(member)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
            raise TorchFileError(f"{path.name}: cannot read data.pkl ({exc})") from None
        _, tensors = _interpret(path, payload)
        sizes = {n[len(prefix) + len("data/"):]: archive.getinfo(n).file_size
                 for n in names if n.startswith(prefix + "data/")}

    def storage_bytes(key: str) -> bytes:
        name = f"{prefix}data/{key}"
        try:
            with zipfile.ZipFile(path) as zf:
                info = zf.getinfo(name)
                if info.file_size > MAX_TENSOR_BYTES:
                    raise ValueError(f"storage {key} is {info.file_size:,} bytes, over the limit: not read")
                return zf.read(info)
        except KeyError:
            raise ValueError(f"storage {key} missing") from None
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise ValueError(f"storage {key} cannot be read ({exc})") from None

    return TorchStateDict(tensors, storage_bytes, sizes, "zip")


def _read_legacy(path: Path, data: bytes | memoryview) -> TorchStateDict:
    """The pre-1.6 format: magic, protocol, sys_info and state-dict pickles, a pickled list of storage
    keys, then each storage as an 8-byte element count and its raw bytes."""
    pos = 0
    header: list[object] = []
    try:
        for _ in range(3):
            r = read_pickle(data, pos)
            _check_globals(r)
            header.append(r.value)
            pos = r.end
    except PickleError as exc:
        raise TorchFileError(f"{path.name}: not a torch checkpoint ({exc})") from None
    if header[0] != LEGACY_TORCH_MAGIC:
        raise TorchFileError(f"{path.name} is a pickle, not a torch checkpoint")
    result, tensors = _interpret(path, data, pos)
    try:
        keys_result = read_pickle(data, result.end)
    except PickleError as exc:
        raise TorchFileError(f"{path.name}: storage list cannot be read ({exc})") from None
    _check_globals(keys_result)
    keys = keys_result.value
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise TorchFileError(f"{path.name}: malformed storage list")
    itemsize = {}
    for rec in tensors.values():
        itemsize[rec.storage_key] = max(1, DTYPE_BITS.get(rec.dtype, 8) // 8)
    spans: dict[str, tuple[int, int]] = {}
    pos = keys_result.end
    for key in keys:
        if pos + 8 > len(data):
            raise TorchFileError(f"{path.name}: truncated storage {key}")
        (numel,) = struct.unpack("<q", data[pos:pos + 8])
        nbytes = numel * itemsize.get(key, 1)
        if numel < 0 or pos + 8 + nbytes > len(data):
            raise TorchFileError(f"{path.name}: storage {key} runs past the end of the file")
        spans[key] = (pos + 8, nbytes)
        pos += 8 + nbytes

    def storage_bytes(key: str) -> bytes:
        if key not in spans:
            raise ValueError(f"storage {key} missing")
        start, n = spans[key]
        return bytes(data[start:start + n])

    return TorchStateDict(tensors, storage_bytes, {k: n for k, (_, n) in spans.items()}, "legacy")


def read_torch_state_dict(path: Path) -> TorchStateDict:
    """The tensors of a torch.save checkpoint (zip or legacy), read symbolically. Raises
    UnsafeTorchFile for a pickle naming a global outside the allow-list, TorchFileError otherwise."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise TorchFileError(f"{path.name} is not a regular file (a FIFO, device or folder): not opened")
        size = st.st_size
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise TorchFileError(f"cannot open {path.name}: {exc.strerror or exc}") from None
    if head.startswith(b"PK"):
        return _read_zip(path)
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        if size > MAX_PICKLE_BYTES + MAX_TENSOR_BYTES:
            raise TorchFileError(f"{path.name}: {size:,} bytes, over the limit for a legacy checkpoint")
        with path.open("rb") as fh:  # mapped, not read: only the pickles and the tensors asked for are touched
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return _read_legacy(path, memoryview(mapped))
    raise TorchFileError(f"{path.name} is neither a torch checkpoint nor a pickle")


def tensor_values(rec: TensorRecord, raw: bytes, name: str) -> np.ndarray:
    """The tensor's values (float32, C order) from its storage bytes; refuses stride-0, overlapping,
    out-of-storage and oversized views before allocating."""
    bits = DTYPE_BITS.get(rec.dtype)
    if bits is None or bits % 8:
        raise ValueError(f"tensor {name}: dtype {rec.dtype} cannot be decoded")
    itemsize = bits // 8
    avail = len(raw) // itemsize
    numel = prod(rec.shape) if rec.shape else 1
    if len(rec.shape) != len(rec.stride):
        raise ValueError(f"tensor {name}: {len(rec.shape)} dimensions but {len(rec.stride)} strides")
    if numel == 0:
        return np.zeros(rec.shape, dtype=np.float32)
    if numel > MAX_TENSOR_ELEMENTS or numel * itemsize > MAX_TENSOR_BYTES:
        raise ValueError(f"tensor {name}: {numel:,} elements, over the limit: refused")
    if any(s <= 0 for d, s in zip(rec.shape, rec.stride, strict=True) if d > 1):
        raise ValueError(f"tensor {name}: a stride of 0 or below repeats or reverses storage: refused")
    if numel > avail:
        raise ValueError(f"tensor {name}: {numel:,} elements from a storage of {avail:,}: refused")
    last = rec.offset + sum((d - 1) * s for d, s in zip(rec.shape, rec.stride, strict=True))
    if rec.offset < 0 or last >= avail:
        raise ValueError(f"tensor {name} reaches outside its storage")
    flat = decode_values(raw[: avail * itemsize], rec.dtype, (avail,))
    if not rec.shape:
        return np.array(flat[rec.offset], dtype=np.float32)
    view = np.lib.stride_tricks.as_strided(flat[rec.offset:], shape=rec.shape,
                                           strides=tuple(s * flat.itemsize for s in rec.stride), writeable=False)
    return np.ascontiguousarray(view)


def read_torch_file(path: Path) -> WeightFile:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TorchFileError(f"cannot open {path.name}: {exc.strerror or exc}") from None
    sd = read_torch_state_dict(path)
    tensors: dict[str, TensorInfo] = {}
    for name, rec in sd.tensors.items():
        numel = prod(rec.shape) if rec.shape else 1
        nbytes = (numel * DTYPE_BITS.get(rec.dtype, 8) + 7) // 8
        tensors[name] = TensorInfo(name, rec.dtype, rec.shape, nbytes)
    problems = [f"tensor {n} points at storage {r.storage_key}, which the file lacks"
                for n, r in sd.tensors.items() if r.storage_key not in sd.storage_sizes]
    cache: dict[str, bytes] = {}

    def read(name: str) -> np.ndarray:
        rec = sd.tensors[name]
        if rec.storage_key not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[rec.storage_key] = sd.storage_bytes(rec.storage_key)
        return tensor_values(rec, cache[rec.storage_key], name)

    return WeightFile(path=os.fspath(path), format="pytorch", size=size, tensors=tensors, expected_size=None,
                      reader=read, problems=problems)
