"""Find everything a loader could unpickle in an adapter folder and judge every global it names.

Every regular file in the folder, at any depth, hidden folders included, is classified by CONTENT:
pickles of every protocol (0 and 1 included, whatever the file is named), torch zips (member by
member, bad CRCs and decoy members included) and legacy torch files, NumPy ``.npy`` with object
arrays, joblib files (plain and compressed), gzip/bz2/xz/zlib wrappers, zip and tar archives, nested
within bounds. Each pickle of a multi-pickle stream is walked by loravet's symbolic reader
(loravet.adapter.pickle_vm) with a fresh memo, as repeated real ``load()`` calls would; nothing is
imported or executed. Globals are judged by loravet.adapter.pickle_policy.

No silent cap: when a bound is reached (files, folder depth, archive members or nesting, bytes, time),
the scan records what it did not read and the adapter gets a high ``scan-incomplete`` finding.
Inside a huggingface_hub cache (``snapshots/<rev>/file -> ../../blobs/<hash>``) symlinks into the same
repository's ``blobs/`` are followed; no other symlink is.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import stat
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from loravet.adapter.containers import (
    ContainerError,
    ContainerLimit,
    ContainerUnsupported,
    compression_of,
    decompress_bounded,
)
from loravet.adapter.hubcache import hub_blob_target
from loravet.adapter.pickle_policy import judge_global
from loravet.findings import Severity, make_finding
from loravet.results import AdapterReport

if TYPE_CHECKING:
    from loravet.adapter.pickle_vm import GlobalUse

__all__ = [
    "PickleScan",
    "ScanLimits",
    "hub_blob_target",
    "looks_like_pickle",
    "pickle_findings",
    "scan_bytes",
    "scan_file",
    "scan_folder",
]

_PICKLE_EXT = (
    ".pkl",
    ".pickle",
    ".joblib",
    ".dat",
    ".data",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".pkl.gz",
    ".pkl.bz2",
    ".pkl.xz",
    ".p",
    ".sav",
)
_NUMPY_MAGIC = b"\x93NUMPY"
Data = bytes | memoryview
"""file contents: bytes, or a memoryview of a memory-mapped file (never read whole into memory)"""
# first bytes of a pickle without a PROTO opcode (protocols 0 and 1): the opcodes a stream can start with
_P0_START = frozenset(b"(FIJKLMNPSTUVX]cdilo}GBC)\x8c\x8d\x8e\x8f\x88\x89\x8a\x8b\x82\x83\x84\x95")


@dataclass(frozen=True)
class ScanLimits:
    max_files: int = 20_000
    max_dir_depth: int = 32
    max_members: int = 200_000
    max_nesting: int = 4
    max_file_bytes: int = 8 * 1024**3
    max_decompressed: int = 2 * 1024**3
    max_member_bytes: int = 2 * 1024**3
    trial_bytes: int = 64 * 1024 * 1024
    max_seconds: float = 300.0


DEFAULT_LIMITS = ScanLimits()


@dataclass
class PickleScan:
    file: str
    context: str | None = None
    globals: list[tuple[str, str, str]] = field(default_factory=list)
    """(module, name, verdict) with verdict allowed | dangerous | unknown"""
    errors: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    """what a bound stopped the scan from reading"""
    pickles: int = 0
    kinds: list[str] = field(default_factory=list)
    uses: list[dict[str, object]] = field(default_factory=list)
    """every non-allowed global with where it is (member, opcode, offset)"""

    @property
    def worst(self) -> str:
        verdicts = {v for _, _, v in self.globals}
        return "dangerous" if "dangerous" in verdicts else "unknown" if "unknown" in verdicts else "allowed"

    def kind(self, k: str) -> None:
        if k not in self.kinds:
            self.kinds.append(k)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() > self.end


def _judge(scan: PickleScan, uses: list[GlobalUse], label: str) -> None:
    for use in uses:
        verdict = judge_global(use.module, use.name, scan.context)
        entry = (use.module, use.name, verdict)
        if entry not in scan.globals:
            scan.globals.append(entry)
        if verdict != "allowed" and len(scan.uses) < 50:
            scan.uses.append(
                {
                    "where": label,
                    "global": f"{use.module}.{use.name}",
                    "opcode": use.opcode,
                    "offset": use.offset,
                    "verdict": verdict,
                }
            )


def _scan_pickle_stream(data: Data, label: str, scan: PickleScan, certain: bool) -> bool:
    """Walk every pickle of the stream with a fresh memo each. Returns whether the data is a pickle:
    it parses to a STOP, or a real load would have resolved a global and called something before
    failing; `certain` (a pickle by name or header) reports any failure."""
    # lazy (cold start, #12): the symbolic reader and its tables load only when a file looks like a pickle;
    # a check of safetensors adapters never pays for them
    from loravet.adapter.pickle_vm import LEGACY_TORCH_MAGIC, PickleFormatError, PickleLimitError, read_pickle

    pos = 0
    count = 0
    legacy = False
    n = len(data)
    while pos < n:
        try:
            result = read_pickle(data, pos)
        except PickleLimitError as exc:
            _judge(scan, exc.globals, label)
            scan.incomplete.append(f"{label}: pickle {count + 1} not read to its end ({exc})")
            scan.pickles += 1
            return True
        except PickleFormatError as exc:
            if count == 0 and not certain and not (exc.globals and exc.calls):
                return False
            if count > 0 and exc.offset == pos and not exc.globals:
                scan.kind("trailing-data")  # bytes after the last pickle that are not one: nothing runs
                return True
            _judge(scan, exc.globals, label)
            scan.errors.append(
                f"{label}: cannot be parsed as a pickle ({str(exc)[:120]})"
                + ("; the globals before the error are judged" if exc.globals else "")
            )
            scan.pickles += 1
            return True
        count += 1
        scan.pickles += 1
        _judge(scan, result.globals, label)
        if count == 1 and result.value == LEGACY_TORCH_MAGIC and type(result.value) is int:
            legacy = True
            scan.kind("torch-legacy")
        if legacy and count == 5:
            return True  # then raw storage bytes, which torch.load reads as data, never unpickles
        pos = result.end
    return True


def _looks_like_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and head[1] <= 5


def _scan_numpy(data: Data, label: str, scan: PickleScan) -> None:
    import numpy as np

    buf = io.BytesIO(bytes(data[:200_000]))
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(buf, max_header_size=100_000)
        else:
            _, _, dtype = np.lib.format.read_array_header_2_0(buf, max_header_size=100_000)
    except Exception as exc:  # numpy raises ValueError/SyntaxError on hostile headers
        scan.errors.append(f"{label}: unreadable .npy header ({str(exc)[:80]})")
        return
    scan.kind("npy")
    if dtype.hasobject:
        _scan_pickle_stream(data[buf.tell() :], label, scan, certain=True)


def _read_member(zf: zipfile.ZipFile, source: IO[bytes], info: zipfile.ZipInfo, cap: int) -> bytes:
    """A member's bytes as a lenient loader gets them: CRC not enforced, the local header's name
    ignored (torch's reader goes by the central directory)."""
    try:
        with zf.open(info) as fh:
            setattr(fh, "_expected_crc", None)  # noqa: B010 - torch.load does not check CRCs either
            out = fh.read(cap + 1)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError, zlib.error, ValueError):
        out = _read_member_raw(source, info, cap)
    if len(out) > cap:
        raise ContainerLimit(f"member {info.filename} is over {cap:,} bytes")
    return out


