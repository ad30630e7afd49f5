"""Data reconstructed from a symbolic pickle (loravet.adapter.pickle_vm): plain values, NumPy arrays,
torch tensor references and pandas DataFrames, by recognising the layouts those libraries write.

Nothing is imported from the pickle or called: a record is turned into data only where its global is
one of the layouts below and its arguments have the expected types and sizes; anything else raises
:class:`Unreconstructable` (the caller reports the file as unreadable).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np

from loravet.adapter.pickle_dtype import Unreconstructable, dtype_of
from loravet.adapter.pickle_records import Apply, Global, Persistent

__all__ = ["Table", "TensorRecord", "Unreconstructable", "ndarray_of", "plain", "state_dict_tensors", "table_of"]

MAX_ARRAY_BYTES = 1 << 30
MAX_PLAIN_NODES = 2_000_000


# ---------------------------------------------------------------- plain Python values


def makes(rec: object, *names: str) -> bool:
    """Whether `rec` creates an instance of one of `names`: called directly, through NEWOBJ, or through
    ``copyreg._reconstructor(cls, object, None)`` (protocols 0 and 1)."""
    if not isinstance(rec, Apply):
        return False
    if rec.is_call_of(*names):
        return True
    return (
        rec.is_call_of("copyreg._reconstructor")
        and len(rec.args) >= 1
        and isinstance(rec.args[0], Global)
        and rec.args[0].full in names
    )


_SET_TYPES = ("builtins.set", "builtins.frozenset", "__builtin__.set", "__builtin__.frozenset")
_DICT_TYPES = ("collections.OrderedDict", "builtins.dict", "collections.defaultdict")


class _Budget:
    def __init__(self, nodes: int) -> None:
        self.left = nodes

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise Unreconstructable("too many values to rebuild")


def plain(value: object, budget: int = MAX_PLAIN_NODES, depth: int = 64) -> object:
    """The value with harmless records resolved (OrderedDict/dict, set/frozenset, bytes written as
    ``_codecs.encode``); other records are left in place. Bounded in nodes and depth (shared values
    are rebuilt once and shared)."""
    memo: dict[int, object] = {}
    return _plain(value, _Budget(budget), depth, memo)


def _plain(value: object, budget: _Budget, depth: int, memo: dict[int, object]) -> object:
    if isinstance(value, (str, bytes, int, float, bool, type(None), Global, Persistent)):
        return value
    key = id(value)
    if key in memo:
        return memo[key]
    if depth <= 0:
        raise Unreconstructable("nested too deeply")
    budget.spend()
    out: object
    if isinstance(value, bytearray):
        out = bytes(value)
    elif isinstance(value, list):
        out = [_plain(v, budget, depth - 1, memo) for v in value]
    elif isinstance(value, tuple):
        out = tuple(_plain(v, budget, depth - 1, memo) for v in value)
    elif isinstance(value, dict):
        out = {k: _plain(v, budget, depth - 1, memo) for k, v in value.items()}
    elif isinstance(value, (set, frozenset)):
        out = value
    elif isinstance(value, Apply):
        out = _plain_apply(value, budget, depth, memo)
    else:
        out = value
    memo[key] = out
    return out


def _plain_apply(rec: Apply, budget: _Budget, depth: int, memo: dict[int, object]) -> object:
    if rec.is_call_of(*_DICT_TYPES) and not rec.items:
        d: dict[Any, Any] = {}
        for k, v in rec.setitems:
            d[_plain(k, budget, depth - 1, memo)] = _plain(v, budget, depth - 1, memo)
        return d
    if (
        rec.is_call_of("_codecs.encode")
        and len(rec.args) == 2
        and isinstance(rec.args[0], str)
        and rec.args[1] in ("latin1", "latin-1")
    ):
        return rec.args[0].encode("latin-1")
    if rec.is_call_of(*_SET_TYPES) and len(rec.args) <= 1:
        items = rec.args[0] if rec.args else []
        if isinstance(items, (list, tuple)):
            try:
                return frozenset(_plain(v, budget, depth - 1, memo) for v in items)
            except TypeError:
                raise Unreconstructable("unhashable set item") from None
    return rec


# ---------------------------------------------------------------- NumPy

_NDARRAY = ("numpy.ndarray",)
_RECONSTRUCT = ("numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct")
_FROMBUFFER = ("numpy._core.numeric._frombuffer", "numpy.core.numeric._frombuffer")


def _shape(value: object) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if (
        not isinstance(value, (tuple, list))
        or len(value) > 32
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value)
    ):
        raise Unreconstructable("not an array shape")
    return tuple(value)


def _raw_bytes(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):  # protocol 0-2 NumPy pickles carry the data as a latin-1 str
        return value.encode("latin-1")
    if isinstance(value, Apply) and value.is_call_of("builtins.bytearray", "builtins.bytes") and len(value.args) == 1:
        return _raw_bytes(value.args[0])
    if isinstance(value, Apply):
        out = plain(value, budget=4)
        if isinstance(out, bytes):
            return out
    raise Unreconstructable("array data is not bytes")


def _from_bytes(raw: bytes, dtype: np.dtype[Any], shape: tuple[int, ...], fortran: bool) -> np.ndarray:
    count = prod(shape)
    if dtype.hasobject:
        raise Unreconstructable("object arrays carry their items, not bytes")
    if count * dtype.itemsize > MAX_ARRAY_BYTES:
        raise Unreconstructable(f"array of {count:,} elements: over the size limit")
    if len(raw) != count * dtype.itemsize:
        raise Unreconstructable(f"array data is {len(raw):,} bytes, {count * dtype.itemsize:,} expected")
    flat = np.frombuffer(raw, dtype=dtype, count=count)
    return flat.reshape(shape, order="F" if fortran else "C")


def ndarray_of(rec: object) -> np.ndarray:
    """A NumPy array from ``_reconstruct`` + BUILD (protocols 0-4) or ``_frombuffer`` (protocol 5)."""
    if not isinstance(rec, Apply):
        raise Unreconstructable("not a NumPy array")
    if rec.is_call_of(*_RECONSTRUCT):
        state = rec.state
        if not (rec.args and isinstance(rec.args[0], Global) and rec.args[0].full in _NDARRAY):
            raise Unreconstructable("not a plain ndarray")
        if not isinstance(state, tuple) or len(state) != 5:
            raise Unreconstructable("ndarray without its state")
        _, shape_v, dtype_rec, fortran, data = state
        shape = _shape(shape_v)
        dtype = dtype_of(dtype_rec)
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != prod(shape):
                raise Unreconstructable("object array without its items")
            out = np.empty(len(data), dtype=object)
            for i, item in enumerate(data):
                out[i] = plain(item, budget=10_000, depth=8)
            return out.reshape(shape, order="F" if fortran else "C")
        return _from_bytes(_raw_bytes(data), dtype, shape, bool(fortran))
    if rec.is_call_of(*_FROMBUFFER) and len(rec.args) == 4:
        buf, dtype_rec, shape_v, order = rec.args
        return _from_bytes(_raw_bytes(buf), dtype_of(dtype_rec), _shape(shape_v), order == "F")
    raise Unreconstructable("not a NumPy array layout loravet rebuilds")


# ---------------------------------------------------------------- torch state dicts

_STORAGE_DTYPES = {
    "FloatStorage": "F32",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "DoubleStorage": "F64",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
    "Float8_e4m3fnStorage": "F8_E4M3",
    "Float8_e5m2Storage": "F8_E5M2",
}
_TORCH_DTYPES = {
    "float32": "F32",
    "float": "F32",
    "float16": "F16",
    "half": "F16",
    "bfloat16": "BF16",
    "float64": "F64",
    "double": "F64",
    "int64": "I64",
    "long": "I64",
    "int32": "I32",
    "int": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}
_REBUILD_TENSOR = ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v3")
_REBUILD_PARAMETER = ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state")


@dataclass(frozen=True)
class TensorRecord:
    """A tensor as a torch pickle describes it: which storage, which dtype, where in it."""

    storage_key: str
    dtype: str
    storage_numel: int | None
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _storage_dtype(value: object) -> str:
    if isinstance(value, Global):
        if value.module == "torch" and value.name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[value.name]
        if value.module == "torch" and value.name in _TORCH_DTYPES:
            return _TORCH_DTYPES[value.name]
    raise Unreconstructable("tensor storage of an unknown type")


def _ints(value: object, what: str) -> tuple[int, ...]:
    if isinstance(value, Apply) and value.is_call_of("torch.Size") and len(value.args) == 1:
        value = value.args[0]
    if (
        not isinstance(value, (tuple, list))
        or len(value) > 32
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    ):
        raise Unreconstructable(f"tensor {what} is not a tuple of integers")
    return tuple(value)


def tensor_of(rec: object) -> TensorRecord:
    """A tensor from torch's rebuild functions (parameters and ``_rebuild_from_type_v2`` unwrapped)."""
    for _ in range(4):
        if not isinstance(rec, Apply):
            break
        if rec.is_call_of(*_REBUILD_PARAMETER) and rec.args:
            rec = rec.args[0]
        elif (
            rec.is_call_of("torch._tensor._rebuild_from_type_v2")
            and len(rec.args) >= 3
            and isinstance(rec.args[0], Global)
            and rec.args[0].full in _REBUILD_TENSOR + _REBUILD_PARAMETER
            and isinstance(rec.args[2], tuple)
        ):
            rec = Apply(rec.args[0], rec.args[2], "reduce")
        else:
            break
    if not (isinstance(rec, Apply) and rec.is_call_of(*_REBUILD_TENSOR) and len(rec.args) >= 4):
        raise Unreconstructable("not a tensor")
    storage, offset, size, stride = rec.args[:4]
    if rec.is_call_of("torch._utils._rebuild_tensor_v3") and len(rec.args) >= 7:
        dtype = _storage_dtype(rec.args[6])
    else:
        dtype = ""
    if (
        not isinstance(storage, Persistent)
        or not isinstance(storage.pid, tuple)
        or len(storage.pid) < 5
        or storage.pid[0] != "storage"
    ):
        raise Unreconstructable("tensor without a storage reference")
    _, storage_type, key, _, numel = storage.pid[:5]
    dtype = dtype or _storage_dtype(storage_type)
    if not isinstance(key, str) or not isinstance(offset, int) or not isinstance(numel, int):
        raise Unreconstructable("malformed tensor storage reference")
    return TensorRecord(key, dtype, numel, offset, _ints(size, "size"), _ints(stride, "stride"))


