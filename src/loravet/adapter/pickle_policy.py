"""Default-deny policy for the globals a pickle names.

Every global is judged by module and callable: an explicit allow-list (what torch state dicts, NumPy
arrays and pandas DataFrames of current versions name), then known code-execution primitives
("dangerous", critical) matched by module and by callable name, aliases and C-level twins included
(``_operator``, ``_functools``, ``_io``, ``posix``/``nt``, ``_pickle``, private NumPy/torch modules),
then "unknown" (high). Dotted names (``module.attr.attr``, which protocol 4+ loaders resolve attribute
by attribute) are never allowed.

Nothing here is imported or called: loravet reads pickles with its symbolic reader
(loravet.adapter.pickle_vm).
"""

from __future__ import annotations

__all__ = [
    "ALLOWED_GLOBALS",
    "TRAINING_ARGS_CLASSES",
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
        "torch._utils._rebuild_device_tensor_from_numpy",
        "torch.nn.parameter.Parameter", "torch.Size", "torch.device", "torch.storage.UntypedStorage",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.ndarray", "numpy.dtype",
        "numpy.dtypes.ObjectDType", "numpy.dtypes.Float64DType", "numpy.dtypes.Int64DType",
        "numpy.dtypes.BoolDType", "numpy.dtypes.StrDType", "numpy.dtypes.Float32DType",
        "numpy.dtypes.Int32DType",
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
        # what pandas 2.x/3.x DataFrame pickles name (top-level aliases, Arrow-backed strings)
        "pandas.DataFrame", "pandas.Series", "pandas.Index", "pandas.RangeIndex", "pandas.Categorical",
        "pandas.CategoricalDtype", "pandas.Int64Dtype", "pandas.Int32Dtype", "pandas.Float64Dtype",
        "pandas.BooleanDtype", "pandas.StringDtype", "pandas.NA", "pandas.Timestamp", "pandas.MultiIndex",
        "pandas.DatetimeIndex", "pandas.arrays.ArrowStringArray", "pandas.arrays.DatetimeArray",
        "pandas.arrays.IntegerArray", "pandas.arrays.BooleanArray", "pandas.arrays.FloatingArray",
        "pandas.arrays.StringArray", "pandas.arrays.ArrowExtensionArray", "pandas.arrays.NumpyExtensionArray",
        "pandas.core.arrays.floating.FloatingArray",
        "pyarrow.lib._restore_array", "pyarrow.lib.py_buffer", "pyarrow.lib.type_for_alias",
        "pyarrow.lib._reconstruct_table", "pyarrow.lib.chunked_array", "pyarrow.lib.field", "pyarrow.lib.schema",
        "numpy._core.numeric._frombuffer", "numpy.core.numeric._frombuffer",
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "__builtin__.bytearray", "__builtin__.slice", "__builtin__.set", "__builtin__.frozenset",
        "__builtin__.object", "__builtin__.complex",
    }
    | {f"torch.{name}" for name in _TORCH_STORAGES}
    | {f"torch.{name}" for name in _TORCH_DTYPES}
)

# Modules whose every callable can run code, touch files or the network, or load another pickle
# (compared after leading underscores are stripped from each part: `_operator` is `operator`).
_DANGEROUS_MODULES = frozenset({
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "posixsubprocess", "sys", "runpy", "importlib",
    "code", "codeop", "cprofile", "profile", "timeit", "pty", "shutil", "socket", "webbrowser", "http",
    "urllib", "urllib3", "requests", "ctypes", "cffi", "multiprocessing", "asyncio", "marshal", "pickle",
    "pickletools", "copy", "dill", "shelve", "types", "commands", "platform", "pydoc", "bdb", "pdb", "trace",
    "tempfile", "signal", "threading", "thread", "ssl", "smtplib", "ftplib", "telnetlib", "xmlrpc", "imp",
    "zipimport", "sqlite3", "pip", "setuptools", "distutils", "venv", "ensurepip", "cloudpickle", "builtins",
    "builtin", "operator", "functools", "io", "codecs", "inspect", "gc", "ast", "linecache", "pkgutil",
    "site", "sysconfig", "glob", "pathlib", "fileinput", "tarfile", "zipfile", "yaml", "ruamel", "joblib",
    "shlex", "uuid", "weakref", "atexit", "sched", "selectors", "select", "mmap", "resource",
    "fcntl", "termios", "readline", "rlcompleter", "idlelib", "tkinter", "turtle", "doctest", "unittest",
    "compileall", "py_compile", "zipapp", "lib2to3", "email", "mailbox", "logging", "contextlib",
    "concurrent", "socketserver", "wsgiref", "xml", "keras", "numexpr", "sympy", "jinja2", "mako",
})
# Submodules of common data libraries that load files or pickles, or call what they are given.
_DANGEROUS_SUBMODULES = (
    "numpy.lib.npyio", "numpy.lib.npyio.impl", "numpy.lib.format", "numpy.testing", "numpy.distutils",
    "numpy.f2py", "numpy.ctypeslib", "numpy.compat", "torch.serialization", "torch.hub", "torch.jit",
    "torch.package", "torch.c", "torch.ops", "torch.storage", "torch.utils.cpp.extension", "torch.library",
    "torch.fx", "torch.compiler", "torch.dynamo", "torch.export", "torch.distributed", "pandas.io",
    "pandas.read.pickle", "pandas.eval", "pandas.core.computation", "pyarrow.parquet", "pyarrow.fs",
    "pyarrow.csv", "pyarrow.json", "pyarrow.ipc", "transformers.dynamic.module.utils", "accelerate.commands",
)
# Callable names that run code or load another pickle whatever module holds them (leading
# underscores stripped: `_load_from_bytes` is `load_from_bytes`).
_DANGEROUS_NAMES = frozenset({
    "system", "popen", "spawn", "spawnl", "spawnv", "spawnve", "spawnvp", "spawnlp", "execl", "execle",
    "execlp", "execv", "execve", "execvp", "execvpe", "fork", "forkpty", "exec", "eval", "execfile",
    "compile", "getattr", "setattr", "delattr", "import", "import_module", "load", "loads", "unsafe_load",
    "full_load", "load_all", "unsafe_load_all", "load_from_bytes", "rebuild_from_type_v2", "read_pickle",
    "runstring", "run_code", "run_module", "run_path", "attrgetter", "methodcaller", "partial", "partialmethod",
    "reduce", "open", "call", "check_call", "check_output", "run", "locate", "apply", "breakpoint",
    "write_text", "write_bytes", "unlink", "rmtree", "remove", "urlopen", "urlretrieve", "globals", "locals",
    "vars", "input", "import_ir_module_from_package", "download_url_to_file", "load_state_dict_from_url",
    "load_library", "load_inline", "cdll", "windll", "loadlibrary", "dlopen", "fromfile", "memmap",
    "getoutput", "getstatusoutput", "startfile", "kill", "putenv", "chmod", "chown", "rename", "replace",
    "makedirs", "mkdir", "symlink", "link", "truncate", "write", "copyfile", "copytree", "move",
    "read_csv", "read_parquet", "read_json", "read_hdf", "read_sql", "query", "pipe", "map", "apply_along_axis",
    "vectorize", "frompyfunc", "piecewise", "eval_str", "literal_eval", "subclass_hook", "setstate",
})