def _read_member_raw(source: IO[bytes], info: zipfile.ZipInfo, cap: int) -> bytes:
    source.seek(info.header_offset)
    header = source.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise ContainerError(f"member {info.filename}: no local header")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    source.seek(info.header_offset + 30 + name_len + extra_len)
    raw = source.read(min(info.compress_size, cap + 1))
    if info.compress_type == zipfile.ZIP_STORED:
        return raw
    if info.compress_type == zipfile.ZIP_DEFLATED:
        try:
            return zlib.decompressobj(-15).decompress(raw, cap + 1)
        except zlib.error as exc:
            raise ContainerError(f"member {info.filename}: corrupt deflate data ({exc})") from None
    raise ContainerError(f"member {info.filename}: compression method {info.compress_type} not read")


def _is_storage(name: str) -> bool:
    """torch zip storage members (`<archive>/data/<key>`): raw tensor bytes torch.load never unpickles."""
    parts = name.rsplit("/", 2)
    return len(parts) == 3 and parts[1] == "data" and parts[2].isdigit()


def _scan_zip(
    source: IO[bytes], label: str, scan: PickleScan, depth: int, limits: ScanLimits, deadline: _Deadline
) -> None:
    if depth > limits.max_nesting:
        scan.incomplete.append(f"{label}: archive nested more than {limits.max_nesting} levels deep, not opened")
        return
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, ValueError, NotImplementedError) as exc:
        scan.errors.append(f"{label}: corrupt archive ({str(exc)[:100]})")
        return
    with zf:
        infos = zf.infolist()
        if any(i.filename.endswith("data.pkl") for i in infos):
            scan.kind("torch-zip")
        else:
            scan.kind("zip")
        if len(infos) > limits.max_members:
            scan.incomplete.append(
                f"{label}: {len(infos):,} members, only the first {limits.max_members:,} (and every *.pkl) read"
            )
            infos = infos[: limits.max_members] + [
                i for i in infos[limits.max_members :] if i.filename.endswith(".pkl")
            ]
        for info in infos:
            if info.is_dir() or _is_storage(info.filename):
                continue
            member = f"{label}:{info.filename}"
            if deadline.passed():
                scan.incomplete.append(f"{member} and the members after it: time budget spent, not read")
                return
            if info.flag_bits & 0x1:
                scan.incomplete.append(f"{member}: encrypted member, not read")
                continue
            try:
                data = _read_member(zf, source, info, limits.max_member_bytes)
            except ContainerLimit as exc:
                scan.incomplete.append(f"{member}: {exc}, not read")
                continue
            except ContainerError as exc:
                scan.errors.append(f"{member}: {exc}")
                continue
            by_name = info.filename.lower().endswith(_PICKLE_EXT) or info.filename.endswith("data.pkl")
            _scan_bytes(data, member, scan, depth + 1, limits, deadline, certain=by_name)


