"""Default-deny policy for the globals a pickle may import, and a restricted unpickler.

Every global a pickle names is judged against an explicit allow-list: what torch state dicts, NumPy
arrays and pandas DataFrames of current versions need. Anything else is refused; known code-execution
primitives are "dangerous" (critical), anything else merely "unknown" (high).

The restricted unpickler never resolves a global outside the allow-list, and the allow-listed ones
resolve to stand-ins or to constructors that cannot run code (no torch import is needed to read a
state dict's shapes).
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from typing import Any

__all__ = [
    "ALLOWED_GLOBALS",
    "DisallowedGlobal",
    "judge_global",
]

_TORCH_STORAGES = {
    "FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16", "DoubleStorage": "F64",
    "LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
    "ByteStorage": "U8", "BoolStorage": "BOOL", "ComplexFloatStorage": "C64",
    "Float8_e4m3fnStorage": "F8_E4M3", "Float8_e5m2Storage": "F8_E5M2",
}
_TORCH_DTYPES = {
    "float32": "F32", "float": "F32", "float16": "F16", "half": "F16", "bfloat16": "BF16", "float64": "F64",
    "double": "F64", "int64": "I64", "long": "I64", "int32": "I32", "int": "I32", "int16": "I16",
    "int8": "I8", "uint8": "U8", "bool": "BOOL", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}

# Globals that state dicts, training_args.bin, NumPy and pandas pickles of current releases need.
ALLOWED_GLOBALS: frozenset[str] = frozenset(
    {
        "collections.OrderedDict", "collections.defaultdict", "builtins.set", "builtins.frozenset",
        "builtins.slice", "builtins.range", "builtins.complex", "builtins.bytearray", "builtins.object",
        "builtins.dict", "builtins.list", "builtins.tuple", "builtins.int", "builtins.float",
        "builtins.str", "builtins.bytes", "builtins.bool", "_codecs.encode", "copyreg._reconstructor",
        "datetime.datetime", "datetime.date", "datetime.timedelta", "datetime.timezone", "decimal.Decimal",
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_device_tensor_from_numpy", "torch._tensor._rebuild_from_type_v2",
        "torch.nn.parameter.Parameter", "torch.Size", "torch.device", "torch.storage.UntypedStorage",
        "torch.storage._load_from_bytes",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.ndarray", "numpy.dtype",
        "numpy.dtypes.ObjectDType", "numpy.dtypes.Float64DType", "numpy.dtypes.Int64DType",
        "numpy.dtypes.BoolDType", "numpy.dtypes.StrDType", "numpy.dtypes.Float32DType",
        "numpy.dtypes.Int32DType", "numpy.random._pickle.__randomstate_ctor",
        "pandas.core.frame.DataFrame", "pandas.core.series.Series",
        "pandas.core.internals.managers.BlockManager", "pandas.core.internals.managers.SingleBlockManager",
        "pandas.core.internals.blocks.new_block", "pandas.core.internals.blocks.Block",
        "pandas._libs.internals._unpickle_block", "pandas.core.internals.blocks.NumpyBlock",
        "pandas.core.internals.blocks.ObjectBlock",
        "pandas.core.indexes.base._new_Index", "pandas.core.indexes.base.Index",
        "pandas.core.indexes.range.RangeIndex", "pandas.core.indexes.numeric.Int64Index",
        "pandas.core.indexes.multi.MultiIndex", "pandas.core.indexes.datetimes._new_DatetimeIndex",
        "pandas.core.indexes.datetimes.DatetimeIndex", "pandas._libs.tslibs.timestamps._unpickle_timestamp",
        "pandas._libs.tslibs.timestamps.Timestamp", "pandas.core.arrays.string_.StringArray",
        "pandas.core.arrays.string_.StringDtype", "pandas.core.arrays.categorical.Categorical",
        "pandas.core.dtypes.dtypes.CategoricalDtype", "pandas.core.arrays.integer.IntegerArray",
        "pandas.core.arrays.boolean.BooleanArray", "pandas.core.arrays.arrow.array.ArrowExtensionArray",
        "pandas.core.arrays.string_arrow.ArrowStringArray", "pandas.core.dtypes.dtypes.ArrowDtype",
        "pandas._libs.arrays.__pyx_unpickle_NDArrayBacked", "pandas.core.arrays.datetimes.DatetimeArray",
        "pandas._libs.internals.BlockPlacement", "pandas.core.arrays.numpy_.NumpyExtensionArray",
        "pandas.core.indexes.base.Index._new_Index",
        # what pandas 2.x/3.x DataFrame pickles name (top-level aliases, Arrow-backed strings)
        "pandas.DataFrame", "pandas.Series", "pandas.Index", "pandas.RangeIndex", "pandas.Categorical",
        "pandas.CategoricalDtype", "pandas.Int64Dtype", "pandas.Int32Dtype", "pandas.Float64Dtype",
        "pandas.BooleanDtype", "pandas.StringDtype", "pandas.NA", "pandas.Timestamp", "pandas.MultiIndex",
        "pandas.DatetimeIndex", "pandas.arrays.ArrowStringArray", "pandas.arrays.DatetimeArray",
        "pandas.arrays.IntegerArray", "pandas.arrays.BooleanArray", "pandas.arrays.FloatingArray",
        "pandas.arrays.StringArray", "pandas.arrays.ArrowExtensionArray", "pandas.arrays.NumpyExtensionArray",
        "pandas.core.arrays.floating.FloatingArray",
        "pyarrow.lib._restore_array", "pyarrow.lib.py_buffer", "pyarrow.lib.type_for_alias",
        "numpy._core.numeric._frombuffer", "numpy.core.numeric._frombuffer",
        "__builtin__.bytearray", "__builtin__.slice", "__builtin__.set", "__builtin__.frozenset",
        "__builtin__.object", "__builtin__.complex",
    }
    | {f"torch.{name}" for name in _TORCH_STORAGES}
    | {f"torch.{name}" for name in _TORCH_DTYPES}
)

# Known code-execution (or code-loading) primitives: critical.
_DANGEROUS_MODULES = (
    "os", "posix", "nt", "subprocess", "sys", "runpy", "importlib", "code", "codeop", "cProfile",
    "profile", "timeit", "pty", "shutil", "socket", "webbrowser", "http", "urllib", "requests",
    "ctypes", "multiprocessing", "asyncio", "marshal", "pickle", "_pickle", "dill", "shelve", "types",
    "commands", "platform", "pydoc", "bdb", "pdb", "trace", "tempfile", "signal", "threading", "_thread",
    "ssl", "smtplib", "ftplib", "telnetlib", "xmlrpc", "imp", "zipimport", "sqlite3", "pip", "setuptools",
    "distutils", "venv", "ensurepip", "cloudpickle",
)
_DANGEROUS_GLOBALS = frozenset({
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.getattr", "builtins.setattr",
    "builtins.delattr", "builtins.__import__", "builtins.open", "builtins.breakpoint", "builtins.input",
    "builtins.globals", "builtins.locals", "builtins.vars", "builtins.apply", "builtins.execfile",
    "__builtin__.eval", "__builtin__.exec", "__builtin__.getattr", "__builtin__.__import__",
    "__builtin__.execfile", "__builtin__.open", "__builtin__.compile",
    "operator.attrgetter", "operator.methodcaller", "operator.itemgetter", "functools.partial",
    "functools.reduce", "numpy.testing._private.utils.runstring", "numpy.load", "numpy.lib.npyio.load",
    "torch.load", "torch.serialization.load", "torch._C._import_ir_module_from_package",
    "torch.jit.load", "torch.hub.load", "torch.hub.download_url_to_file",
    "pandas.read_pickle", "pandas.io.pickle.read_pickle",
})


# A Trainer's training_args.bin pickles its arguments dataclass and the enums in it; allowed in that
# file only (it is scanned, never loaded).
TRAINING_ARGS_MODULES = (
    "transformers.training_args", "transformers.training_args_seq2seq", "transformers.trainer_utils",
    "transformers.trainer_pt_utils", "transformers.debug_utils", "transformers.utils.generic",
    "accelerate.utils.dataclasses", "accelerate.state", "trl.trainer", "peft.tuners", "peft.utils.peft_types",
)


def judge_global(module: str, name: str, context: str | None = None) -> str:
    """'allowed', 'dangerous' or 'unknown' for a global a pickle imports. `context` "training_args"
    widens the allow-list to the Trainer's argument dataclasses and enums."""
    full = f"{module}.{name}"
    if full in ALLOWED_GLOBALS:
        return "allowed"
    if full in _DANGEROUS_GLOBALS:
        return "dangerous"
    if context == "training_args" and any(module == m or module.startswith(m + ".") for m in TRAINING_ARGS_MODULES):
        return "allowed"
    root = module.split(".")[0]
    for dangerous in _DANGEROUS_MODULES:
        if module == dangerous or module.startswith(dangerous + ".") or full == dangerous:
            return "dangerous"
    if root in ("builtins", "__builtin__") and name in ("eval", "exec", "compile", "getattr", "__import__"):
        return "dangerous"
    return "unknown"


class DisallowedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name
        self.verdict = judge_global(module, name)
        super().__init__(f"pickle imports {module}.{name}, which is not on loravet's allow-list")


# ---- stand-ins for reading torch state dicts without torch ----

class StorageRef:
    def __init__(self, key: str, dtype: str, numel: int | None) -> None:
        self.key, self.dtype, self.numel = key, dtype, numel


class TensorRef:
    def __init__(self, storage: StorageRef, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride


class _StorageType:
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError("tensor without a storage")
    shape = tuple(int(s) for s in size)
    stride_t = tuple(int(s) for s in stride)
    return TensorRef(storage, int(offset), shape, stride_t)


def _rebuild_parameter(data: Any, *rest: Any) -> Any:
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    if func in (_rebuild_tensor_v2, _rebuild_parameter):
        return func(*args)
    raise pickle.UnpicklingError("unsupported tensor subclass rebuild")


_TORCH_STANDINS: dict[str, Any] = {
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor": lambda storage, offset, size, stride: _rebuild_tensor_v2(
        storage, offset, size, stride),
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.nn.parameter.Parameter": _rebuild_parameter,
    "collections.OrderedDict": OrderedDict,
}
_TORCH_STANDINS.update({f"torch.{n}": _StorageType(d) for n, d in _TORCH_STORAGES.items()})
_TORCH_STANDINS.update({f"torch.{n}": _StorageType(d) for n, d in _TORCH_DTYPES.items()})


class TorchStateDictUnpickler(pickle.Unpickler):
    """Reads a torch state dict's structure (names, dtypes, shapes, storage keys) with stand-ins.

    Only the torch/collections globals a state dict needs resolve; every other global raises
    DisallowedGlobal before anything is called."""

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full in _TORCH_STANDINS:
            return _TORCH_STANDINS[full]
        raise DisallowedGlobal(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            storage_type, key, numel = pid[1], pid[2], pid[4]
            dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else "U8"
            return StorageRef(str(key), dtype, int(numel) if isinstance(numel, int) else None)
        raise pickle.UnpicklingError(f"unsupported persistent id {str(pid)[:80]}")
