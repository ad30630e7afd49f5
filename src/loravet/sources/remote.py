"""`hf:` adapters and bases fetched header-only through huggingface_hub.

What is fetched, and how:
- the repository's file list and commit (model info, one API call);
- small files (adapter_config.json, config.json, README.md, trainer_state.json, ...) and training artifacts
  under size caps, with `hf_hub_download` at the commit, so they land in the huggingface_hub cache and a
  second run finds them there without a download;
- the adapter's weight file: by default its header alone, by HTTP range (a static check fetches no tensor
  data); in full only when the user sets LORAVET_HUB_VALUES_CAP (bytes) and the file is under it, so that
  the zero/NaN checks can read its values;
- a base's safetensors headers by HTTP range (never its tensor data);
- a pickle-bearing zip over the caps (optimizer.pt, a large .bin): its central directory and pickle
  members by range reads, scanned, never loaded.
Headers and file lists are kept beside the cache ($HF_HOME/loravet/remote/...), keyed by commit, so that
HF_HUB_OFFLINE=1 works from what an earlier run fetched. Every failure is one line (SourceError).
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from loravet.errors import SourceError

if TYPE_CHECKING:
    from loravet.adapter.tensors import TensorInfo, WeightFile
    from loravet.results import AdapterReport

__all__ = ["FetchStats", "RemoteAdapter", "fetch_adapter", "fetch_base", "hub_error_line", "offline",
           "parse_hub_spec"]

MiB = 1 << 20
SMALL_EXT = (".json", ".md", ".txt", ".yaml", ".yml", ".log", ".jinja", ".model", ".tiktoken")
ARTIFACT_EXT = (".pkl", ".pickle", ".csv", ".tsv", ".parquet", ".jsonl", ".joblib")
PICKLE_EXT = (".pkl", ".pickle", ".joblib", ".bin", ".pt", ".pth", ".ckpt", ".dat", ".data")
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
FIRST_RANGE = 100_000  # one request holds most safetensors headers whole


def _cap(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def caps() -> dict[str, int]:
    return {"small": _cap("LORAVET_HUB_SMALL_CAP", 8 * MiB), "artifact": _cap("LORAVET_HUB_ARTIFACT_CAP", 32 * MiB),
            "values": _cap("LORAVET_HUB_VALUES_CAP", 0), "other": _cap("LORAVET_HUB_OTHER_CAP", 1 * MiB)}


def _timeout() -> float:
    try:
        return float(os.environ.get("LORAVET_HUB_TIMEOUT", "20"))
    except ValueError:
        return 20.0


def offline() -> bool:
    """HF_HUB_OFFLINE, read now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _side_dir() -> Path:
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home) / "loravet" / "remote"
    return _cache_dir().parent / "loravet" / "remote"


def parse_hub_spec(spec: str) -> tuple[str, str | None]:
    text = spec[3:] if spec.startswith("hf:") else spec
    revision = None
    if "@" in text:
        text, revision = text.split("@", 1)
    if text.count("/") != 1 or not all(text.split("/")) or revision == "":
        raise SourceError(f"{spec}: a hub id is written hf:OWNER/NAME[@REVISION]")
    return text, revision