def _scan_tar(data: Data, label: str, scan: PickleScan, depth: int, limits: ScanLimits, deadline: _Deadline) -> None:
    if depth > limits.max_nesting:
        scan.incomplete.append(f"{label}: archive nested more than {limits.max_nesting} levels deep, not opened")
        return
    scan.kind("tar")
    import tarfile  # only for a tar archive in the folder: most adapters have none, and every check starts cold

    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            count = 0
            for member in tf:
                count += 1
                if count > limits.max_members:
                    scan.incomplete.append(f"{label}: over {limits.max_members:,} members, the rest not read")
                    return
                if not member.isfile():
                    continue
                if member.size > limits.max_member_bytes:
                    scan.incomplete.append(f"{label}:{member.name}: {member.size:,} bytes, not read")
                    continue
                fh = tf.extractfile(member)
                if fh is not None:
                    _scan_bytes(
                        fh.read(),
                        f"{label}:{member.name}",
                        scan,
                        depth + 1,
                        limits,
                        deadline,
                        certain=member.name.lower().endswith(_PICKLE_EXT),
                    )
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        scan.errors.append(f"{label}: corrupt tar ({str(exc)[:100]})")


def _scan_bytes(
    data: Data, label: str, scan: PickleScan, depth: int, limits: ScanLimits, deadline: _Deadline, certain: bool
) -> bool:
    """Classify by content and scan. Returns whether anything pickle-bearing was found."""
    head = bytes(data[:16])
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        _scan_zip(io.BytesIO(data), label, scan, depth, limits, deadline)
        return True
    if head.startswith(_NUMPY_MAGIC):
        _scan_numpy(data, label, scan)
        return True
    kind = compression_of(head)
    if kind is not None:
        found = _scan_compressed(data, kind, label, scan, depth, limits, deadline, certain)
        if found is not None:
            return found
    return _scan_uncompressed(data, head, label, scan, depth, limits, deadline, certain)


def _scan_compressed(
    data: Data,
    kind: str,
    label: str,
    scan: PickleScan,
    depth: int,
    limits: ScanLimits,
    deadline: _Deadline,
    certain: bool,
) -> bool | None:
    """Decompress (bounded) and scan what is inside. None when the bytes only looked compressed (a text file
    starting with "x" is not a zlib stream): the caller goes on classifying them."""
    if depth > limits.max_nesting:
        scan.incomplete.append(f"{label}: compressed more than {limits.max_nesting} levels deep, not opened")
        return True
    try:
        inner = decompress_bounded(bytes(data), limits.max_decompressed)
    except (ContainerLimit, ContainerUnsupported) as exc:
        scan.incomplete.append(f"{label}: {exc}")
        return True
    except ContainerError as exc:
        if kind == "zlib" and not certain:
            return None  # a text file starting with "x" is not a zlib stream
        scan.errors.append(f"{label}: {exc}")
        return True
    scan.kind(kind)
    return _scan_bytes(inner, f"{label}({kind})", scan, depth + 1, limits, deadline, certain=True)


