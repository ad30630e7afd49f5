"""NumPy dtypes rebuilt from a symbolic pickle's ``numpy.dtype`` record, and the error for a layout loravet does not
rebuild. Shared by the pickle reader (joblib writes array bytes right after a wrapper whose dtype says how many)
and by loravet.adapter.pickle_values (arrays, tables), so that neither imports the other."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from loravet.adapter.pickle_records import Apply

__all__ = ["Unreconstructable", "dtype_of"]


class Unreconstructable(ValueError):
    """The pickle's structure is not a layout loravet can rebuild as data."""


_DTYPE_STR = re.compile(r"^[<>|=]?[biufcOUSMm]\d{0,3}(\[[a-zA-Z]{1,3}\])?$")
_DTYPE = ("numpy.dtype",)


def dtype_of(rec: object) -> np.dtype[Any]:
    """A ``numpy.dtype(str, align, copy)`` record plus its BUILD state (byte order)."""
    if isinstance(rec, Apply) and rec.is_call_of(*_DTYPE) and rec.args and isinstance(rec.args[0], str):
        code = rec.args[0]
        state = rec.state
        order = state[1] if isinstance(state, tuple) and len(state) > 1 and isinstance(state[1], str) else ""
        if isinstance(state, tuple) and len(state) > 3 and state[3] is not None:
            raise Unreconstructable("structured NumPy dtypes are not rebuilt")
        if not _DTYPE_STR.match(code) or order not in ("", "<", ">", "|", "="):
            raise Unreconstructable(f"NumPy dtype {code[:20]!r} is not rebuilt")
        try:
            base = np.dtype(code)
        except TypeError:
            raise Unreconstructable(f"NumPy dtype {code[:20]!r} is not rebuilt") from None
        if state is not None and not _state_matches(state, base):
            # numpy's dtype.__setstate__ takes the item size and flags from the state, not the type code: an
            # "S1" with elsize 100 or the object flag reads 100 bytes or a nested pickle (joblib), not 1 byte
            raise Unreconstructable(f"NumPy dtype {code[:20]!r}: its pickled state disagrees with the type code")
        if base.itemsize > 1 and order == "<":
            return base.newbyteorder("<")
        if base.itemsize > 1 and order == ">":
            return base.newbyteorder(">")
        return base
    raise Unreconstructable("not a NumPy dtype")


def _state_matches(state: object, base: np.dtype[Any]) -> bool:
    """A dtype's BUILD state is numpy's 8- or 9-item tuple that says what the type code says: no subarray,
    names or fields, and the code's own item size, alignment and flags (-1: "the code's")."""
    if not isinstance(state, tuple) or len(state) not in (8, 9):
        return False
    _version, _order, subarray, names, fields, elsize, alignment, flags = state[:8]
    return (
        subarray is None
        and names is None
        and fields is None
        and elsize in (-1, base.itemsize)
        and alignment in (-1, base.alignment)
        and type(flags) is int
        and flags == base.flags
    )