def hub_error_line(spec: str, exc: BaseException, revision: str | None = None) -> str:
    """One line for whatever huggingface_hub or the network raised."""
    from huggingface_hub import errors as hf_errors

    name = type(exc).__name__
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, hf_errors.GatedRepoError):
        return f"{spec}: gated repository: accept its conditions on the hub and set HF_TOKEN (HTTP {status})"
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return f"{spec}: revision {revision or 'main'!r} does not exist on the hub"
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return (f"{spec}: not found on the hub, or private/gated and HF_TOKEN is missing or lacks access "
                f"(HTTP {status})")
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return f"{spec}: not in the local huggingface_hub cache and HF_HUB_OFFLINE is set"
    if isinstance(exc, hf_errors.LocalEntryNotFoundError):
        return f"{spec}: not in the local huggingface_hub cache and the hub cannot be reached"
    if isinstance(exc, hf_errors.HfHubHTTPError) and status is not None:
        if status == 403:
            return f"{spec}: access denied by the hub (HTTP 403): check HF_TOKEN's permissions"
        if status == 404:
            return f"{spec}: a file the check needs is missing on the hub (HTTP 404)"
        return f"{spec}: the hub answered HTTP {status}"
    text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else name
    if "Timeout" in name or "timed out" in text.lower():
        return f"{spec}: the hub did not answer within {_timeout():g} s ({name}; LORAVET_HUB_TIMEOUT sets the limit)"
    if name in ("RemoteProtocolError", "ReadError", "IncompleteRead") or "consistency check" in text.lower() \
            or "incomplete" in text.lower() or "truncated" in text.lower():
        return f"{spec}: the hub's response was cut short ({name}): nothing partial is used"
    if name in ("ConnectError", "ConnectionError", "ProxyError", "NetworkError") or isinstance(exc, OSError):
        return f"{spec}: cannot reach {_endpoint()} ({name}: {text})"
    return f"{spec}: cannot be fetched ({name}: {text})"


@dataclass
class FetchStats:
    bytes: int = 0
    requests: int = 0
    downloaded: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"bytes": self.bytes, "requests": self.requests, "downloaded": self.downloaded,
                "cached": len(self.cached), "ranges": self.ranges}


