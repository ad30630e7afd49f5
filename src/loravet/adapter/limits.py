"""Caps applied before any allocation when reading untrusted files, and the helpers that apply them.

Every read of an adapter file goes through :func:`open_regular`: the file type is checked on the open
descriptor (no FIFO, device or socket is ever read: opening one does not block, reading it would), a
symbolic link must resolve inside the adapter folder (or, in a huggingface_hub cache, inside the same
repository's ``blobs/``), and the size cap is applied to what the link resolves to. Reads are streamed
and stop at the cap; nothing is read whole and truncated afterwards.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "ADAPTER_MEMORY_BUDGET_MB",
    "ADAPTER_TIME_BUDGET_S",
    "MAX_CONFIG_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_README_BYTES",
    "MAX_SAFETENSORS_HEADER",
    "MAX_TENSORS",
    "MAX_TENSOR_ELEMENTS",
    "MAX_ZIP_MEMBERS",
    "MAX_ZIP_TOTAL_BYTES",
    "UPDATE_STATS_BUDGET",
    "FileRefused",
    "allowed_roots",
    "deadline",
    "hold_alarms",
    "memory_cap",
    "open_regular",
    "read_capped",
    "read_prefix",
]

MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 64
# safetensors' own reader refuses headers above 100 MB; an adapter's header is a few hundred KB.
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
MAX_TENSORS = 500_000
MAX_TENSOR_ELEMENTS = 1 << 40
MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_TOTAL_BYTES = 8 * 1024**3
MAX_README_BYTES = 1_000_000
# Update statistics: work allowed for one adapter (see checks.weight_stats.stats_cost; about 10 s on a slow core).
UPDATE_STATS_BUDGET = 4 * 10**9


def _env_number(name: str, default: float) -> float:
    """A number from the environment; unset or empty: `default`. Anything else that is not a number is said
    once on stderr and `default` used (a bad value once made `import loravet` itself a traceback)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        print(f"loravet: {name}={text!r} is not a number: {default:g} used", file=sys.stderr)
        return default
    return value


# Seconds one adapter's analysis may take before it stops with an `analysis-budget` finding (inf: no bound).
ADAPTER_TIME_BUDGET_S = _env_number("LORAVET_ADAPTER_BUDGET_S", 300.0)
# Address space one adapter's analysis may add (Linux; 0: no cap) before it stops with `analysis-budget`.
_memory_mb = _env_number("LORAVET_ADAPTER_MEMORY_MB", 8192.0)
ADAPTER_MEMORY_BUDGET_MB = int(_memory_mb) if math.isfinite(_memory_mb) and _memory_mb > 0 else 0


class FileRefused(OSError):
    """An adapter file loravet will not read: not a regular file, a link leaving the folder, over a cap."""


class PathEscape(FileRefused):
    """A symbolic link leaving the adapter folder (finding `path-escape`, not `unreadable-file`)."""


def allowed_roots(folder: Path) -> list[Path]:
    """Where a symbolic link inside `folder` may point: the folder itself and, when the folder is a
    huggingface_hub snapshot (``models--o--n/snapshots/REV/...``), that repository's ``blobs/``."""
    roots = [folder.resolve()]
    for p in [folder, *folder.parents]:
        if p.name == "snapshots" and p.parent.name.startswith(("models--", "datasets--", "spaces--")):
            roots.append((p.parent / "blobs").resolve())
            break
    return roots


def _confined(path: Path, roots: list[Path]) -> Path:
    target = Path(os.path.realpath(path))
    if not any(target == r or r in target.parents for r in roots):
        raise PathEscape(f"{path.name} is a symbolic link to {target}, outside the adapter folder: not followed")
    return target


