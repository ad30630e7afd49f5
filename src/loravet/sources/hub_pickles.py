"""Pickle-bearing zips on the hub (optimizer.pt, a large .bin) read by range: the central directory and
the pickle members only, scanned like a local file's, never loaded; for the adapter's own torch zip, its
names and shapes from those same ranges."""

from __future__ import annotations

import base64
import re
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from loravet.adapter.tensors import WeightFile
from loravet.adapter.torch_file import TorchFileError, UnsafeTorchFile, read_torch_file
from loravet.checks.pickles import PickleScan, looks_like_pickle, scan_bytes
from loravet.findings import make_finding
from loravet.sources.hub_fetch import FetchStats, RangeFile
from loravet.sources.weights import TORCH_BIN, FindingSink

__all__ = ["PICKLE_EXT", "scan_remote_zip", "torch_header_only"]

PICKLE_EXT = (".pkl", ".pickle", ".joblib", ".bin", ".pt", ".pth", ".ckpt", ".dat", ".data")
_STORAGE = re.compile(r"(^|/)data/\d+$")  # a torch zip's raw tensor storages: never unpickled by torch


def _wanted(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """A member the scan reads: named like a pickle, or opening like one (judged by content, as locally)."""
    name = info.filename.lower()
    if info.is_dir() or _STORAGE.search(name):
        return False
    if name.endswith(PICKLE_EXT):
        return True
    with zf.open(info) as member:
        head = member.read(8)
    return looks_like_pickle(head) or head.startswith((b"PK", b"\x93NUMPY")) or name.endswith((".npy", ".zip", ".npz"))


def scan_remote_zip(
    repo: str, commit: str, filename: str, size: int, member_cap: int, stats: FetchStats
) -> dict[str, Any]:
    """Central directory and pickle members of a hub zip by range reads, judged like a local file."""
    scan = PickleScan(filename, context="training_args" if filename.endswith("training_args.bin") else None)
    ranged = RangeFile(repo, commit, filename, size, stats)
    try:
        with zipfile.ZipFile(ranged) as zf:  # type: ignore[arg-type]
            for info in zf.infolist()[:10_000]:
                if not _wanted(zf, info):
                    continue
                if info.file_size > member_cap:
                    scan.errors.append(f"{filename}:{info.filename}: too large to scan")
                    continue
                scan_bytes(
                    zf.read(info),
                    f"{filename}:{info.filename}",
                    scan,
                    certain=info.filename.lower().endswith(PICKLE_EXT),
                )
    except zipfile.BadZipFile:
        scan.errors.append(
            f"{filename}: {size:,} bytes, over the fetch caps and not a zip archive: a raw pickle "
            "this large is not scanned by range reads (download it and check the folder)"
        )
    except (OSError, EOFError, ValueError) as exc:
        scan.errors.append(f"{filename}: corrupt archive ({str(exc)[:100]})")
    out: dict[str, Any] = {
        "file": filename,
        "pickles": scan.pickles,
        "verdict": scan.worst,
        "errors": scan.errors or None,
        "globals": [f"{m}.{n}" for m, n, v in scan.globals if v != "allowed"],
    }
    if PurePosixPath(filename).name == TORCH_BIN and scan.worst == "allowed" and not scan.errors:
        # the adapter's torch zip: its central directory and data.pkl are enough for names and shapes
        out["size"] = size
        out["chunks"] = [[start, base64.b64encode(data).decode()] for start, data in ranged.chunks]
    return out


def torch_header_only(scan: dict[str, Any], path: Path, report: FindingSink) -> WeightFile | None:
    """Names and shapes of a hub torch zip from the ranges a pickle scan read (central directory and
    data.pkl), through loravet's own reader on a sparse local copy; values stay unread (reader None)."""
    with tempfile.TemporaryDirectory(prefix="loravet-bin-") as tmp:
        sparse = Path(tmp) / TORCH_BIN
        with sparse.open("wb") as fh:
            fh.truncate(int(scan["size"]))
            for start, data in scan["chunks"]:
                fh.seek(int(start))
                fh.write(base64.b64decode(data))
        try:
            weights = read_torch_file(sparse)
        except (UnsafeTorchFile, TorchFileError) as exc:
            report.add(make_finding("unreadable-file", str(exc).replace(str(sparse), TORCH_BIN), file=TORCH_BIN))
            return None
    weights.path, weights.reader, weights.bulk_reader = str(path), None, None
    return weights