@dataclass
class RemoteAdapter:
    """What loravet knows of an `hf:` adapter repository without its tensor data."""

    repo: str
    commit: str
    root: str  # folder inside the repo holding adapter_config.json ("" for the top)
    files: dict[str, int]  # every file under root -> size
    local: Path  # the snapshot folder (under root) where fetched files lie
    not_fetched: dict[str, int] = field(default_factory=dict)
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> {"size", "head" (b64)}
    pickle_scans: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> scan summary
    stats: FetchStats = field(default_factory=FetchStats)
    header_only: bool = False
    unjudged: str | None = None  # why the weights could not be judged at all

    # -- hooks the static pipeline calls -----------------------------------------------------
    def top_level_files(self) -> list[str]:
        return sorted({PurePosixPath(f).parts[0] for f in self.files})

    def load_weights(self, report: AdapterReport) -> WeightFile | None:
        """The weight file PEFT would load: the fetched file, or a header-only description of it."""
        from loravet.adapter.safetensors_file import SafetensorsError, parse_safetensors_header
        from loravet.adapter.tensors import WeightFile
        from loravet.checks.weights_file import load_weights
        from loravet.findings import make_finding

        st = WEIGHT_FILES[0]
        if st in self.headers:
            entry = self.headers[st]
            try:
                tensors, metadata, expected, _ = parse_safetensors_header(
                    base64.b64decode(entry["head"]), int(entry["size"]), st)
            except SafetensorsError as exc:
                report.add(make_finding("unreadable-file", str(exc), file=st))
                return None
            self.header_only = True
            return WeightFile(path=str(self.local / st), format="safetensors", size=int(entry["size"]),
                              tensors=tensors, expected_size=expected, metadata=metadata, reader=None)
        scanned_bin = self.pickle_scans.get(WEIGHT_FILES[1])
        if st not in self.files and scanned_bin is not None and scanned_bin.get("chunks"):
            weights = _torch_header_only(scanned_bin, self.local / WEIGHT_FILES[1], report)
            if weights is not None:
                self.header_only = True
                self.not_fetched.pop(WEIGHT_FILES[1], None)
            return weights
        if st not in self.files and WEIGHT_FILES[1] in self.not_fetched:
            self.unjudged = (f"{WEIGHT_FILES[1]} is {self.not_fetched[WEIGHT_FILES[1]]:,} bytes, over the fetch cap: "
                             "its tensors were not read")
            return None
        return load_weights(self.local, report)

    def weights_present(self) -> bool:
        return any(f in self.files for f in WEIGHT_FILES)

    def finish(self, report: AdapterReport) -> None:
        """After the checks: the repo's file list, the bytes fetched, and what header-only could not see."""
        from loravet.findings import make_finding

        report.extra["files"] = self.top_level_files()
        report.extra["fetched_bytes"] = self.stats.bytes
        report.extra["fetch"] = {"commit": self.commit, **self.stats.to_json()}
        bad = [s for s in self.pickle_scans.values() if s["verdict"] != "allowed"]
        if bad:
            from loravet.findings import Severity

            dangerous = [s for s in bad if s["verdict"] == "dangerous"]
            first = (dangerous or bad)[0]
            report.add(make_finding(
                "unsafe-pickle", f"{first['file']} imports {', '.join(first['globals'][:3])}"
                + (" (known code execution)" if dangerous else " (not on the allow-list)")
                + ": never opened (scanned on the hub by range reads)",
                severity=Severity.CRITICAL if dangerous else Severity.HIGH,
                files=[{"file": s["file"], "verdict": s["verdict"], "globals": s["globals"]} for s in bad]))
        broken = [s for s in self.pickle_scans.values() if s["errors"]]
        if broken:
            report.add(make_finding("unreadable-file", broken[0]["errors"][0],
                                    files=[{"file": s["file"], "errors": s["errors"][:3]} for s in broken]))
        if self.pickle_scans:
            report.extra["remote_pickles_scanned"] = [{k: v for k, v in scan.items() if k != "chunks"}
                                                      for scan in self.pickle_scans.values()]
        if self.not_fetched:
            scanned = [f for f in self.not_fetched if f in self.pickle_scans and not self.pickle_scans[f]["errors"]]
            report.add(make_finding(
                "remote-not-fetched", f"{len(self.not_fetched)} file(s) of the hub repository were not downloaded "
                f"(over the fetch caps): {', '.join(sorted(self.not_fetched)[:5])}"
                + (f"; pickle members of {', '.join(scanned)} were scanned by range reads" if scanned else ""),
                files=dict(sorted(self.not_fetched.items())[:30]), caps=caps()))
        if self.header_only or self.unjudged:
            weight_file = WEIGHT_FILES[0] if WEIGHT_FILES[0] in self.headers else WEIGHT_FILES[1]
            cap = caps()["values"]
            why = self.unjudged or (
                f"{weight_file} ({self.files.get(weight_file, 0):,} bytes): only its header was read ("
                + ("a static check fetches no tensor data; set LORAVET_HUB_VALUES_CAP to fetch it)" if cap <= 0
                   else f"over LORAVET_HUB_VALUES_CAP, {cap:,} bytes)"))
            report.add(make_finding("weights-header-only", why, file=weight_file))
            report.extra.pop("update_stats", None)
            if report.load_outcome in ("loads", "partial") or (self.unjudged and report.load_outcome != "unknown"):
                report.extra["load_reason"] = (f"unknown without the tensor values (from the header alone the "
                                               f"predictor says {report.load_outcome!r} unless every landing update "
                                               f"is zero): {why}")
                report.load_outcome = "unknown"


def _torch_header_only(scan: dict[str, Any], path: Path, report: AdapterReport) -> WeightFile | None:
    """Names and shapes of a hub torch zip from the ranges a pickle scan read (central directory and
    data.pkl), through loravet's own reader on a sparse local copy; values stay unread (reader None)."""
    import tempfile

    from loravet.adapter.torch_file import TorchFileError, UnsafeTorchFile, read_torch_file
    from loravet.findings import make_finding

    with tempfile.TemporaryDirectory(prefix="loravet-bin-") as tmp:
        sparse = Path(tmp) / WEIGHT_FILES[1]
        with sparse.open("wb") as fh:
            fh.truncate(int(scan["size"]))
            for start, data in scan["chunks"]:
                fh.seek(int(start))
                fh.write(base64.b64decode(data))
        try:
            weights = read_torch_file(sparse)
        except (UnsafeTorchFile, TorchFileError) as exc:
            report.add(make_finding("unreadable-file", str(exc).replace(str(sparse), WEIGHT_FILES[1]),
                                    file=WEIGHT_FILES[1]))
            return None
    weights.path, weights.reader, weights.bulk_reader = str(path), None, None
    return weights


