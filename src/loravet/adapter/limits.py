"""Caps applied before any allocation when reading untrusted files."""

from __future__ import annotations

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_SAFETENSORS_HEADER",
    "MAX_TENSORS",
    "MAX_TENSOR_ELEMENTS",
    "MAX_ZIP_MEMBERS",
    "MAX_ZIP_TOTAL_BYTES",
]

MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 64
# safetensors' own reader refuses headers above 100 MB; an adapter's header is a few hundred KB.
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
MAX_TENSORS = 500_000
MAX_TENSOR_ELEMENTS = 1 << 40
MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_TOTAL_BYTES = 8 * 1024**3