def state_dict_tensors(root: object, max_tensors: int) -> dict[str, TensorRecord]:
    """name -> tensor for a (possibly nested) state dict; non-tensor leaves are skipped."""
    out: dict[str, TensorRecord] = {}
    stack: list[tuple[str, object, int]] = [("", root, 0)]
    budget = _Budget(max_tensors * 4 + 1000)
    while stack:
        prefix, value, depth = stack.pop()
        budget.spend()
        items: list[tuple[Any, Any]] | None = None
        if isinstance(value, dict):
            items = list(value.items())
        elif isinstance(value, Apply) and value.is_call_of(*_DICT_TYPES):
            items = list(value.setitems)
        if items is not None:
            if depth > 16:
                raise Unreconstructable("state dict nested too deeply")
            for k, v in reversed(items):
                stack.append((f"{prefix}.{k}" if prefix else str(k), v, depth + 1))
            continue
        try:
            out[prefix] = tensor_of(value)
        except Unreconstructable:
            continue
        if len(out) > max_tensors:
            raise Unreconstructable(f"over {max_tensors:,} tensors")
    if not out and not (isinstance(root, dict) or (isinstance(root, Apply) and root.is_call_of(*_DICT_TYPES))):
        raise Unreconstructable("the pickle holds no state dict")
    return out