@contextlib.contextmanager
def open_regular(path: Path, max_bytes: int, root: Path | None = None) -> Iterator[BinaryIO]:
    """Open `path` for reading only if it is (or links, inside `root`, to) a regular file of at most
    `max_bytes` bytes; raises FileRefused with a one-line reason otherwise."""
    roots = allowed_roots(root if root is not None else path.parent)
    if path.is_symlink():
        _confined(path, roots)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise FileRefused(f"cannot open {path.name}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = (
                "a FIFO"
                if stat.S_ISFIFO(st.st_mode)
                else "a device"
                if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket"
                if stat.S_ISSOCK(st.st_mode)
                else "a folder"
                if stat.S_ISDIR(st.st_mode)
                else "not a regular file"
            )
            raise FileRefused(f"{path.name} is {kind}, not a regular file: not read")
        if st.st_size > max_bytes:
            raise FileRefused(f"{path.name} is {st.st_size:,} bytes, over the {max_bytes:,}-byte limit: not read")
        os.set_blocking(fd, True)
        # closefd=False: the descriptor is closed here and only here. A file object owning it, dropped by an
        # alarm raised just after fdopen returned, closed it before the `except` closed it again (EBADF in
        # place of the budget's finding; in `scan`, possibly a worker's file that had reused the number).
        with open(fd, "rb", closefd=False) as fh:
            yield fh
    finally:
        os.close(fd)