# -- low-level fetches ------------------------------------------------------------------------------

_LOCAL = threading.local()


def _quiet() -> None:
    """huggingface_hub's retry warnings and progress bars would break loravet's one-line errors."""
    import logging

    from huggingface_hub.utils import disable_progress_bars  # type: ignore[attr-defined]

    logging.getLogger("huggingface_hub").setLevel(logging.CRITICAL)
    disable_progress_bars()


def _api() -> Any:
    from huggingface_hub import HfApi

    _quiet()
    endpoint = _endpoint()
    api = getattr(_LOCAL, "api", None)
    if api is None or api.endpoint != endpoint:
        api = HfApi(endpoint=endpoint)
        _LOCAL.api = api
    return api


def _range(repo: str, commit: str, filename: str, start: int, end: int, stats: FetchStats) -> tuple[bytes, int]:
    """Bytes start..end (inclusive) of a hub file and the file's total size, through huggingface_hub's session."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils._headers import build_hf_headers
    from huggingface_hub.utils._http import get_session, hf_raise_for_status

    url = hf_hub_url(repo, filename, revision=commit, endpoint=_endpoint())
    headers = {**build_hf_headers(), "Range": f"bytes={start}-{end}", "Accept-Encoding": "identity"}
    response = get_session().get(url, headers=headers, timeout=_timeout(), follow_redirects=True)
    hf_raise_for_status(response)
    data = response.content
    stats.requests += 1
    stats.bytes += len(data)
    stats.ranges.append(f"{filename}:{start}-{end}")
    total_text = response.headers.get("Content-Range", "").rpartition("/")[2]
    total = int(total_text) if total_text.isdigit() else len(data)
    wanted = min(end, total - 1) - start + 1
    if response.status_code == 206 and len(data) != wanted:
        raise SourceError(f"{filename}: the hub sent {len(data):,} of {wanted:,} bytes (truncated response)")
    if response.status_code == 200:  # server ignored Range: keep only what was asked
        data = data[start:end + 1]
    return data, total


def _safetensors_head(repo: str, commit: str, filename: str, stats: FetchStats) -> tuple[bytes, int]:
    """The 8-byte length and JSON header of a hub safetensors file (one or two range reads)."""
    from loravet.adapter.limits import MAX_SAFETENSORS_HEADER

    head, total = _range(repo, commit, filename, 0, FIRST_RANGE - 1, stats)
    if len(head) >= 8:
        (n,) = struct.unpack("<Q", head[:8])
        if n <= MAX_SAFETENSORS_HEADER and 8 + n > len(head) and 8 + n <= total:
            rest, _ = _range(repo, commit, filename, len(head), 8 + n - 1, stats)
            head += rest
        elif 8 + n <= len(head):
            head = head[:8 + n]
    return head, total


class _RangeFile(io.RawIOBase):
    """A read-only, seekable view of a hub file that fetches what is read (64 KiB read-ahead)."""

    def __init__(self, repo: str, commit: str, filename: str, size: int, stats: FetchStats) -> None:
        super().__init__()
        self.repo, self.commit, self.filename, self.size, self.stats = repo, commit, filename, size, stats
        self.pos = 0
        self.buf_start, self.buf = 0, b""
        self.chunks: list[tuple[int, bytes]] = []  # every range fetched, to rebuild a sparse local copy

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, max(self.size - self.pos, 0))
        if n == 0:
            return b""
        end = self.pos + n
        if not (self.buf_start <= self.pos and end <= self.buf_start + len(self.buf)):
            fetch_end = min(max(end, self.pos + (64 << 10)), self.size) - 1
            self.buf, _ = _range(self.repo, self.commit, self.filename, self.pos, fetch_end, self.stats)
            self.buf_start = self.pos
            self.chunks.append((self.pos, self.buf))
        out = self.buf[self.pos - self.buf_start:end - self.buf_start]
        self.pos += len(out)
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def _scan_remote_zip(repo: str, commit: str, filename: str, size: int, stats: FetchStats) -> dict[str, Any]:
    """Central directory and pickle members of a hub zip by range reads, judged like a local file."""
    import re

    from loravet.checks.pickles import DEFAULT_LIMITS, PickleScan, _Deadline, _looks_like_pickle, _scan_bytes

    scan = PickleScan(filename, context="training_args" if filename.endswith("training_args.bin") else None)
    ranged = _RangeFile(repo, commit, filename, size, stats)
    storage = re.compile(r"(^|/)data/\d+$")  # a torch zip's raw tensor storages: never unpickled by torch
    try:
        with zipfile.ZipFile(ranged) as zf:  # type: ignore[arg-type]
            for info in zf.infolist()[:10_000]:
                name = info.filename.lower()
                if info.is_dir() or storage.search(name):
                    continue
                if not name.endswith(PICKLE_EXT):  # judged by content, as the local scan does
                    with zf.open(info) as member:
                        head = member.read(8)
                    if not (_looks_like_pickle(head) or head.startswith((b"PK", b"\x93NUMPY"))
                            or name.endswith((".npy", ".zip", ".npz"))):
                        continue
                if info.file_size > caps()["artifact"]:
                    scan.errors.append(f"{filename}:{info.filename}: too large to scan")
                    continue
                _scan_bytes(zf.read(info), f"{filename}:{info.filename}", scan, 1, DEFAULT_LIMITS,
                            _Deadline(DEFAULT_LIMITS.max_seconds), certain=name.endswith(PICKLE_EXT))
    except zipfile.BadZipFile:
        scan.errors.append(f"{filename}: {size:,} bytes, over the fetch caps and not a zip archive: a raw pickle "
                           "this large is not scanned by range reads (download it and check the folder)")
    except (OSError, EOFError, ValueError) as exc:
        scan.errors.append(f"{filename}: corrupt archive ({str(exc)[:100]})")
    out: dict[str, Any] = {"file": filename, "pickles": scan.pickles, "verdict": scan.worst,
                           "errors": scan.errors or None,
                           "globals": [f"{m}.{n}" for m, n, v in scan.globals if v != "allowed"]}
    if PurePosixPath(filename).name == WEIGHT_FILES[1] and scan.worst == "allowed" and not scan.errors:
        # the adapter's torch zip: its central directory and data.pkl are enough for names and shapes
        out["size"] = size
        out["chunks"] = [[start, base64.b64encode(data).decode()] for start, data in ranged.chunks]
    return out


def _download(repo: str, commit: str, filename: str, size: int, stats: FetchStats) -> Path:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cache = _cache_dir()
    hit = try_to_load_from_cache(repo, filename, cache_dir=cache, revision=commit)
    if isinstance(hit, str):
        stats.cached.append(filename)
        return Path(hit)
    path = Path(hf_hub_download(repo, filename, revision=commit, cache_dir=cache, endpoint=_endpoint(),
                                etag_timeout=_timeout()))
    stats.requests += 2
    stats.bytes += max(size, 0)
    stats.downloaded.append(filename)
    return path


def _head_size(repo: str, commit: str, filename: str, stats: FetchStats) -> int:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    meta = get_hf_file_metadata(hf_hub_url(repo, filename, revision=commit, endpoint=_endpoint()), timeout=_timeout())
    stats.requests += 1
    return int(meta.size) if meta.size is not None else 1 << 62  # unknown: over every cap


def _snapshot(repo: str, commit: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return _cache_dir() / repo_folder_name(repo_id=repo, repo_type="model") / "snapshots" / commit


def _side_file(repo: str, commit: str) -> Path:
    return _side_dir() / repo.replace("/", "--") / f"{commit}.json"


def _save_side(repo: str, commit: str, data: dict[str, Any]) -> None:
    path = _side_file(repo, commit)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs a refetch next time


def _load_side(repo: str, commit: str) -> dict[str, Any] | None:
    try:
        data = json.loads(_side_file(repo, commit).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _resolve_commit(spec: str, repo: str, revision: str | None, stats: FetchStats) -> tuple[str, dict[str, int] | None]:
    """(commit, {file: size}) from the hub; offline, the commit from the cache's refs (files None)."""
    if offline():
        from huggingface_hub.file_download import repo_folder_name

        ref = revision or "main"
        folder = _cache_dir() / repo_folder_name(repo_id=repo, repo_type="model")
        if len(ref) == 40 and (folder / "snapshots" / ref).is_dir():
            return ref, None
        try:
            return (folder / "refs" / ref).read_text().strip(), None
        except OSError:
            raise SourceError(f"{spec}: not in the local huggingface_hub cache and HF_HUB_OFFLINE is set") from None
    try:
        info = _api().model_info(repo, revision=revision, files_metadata=True, timeout=_timeout())
    except SourceError:
        raise
    except Exception as exc:  # huggingface_hub and httpx raise many types: each becomes one line
        raise SourceError(hub_error_line(spec, exc, revision)) from None
    stats.requests += 1
    if not info.sha:
        raise SourceError(f"{spec}: the hub gave no commit for this revision")
    files = {s.rfilename: int(s.size) if s.size is not None else -1 for s in (info.siblings or [])}
    if revision and revision != info.sha:
        _write_ref(repo, revision, info.sha)
    elif not revision:
        _write_ref(repo, "main", info.sha)
    return info.sha, files