# ---------------------------------------------------------------- pandas


@dataclass
class Table:
    """Columns and rows of a data frame (or a list of row dicts). A column whose values could not be
    rebuilt maps to None."""

    columns: list[str]
    rows: int
    values: dict[str, list[Any] | None]


_FRAME = ("pandas.core.frame.DataFrame", "pandas.DataFrame")
_BLOCK_MANAGER = ("pandas.core.internals.managers.BlockManager", "pandas.BlockManager")
_NEW_INDEX = ("pandas.core.indexes.base._new_Index",)
_UNPICKLE_BLOCK = ("pandas._libs.internals._unpickle_block",)
_ARROW_STRING = (
    "pandas.arrays.ArrowStringArray",
    "pandas.core.arrays.string_arrow.ArrowStringArray",
    "pandas.arrays.ArrowExtensionArray",
    "pandas.core.arrays.arrow.array.ArrowExtensionArray",
)


def _arrow_values(rec: object) -> list[Any]:
    """An Arrow array pickled by pyarrow (``_restore_array``, ``chunked_array``): strings and numbers."""
    if (
        isinstance(rec, Apply)
        and rec.is_call_of("pyarrow.lib.chunked_array")
        and rec.args
        and isinstance(rec.args[0], list)
    ):
        out: list[Any] = []
        for chunk in rec.args[0]:
            out.extend(_arrow_values(chunk))
        return out
    arr = _arrow_array(rec)
    if arr.alias in ("string", "large_string", "utf8", "large_utf8") and len(arr.buffers) == 3:
        return _arrow_strings(arr)
    if arr.alias in _ARROW_FIXED and len(arr.buffers) == 2 and arr.buffers[1] is not None:
        values = np.frombuffer(arr.buffers[1], dtype=_ARROW_FIXED[arr.alias])
        if values.size < arr.offset + arr.length:
            raise Unreconstructable("Arrow values shorter than the array")
        return [values[arr.offset + i].item() if arr.valid(i) else None for i in range(arr.length)]
    raise Unreconstructable(f"Arrow type {arr.alias[:20]!r} not rebuilt")


