"""safetensors, read from the header: every check happens before any allocation.

The format is an 8-byte little-endian header length, a JSON header, then the tensor bytes. We
validate what the Rust reader validates (and say which rule broke): header length capped, JSON object of
{name: {dtype, shape, data_offsets}}, known dtypes, shapes of non-negative ints, offsets contiguous from
0, non-overlapping, consistent with dtype x shape, inside the file. Values are read one tensor at a
time, only when asked for.
"""

from __future__ import annotations

import json
import os
import struct
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from loravet.adapter.limits import MAX_SAFETENSORS_HEADER, MAX_TENSOR_ELEMENTS, MAX_TENSORS
from loravet.adapter.tensors import DTYPE_BITS, TensorInfo, WeightFile, decode_values

__all__ = ["SafetensorsError", "parse_safetensors_header", "read_safetensors"]

BULK_READ_LIMIT = 1 << 30  # adapters are MBs; above this, values are read tensor by tensor


class SafetensorsError(ValueError):
    """The file is not a valid safetensors file; the message says which rule it breaks."""


def parse_safetensors_header(
    head: bytes, file_size: int, name: str = "file"
) -> tuple[dict[str, TensorInfo], dict[str, str], int, dict[str, tuple[int, int]]]:
    """Validate a header. `head` holds the header (8-byte length + JSON). Returns tensors, metadata,
    the byte size the file should have, and each tensor's absolute byte range."""
    header_len, header = _header_json(head, file_size, name)
    metadata_raw = header.pop("__metadata__", None) or {}
    if not isinstance(metadata_raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata_raw.items()
    ):
        raise SafetensorsError(f"{name}: __metadata__ must map strings to strings")
    if len(header) > MAX_TENSORS:
        raise SafetensorsError(f"{name}: {len(header):,} tensors, over the limit of {MAX_TENSORS:,}")

    tensors: dict[str, TensorInfo] = {}
    ranges: list[tuple[int, int, str]] = []
    for tname, entry in header.items():
        info, start, end = _tensor_entry(tname, entry, name)
        tensors[tname] = info
        ranges.append((start, end, tname))
    ranges.sort()
    cursor = _contiguous_end(ranges, name)
    data_start = 8 + header_len
    expected = data_start + cursor
    if expected > file_size:
        raise SafetensorsError(f"{name}: tensors need {expected:,} bytes but the file has {file_size:,}: truncated")
    abs_ranges = {t: (data_start + s, data_start + e) for s, e, t in ranges}
    return tensors, dict(metadata_raw), expected, abs_ranges


def _header_json(head: bytes, file_size: int, name: str) -> tuple[int, dict[str, object]]:
    """The declared header length and the header's JSON object."""
    if file_size < 8 or len(head) < 8:
        raise SafetensorsError(f"{name} is {file_size} bytes: too short to hold a safetensors header")
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > MAX_SAFETENSORS_HEADER:
        raise SafetensorsError(
            f"{name} declares a {header_len:,}-byte header (limit "
            f"{MAX_SAFETENSORS_HEADER:,}): not a valid safetensors file"
        )
    if 8 + header_len > file_size:
        raise SafetensorsError(
            f"{name} declares a {header_len:,}-byte header but the file has only "
            f"{file_size - 8:,} bytes after the length: truncated"
        )
    raw = head[8 : 8 + header_len]
    if len(raw) < header_len:
        raise SafetensorsError(f"{name}: header truncated")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise SafetensorsError(f"{name}: header is not valid JSON ({reason})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{name}: header is a JSON {type(header).__name__}, not an object")
    return header_len, header


