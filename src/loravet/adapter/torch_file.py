"""adapter_model.bin (torch.save zip format) read for names, dtypes and shapes without torch.

The pickle inside the zip is read with :class:`TorchStateDictUnpickler`, which resolves only the
globals a state dict needs (to stand-ins) and refuses every other one before anything is called.
Tensor values come straight from the zip's ``data/<key>`` members.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from math import prod
from pathlib import Path

import numpy as np

from loravet.adapter.limits import MAX_TENSORS
from loravet.adapter.pickle_policy import DisallowedGlobal, TensorRef, TorchStateDictUnpickler
from loravet.adapter.tensors import DTYPE_BITS, TensorInfo, WeightFile, decode_values

__all__ = ["TorchFileError", "UnsafeTorchFile", "read_torch_file"]

MAX_PICKLE_BYTES = 256 * 1024 * 1024


class TorchFileError(ValueError):
    """Not a readable torch checkpoint."""


class UnsafeTorchFile(TorchFileError):
    """The checkpoint's pickle imports a global outside the allow-list."""

    def __init__(self, inner: DisallowedGlobal) -> None:
        self.module, self.name, self.verdict = inner.module, inner.name, inner.verdict
        super().__init__(str(inner))


def _flatten(obj: object, prefix: str, out: dict[str, TensorRef]) -> None:
    if isinstance(obj, TensorRef):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
        if len(out) > MAX_TENSORS:
            raise TorchFileError(f"over {MAX_TENSORS:,} tensors")


def read_torch_file(path: Path) -> WeightFile:
    try:
        size = path.stat().st_size
        if not zipfile.is_zipfile(path):
            with path.open("rb") as fh:
                magic = fh.read(2)
            if magic[:1] == b"\x80":
                raise TorchFileError(f"{path.name} is a raw pickle (legacy torch format), not a torch zip "
                                     "checkpoint: shapes are not read from it")
            raise TorchFileError(f"{path.name} is neither a torch zip checkpoint nor a pickle")
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise TorchFileError(f"cannot open {path.name}: {exc}") from None
    with archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pkl:
            raise TorchFileError(f"{path.name} is a zip without a data.pkl: not a torch checkpoint")
        info = archive.getinfo(pkl[0])
        if info.file_size > MAX_PICKLE_BYTES:
            raise TorchFileError(f"{path.name}: data.pkl is {info.file_size:,} bytes, over the limit")
        prefix = pkl[0][: -len("data.pkl")]
        try:
            payload = archive.read(pkl[0])
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise TorchFileError(f"{path.name}: cannot read data.pkl ({exc})") from None
        try:
            root = TorchStateDictUnpickler(io.BytesIO(payload)).load()
        except DisallowedGlobal as exc:
            raise UnsafeTorchFile(exc) from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                KeyError, RecursionError, MemoryError) as exc:
            raise TorchFileError(f"{path.name}: data.pkl is not a readable state dict "
                                 f"({type(exc).__name__}: {str(exc)[:120]})") from None
        refs: dict[str, TensorRef] = {}
        _flatten(root, "", refs)
        if not refs and not isinstance(root, dict):
            raise TorchFileError(f"{path.name}: data.pkl holds a {type(root).__name__}, not a state dict")
        storage_sizes = {n[len(prefix) + len("data/"):]: archive.getinfo(n).file_size
                         for n in names if n.startswith(prefix + "data/")}

    tensors: dict[str, TensorInfo] = {}
    for name, ref in refs.items():
        numel = prod(ref.shape) if ref.shape else 1
        nbytes = (numel * DTYPE_BITS.get(ref.storage.dtype, 8) + 7) // 8
        tensors[name] = TensorInfo(name, ref.storage.dtype, ref.shape, nbytes)
    problems = [f"tensor {n} points at storage {r.storage.key}, which the archive lacks"
                for n, r in refs.items() if r.storage.key not in storage_sizes]

    def read(name: str) -> np.ndarray:
        ref = refs[name]
        with zipfile.ZipFile(path) as zf:
            try:
                raw = zf.read(f"{prefix}data/{ref.storage.key}")
            except KeyError:
                raise ValueError(f"storage {ref.storage.key} missing") from None
        itemsize = DTYPE_BITS.get(ref.storage.dtype, 8) // 8
        flat = decode_values(raw[: len(raw) - len(raw) % itemsize], ref.storage.dtype, ())
        flat = flat.reshape(-1)
        numel = prod(ref.shape) if ref.shape else 1
        if numel == 0:
            return np.zeros(ref.shape, dtype=np.float32)
        last = ref.offset + sum((d - 1) * s for d, s in zip(ref.shape, ref.stride, strict=False))
        if ref.offset < 0 or last >= flat.size or any(s < 0 for s in ref.stride):
            raise ValueError(f"tensor {name} reaches outside its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[ref.offset:], shape=ref.shape, strides=tuple(s * 4 for s in ref.stride))
        return np.ascontiguousarray(view)

    return WeightFile(path=os.fspath(path), format="pytorch", size=size, tensors=tensors, expected_size=None,
                      reader=read, problems=problems)
