"""A symbolic pickle reader: interprets every opcode of protocols 0-5 and builds inert values only.

Nothing a pickle names is ever imported or called. A global becomes a :class:`Global` record; an
application of one (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ) becomes an :class:`Apply` record whose BUILD
state, appended items and set items are recorded on it; a persistent id becomes a :class:`Persistent`
record. Strings, numbers, bytes, lists, tuples, dicts and sets are the plain Python values. Every call
of :func:`read_pickle` starts from a fresh memo and fresh records, as every real ``load()`` does, so
nothing is shared between pickles, files or adapters.

Bounded: opcodes executed, objects created, memo references, bytes materialised, MARK nesting and
stack size (:class:`PickleLimits`). Hitting a bound raises :class:`PickleLimitError`; a malformed
stream raises :class:`PickleFormatError`. Either way, the globals met before the error are kept on
the exception (``.globals``), because a real loader would already have resolved them.

Consumers walk the result with explicit bounds (:func:`walk`): a pickle may describe a DAG whose
unfolded size is exponential in its length (memo references), which is cheap to build here and
must never be unfolded recursively.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from loravet.adapter.pickle_dtype import Unreconstructable, dtype_of
from loravet.adapter.pickle_records import Apply, Global, GlobalUse, Persistent

__all__ = [
    "LEGACY_TORCH_MAGIC",
    "Apply",
    "Global",
    "GlobalUse",
    "Persistent",
    "PickleError",
    "PickleFormatError",
    "PickleLimitError",
    "PickleLimits",
    "PickleResult",
    "read_pickle",
    "read_pickles",
    "walk",
]


LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
"""The first pickle of a legacy (pre-zip) torch.save file."""


@dataclass(frozen=True)
class PickleLimits:
    max_ops: int = 20_000_000
    max_objects: int = 5_000_000
    max_memo_refs: int = 5_000_000
    max_bytes: int = 1 << 31
    max_marks: int = 10_000
    max_stack: int = 5_000_000
    max_memo: int = 5_000_000


class PickleError(ValueError):
    """The stream cannot be read to its end. ``globals``: what was met before; ``offset``: where."""

    def __init__(self, message: str, offset: int, globals_: list[GlobalUse] | None = None, calls: int = 0) -> None:
        super().__init__(message)
        self.offset = offset
        self.globals: list[GlobalUse] = globals_ or []
        self.calls = calls
        """applications (REDUCE, NEWOBJ, INST, OBJ, BUILD) met before the error: a real loader ran them"""


class PickleFormatError(PickleError):
    """Malformed: a real loader raises here too (after running what came before)."""


class PickleLimitError(PickleError):
    """A bound of :class:`PickleLimits` was reached: the rest of the stream was not read."""


@dataclass
class PickleResult:
    value: object
    globals: list[GlobalUse]
    start: int
    end: int
    protocol: int
    ops: int


_JOBLIB_WRAPPERS = ("joblib.numpy_pickle.NumpyArrayWrapper",)
_JOBLIB_WRAPPER_GLOBALS = (Global("joblib.numpy_pickle", "NumpyArrayWrapper"),)
_DEFAULT_LIMITS = PickleLimits()

_PY2_FIX_NAME: dict[tuple[str, str], tuple[str, str]] = dict(_compat_pickle.NAME_MAPPING)
_PY2_FIX_MODULE: dict[str, str] = dict(_compat_pickle.IMPORT_MAPPING)


def _fix_py2(module: str, name: str) -> tuple[str, str]:
    """What Python 3's unpickler imports for a protocol 0-2 GLOBAL (fix_imports=True, the default)."""
    if (module, name) in _PY2_FIX_NAME:
        return _PY2_FIX_NAME[(module, name)]
    return _PY2_FIX_MODULE.get(module, module), name