def _write_ref(repo: str, ref: str, commit: str) -> None:
    from huggingface_hub.file_download import repo_folder_name

    path = _cache_dir() / repo_folder_name(repo_id=repo, repo_type="model") / "refs" / ref
    try:
        if path.exists() and path.read_text().strip() == commit:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(commit)
    except OSError:
        pass


def _adapter_root(files: dict[str, int]) -> str:
    roots = [str(PurePosixPath(f).parent) for f in files if PurePosixPath(f).name == "adapter_config.json"
             and len(PurePosixPath(f).parts) <= 4]
    if "." in roots or not roots:
        return ""
    return roots[0] if len(roots) == 1 else ""


def _plan(name: str, size: int, c: dict[str, int]) -> str:
    """'download', 'header', 'zipscan' or 'skip' for one file under the adapter root."""
    base = PurePosixPath(name).name.lower()
    if base in WEIGHT_FILES:
        if size <= c["values"]:
            return "download"
        return "header" if base.endswith(".safetensors") else "zipscan"
    if base.endswith(".safetensors"):
        return "skip"
    if base.endswith(SMALL_EXT):
        return "download" if size <= c["small"] else "skip"
    if base.endswith(ARTIFACT_EXT) or base == "training_args.bin":
        if size <= c["artifact"]:
            return "download"
        return "zipscan" if base.endswith(PICKLE_EXT) else "skip"
    if base.endswith(PICKLE_EXT):
        return "download" if size <= c["other"] else "zipscan"
    return "download" if size <= c["other"] else "skip"