def _norm(part: str) -> str:
    return part.lstrip("_").lower()


# A Trainer's training_args.bin pickles its arguments dataclass and the enums in it: these named
# classes only (never "any name in module X"), and only in a file named training_args.bin.
TRAINING_ARGS_CLASSES: frozenset[str] = frozenset({
    "transformers.training_args.TrainingArguments", "transformers.training_args.OptimizerNames",
    "transformers.training_args_seq2seq.Seq2SeqTrainingArguments",
    "transformers.trainer_utils.IntervalStrategy", "transformers.trainer_utils.SaveStrategy",
    "transformers.trainer_utils.HubStrategy", "transformers.trainer_utils.SchedulerType",
    "transformers.trainer_utils.EvaluationStrategy", "transformers.trainer_utils.FSDPOption",
    "transformers.trainer_utils.ShardedDDPOption", "transformers.debug_utils.DebugOption",
    "transformers.trainer_pt_utils.AcceleratorConfig", "transformers.generation.configuration_utils.GenerationConfig",
    "accelerate.state.PartialState", "accelerate.utils.dataclasses.DistributedType",
    "accelerate.utils.dataclasses.DeepSpeedPlugin", "accelerate.utils.dataclasses.FullyShardedDataParallelPlugin",
    "trl.trainer.sft_config.SFTConfig", "trl.trainer.dpo_config.DPOConfig", "trl.trainer.orpo_config.ORPOConfig",
    "trl.trainer.kto_config.KTOConfig", "trl.trainer.cpo_config.CPOConfig", "trl.trainer.grpo_config.GRPOConfig",
    "trl.trainer.reward_config.RewardConfig", "trl.trainer.ppo_config.PPOConfig",
    "trl.trainer.dpo_config.FDivergenceType", "trl.trainer.dpo_config.FDivergenceConstants",
    "peft.utils.peft_types.PeftType", "peft.utils.peft_types.TaskType",
})

# Callables that are dangerous though their module is otherwise harmless.
_DANGEROUS_GLOBALS = frozenset({
    "torch._tensor._rebuild_from_type_v2", "torch.storage._load_from_bytes", "torch.load",
    "torch.serialization._load", "torch.serialization.load", "numpy.load", "numpy.lib._npyio_impl.load",
    "pandas.read_pickle", "pandas.io.pickle.read_pickle", "pandas.eval",
    "numpy.testing._private.utils.runstring", "torch._C._import_ir_module_from_package",
})


def judge_global(module: str, name: str, context: str | None = None) -> str:
    """'allowed', 'dangerous' or 'unknown' for a global a pickle names. `context` "training_args" also
    allows the Trainer's named argument classes (TRAINING_ARGS_CLASSES)."""
    full = f"{module}.{name}"
    if full in ALLOWED_GLOBALS:
        return "allowed"
    if context == "training_args" and full in TRAINING_ARGS_CLASSES:
        return "allowed"
    if full in _DANGEROUS_GLOBALS or module.startswith("<"):
        return "dangerous"
    parts = [_norm(p) for p in full.split(".") if p]
    if not parts:
        return "dangerous"
    # any part of the path a dangerous module (os.system reached as somemodule.os.system, C twins)
    if any(p in _DANGEROUS_MODULES for p in parts[:-1]) or parts[0] in _DANGEROUS_MODULES:
        return "dangerous"
    dotted = ".".join(parts)
    if any(dotted == m or dotted.startswith(m + ".") for m in _DANGEROUS_SUBMODULES):
        return "dangerous"
    if any(p in _DANGEROUS_NAMES for p in [*parts[len(module.split(".")):], parts[-1]]):
        return "dangerous"
    return "unknown"  # dotted attribute paths included: never allowed, whatever they reach