def _scan_uncompressed(
    data: Data,
    head: bytes,
    label: str,
    scan: PickleScan,
    depth: int,
    limits: ScanLimits,
    deadline: _Deadline,
    certain: bool,
) -> bool:
    """A tar, a pickle, or something a loader would only treat as a pickle because of its name."""
    if len(data) > 262 and data[257:262] == b"ustar":
        _scan_tar(data, label, scan, depth, limits, deadline)
        return True
    if _looks_like_pickle(head):
        scan.kind("pickle")
        return _scan_pickle_stream(data, label, scan, certain=True)
    if head[:1] and head[0] in _P0_START:
        window = data if len(data) <= limits.trial_bytes or certain else data[: limits.trial_bytes]
        found = _scan_pickle_stream(window, label, scan, certain=certain)
        if found:
            scan.kind("pickle-protocol-0/1")
            if len(window) < len(data) and any(f"at byte {len(window)}" in e for e in scan.errors):
                scan.incomplete.append(f"{label}: only the first {len(window):,} bytes read as a pickle")
        return found
    if certain:
        scan.errors.append(
            f"{label}: named like a pickle but is not one (first byte 0x{head[0]:02x})"
            if head
            else f"{label}: empty file"
        )
        return True
    return False


def scan_file(
    path: Path, label: str | None = None, limits: ScanLimits = DEFAULT_LIMITS, deadline: _Deadline | None = None
) -> PickleScan | None:
    """Scan one regular file; None when nothing in it can be unpickled by a loader."""
    label = label or path.name
    deadline = deadline or _Deadline(limits.max_seconds)
    scan = PickleScan(label, context="training_args" if path.name == "training_args.bin" else None)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            return None
        size = st.st_size
        if size > limits.max_file_bytes:
            scan.incomplete.append(f"{label}: {size:,} bytes, over the {limits.max_file_bytes:,}-byte limit: not read")
            return scan
        with path.open("rb") as fh:
            head = fh.read(16)
            certain = path.name.lower().endswith(_PICKLE_EXT) and not path.name.endswith(".safetensors")
            if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
                fh.seek(0)
                _scan_zip(fh, label, scan, 0, limits, deadline)
                return scan
            if size > 22 and zipfile.is_zipfile(fh):
                # a zip after other bytes: torch.load opens the zip, pickle.load the front; both are scanned
                fh.seek(0)
                appended = PickleScan(label, context=scan.context)
                _scan_zip(fh, label, appended, 0, limits, deadline)
                if not appended.errors:  # (a stray end-of-archive signature in binary data is no zip)
                    scan = appended
            fh.seek(0)
            if not size:
                if not certain:
                    return None
                scan.errors.append(f"{label}: empty file")
                return scan
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        return PickleScan(label, errors=[f"{label}: cannot be read ({getattr(exc, 'strerror', None) or exc})"])
    view = memoryview(mapped)
    try:
        found = _scan_bytes(view, label, scan, 0, limits, deadline, certain=certain)
    finally:
        with contextlib.suppress(BufferError):  # a view still alive: the map closes when it is collected
            view.release()
            mapped.close()
    return scan if found or scan.errors or scan.incomplete else None


def _link_target(p: Path, rel: str, root: Path, incomplete: list[str]) -> Path | None:
    """What a symbolic link in the folder is scanned as: the blob of a hub cache snapshot, else nothing (a link
    inside the folder is scanned where it lives; one leaving it is recorded in `incomplete`, never followed)."""
    blob = hub_blob_target(p)
    if blob is not None:
        return blob
    try:
        resolved = p.resolve(strict=True)
    except (OSError, RuntimeError):
        return None  # dangling or looping: nothing a loader can open
    if resolved == root or root in resolved.parents:
        return None  # inside the folder: scanned where it lives
    incomplete.append(f"{rel}: symbolic link to {resolved} outside the adapter folder, not followed")
    return None


def _listing(current: Path, folder: Path, incomplete: list[str]) -> list[os.DirEntry[str]]:
    """The entries of one folder by name; none (recorded in `incomplete`) when it cannot be listed."""
    try:
        return sorted(os.scandir(current), key=lambda e: e.name)
    except OSError as exc:
        incomplete.append(
            f"{current.relative_to(folder) if current != folder else '.'}: cannot be listed ({exc.strerror or exc})"
        )
        return []