def fetch_adapter(spec: str) -> RemoteAdapter:
    """Fetch what a static check needs of hf:OWNER/NAME[@REV]; SourceError (one line) when it cannot."""
    repo, revision = parse_hub_spec(spec)
    stats = FetchStats()
    commit, files = _resolve_commit(spec, repo, revision, stats)
    side = _load_side(repo, commit)
    cached_only = False
    if files is None:  # offline: what an earlier run recorded, else whatever the cache's snapshot holds
        if side is not None:
            files = {k: int(v) for k, v in side["files"].items()}
        else:
            snap = _snapshot(repo, commit)
            files = {p.relative_to(snap).as_posix(): p.stat().st_size for p in sorted(snap.rglob("*"))
                     if p.is_file()} if snap.is_dir() else {}
            cached_only = True
            if not files:
                raise SourceError(f"{spec}: not in the local huggingface_hub cache and HF_HUB_OFFLINE is set")
    root = _adapter_root(files)
    prefix = f"{root}/" if root else ""
    mine = {f[len(prefix):]: s for f, s in files.items() if f.startswith(prefix)}
    if not any(PurePosixPath(f).name in ("adapter_config.json", *WEIGHT_FILES) for f in mine):
        raise SourceError(f"{spec}: the hub repository holds no adapter_config.json or adapter weights")
    c = caps()
    remote = RemoteAdapter(repo, commit, root, mine, _stage_dir(repo, commit, root), stats=stats)
    fetched: dict[str, Path] = {}
    saved_headers: dict[str, Any] = (side or {}).get("headers", {})
    saved_scans: dict[str, Any] = (side or {}).get("scans", {})
    try:
        for name, size in sorted(mine.items()):
            full = prefix + name
            if size < 0 and not cached_only:  # the hub gave no size: ask for it before deciding
                size = mine[name] = files[full] = _head_size(repo, commit, full, stats)
            plan = "download" if cached_only else _plan(name, size, c)
            if plan == "download":
                if offline():
                    from huggingface_hub import try_to_load_from_cache

                    hit = try_to_load_from_cache(repo, full, cache_dir=_cache_dir(), revision=commit)
                    if not isinstance(hit, str):
                        raise SourceError(f"{spec}: {full} is not in the local huggingface_hub cache and "
                                          "HF_HUB_OFFLINE is set")
                    stats.cached.append(full)
                    fetched[name] = Path(hit)
                else:
                    fetched[name] = _download(repo, commit, full, size, stats)
                continue
            remote.not_fetched[name] = size
            if plan == "header":
                if name not in saved_headers:
                    if offline():
                        raise SourceError(f"{spec}: the header of {full} is not cached and HF_HUB_OFFLINE is set")
                    head, total = _safetensors_head(repo, commit, full, stats)
                    saved_headers[name] = {"size": total, "head": base64.b64encode(head).decode()}
                remote.headers[name] = saved_headers[name]
                del remote.not_fetched[name]
            elif plan == "zipscan":
                if name not in saved_scans:
                    if offline():
                        raise SourceError(f"{spec}: {full} was never scanned and HF_HUB_OFFLINE is set")
                    saved_scans[name] = _scan_remote_zip(repo, commit, full, size, stats)
                remote.pickle_scans[name] = saved_scans[name]
    except SourceError as exc:
        if str(exc).startswith(spec):
            raise
        raise SourceError(f"{spec}: {exc}") from None
    except Exception as exc:
        raise SourceError(hub_error_line(spec, exc, revision)) from None
    if not cached_only and (side is None or saved_headers != side.get("headers") or saved_scans != side.get("scans")):
        _save_side(repo, commit, {"files": files, "headers": saved_headers, "scans": saved_scans})
    _stage(remote.local, fetched)
    return remote