class _Reader:
    def __init__(self, data: bytes | memoryview, pos: int, limits: PickleLimits) -> None:
        self.data = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        self.pos = pos
        self.start = pos
        self.limits = limits
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.globals: list[GlobalUse] = []
        self.ops = 0
        self.objects = 0
        self.memo_refs = 0
        self.materialised = 0
        self.proto = 0
        self.op_at = pos
        self.calls = 0

    # ---- errors and bounds
    def fail(self, message: str) -> PickleFormatError:
        return PickleFormatError(f"{message} at byte {self.op_at}", self.op_at, list(self.globals), self.calls)

    def limit(self, message: str) -> PickleLimitError:
        return PickleLimitError(f"{message} at byte {self.op_at}", self.op_at, list(self.globals), self.calls)

    def new(self, n: int = 1) -> None:
        self.objects += n
        if self.objects > self.limits.max_objects:
            raise self.limit(f"over {self.limits.max_objects:,} objects")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"truncated: {n:,} bytes announced, {len(self.data) - self.pos:,} left")
        self.materialised += n
        if self.materialised > self.limits.max_bytes:
            raise self.limit(f"over {self.limits.max_bytes:,} bytes materialised")
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def line(self) -> bytes:
        """A text opcode's argument, up to its newline (searched in bounded chunks)."""
        data, start = self.data, self.pos
        end = -1
        i = start
        while i < len(data):
            j = bytes(data[i : i + 65536]).find(b"\n")
            if j >= 0:
                end = i + j
                break
            i += 65536
            if i - start > 64 << 20:
                raise self.limit("a text argument over 64 MiB")
        if end < 0:
            raise self.fail("truncated: a line argument without its newline")
        raw = self.take(end - start)
        self.pos += 1
        return raw

    def push(self, value: Any) -> None:
        self.stack.append(value)
        if len(self.stack) > self.limits.max_stack:
            raise self.limit(f"over {self.limits.max_stack:,} stack entries")

    def pop(self) -> Any:
        if not self.stack:
            raise self.fail("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self.fail("no MARK to pop to")
        items = self.stack
        self.stack = self.marks.pop()
        return items

    def top(self) -> Any:
        if not self.stack:
            raise self.fail("stack underflow")
        return self.stack[-1]

    def memo_get(self, key: int) -> Any:
        if key not in self.memo:
            raise self.fail(f"memo key {key} not found")
        self.memo_refs += 1
        if self.memo_refs > self.limits.max_memo_refs:
            raise self.limit(f"over {self.limits.max_memo_refs:,} memo references")
        return self.memo[key]

    def memo_put(self, key: int, value: Any) -> None:
        if key < 0:
            raise self.fail("negative memo key")
        self.memo[key] = value
        if len(self.memo) > self.limits.max_memo:
            raise self.limit(f"over {self.limits.max_memo:,} memo entries")

    def glob(self, module: object, name: object, opcode: str) -> Global:
        if not isinstance(module, str) or not isinstance(name, str):
            # a real STACK_GLOBAL raises here; recorded so that the scan never calls it harmless
            module, name = "<unresolvable>", f"{type(module).__name__}.{type(name).__name__}"
        elif self.proto < 3:  # what find_class imports (fix_imports, the default), whatever the opcode
            module, name = _fix_py2(module, name)
        self.globals.append(GlobalUse(module, name, opcode, self.op_at))
        self.new()
        return Global(module, name)

    # ---- helpers for container ops
    def append_to(self, target: Any, values: list[Any]) -> None:
        if isinstance(target, list):
            target.extend(values)
        elif isinstance(target, Apply):
            target.items.extend(values)
        else:
            raise self.fail(f"APPEND to a {type(target).__name__}")

    def setitems_on(self, target: Any, pairs: list[Any]) -> None:
        if len(pairs) % 2:
            raise self.fail("odd number of items for SETITEMS")
        it = iter(pairs)
        for k, v in zip(it, it, strict=True):
            if isinstance(target, dict):
                try:
                    target[k] = v
                except TypeError:
                    raise self.fail(f"unhashable dict key {type(k).__name__}") from None
            elif isinstance(target, Apply):
                target.setitems.append((k, v))
            else:
                raise self.fail(f"SETITEM on a {type(target).__name__}")

    def to_set(self, items: list[Any]) -> set[Any]:
        try:
            return set(items)
        except TypeError:
            raise self.fail("unhashable set item") from None

    # ---- the interpreter: one small handler per opcode, dispatched by _OPCODES (below the class)
    def run(self) -> PickleResult:
        data = self.data
        n = len(data)
        max_ops = self.limits.max_ops
        table = _OPCODES
        while True:
            if self.pos >= n:
                raise self.fail("truncated: no STOP opcode")
            self.op_at = self.pos
            op = data[self.pos]
            self.pos += 1
            self.ops += 1
            if self.ops > max_ops:
                raise self.limit(f"over {max_ops:,} opcodes")
            if op == 0x2E:  # STOP
                value = self.pop()
                return PickleResult(value, self.globals, self.start, self.pos, self.proto, self.ops)
            handler = table[op]
            if handler is None:
                raise self.fail(f"unknown opcode 0x{op:02x}")
            handler(self, op)

    # ---- framing and the stack
    def op_proto(self, op: int) -> None:
        self.proto = self.take(1)[0]
        if self.proto > 5:
            raise self.fail(f"unsupported pickle protocol {self.proto}")

    def op_frame(self, op: int) -> None:
        self.take(8)

    def op_mark(self, op: int) -> None:
        self.marks.append(self.stack)
        self.stack = []
        if len(self.marks) > self.limits.max_marks:
            raise self.limit(f"over {self.limits.max_marks:,} nested MARKs")

    def op_pop(self, op: int) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()

    def op_pop_mark(self, op: int) -> None:
        self.pop_mark()

    def op_dup(self, op: int) -> None:
        self.push(self.top())

    # ---- constants and numbers
    def op_constant(self, op: int) -> None:
        """NONE, NEWTRUE, NEWFALSE, EMPTY_TUPLE."""
        self.push(_CONSTANTS[op])

    def op_int(self, op: int) -> None:
        raw = self.line()
        if raw == b"00":
            self.push(False)
        elif raw == b"01":
            self.push(True)
        else:
            self.push(self.parse_int(raw, 0))

    def op_binint(self, op: int) -> None:
        """BININT, BININT1, BININT2."""
        size, fmt = _BININTS[op]
        self.push(struct.unpack(fmt, self.take(size))[0])

    def op_long(self, op: int) -> None:
        raw = self.line()
        self.push(self.parse_int(raw[:-1] if raw.endswith(b"L") else raw, 0))

    def op_long_n(self, op: int) -> None:
        """LONG1, LONG4."""
        size = self.take(1)[0] if op == 0x8A else struct.unpack("<i", self.take(4))[0]
        if size < 0:
            raise self.fail("negative LONG4 size")
        if size > 4096:
            raise self.limit(f"a {size:,}-byte integer")
        self.push(int.from_bytes(self.take(size), "little", signed=True))

    def op_float(self, op: int) -> None:
        raw = self.line()
        try:
            self.push(float(raw.decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            raise self.fail("bad FLOAT") from None

    def op_binfloat(self, op: int) -> None:
        self.push(struct.unpack(">d", self.take(8))[0])

    # ---- strings and bytes
    def op_string(self, op: int) -> None:
        """STRING (protocol 0, quoted)."""
        raw = self.line()
        if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
            raise self.fail("STRING argument not quoted")
        try:
            self.push(codecs.escape_decode(raw[1:-1])[0].decode("latin-1"))
        except ValueError:
            raise self.fail("bad STRING escape") from None

    def op_binstring(self, op: int) -> None:
        """BINSTRING, SHORT_BINSTRING."""
        size = self.length(4, signed=True) if op == 0x54 else self.take(1)[0]
        self.push(self.take(size).decode("latin-1"))

    def op_unicode(self, op: int) -> None:
        """UNICODE (raw-unicode-escape)."""
        raw = self.line()
        try:
            self.push(raw.decode("raw-unicode-escape"))
        except UnicodeDecodeError:
            raise self.fail("bad UNICODE") from None

    def op_binunicode(self, op: int) -> None:
        """BINUNICODE, SHORT_BINUNICODE, BINUNICODE8."""
        size = self.take(1)[0] if op == 0x8C else self.length(4 if op == 0x58 else 8)
        try:
            self.push(self.take(size).decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            raise self.fail("bad UTF-8 in a string") from None

    def op_binbytes(self, op: int) -> None:
        """BINBYTES, SHORT_BINBYTES, BINBYTES8."""
        size = self.take(1)[0] if op == 0x43 else self.length(4 if op == 0x42 else 8)
        self.push(self.take(size))

    def op_bytearray8(self, op: int) -> None:
        self.push(bytearray(self.take(self.length(8))))

    def op_next_buffer(self, op: int) -> None:
        """NEXT_BUFFER: out-of-band data a file cannot carry."""
        raise self.fail("NEXT_BUFFER without out-of-band buffers")

    def op_readonly_buffer(self, op: int) -> None:
        self.top()

    # ---- containers
    def op_empty(self, op: int) -> None:
        """EMPTY_LIST, EMPTY_DICT, EMPTY_SET."""
        self.new()
        self.push([] if op == 0x5D else {} if op == 0x7D else set())

    def op_tuple(self, op: int) -> None:
        items = self.pop_mark()
        self.new()
        self.push(tuple(items))

    def op_tuple_n(self, op: int) -> None:
        """TUPLE1, TUPLE2, TUPLE3."""
        k = op - 0x84
        if len(self.stack) < k:
            raise self.fail("stack underflow")
        items = self.stack[-k:]
        del self.stack[-k:]
        self.new()
        self.push(tuple(items))

    def op_list(self, op: int) -> None:
        items = self.pop_mark()
        self.new()
        self.push(list(items))

    def op_dict(self, op: int) -> None:
        items = self.pop_mark()
        d: dict[Any, Any] = {}
        self.setitems_on(d, items)
        self.new()
        self.push(d)

    def op_frozenset(self, op: int) -> None:
        items = self.pop_mark()
        self.new()
        self.push(frozenset(self.to_set(items)))

    def op_append(self, op: int) -> None:
        value = self.pop()
        self.append_to(self.top(), [value])

    def op_appends(self, op: int) -> None:
        items = self.pop_mark()
        self.append_to(self.top(), items)

    def op_setitem(self, op: int) -> None:
        value = self.pop()
        key = self.pop()
        self.setitems_on(self.top(), [key, value])

    def op_setitems(self, op: int) -> None:
        items = self.pop_mark()
        self.setitems_on(self.top(), items)

    def op_additems(self, op: int) -> None:
        items = self.pop_mark()
        target = self.top()
        if isinstance(target, set):
            target.update(self.to_set(items))
        elif isinstance(target, Apply):
            target.items.extend(items)
        else:
            raise self.fail(f"ADDITEMS to a {type(target).__name__}")

    # ---- memo
    def op_memoize(self, op: int) -> None:
        self.memo_put(len(self.memo), self.top())

    def op_put(self, op: int) -> None:
        self.memo_put(self.parse_int(self.line()), self.top())

    def op_binput(self, op: int) -> None:
        """BINPUT, LONG_BINPUT."""
        self.memo_put(self.take(1)[0] if op == 0x71 else struct.unpack("<I", self.take(4))[0], self.top())

    def op_get(self, op: int) -> None:
        self.push(self.memo_get(self.parse_int(self.line())))

    def op_binget(self, op: int) -> None:
        """BINGET, LONG_BINGET."""
        self.push(self.memo_get(self.take(1)[0] if op == 0x68 else struct.unpack("<I", self.take(4))[0]))

    # ---- globals and calls (recorded, never performed)
    def op_global(self, op: int) -> None:
        module = self.line().decode("utf-8", "replace")
        name = self.line().decode("utf-8", "replace")
        self.push(self.glob(module, name, "GLOBAL"))

    def op_stack_global(self, op: int) -> None:
        name_v = self.pop()
        module_v = self.pop()
        self.push(self.glob(module_v, name_v, "STACK_GLOBAL"))

    def op_ext(self, op: int) -> None:
        """EXT1, EXT2, EXT4: copyreg's extension registry."""
        size = {0x82: 1, 0x83: 2, 0x84: 4}[op]
        code = int.from_bytes(self.take(size), "little")
        self.push(self.glob("copyreg._extension_registry", str(code), "EXT"))

    def apply(self, func: object, args: tuple[Any, ...], kind: str, kwargs: dict[Any, Any] | None = None) -> None:
        self.new()
        self.calls += 1
        self.push(Apply(func, args, kind, kwargs=kwargs))

    def op_reduce(self, op: int) -> None:
        args = self.pop()
        func = self.pop()
        if not isinstance(args, tuple):
            raise self.fail("REDUCE arguments are not a tuple")
        self.apply(func, args, "reduce")

    def op_newobj(self, op: int) -> None:
        args = self.pop()
        cls = self.pop()
        if not isinstance(args, tuple):
            raise self.fail("NEWOBJ arguments are not a tuple")
        self.apply(cls, args, "newobj")

    def op_newobj_ex(self, op: int) -> None:
        kwargs = self.pop()
        args = self.pop()
        cls = self.pop()
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise self.fail("NEWOBJ_EX arguments are not a tuple and a dict")
        self.apply(cls, args, "newobj_ex", kwargs)

    def op_inst(self, op: int) -> None:
        module = self.line().decode("utf-8", "replace")
        name = self.line().decode("utf-8", "replace")
        cls = self.glob(module, name, "INST")
        items = self.pop_mark()
        self.apply(cls, tuple(items), "inst")

    def op_obj(self, op: int) -> None:
        items = self.pop_mark()
        if not items:
            raise self.fail("OBJ without a class")
        self.apply(items[0], tuple(items[1:]), "obj")

    def op_build(self, op: int) -> None:
        state = self.pop()
        target = self.top()
        self.calls += 1
        if not isinstance(target, Apply):
            # a real loader would call target.__setstate__ or update its __dict__; plain values
            # have neither: a real load raises (or runs an attribute of a class it made)
            raise self.fail(f"BUILD on a {type(target).__name__}")
        target.state = state
        if target.is_call_of(*_JOBLIB_WRAPPERS) or (
            target.is_call_of("copyreg._reconstructor") and target.args and target.args[0] in _JOBLIB_WRAPPER_GLOBALS
        ):
            self.skip_joblib_array(state)

    def op_persid(self, op: int) -> None:
        self.new()
        self.push(Persistent(self.line().decode("ascii", "replace")))

    def op_binpersid(self, op: int) -> None:
        pid = self.pop()
        self.new()
        self.push(Persistent(pid))

    def skip_joblib_array(self, state: object) -> None:
        """joblib writes a NumPy array's bytes into the stream right after its wrapper's BUILD (object
        arrays as a nested pickle): step over them as joblib's unpickler reads them."""
        if not isinstance(state, dict):
            raise self.fail("joblib array wrapper without its state")
        try:
            dtype = dtype_of(state.get("dtype"))
        except Unreconstructable as exc:
            raise self.fail(f"joblib array: {exc}") from None
        shape = state.get("shape")
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise self.fail("joblib array without a shape")
        if dtype.hasobject:
            nested = _Reader(self.data, self.pos, self.limits)
            nested.ops = self.ops
            try:
                result = nested.run()
            except PickleError as exc:
                exc.globals = self.globals + exc.globals
                raise
            self.globals.extend(result.globals)
            self.ops = nested.ops
            self.pos = result.end
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            pad = self.take(1)[0]
            if self.pos + pad > len(self.data):
                raise self.fail("joblib array padding runs past the end")
            self.pos += pad
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        if self.pos + nbytes > len(self.data):
            raise self.fail("joblib array data runs past the end")
        self.pos += nbytes

    def length(self, size: int, signed: bool = False) -> int:
        value = int.from_bytes(self.take(size), "little", signed=signed)
        if value < 0:
            raise self.fail("negative length")
        if self.pos + value > len(self.data):
            raise self.fail(f"truncated: {value:,} bytes announced, {len(self.data) - self.pos:,} left")
        return value

    def parse_int(self, raw: bytes, base: int = 10) -> int:
        """int() as the unpickler calls it: base 0 for INT and LONG (0x.., no leading zeros), 10 for memo keys."""
        if len(raw) > 4300:
            raise self.limit(f"a {len(raw):,}-digit integer")
        try:
            return int(raw.decode("ascii"), base)
        except (ValueError, UnicodeDecodeError):
            raise self.fail("bad integer") from None


_Handler = Callable[[_Reader, int], None]
_CONSTANTS: dict[int, object] = {0x4E: None, 0x88: True, 0x89: False, 0x29: ()}
_BININTS = {0x4A: (4, "<i"), 0x4B: (1, "<B"), 0x4D: (2, "<H")}
_HANDLERS: dict[_Handler, tuple[int, ...]] = {
    _Reader.op_proto: (0x80,),
    _Reader.op_frame: (0x95,),
    _Reader.op_mark: (0x28,),
    _Reader.op_pop: (0x30,),
    _Reader.op_pop_mark: (0x31,),
    _Reader.op_dup: (0x32,),
    _Reader.op_constant: (0x4E, 0x88, 0x89, 0x29),
    _Reader.op_int: (0x49,),
    _Reader.op_binint: (0x4A, 0x4B, 0x4D),
    _Reader.op_long: (0x4C,),
    _Reader.op_long_n: (0x8A, 0x8B),
    _Reader.op_float: (0x46,),
    _Reader.op_binfloat: (0x47,),
    _Reader.op_string: (0x53,),
    _Reader.op_binstring: (0x54, 0x55),
    _Reader.op_unicode: (0x56,),
    _Reader.op_binunicode: (0x58, 0x8C, 0x8D),
    _Reader.op_binbytes: (0x42, 0x43, 0x8E),
    _Reader.op_bytearray8: (0x96,),
    _Reader.op_next_buffer: (0x97,),
    _Reader.op_readonly_buffer: (0x98,),
    _Reader.op_empty: (0x5D, 0x7D, 0x8F),
    _Reader.op_tuple: (0x74,),
    _Reader.op_tuple_n: (0x85, 0x86, 0x87),
    _Reader.op_list: (0x6C,),
    _Reader.op_dict: (0x64,),
    _Reader.op_frozenset: (0x91,),
    _Reader.op_append: (0x61,),
    _Reader.op_appends: (0x65,),
    _Reader.op_setitem: (0x73,),
    _Reader.op_setitems: (0x75,),
    _Reader.op_additems: (0x90,),
    _Reader.op_memoize: (0x94,),
    _Reader.op_put: (0x70,),
    _Reader.op_binput: (0x71, 0x72),
    _Reader.op_get: (0x67,),
    _Reader.op_binget: (0x68, 0x6A),
    _Reader.op_global: (0x63,),
    _Reader.op_stack_global: (0x93,),
    _Reader.op_ext: (0x82, 0x83, 0x84),
    _Reader.op_reduce: (0x52,),
    _Reader.op_newobj: (0x81,),
    _Reader.op_newobj_ex: (0x92,),
    _Reader.op_inst: (0x69,),
    _Reader.op_obj: (0x6F,),
    _Reader.op_build: (0x62,),
    _Reader.op_persid: (0x50,),
    _Reader.op_binpersid: (0x51,),
}
_OPCODES: list[_Handler | None] = [None] * 256
"""opcode -> its handler (STOP is the loop's own); None: unknown opcode"""
for _handler, _ops in _HANDLERS.items():
    for _op in _ops:
        _OPCODES[_op] = _handler
del _handler, _ops, _op


def read_pickle(data: bytes | memoryview, pos: int = 0, limits: PickleLimits = _DEFAULT_LIMITS) -> PickleResult:
    """Read one pickle starting at `pos` (to its STOP opcode), with a fresh memo. Raises PickleError."""
    return _Reader(data, pos, limits).run()


def read_pickles(
    data: bytes | memoryview, limits: PickleLimits = _DEFAULT_LIMITS, max_pickles: int = 10_000
) -> Iterator[PickleResult]:
    """Every pickle of a multi-pickle stream, each with a fresh memo (as repeated ``pickle.load`` calls).

    Stops at the end of the data. Raises PickleError where a pickle cannot be read; PickleLimitError
    when there are more than `max_pickles`."""
    pos = 0
    count = 0
    n = len(data)
    while pos < n:
        count += 1
        if count > max_pickles:
            raise PickleLimitError(f"over {max_pickles:,} pickles in one stream", pos)
        result = read_pickle(data, pos, limits)
        yield result
        pos = result.end


def walk(root: object, max_nodes: int = 2_000_000, max_depth: int = 200) -> Iterator[tuple[object, int]]:
    """(value, depth) for every value reachable from `root`, each shared value once, iteratively.

    Raises PickleLimitError beyond `max_nodes` distinct values or `max_depth` levels."""
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict, tuple, set, frozenset, Apply, Persistent)):
            if id(value) in seen:
                continue
            seen.add(id(value))
            if len(seen) > max_nodes:
                raise PickleLimitError(f"over {max_nodes:,} values", 0)
            if depth > max_depth:
                raise PickleLimitError(f"nested deeper than {max_depth} levels", 0)
        yield value, depth
        children: list[object]
        if isinstance(value, dict):
            children = [*value.keys(), *value.values()]
        elif isinstance(value, (list, tuple, set, frozenset)):
            children = list(value)
        elif isinstance(value, Apply):
            children = [
                value.func,
                *value.args,
                *(value.kwargs or {}).values(),
                value.state,
                *value.items,
                *(x for pair in value.setitems for x in pair),
            ]
        elif isinstance(value, Persistent):
            children = [value.pid]
        else:
            continue
        stack.extend((c, depth + 1) for c in children)