_ARROW_FIXED = {
    "int64": "<i8",
    "int32": "<i4",
    "double": "<f8",
    "float": "<f4",
    "int8": "i1",
    "int16": "<i2",
    "uint8": "u1",
}


@dataclass
class _ArrowArray:
    """One ``pyarrow.lib._restore_array`` record, checked: type alias, slice and raw buffers (validity first)."""

    alias: str
    length: int
    offset: int
    buffers: list[bytes | None]

    def valid(self, i: int) -> bool:
        validity = self.buffers[0] if self.buffers else None
        j = self.offset + i
        return validity is None or bool(validity[j >> 3] >> (j & 7) & 1)


def _arrow_array(rec: object) -> _ArrowArray:
    if not (
        isinstance(rec, Apply)
        and rec.is_call_of("pyarrow.lib._restore_array")
        and len(rec.args) == 1
        and isinstance(rec.args[0], tuple)
        and len(rec.args[0]) >= 6
    ):
        raise Unreconstructable("not an Arrow array")
    type_rec, length, _nulls, offset, buffers, children = rec.args[0][:6]
    if not (
        isinstance(type_rec, Apply)
        and type_rec.is_call_of("pyarrow.lib.type_for_alias")
        and type_rec.args
        and isinstance(type_rec.args[0], str)
    ):
        raise Unreconstructable("Arrow type not rebuilt")
    if (
        not isinstance(length, int)
        or not isinstance(offset, int)
        or length < 0
        or offset < 0
        or not isinstance(buffers, list)
        or children
    ):
        raise Unreconstructable("malformed Arrow array")
    raw: list[bytes | None] = []
    for b in buffers:
        if b is None:
            raw.append(None)
        elif isinstance(b, Apply) and b.is_call_of("pyarrow.lib.py_buffer") and b.args:
            raw.append(_raw_bytes(b.args[0]))
        else:
            raise Unreconstructable("Arrow buffer not rebuilt")
    validity = raw[0] if raw else None
    if validity is not None and len(validity) * 8 < offset + length:
        raise Unreconstructable("Arrow validity bitmap too short")
    return _ArrowArray(type_rec.args[0], length, offset, raw)