def _stage_dir(repo: str, commit: str, root: str) -> Path:
    return _side_dir().parent / "stage" / repo.replace("/", "--") / commit / (root or "_")


def _stage(target: Path, fetched: dict[str, Path]) -> None:
    """A real folder of the fetched files (hard links to the cache's blobs, else copies): the checks never
    follow the cache's symbolic links out of an adapter folder. Built once per commit, atomically."""
    import shutil
    import tempfile

    if target.is_dir() and all((target / n).is_file() for n in fetched):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".stage-", dir=target.parent))
    try:
        for name, src in fetched.items():
            dest = tmp / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            real = src.resolve()
            try:
                os.link(real, dest)
            except OSError:
                shutil.copyfile(real, dest)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class RemoteBase:
    config_path: Path | None
    headers: dict[str, TensorInfo]
    problem: str | None  # why (part of) the metadata could not be had
    stats: FetchStats


def fetch_base(repo: str, revision: str | None) -> RemoteBase:
    """config.json and every safetensors header of a hub base; never raises (problem says what failed)."""
    from loravet.adapter.safetensors_file import SafetensorsError, parse_safetensors_header

    spec = f"hf:{repo}" + (f"@{revision}" if revision else "")
    stats = FetchStats()
    try:
        commit, files = _resolve_commit(spec, repo, revision, stats)
        side = _load_side(repo, commit)
        if files is None:
            if side is None:
                return RemoteBase(None, {}, f"{spec}: not in the local huggingface_hub cache and HF_HUB_OFFLINE "
                                  "is set", stats)
            files = {k: int(v) for k, v in side["files"].items()}
        if "config.json" not in files:
            return RemoteBase(None, {}, f"{spec}: the hub repository has no config.json", stats)
        if offline():
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(repo, "config.json", cache_dir=_cache_dir(), revision=commit)
            if not isinstance(hit, str):
                return RemoteBase(None, {}, f"{spec}: config.json is not cached and HF_HUB_OFFLINE is set", stats)
            cfg = Path(hit)
        else:
            cfg = _download(repo, commit, "config.json", files["config.json"], stats)
        saved: dict[str, Any] = (side or {}).get("headers", {})
        shards = sorted(f for f in files if f.endswith(".safetensors") and "/" not in f)
        headers: dict[str, TensorInfo] = {}
        problem = None
        for shard in shards[:64]:
            if shard not in saved:
                if offline():
                    problem = f"{spec}: safetensors headers not cached and HF_HUB_OFFLINE is set"
                    break
                head, total = _safetensors_head(repo, commit, shard, stats)
                saved[shard] = {"size": total, "head": base64.b64encode(head).decode()}
            try:
                tensors, _, _, _ = parse_safetensors_header(base64.b64decode(saved[shard]["head"]),
                                                            int(saved[shard]["size"]), shard)
            except SafetensorsError as exc:
                problem = f"{spec}: {exc}"
                continue
            headers.update(tensors)
        if side is None or saved != side.get("headers"):
            _save_side(repo, commit, {"files": files, "headers": saved, "scans": (side or {}).get("scans", {})})
        return RemoteBase(cfg, headers, problem, stats)
    except SourceError as exc:
        return RemoteBase(None, {}, str(exc), stats)
    except Exception as exc:
        return RemoteBase(None, {}, hub_error_line(spec, exc, revision), stats)


