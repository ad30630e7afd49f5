"""Find every pickle in an adapter folder, by content as well as by name, and judge the globals it
imports against loravet's default-deny policy (loravet.adapter.pickle_policy).

Opcode analysis is picklescan's (it never executes anything); what is allowed is ours. A file that
cannot be parsed is reported, never skipped silently.
"""

from __future__ import annotations

import io
import logging
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from loravet.adapter.pickle_policy import judge_global
from loravet.findings import Severity, make_finding
from loravet.report import AdapterReport

__all__ = ["PickleScan", "pickle_findings", "scan_file", "scan_folder"]

_PICKLE_EXT = {".pkl", ".pickle", ".joblib", ".dat", ".data", ".bin", ".pt", ".pth", ".ckpt"}
_ARCHIVE_EXT = {".zip", ".npz", ".tar"}
_NUMPY_MAGIC = b"\x93NUMPY"
MAX_SCAN_BYTES = 4 * 1024**3
MAX_DEPTH = 3


@dataclass
class PickleScan:
    file: str
    context: str | None = None
    globals: list[tuple[str, str, str]] = field(default_factory=list)
    """(module, name, verdict) with verdict allowed | dangerous | unknown"""
    errors: list[str] = field(default_factory=list)
    pickles: int = 0

    @property
    def worst(self) -> str:
        verdicts = {v for _, _, v in self.globals}
        return "dangerous" if "dangerous" in verdicts else "unknown" if "unknown" in verdicts else "allowed"


def _judge(scan: PickleScan, module: str, name: str) -> None:
    # "unknown": picklescan could not resolve a memoised STACK_GLOBAL, a known evasion
    verdict = "dangerous" if "unknown" in (module, name) else judge_global(module, name, scan.context)
    entry = (module, name, verdict)
    if entry not in scan.globals:
        scan.globals.append(entry)


def _scan_pickle_stream(data: IO[bytes], label: str, scan: PickleScan) -> None:
    """picklescan's opcode walk lists the globals (memo-resolved STACK_GLOBALs included); a stream it
    cannot walk to the end is an error here, never "no globals, so fine"."""
    from picklescan import scanner

    logging.getLogger("picklescan").setLevel(logging.CRITICAL)
    try:
        found = scanner._list_globals(data, multiple_pickles=True)
    except scanner.GenOpsError as exc:
        scan.errors.append(f"{label}: cannot be parsed as a pickle ({str(exc)[:100]})"
                           + ("; the globals before the error are judged" if exc.globals else ""))
        found = exc.globals or set()
    except Exception as exc:  # e.g. ValueError on a malformed STACK_GLOBAL
        scan.errors.append(f"{label}: cannot be parsed as a pickle ({type(exc).__name__}: {str(exc)[:100]})")
        found = {("unknown", "unknown")}
    scan.pickles += 1
    for module, name in sorted(found):
        _judge(scan, module, name)


def _looks_like_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and head[1] <= 5


def _scan_numpy(data: bytes, label: str, scan: PickleScan) -> None:
    import numpy as np

    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(buf)
        else:
            _, _, dtype = np.lib.format.read_array_header_2_0(buf)
    except Exception as exc:
        scan.errors.append(f"{label}: unreadable .npy header ({str(exc)[:80]})")
        return
    if dtype.hasobject:
        _scan_pickle_stream(buf, label, scan)


def _scan_zip(source: IO[bytes], label: str, scan: PickleScan, depth: int) -> None:
    """Open only the members that can hold a pickle (by name, or by their first bytes)."""
    if depth >= MAX_DEPTH:
        scan.errors.append(f"{label}: archives nested deeper than {MAX_DEPTH} levels are not opened")
        return
    try:
        with zipfile.ZipFile(source) as zf:
            for info in zf.infolist()[:10_000]:
                if info.is_dir():
                    continue
                name = info.filename.lower()
                with zf.open(info) as fh:
                    head = fh.read(8)
                candidate = (_looks_like_pickle(head) or name.endswith(tuple(_PICKLE_EXT))
                             or head.startswith((b"PK", _NUMPY_MAGIC)) or name.endswith((".npy", ".zip", ".npz")))
                if not candidate:
                    continue
                if info.file_size > MAX_SCAN_BYTES:
                    scan.errors.append(f"{label}:{info.filename}: too large to scan")
                    continue
                _scan_bytes(zf.read(info), f"{label}:{info.filename}", scan, depth + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, ValueError) as exc:
        scan.errors.append(f"{label}: corrupt archive ({str(exc)[:100]})")