def read_prefix(path: Path, max_bytes: int, root: Path | None = None) -> tuple[bytes, bool]:
    """The first `max_bytes` bytes of a regular file, streamed, and whether the file holds more.
    (For artifacts worth sampling: a 200 MB jsonl is read up to the cap, never whole.)"""
    roots = allowed_roots(root if root is not None else path.parent)
    if path.is_symlink():
        _confined(path, roots)
    with open_regular(path, 1 << 62, root) as fh:
        chunks: list[bytes] = []
        left = max_bytes
        while left > 0 and (chunk := fh.read(min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        more = bool(fh.read(1))
    return b"".join(chunks), more


def read_capped(path: Path, max_bytes: int, root: Path | None = None) -> bytes:
    """The whole of a regular file of at most `max_bytes` bytes (checked before and while reading: a file
    growing under us is refused too)."""
    with open_regular(path, max_bytes, root):
        pass
    data, more = read_prefix(path, max_bytes, root)
    if more:
        raise FileRefused(f"{path.name} is over the {max_bytes:,}-byte limit: not read")
    return data


# -- time bounds -----------------------------------------------------------------------------------------------

_deadlines: list[tuple[float, Callable[[], BaseException]]] = []
_previous_handler: object = None


# A deadline whose exception has been raised is raised again only after _REFIRE_S (by id of its entry: when
# it may fire next), in case something swallowed it. Re-raised every 1e-4 s while it unwound (an adapter's
# budget that ran out inside a config regex's), it hit the block's own bookkeeping before the hold: the entry
# stayed for good, and every later adapter in the process stopped at once (or the process died of SIGALRM).
_REFIRE_S = 1.0
_refire: dict[int, float] = {}


def _due(entry: tuple[float, Callable[[], BaseException]]) -> float:
    return _refire.get(id(entry), entry[0])


def _arm() -> None:
    if not _deadlines:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    left = min(_due(e) for e in _deadlines) - time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, max(left, 1e-4))


# Bookkeeping that an exception must not cut in half (a deadline's entry, the memory cap's depth and saved
# limit) runs "held": an alarm arriving then is noted and re-armed for a moment later, never raised inside it.
# (Raised there, it left the process capped, or a past-due entry that failed every later adapter at once.)
_held = 0
_alarm_pending = False


def _on_alarm(signum: int, frame: object) -> None:
    global _alarm_pending
    if _held:
        _alarm_pending = True
        return
    now = time.monotonic()
    due = [e for e in _deadlines if _due(e) <= now + 1e-3]
    if due:
        first = min(due, key=_due)
        _refire[id(first)] = now + _REFIRE_S
        _arm()  # an inner deadline still running keeps its timer
        raise first[1]()
    _arm()


class _Held:
    """Context manager: alarms that arrive inside are deferred (main thread; elsewhere no alarm is delivered)."""

    def __enter__(self) -> None:
        global _held
        if threading.current_thread() is threading.main_thread():
            _held += 1

    def __exit__(self, *exc: object) -> None:
        global _held, _alarm_pending
        if threading.current_thread() is not threading.main_thread():
            return
        _held -= 1
        if not _held and _alarm_pending:
            _alarm_pending = False
            _arm()  # what was due fires again a moment later, outside, where it may raise


_hold_alarms = _Held()
hold_alarms = _hold_alarms  # for work that must not be cut in half: a first import of the replay's libraries


def _settle(undo: Callable[[], None]) -> None:
    """Run a budget's closing bookkeeping `undo` (idempotent) held. An exception that arrives before the hold
    takes effect (an alarm at the first line of a `finally`, the caller's own SIGALRM handler, a ^C) does not
    skip it: `undo` runs again, then that exception goes on."""
    arrived: BaseException | None = None
    for _ in range(8):
        try:
            with _hold_alarms:
                undo()
            break
        except BaseException as exc:  # re-raised below, once the bookkeeping is done
            if arrived is None:
                arrived = exc
    if arrived is not None:
        raise arrived


_NO_BOUND_S = 1e9  # about 32 years: a longer deadline is none (setitimer overflows near 9e9 s)


@contextlib.contextmanager
def deadline(seconds: float, make_exc: Callable[[], BaseException]) -> Iterator[bool]:
    """Raise make_exc() in this thread if the block runs longer than `seconds` (nested blocks each keep their
    own deadline). Works in the main thread only (POSIX timers); elsewhere yields False and bounds nothing.
    Python's `re` checks for signals while it backtracks, so this stops a catastrophic regex too."""
    global _previous_handler
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield False
        return
    if not seconds < _NO_BOUND_S:  # inf (no budget), NaN, or past what a POSIX timer holds (it raised)
        yield False
        return
    outer: tuple[float, float] | None = None
    entry = (time.monotonic() + seconds, make_exc)
    installed = False
    try:
        with _hold_alarms:
            if not _deadlines:
                left, interval = signal.getitimer(signal.ITIMER_REAL)
                # someone else's timer: given back after, with its interval (a periodic timer stays periodic)
                outer = (time.monotonic() + left, interval) if left > 0 else None
                _previous_handler = signal.getsignal(signal.SIGALRM)
                installed = True  # before the switch: undone even if a ^C lands right after it
                signal.signal(signal.SIGALRM, _on_alarm)
            _deadlines.append(entry)
            _arm()
        yield True
    finally:

        def undo() -> None:
            nonlocal installed
            if entry in _deadlines:
                _deadlines.remove(entry)
            _refire.pop(id(entry), None)
            _arm()
            if installed:
                previous = _previous_handler if _previous_handler is not None else signal.SIG_DFL
                signal.signal(signal.SIGALRM, previous)  # type: ignore[arg-type]
                if outer is not None:  # the caller's own alarm, with the time it had left (at least a moment)
                    signal.setitimer(signal.ITIMER_REAL, max(outer[0] - time.monotonic(), 1e-3), outer[1])
                installed = False

        _settle(undo)


_cap_lock = threading.Lock()
_cap_depth = 0
_cap_saved: tuple[int, int] | None = None


@contextlib.contextmanager
def memory_cap(extra_mb: int) -> Iterator[bool]:
    """Let the block grow the process's address space by at most `extra_mb` MiB: beyond it, allocations raise
    MemoryError (numpy and Python both do) instead of exhausting the machine. Linux only; never loosens an
    existing limit. RLIMIT_AS is process-wide, so nested blocks and blocks running at the same time in other
    threads (`loravet scan`'s workers) share the first block's cap, and the limit the process had before is
    restored when the last of them ends (restoring per block let a thread put back another's cap for good,
    and every later child process, a browser included, inherited it)."""
    global _cap_depth, _cap_saved
    try:
        import resource

        page = os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/statm") as fh:
            vm = int(fh.read().split()[0]) * page
    except (ImportError, OSError, ValueError):
        yield False
        return
    if extra_mb <= 0:
        yield False
        return
    entered = False
    try:
        with _hold_alarms, _cap_lock:
            if _cap_depth == 0:
                soft, hard = resource.getrlimit(resource.RLIMIT_AS)
                cap = vm + extra_mb * 1024 * 1024
                if soft != resource.RLIM_INFINITY:
                    cap = min(cap, soft)
                if hard != resource.RLIM_INFINITY:
                    cap = min(cap, hard)
                _cap_saved = (soft, hard)
                _cap_depth, entered = 1, True  # first: undone below even if setrlimit fails or a ^C follows it
                resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
            else:
                _cap_depth += 1
                entered = True
        yield True
    finally:

        def undo() -> None:
            global _cap_depth, _cap_saved
            nonlocal entered
            if not entered:
                return
            with _cap_lock:
                if _cap_depth == 1 and _cap_saved is not None:  # the last block: the limit from before
                    resource.setrlimit(resource.RLIMIT_AS, _cap_saved)
                    _cap_saved = None
                _cap_depth -= 1
                entered = False

        _settle(undo)