def _stop_reason(files: int, limits: ScanLimits, deadline: _Deadline) -> str | None:
    """Why the walk stops before the file it just counted, if it does."""
    if files > limits.max_files:
        return f"over {limits.max_files:,} files"
    if deadline.passed():
        return f"time budget of {limits.max_seconds:.0f} s spent"
    return None


def scan_folder(folder: Path, limits: ScanLimits = DEFAULT_LIMITS) -> tuple[list[PickleScan], list[str]]:
    """Every file under `folder`, hidden folders included. Returns the scans of pickle-bearing files
    and what a bound or a refused symlink kept from being read."""
    out: list[PickleScan] = []
    incomplete: list[str] = []
    root = folder.resolve()
    deadline = _Deadline(limits.max_seconds)
    stack: list[tuple[Path, int]] = [(folder, 0)]
    files = 0
    while stack:
        current, depth = stack.pop()
        for entry in _listing(current, folder, incomplete):
            p = Path(entry.path)
            rel = str(p.relative_to(folder))
            target = p
            if entry.is_symlink():
                followed = _link_target(p, rel, root, incomplete)
                if followed is None:
                    continue
                target = followed
            try:
                st = target.stat()
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if target is not p:
                    continue
                if depth + 1 > limits.max_dir_depth:
                    incomplete.append(f"{rel}/: folders deeper than {limits.max_dir_depth} levels, not read")
                    continue
                stack.append((p, depth + 1))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # FIFOs, devices, sockets: never opened
            files += 1
            stop = _stop_reason(files, limits, deadline)
            if stop is not None:
                incomplete.append(f"{rel} and every file after it: {stop}, not read")
                return out, incomplete
            result = scan_file(target, rel, limits, deadline)
            if result is not None:
                out.append(result)
    return out, incomplete


def pickle_findings(report: AdapterReport, folder: Path) -> list[PickleScan]:
    scans, folder_incomplete = scan_folder(folder)
    bad = [s for s in scans if s.worst != "allowed"]
    report.extra["pickles_scanned"] = [
        {
            "file": s.file,
            "pickles": s.pickles,
            "verdict": s.worst,
            "content": s.kinds or None,
            "errors": s.errors or None,
            "incomplete": s.incomplete or None,
        }
        for s in scans
    ]
    if bad:
        dangerous = [s for s in bad if s.worst == "dangerous"]
        sev = Severity.CRITICAL if dangerous else Severity.HIGH
        first = (dangerous or bad)[0]
        flagged = [f"{m}.{n}" for m, n, v in first.globals if v != "allowed"]
        report.add(
            make_finding(
                "unsafe-pickle",
                f"{first.file} imports {', '.join(flagged[:3])}"
                + (" (known code execution)" if dangerous else " (not on the allow-list)")
                + ": never opened",
                severity=sev,
                files=[
                    {
                        "file": s.file,
                        "verdict": s.worst,
                        "content": s.kinds,
                        "globals": [f"{m}.{n}" for m, n, v in s.globals if v != "allowed"],
                        "where": s.uses[:10],
                    }
                    for s in bad
                ],
            )
        )
    not_read = folder_incomplete + [x for s in scans for x in s.incomplete]
    if not_read:
        report.add(
            make_finding(
                "scan-incomplete",
                f"the pickle scan stopped at a bound: {not_read[0]}"
                + (f" (and {len(not_read) - 1} more)" if len(not_read) > 1 else ""),
                not_read=not_read[:50],
            )
        )
    unparsable = [s for s in scans if s.errors]
    if unparsable:
        report.add(
            make_finding(
                "unreadable-file",
                f"{unparsable[0].errors[0]}",
                files=[{"file": s.file, "errors": s.errors[:3]} for s in unparsable],
            )
        )
    return scans


def looks_like_pickle(head: bytes) -> bool:
    """Whether the first bytes of a file or member open a protocol 2+ pickle."""
    return _looks_like_pickle(head)


def scan_bytes(
    data: bytes, label: str, scan: PickleScan, *, certain: bool, limits: ScanLimits = DEFAULT_LIMITS
) -> bool:
    """Scan bytes read elsewhere (a member of a hub file, fetched by range) into `scan`, as a member of an
    archive is scanned. Returns whether anything pickle-bearing was found."""
    return _scan_bytes(data, label, scan, 1, limits, _Deadline(limits.max_seconds), certain=certain)
