"""The inert records a symbolic pickle is read into (loravet.adapter.pickle_vm): a named global, an
application of one, a persistent id, and where each global was met. Plain data, nothing imported or called."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Apply", "Global", "GlobalUse", "Persistent"]


@dataclass(frozen=True)
class Global:
    """A global the pickle names (module and qualified name as written, after Python 2 name fixing)."""

    module: str
    name: str

    @property
    def full(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class Apply:
    """``func(*args, **kwargs)`` as the pickle asks for it, never performed.

    kind: reduce | newobj | newobj_ex | inst | obj. ``state`` is the last BUILD argument (None when none);
    ``items`` what APPEND/APPENDS/ADDITEMS added; ``setitems`` what SETITEM/SETITEMS set."""

    func: object
    args: tuple[Any, ...]
    kind: str
    kwargs: dict[Any, Any] | None = None
    state: object = None
    items: list[Any] = field(default_factory=list)
    setitems: list[tuple[Any, Any]] = field(default_factory=list)

    def is_call_of(self, *names: str) -> bool:
        return isinstance(self.func, Global) and self.func.full in names


@dataclass(eq=False)
class Persistent:
    """A persistent id (PERSID / BINPERSID): how torch.save points at tensor storages."""

    pid: object


@dataclass(frozen=True)
class GlobalUse:
    """One global met while reading: its name, the opcode that imports it and the byte offset."""

    module: str
    name: str
    opcode: str
    offset: int
