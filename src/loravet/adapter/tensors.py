"""What a weight file holds, independent of its format: tensor names, dtypes, shapes, and a way to
read one tensor's values as float32 numpy without torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from math import prod

import numpy as np

__all__ = ["DTYPE_BITS", "TensorInfo", "WeightFile", "decode_values"]

# safetensors dtype names; bits per element.
DTYPE_BITS: dict[str, int] = {
    "F64": 64, "F32": 32, "F16": 16, "BF16": 16, "I64": 64, "I32": 32, "I16": 16, "I8": 8, "U8": 8,
    "U16": 16, "U32": 32, "U64": 64, "BOOL": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

_NUMPY: dict[str, str] = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?",
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        return prod(self.shape) if self.shape else 1


@dataclass
class WeightFile:
    """A parsed weight file. `read` returns one tensor's values (float32, C-order) or raises ValueError."""

    path: str
    format: str  # "safetensors" | "pytorch"
    size: int
    tensors: dict[str, TensorInfo]
    expected_size: int | None
    """Bytes the header and tensors imply (None when the format has no fixed layout)."""
    metadata: dict[str, str] = field(default_factory=dict)
    reader: Callable[[str], np.ndarray] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def dtypes(self) -> list[str]:
        return sorted({t.dtype for t in self.tensors.values()})

    @property
    def total_elements(self) -> int:
        return sum(t.numel for t in self.tensors.values())

    bulk_reader: Callable[[], dict[str, np.ndarray]] | None = None
    """Reads every tensor in one pass (one open, one read), when the format allows it."""

    def read(self, name: str) -> np.ndarray:
        if self.reader is None:
            raise ValueError("values of this file cannot be read")
        return self.reader(name)

    def read_all(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Every tensor's values; errors per tensor (name -> reason) for those that cannot be read."""
        if self.bulk_reader is not None:
            try:
                return self.bulk_reader(), {}
            except (ValueError, OSError, MemoryError):
                pass
        values: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        for name in self.tensors:
            try:
                values[name] = self.read(name)
            except (ValueError, OSError, KeyError) as exc:
                errors[name] = str(exc)[:200]
        return values, errors


@lru_cache(maxsize=4)
def _fp8_table(kind: str) -> np.ndarray:
    """float32 value of every byte for the FP8 formats (OCP E4M3FN, E5M2, E8M0)."""
    out = np.zeros(256, dtype=np.float32)
    for byte in range(256):
        sign = -1.0 if byte & 0x80 else 1.0
        if kind == "F8_E4M3":
            exp, man = (byte >> 3) & 0xF, byte & 0x7
            if exp == 0xF and man == 0x7:
                out[byte] = np.nan
            elif exp == 0:
                out[byte] = sign * (man / 8) * 2.0**-6
            else:
                out[byte] = sign * (1 + man / 8) * 2.0 ** (exp - 7)
        elif kind == "F8_E5M2":
            exp, man = (byte >> 2) & 0x1F, byte & 0x3
            if exp == 0x1F:
                out[byte] = sign * np.inf if man == 0 else np.nan
            elif exp == 0:
                out[byte] = sign * (man / 4) * 2.0**-14
            else:
                out[byte] = sign * (1 + man / 4) * 2.0 ** (exp - 15)
        else:  # F8_E8M0: pure exponent, 0xFF is NaN
            out[byte] = np.nan if byte == 0xFF else 2.0 ** (byte - 127)
    return out


def decode_values(raw: bytes | memoryview, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Decode little-endian raw bytes into float32 (bf16 and fp8 without torch)."""
    if dtype == "BF16":
        as_u16 = np.frombuffer(raw, dtype="<u2")
        values = (as_u16.astype(np.uint32) << 16).view(np.float32)
    elif dtype in ("F8_E4M3", "F8_E5M2", "F8_E8M0"):
        values = _fp8_table(dtype)[np.frombuffer(raw, dtype=np.uint8)]
    elif dtype in _NUMPY:
        values = np.frombuffer(raw, dtype=_NUMPY[dtype]).astype(np.float32, copy=False)
    else:
        raise ValueError(f"dtype {dtype} cannot be decoded")
    return values.reshape(shape) if shape else values.reshape(())