def _arrow_strings(arr: _ArrowArray) -> list[Any]:
    offsets_raw, data = arr.buffers[1], arr.buffers[2] or b""
    width = "<i8" if arr.alias.startswith("large") else "<i4"
    if offsets_raw is None:
        raise Unreconstructable("Arrow string array without offsets")
    offsets = np.frombuffer(offsets_raw, dtype=width)
    if offsets.size < arr.offset + arr.length + 1:
        raise Unreconstructable("Arrow offsets shorter than the array")
    values: list[Any] = []
    for i in range(arr.length):
        a, b = int(offsets[arr.offset + i]), int(offsets[arr.offset + i + 1])
        if not 0 <= a <= b <= len(data):
            raise Unreconstructable("Arrow offset outside its data")
        values.append(data[a:b].decode("utf-8", "replace") if arr.valid(i) else None)
    return values


def _column_values(rec: object) -> list[list[Any]]:
    """Values of a block or index: one list per column (a 2-D NumPy block holds several)."""
    if makes(rec, *_ARROW_STRING) and isinstance(rec, Apply) and isinstance(rec.state, dict):
        return [_arrow_values(rec.state.get("_pa_array"))]
    if isinstance(rec, Apply) and rec.is_call_of("pyarrow.lib._restore_array", "pyarrow.lib.chunked_array"):
        return [_arrow_values(rec)]
    if (
        isinstance(rec, Apply)
        and rec.is_call_of("pandas._libs.arrays.__pyx_unpickle_NDArrayBacked")
        and rec.args
        and isinstance(rec.args[0], Global)
        and isinstance(rec.state, tuple)
        and len(rec.state) >= 2
    ):
        return [_ndarray_backed(rec.args[0].name, rec.state[0], rec.state[1])]
    arr = ndarray_of(rec)
    if arr.ndim == 1:
        return [arr.tolist()]
    if arr.ndim == 2:
        return [row.tolist() for row in arr]
    raise Unreconstructable("block of more than two dimensions")


def _ndarray_backed(cls: str, dtype_rec: object, arr_rec: object) -> list[Any]:
    """pandas extension arrays pickled as (dtype, ndarray): Categorical (codes into categories), and
    the NumPy-backed string/object arrays."""
    arr = ndarray_of(arr_rec).reshape(-1)
    if cls == "Categorical":
        if not (
            makes(dtype_rec, "pandas.CategoricalDtype", "pandas.core.dtypes.dtypes.CategoricalDtype")
            and isinstance(dtype_rec, Apply)
            and isinstance(dtype_rec.state, dict)
        ):
            raise Unreconstructable("Categorical without its categories")
        categories = _index_values(dtype_rec.state.get("categories"))
        codes = arr.tolist()
        if not all(isinstance(c, int) for c in codes):
            raise Unreconstructable("Categorical codes are not integers")
        return [categories[c] if 0 <= c < len(categories) else None for c in codes]
    if cls in ("StringArray", "NumpyExtensionArray", "PandasArray"):
        return list(arr.tolist())
    raise Unreconstructable(f"pandas {cls[:40]} not rebuilt")


