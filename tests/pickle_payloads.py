"""Malicious pickles built opcode by opcode: each would create a canary file if it were unpickled."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable


def _str(s: str) -> bytes:
    raw = s.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def g(module: str, name: str, stack: bool) -> bytes:
    """Push a global: GLOBAL (protocol 0-3 form) or STACK_GLOBAL (protocol 4+ form, memoised)."""
    if stack:
        return _str(module) + b"\x94" + _str(name) + b"\x94" + b"\x93" + b"\x94"
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def call(fn: bytes, *args: bytes) -> bytes:
    return fn + b"(" + b"".join(args) + b"tR"  # MARK args TUPLE REDUCE


def s(text: str) -> bytes:
    return _str(text)


def wrap(body: bytes, stack: bool) -> bytes:
    return (b"\x80\x04" if stack else b"\x80\x02") + body + b"."


def payloads(cmd: str) -> dict[str, tuple[Callable[[bool], bytes], str]]:
    """name -> (builder(stack) -> pickle bytes, expected verdict)."""
    return {
        "os.system": (lambda st: wrap(call(g("os", "system", st), s(cmd)), st), "dangerous"),
        "posix.system": (lambda st: wrap(call(g("posix", "system", st), s(cmd)), st), "dangerous"),
        "subprocess.call": (lambda st: wrap(call(g("subprocess", "call", st), s(cmd)) , st), "dangerous"),
        "builtins.exec": (lambda st: wrap(call(g("builtins", "exec", st),
                                               s(f"import os; os.system({cmd!r})")), st), "dangerous"),
        "builtins.eval": (lambda st: wrap(call(g("builtins", "eval", st),
                                               s(f"__import__('os').system({cmd!r})")), st), "dangerous"),
        "pydoc.locate": (lambda st: wrap(call(call(g("pydoc", "locate", st), s("os.system")), s(cmd)), st),
                         "dangerous"),
        "getattr-import": (lambda st: wrap(call(call(g("builtins", "getattr", st),
                                                     call(g("builtins", "__import__", st), s("os")), s("system")),
                                                s(cmd)), st), "dangerous"),
        "operator.methodcaller": (lambda st: wrap(call(call(g("operator", "methodcaller", st), s("system"), s(cmd)),
                                                       call(g("importlib", "import_module", st), s("os"))), st),
                                  "dangerous"),
        "runpy": (lambda st: wrap(call(g("runpy", "_run_code", st), s(f"import os; os.system({cmd!r})"),
                                       b"}"), st), "dangerous"),
        "unknown-import": (lambda st: wrap(call(g("somepkg.helpers", "Loader", st), s(cmd)), st), "unknown"),
    }


def as_torch_zip(pickle_bytes: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle_bytes)
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/byteorder", "little")
    return buf.getvalue()