def _scan_bytes(data: bytes, label: str, scan: PickleScan, depth: int) -> None:
    head = data[:8]
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        _scan_zip(io.BytesIO(data), label, scan, depth)
        return
    if head.startswith(_NUMPY_MAGIC):
        _scan_numpy(data, label, scan)
        return
    if len(data) > 262 and data[257:262] == b"ustar":
        if depth >= MAX_DEPTH:
            return
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                for tar_member in tf.getmembers()[:10_000]:
                    if not tar_member.isfile():
                        continue
                    fh = tf.extractfile(tar_member)
                    if fh is not None:
                        _scan_bytes(fh.read(), f"{label}:{tar_member.name}", scan, depth + 1)
        except (tarfile.TarError, OSError, EOFError) as exc:
            scan.errors.append(f"{label}: corrupt tar ({str(exc)[:100]})")
        return
    _scan_pickle_stream(io.BytesIO(data), label, scan)


def scan_file(path: Path, label: str | None = None) -> PickleScan | None:
    """Scan one file if it is (or holds) a pickle; None when it is clearly not pickle-bearing."""
    label = label or path.name
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        return PickleScan(label, errors=[f"{label}: cannot be read ({exc.strerror or exc})"])
    ext = path.suffix.lower()
    is_candidate = (ext in _PICKLE_EXT or ext in _ARCHIVE_EXT or ext == ".npy" or _looks_like_pickle(head)
                    or head.startswith((b"PK\x03\x04", _NUMPY_MAGIC)) or head[257:262] == b"ustar")
    if not is_candidate or path.name.endswith(".safetensors"):
        return None
    scan = PickleScan(label, context="training_args" if path.name == "training_args.bin" else None)
    if size > MAX_SCAN_BYTES:
        scan.errors.append(f"{label}: {size:,} bytes, too large to scan: not opened")
        return scan
    if size == 0:
        scan.errors.append(f"{label}: empty file")
        return scan
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        with path.open("rb") as fh:  # a torch zip: read only its pickle members, not its tensor data
            _scan_zip(fh, label, scan, 0)
        return scan
    _scan_bytes(path.read_bytes(), label, scan, 0)
    return scan


def scan_folder(folder: Path, max_files: int = 2000) -> list[PickleScan]:
    out: list[PickleScan] = []
    root = folder.resolve()
    stack = [(folder, 0)]
    seen = 0
    while stack:
        current, depth = stack.pop()
        try:
            entries = sorted(current.iterdir())
        except OSError:
            continue
        for p in entries:
            if p.is_symlink():
                target = p.resolve()
                if root not in target.parents and target != root:
                    continue  # links out of the adapter folder are not followed
            if p.is_dir():
                if depth < 4 and not p.name.startswith("."):
                    stack.append((p, depth + 1))
                continue
            seen += 1
            if seen > max_files:
                return out
            result = scan_file(p, str(p.relative_to(folder)))
            if result is not None:
                out.append(result)
    return out


def pickle_findings(report: AdapterReport, folder: Path) -> list[PickleScan]:
    scans = scan_folder(folder)
    bad = [s for s in scans if s.worst != "allowed"]
    report.extra["pickles_scanned"] = [{"file": s.file, "pickles": s.pickles, "verdict": s.worst,
                                        "errors": s.errors or None} for s in scans]
    if bad:
        dangerous = [s for s in bad if s.worst == "dangerous"]
        sev = Severity.CRITICAL if dangerous else Severity.HIGH
        first = (dangerous or bad)[0]
        flagged = [f"{m}.{n}" for m, n, v in first.globals if v != "allowed"]
        report.add(make_finding(
            "unsafe-pickle",
            f"{first.file} imports {', '.join(flagged[:3])}"
            + (" (known code execution)" if dangerous else " (not on the allow-list)") + ": never opened",
            severity=sev, files=[{"file": s.file, "verdict": s.worst,
                                  "globals": [f"{m}.{n}" for m, n, v in s.globals if v != "allowed"]} for s in bad]))
    unparsable = [s for s in scans if s.errors]
    if unparsable:
        report.add(make_finding("unreadable-file", f"{unparsable[0].errors[0]}",
                                files=[{"file": s.file, "errors": s.errors[:3]} for s in unparsable]))
    return scans