def cached_headers(repo: str, commit: str) -> dict[str, TensorInfo]:
    """Safetensors headers of a base that an earlier online run read by range (empty when none)."""
    from loravet.adapter.safetensors_file import SafetensorsError, parse_safetensors_header

    out: dict[str, TensorInfo] = {}
    side = _load_side(repo, commit)
    for shard, entry in sorted(((side or {}).get("headers") or {}).items()):
        try:
            tensors, _, _, _ = parse_safetensors_header(base64.b64decode(entry["head"]), int(entry["size"]), shard)
        except (SafetensorsError, KeyError, ValueError, TypeError):
            continue
        out.update(tensors)
    return out


def base_from_hub(repo: str, revision: str | None, head: str | None,
                  build: Callable[[dict[str, Any], str, str, dict[str, TensorInfo], str | None], Any],
                  ) -> tuple[Any, str | None]:
    """(architecture or None, the problem in one line or None) for an hf: base, header-only."""
    fetched = fetch_base(repo, revision)
    if fetched.config_path is None:
        return None, fetched.problem
    try:
        cfg = json.loads(fetched.config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"hf:{repo}: config.json is not readable JSON ({type(exc).__name__})"
    if not isinstance(cfg, dict):
        return None, f"hf:{repo}: config.json is not a JSON object"
    try:
        return build(cfg, repo, "hub", fetched.headers, head), fetched.problem
    except Exception as exc:  # the rules or the meta-device fallback refused this config
        return None, f"hf:{repo}: no architecture from its config.json ({type(exc).__name__}: {str(exc)[:120]})"