def _index_values(rec: object) -> list[Any]:
    if (
        isinstance(rec, Apply)
        and rec.is_call_of(*_NEW_INDEX)
        and len(rec.args) == 2
        and isinstance(rec.args[0], Global)
        and isinstance(rec.args[1], dict)
    ):
        cls, d = rec.args[0].name, rec.args[1]
        if cls == "RangeIndex":
            start, stop, step = d.get("start", 0), d.get("stop"), d.get("step", 1)
            if not (isinstance(start, int) and isinstance(stop, int) and isinstance(step, int)) or step == 0:
                raise Unreconstructable("malformed RangeIndex")
            return list(range(start, stop, step)) if abs((stop - start) // step) <= 50_000_000 else []
        return _column_values(d.get("data"))[0]
    return _column_values(rec)[0]


def _placement(value: object, ncols: int) -> list[int]:
    if isinstance(value, Apply) and value.is_call_of("builtins.slice", "__builtin__.slice") and len(value.args) == 3:
        start, stop, step = value.args
        start = 0 if start is None else start
        step = 1 if step is None else step
        if not all(isinstance(x, int) for x in (start, stop, step)) or step == 0:
            raise Unreconstructable("malformed block placement")
        return list(range(start, min(stop, ncols), step)) if isinstance(stop, int) else []
    if isinstance(value, Apply) and value.is_call_of("pandas._libs.internals.BlockPlacement") and value.args:
        return _placement(value.args[0], ncols)
    arr = ndarray_of(value)
    return [int(x) for x in arr.reshape(-1).tolist()]


_SCALARS = (str, int, float, bool, bytes, type(None))


def _cells(values: list[Any] | None) -> list[Any] | None:
    """Scalars only: a cell holding a container (possibly a DAG whose text is exponential) is None."""
    if values is None:
        return None
    return [v if isinstance(v, _SCALARS) else None for v in values]


def _name(value: object) -> str:
    return str(value) if isinstance(value, (str, int, float, bool)) else "<not rebuilt>"


def table_of(root: object, max_rows: int = 10_000_000) -> Table:
    """Columns and values (scalars; other cells None) of a pandas DataFrame pickle, or of a plain list
    of row dicts."""
    table = _table_of(root, max_rows)
    table.values = {c: _cells(v) for c, v in table.values.items()}
    return table


def _table_of(root: object, max_rows: int) -> Table:
    if isinstance(root, list):
        return _rows_table(root, max_rows)
    if not (makes(root, *_FRAME) and isinstance(root, Apply) and isinstance(root.state, dict)):
        raise Unreconstructable("not a pandas DataFrame or a list of rows")
    mgr = root.state.get("_mgr") or root.state.get("_data")
    if not isinstance(mgr, Apply) or not makes(mgr, *_BLOCK_MANAGER):
        raise Unreconstructable("DataFrame without a block manager")
    blocks, axes = _blocks(mgr)
    if not isinstance(axes, list) or len(axes) != 2:
        raise Unreconstructable("DataFrame without two axes")
    columns = [_name(c) for c in _index_values(axes[0])]
    values: dict[str, list[Any] | None] = {c: None for c in columns}
    rows: int | None = None
    for block_values, placement in blocks:
        try:
            block_cols = _column_values(block_values)
        except Unreconstructable:
            continue
        where = _placement(placement, len(columns))
        for i, col in zip(where, block_cols, strict=False):
            if 0 <= i < len(columns):
                values[columns[i]] = col
                rows = len(col)
    if rows is None:
        rows = len(_index_values(axes[1]))
    return Table(columns, rows, values)


def _rows_table(root: list[Any], max_rows: int) -> Table:
    """A plain list of row dicts (the first row's keys are the columns); any other list has no columns."""
    records = root[:max_rows]
    dicts = [r for r in records if isinstance(r, dict)]
    if records and len(dicts) == len(records):
        keys = list(dicts[0])
        names = [_name(k) for k in keys]
        return Table(names, len(dicts), {n: [r.get(k) for r in dicts] for n, k in zip(names, keys, strict=True)})
    return Table([], len(root), {})


def _blocks(mgr: Apply) -> tuple[list[tuple[object, object]], object]:
    """A block manager's (values, placement) per block and its axes: the current layout (BlockManager called
    with blocks and axes) or pandas 0.14.1's state dict."""
    blocks: list[tuple[object, object]] = []
    if mgr.is_call_of(*_BLOCK_MANAGER) and len(mgr.args) == 2 and isinstance(mgr.args[1], list):
        if not isinstance(mgr.args[0], tuple):
            raise Unreconstructable("malformed block manager")
        for b in mgr.args[0]:
            if not (isinstance(b, Apply) and b.is_call_of(*_UNPICKLE_BLOCK) and len(b.args) >= 2):
                raise Unreconstructable("block not rebuilt")
            blocks.append((b.args[0], b.args[1]))
        return blocks, mgr.args[1]
    if (
        isinstance(mgr.state, tuple)
        and len(mgr.state) >= 4
        and isinstance(mgr.state[3], dict)
        and isinstance(mgr.state[3].get("0.14.1"), dict)
    ):
        legacy = mgr.state[3]["0.14.1"]
        for b in legacy.get("blocks") or []:
            if not isinstance(b, dict):
                raise Unreconstructable("block not rebuilt")
            blocks.append((b.get("values"), b.get("mgr_locs")))
        return blocks, legacy.get("axes")
    raise Unreconstructable("block manager layout not rebuilt")