def _tensor_entry(tname: str, entry: object, name: str) -> tuple[TensorInfo, int, int]:
    """One tensor's header entry, validated: its info and its byte range relative to the data start."""
    if not isinstance(entry, dict):
        raise SafetensorsError(f"{name}: entry for {tname!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise SafetensorsError(f"{name}: tensor {tname!r} has unknown dtype {dtype!r}"[:300])
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise SafetensorsError(f"{name}: tensor {tname!r} has an invalid shape {shape!r}"[:300])
    if len(shape) > 16:
        raise SafetensorsError(f"{name}: tensor {tname!r} has {len(shape)} dimensions")
    numel = prod(shape) if shape else 1
    if numel > MAX_TENSOR_ELEMENTS:
        raise SafetensorsError(f"{name}: tensor {tname!r} claims {numel:,} elements (absurd shape)")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
        or offsets[1] < offsets[0]
    ):
        raise SafetensorsError(f"{name}: tensor {tname!r} has invalid data_offsets {offsets!r}"[:300])
    nbytes = (numel * DTYPE_BITS[dtype] + 7) // 8
    if offsets[1] - offsets[0] != nbytes:
        raise SafetensorsError(
            f"{name}: tensor {tname!r} spans {offsets[1] - offsets[0]:,} bytes but {dtype} x {shape} needs {nbytes:,}"
        )
    return TensorInfo(tname, dtype, tuple(shape), nbytes), offsets[0], offsets[1]


def _contiguous_end(ranges: list[tuple[int, int, str]], name: str) -> int:
    """The end of the data, once the sorted ranges are checked to tile it without gap or overlap."""
    cursor = 0
    for start, end, tname in ranges:
        if start < cursor:
            raise SafetensorsError(f"{name}: tensor {tname!r} overlaps the tensor before it")
        if start > cursor:
            raise SafetensorsError(
                f"{name}: {start - cursor:,}-byte gap before tensor {tname!r} (offsets must be contiguous)"
            )
        cursor = end
    return cursor


def _library_verdict(path: Path, size: int, expected: int) -> None:
    """The safetensors library's own validation (what PEFT's load_file runs): raises SafetensorsError when it
    refuses the file, in loravet's words. No torch: the numpy framework, header only (values stay mapped)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(os.fspath(path), framework="numpy"):
            pass
    except SafetensorError as exc:
        why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if size != expected:
            raise SafetensorsError(
                f"{path.name} is {size:,} bytes but its header and tensors account for {expected:,} "
                f"({size - expected:+,} bytes): the safetensors library refuses it ({why}), so PEFT raises"
            ) from None
        raise SafetensorsError(f"{path.name}: the safetensors library refuses it ({why})") from None
    except OSError as exc:
        raise SafetensorsError(f"cannot read {path.name}: {exc.strerror or exc}") from None


def read_safetensors(path: Path) -> WeightFile:
    """Parse the header of `path`; tensor values are read lazily through WeightFile.read."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            prefix = fh.read(8)
            if len(prefix) == 8:
                (header_len,) = struct.unpack("<Q", prefix)
                body = fh.read(min(header_len, MAX_SAFETENSORS_HEADER + 1))
            else:
                body = b""
    except OSError as exc:
        raise SafetensorsError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    tensors, metadata, expected, ranges = parse_safetensors_header(prefix + body, size, path.name)
    _library_verdict(path, size, expected)

    def read(name: str) -> np.ndarray:
        info = tensors[name]
        start, end = ranges[name]
        with path.open("rb") as fh:
            fh.seek(start)
            raw = fh.read(end - start)
        if len(raw) != end - start:
            raise ValueError(f"{path.name}: tensor {name} is truncated")
        return decode_values(raw, info.dtype, info.shape)

    def read_all() -> dict[str, np.ndarray]:
        if expected > BULK_READ_LIMIT:
            raise ValueError("too large for one read")
        with path.open("rb") as fh:
            blob = fh.read(expected)
        if len(blob) != expected:
            raise ValueError(f"{path.name} is truncated")
        view = memoryview(blob)
        return {
            name: decode_values(view[start:end], tensors[name].dtype, tensors[name].shape)
            for name, (start, end) in ranges.items()
        }

    return WeightFile(
        path=os.fspath(path),
        format="safetensors",
        size=size,
        tensors=tensors,
        expected_size=expected,
        metadata=metadata,
        reader=read,
        bulk_reader=read_all,
    )


def header_from_json(header: dict[str, Any]) -> dict[str, TensorInfo]:
    """Tensor infos from an already-parsed header (e.g. huggingface_hub's safetensors metadata)."""
    out: dict[str, TensorInfo] = {}
    for tname, entry in header.items():
        if tname == "__metadata__" or not isinstance(entry, dict):
            continue
        dtype = str(entry.get("dtype"))
        shape = tuple(int(d) for d in entry.get("shape", []))
        out[tname] = TensorInfo(tname, dtype, shape, (prod(shape) * DTYPE_BITS.get(dtype, 8) + 7) // 8)
    return out
