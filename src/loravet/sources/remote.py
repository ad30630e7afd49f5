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
  members by range reads, scanned, never loaded (loravet.sources.hub_pickles).
Every failure is one line (SourceError). The low-level fetches are in loravet.sources.hub_fetch.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from loravet.adapter.safetensors_file import SafetensorsError, parse_safetensors_header
from loravet.adapter.tensors import TensorInfo, WeightFile
from loravet.checks.weights_file import load_weights
from loravet.errors import SourceError
from loravet.findings import Severity, make_finding
from loravet.sources.hub import hub_api, hub_error_line, offline, parse_hub_spec
from loravet.sources.hub_fetch import (
    FetchStats,
    cached_file,
    download,
    head_size,
    load_side,
    resolve_commit,
    safetensors_head,
    save_side,
    snapshot,
    stage,
    stage_dir,
)
from loravet.sources.hub_pickles import PICKLE_EXT, scan_remote_zip, torch_header_only
from loravet.sources.weights import SAFETENSORS, TORCH_BIN, FindingSink, ReportSink

__all__ = [
    "FetchStats",
    "RemoteAdapter",
    "RemoteBase",
    "cached_headers",
    "caps",
    "fetch_adapter",
    "fetch_base",
    "hub_error_line",
    "offline",
    "parse_hub_spec",
]

_api = hub_api  # the name loravet.scan imports (loravet.sources.hub.hub_api is the public one)

MiB = 1 << 20
SMALL_EXT = (".json", ".md", ".txt", ".yaml", ".yml", ".log", ".jinja", ".model", ".tiktoken")
ARTIFACT_EXT = (".pkl", ".pickle", ".csv", ".tsv", ".parquet", ".jsonl", ".joblib")
WEIGHT_FILES = (SAFETENSORS, TORCH_BIN)


def _cap(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def caps() -> dict[str, int]:
    return {
        "small": _cap("LORAVET_HUB_SMALL_CAP", 8 * MiB),
        "artifact": _cap("LORAVET_HUB_ARTIFACT_CAP", 32 * MiB),
        "values": _cap("LORAVET_HUB_VALUES_CAP", 0),
        "other": _cap("LORAVET_HUB_OTHER_CAP", 1 * MiB),
    }


def _parse_head(entry: dict[str, Any], name: str) -> tuple[dict[str, TensorInfo], dict[str, str], int]:
    tensors, metadata, expected, _ = parse_safetensors_header(base64.b64decode(entry["head"]), int(entry["size"]), name)
    return tensors, metadata, expected


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

    def load_weights(self, report: FindingSink) -> WeightFile | None:
        """The weight file PEFT would load: the fetched file, or a header-only description of it."""
        if SAFETENSORS in self.headers:
            entry = self.headers[SAFETENSORS]
            try:
                tensors, metadata, expected = _parse_head(entry, SAFETENSORS)
            except SafetensorsError as exc:
                report.add(make_finding("unreadable-file", str(exc), file=SAFETENSORS))
                return None
            self.header_only = True
            return WeightFile(
                path=str(self.local / SAFETENSORS),
                format="safetensors",
                size=int(entry["size"]),
                tensors=tensors,
                expected_size=expected,
                metadata=metadata,
                reader=None,
            )
        scanned_bin = self.pickle_scans.get(TORCH_BIN)
        if SAFETENSORS not in self.files and scanned_bin is not None and scanned_bin.get("chunks"):
            weights = torch_header_only(scanned_bin, self.local / TORCH_BIN, report)
            if weights is not None:
                self.header_only = True
                self.not_fetched.pop(TORCH_BIN, None)
            return weights
        if SAFETENSORS not in self.files and TORCH_BIN in self.not_fetched:
            self.unjudged = (
                f"{TORCH_BIN} is {self.not_fetched[TORCH_BIN]:,} bytes, over the fetch cap: its tensors were not read"
            )
            return None
        return load_weights(self.local, report)

    def weights_present(self) -> bool:
        return any(f in self.files for f in WEIGHT_FILES)

    def finish(self, report: ReportSink) -> None:
        """After the checks: the repo's file list, the bytes fetched, and what header-only could not see."""
        report.extra["files"] = self.top_level_files()
        report.extra["fetched_bytes"] = self.stats.bytes
        report.extra["fetch"] = {"commit": self.commit, **self.stats.to_json()}
        self._pickle_findings(report)
        if self.not_fetched:
            scanned = [f for f in self.not_fetched if f in self.pickle_scans and not self.pickle_scans[f]["errors"]]
            report.add(
                make_finding(
                    "remote-not-fetched",
                    f"{len(self.not_fetched)} file(s) of the hub repository were not downloaded "
                    f"(over the fetch caps): {', '.join(sorted(self.not_fetched)[:5])}"
                    + (f"; pickle members of {', '.join(scanned)} were scanned by range reads" if scanned else ""),
                    files=dict(sorted(self.not_fetched.items())[:30]),
                    caps=caps(),
                )
            )
        if self.header_only or self.unjudged:
            self._header_only_outcome(report)

    def _pickle_findings(self, report: ReportSink) -> None:
        """What the range-read scans found: unsafe imports, unreadable members."""
        bad = [s for s in self.pickle_scans.values() if s["verdict"] != "allowed"]
        if bad:
            dangerous = [s for s in bad if s["verdict"] == "dangerous"]
            first = (dangerous or bad)[0]
            report.add(
                make_finding(
                    "unsafe-pickle",
                    f"{first['file']} imports {', '.join(first['globals'][:3])}"
                    + (" (known code execution)" if dangerous else " (not on the allow-list)")
                    + ": never opened (scanned on the hub by range reads)",
                    severity=Severity.CRITICAL if dangerous else Severity.HIGH,
                    files=[{"file": s["file"], "verdict": s["verdict"], "globals": s["globals"]} for s in bad],
                )
            )
        broken = [s for s in self.pickle_scans.values() if s["errors"]]
        if broken:
            report.add(
                make_finding(
                    "unreadable-file",
                    broken[0]["errors"][0],
                    files=[{"file": s["file"], "errors": s["errors"][:3]} for s in broken],
                )
            )
        if self.pickle_scans:
            report.extra["remote_pickles_scanned"] = [
                {k: v for k, v in scan.items() if k != "chunks"} for scan in self.pickle_scans.values()
            ]

    def _header_only_outcome(self, report: ReportSink) -> None:
        """Without the tensor values, a decided `loads` is not known: the outcome becomes `unknown`, said why."""
        weight_file = SAFETENSORS if SAFETENSORS in self.headers else TORCH_BIN
        cap = caps()["values"]
        why = self.unjudged or (
            f"{weight_file} ({self.files.get(weight_file, 0):,} bytes): only its header was read ("
            + (
                "a static check fetches no tensor data; set LORAVET_HUB_VALUES_CAP to fetch it)"
                if cap <= 0
                else f"over LORAVET_HUB_VALUES_CAP, {cap:,} bytes)"
            )
        )
        report.add(make_finding("weights-header-only", why, file=weight_file))
        report.extra.pop("update_stats", None)
        if report.load_outcome in ("loads", "partial") or (self.unjudged and report.load_outcome != "unknown"):
            report.extra["load_reason"] = (
                f"unknown without the tensor values (from the header alone the "
                f"predictor says {report.load_outcome!r} unless every landing update "
                f"is zero): {why}"
            )
            report.load_outcome = "unknown"


def _adapter_root(files: dict[str, int]) -> str:
    roots = [
        str(PurePosixPath(f).parent)
        for f in files
        if PurePosixPath(f).name == "adapter_config.json" and len(PurePosixPath(f).parts) <= 4
    ]
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


@dataclass
class _Listing:
    """An adapter repository's files at one commit, and what earlier runs read of it by range."""

    commit: str
    files: dict[str, int]
    side: dict[str, Any] | None
    cached_only: bool  # offline with no record of an earlier run: whatever the cache's snapshot holds
    blobs: dict[str, str | None] = field(default_factory=dict)  # file -> blob id (model info; online only)


def _listing(spec: str, repo: str, revision: str | None, stats: FetchStats) -> _Listing:
    blobs: dict[str, str | None] = {}
    commit, files = resolve_commit(spec, repo, revision, stats, blobs)
    side = load_side(repo, commit)
    if files is not None:
        return _Listing(commit, files, side, False, blobs)
    if side is not None:  # offline: what an earlier run recorded
        return _Listing(commit, {k: int(v) for k, v in side["files"].items()}, side, False)
    snap = snapshot(repo, commit)
    files = (
        {p.relative_to(snap).as_posix(): p.stat().st_size for p in sorted(snap.rglob("*")) if p.is_file()}
        if snap.is_dir()
        else {}
    )
    if not files:
        raise SourceError(f"{spec}: not in the local huggingface_hub cache and HF_HUB_OFFLINE is set")
    return _Listing(commit, files, None, True)


class _AdapterFetch:
    """The steps of fetching one adapter repository, file by file, by the plan `_plan` gives each."""

    def __init__(self, spec: str, remote: RemoteAdapter, listing: _Listing, prefix: str) -> None:
        self.spec, self.remote, self.listing, self.prefix = spec, remote, listing, prefix
        self.fetched: dict[str, Path] = {}
        self.headers: dict[str, Any] = dict((listing.side or {}).get("headers", {}))
        self.scans: dict[str, Any] = dict((listing.side or {}).get("scans", {}))

    def file(self, name: str, size: int) -> None:
        remote, full = self.remote, self.prefix + name
        if size < 0 and not self.listing.cached_only:  # the hub gave no size: ask for it before deciding
            size = remote.files[name] = self.listing.files[full] = head_size(
                remote.repo, remote.commit, full, remote.stats
            )
        plan = "download" if self.listing.cached_only else _plan(name, size, caps())
        if plan == "skip" and name == "adapter_config.json":  # unread, the check would call it missing
            raise SourceError(
                f"{self.spec}: {full} is {size:,} bytes, over LORAVET_HUB_SMALL_CAP ({caps()['small']:,}): not fetched"
            )
        if plan == "download":
            self.fetched[name] = self._download(full, size)
        elif plan == "header":
            if name not in self.headers:
                self._need_network(f"the header of {full} is not cached")
                head, total = safetensors_head(remote.repo, remote.commit, full, remote.stats)
                self.headers[name] = {"size": total, "head": base64.b64encode(head).decode()}
            remote.headers[name] = self.headers[name]
        elif plan == "zipscan":
            if name not in self.scans:
                self._need_network(f"{full} was never scanned")
                self.scans[name] = scan_remote_zip(
                    remote.repo, remote.commit, full, size, caps()["artifact"], remote.stats
                )
            remote.pickle_scans[name] = self.scans[name]
            remote.not_fetched[name] = size
        else:
            remote.not_fetched[name] = size

    def _need_network(self, what: str) -> None:
        if offline():
            raise SourceError(f"{self.spec}: {what} and HF_HUB_OFFLINE is set")

    def _download(self, full: str, size: int) -> Path:
        remote = self.remote
        if not offline():
            return download(remote.repo, remote.commit, full, size, remote.stats, self.listing.blobs.get(full))
        hit = cached_file(remote.repo, full, remote.commit)
        if hit is None:
            raise SourceError(
                f"{self.spec}: {full} is not in the local huggingface_hub cache and HF_HUB_OFFLINE is set"
            )
        remote.stats.cached.append(full)
        return hit

    def record(self) -> None:
        """What was read by range, beside the cache, for the next run (and for HF_HUB_OFFLINE)."""
        side = self.listing.side
        if self.listing.cached_only:
            return
        if side is None or self.headers != side.get("headers") or self.scans != side.get("scans"):
            save_side(
                self.remote.repo,
                self.remote.commit,
                {"files": self.listing.files, "headers": self.headers, "scans": self.scans},
            )


def fetch_adapter(spec: str) -> RemoteAdapter:
    """Fetch what a static check needs of hf:OWNER/NAME[@REV]; SourceError (one line) when it cannot."""
    repo, revision = parse_hub_spec(spec)
    stats = FetchStats()
    listing = _listing(spec, repo, revision, stats)
    root = _adapter_root(listing.files)
    prefix = f"{root}/" if root else ""
    mine = {f[len(prefix) :]: s for f, s in listing.files.items() if f.startswith(prefix)}
    if not any(PurePosixPath(f).name in ("adapter_config.json", *WEIGHT_FILES) for f in mine):
        raise SourceError(f"{spec}: the hub repository holds no adapter_config.json or adapter weights")
    remote = RemoteAdapter(repo, listing.commit, root, mine, stage_dir(repo, listing.commit, root), stats=stats)
    steps = _AdapterFetch(spec, remote, listing, prefix)
    try:
        for name, size in sorted(mine.items()):
            steps.file(name, size)
    except SourceError as exc:
        raise SourceError(str(exc) if str(exc).startswith(spec) else f"{spec}: {exc}") from None
    except Exception as exc:  # huggingface_hub and httpx raise many types: each becomes one line
        raise SourceError(hub_error_line(spec, exc, revision)) from None
    steps.record()
    stage(remote.local, steps.fetched)
    return remote


@dataclass
class RemoteBase:
    config_path: Path | None
    headers: dict[str, TensorInfo]
    problem: str | None  # why (part of) the metadata could not be had
    stats: FetchStats
    commit: str | None = None


def _base_config(
    spec: str, repo: str, commit: str, files: dict[str, int], stats: FetchStats, blob: str | None
) -> Path | str:
    """config.json of a hub base (the path), or the problem in one line."""
    if "config.json" not in files:
        return f"{spec}: the hub repository has no config.json"
    if not offline():
        return download(repo, commit, "config.json", files["config.json"], stats, blob)
    hit = cached_file(repo, "config.json", commit)
    return hit if hit is not None else f"{spec}: config.json is not cached and HF_HUB_OFFLINE is set"


def _base_headers(
    spec: str, repo: str, commit: str, files: dict[str, int], saved: dict[str, Any], stats: FetchStats
) -> tuple[dict[str, TensorInfo], str | None]:
    """Every top-level safetensors header of a hub base (from `saved` when an earlier run read it)."""
    headers: dict[str, TensorInfo] = {}
    problem = None
    for shard in sorted(f for f in files if f.endswith(".safetensors") and "/" not in f)[:64]:
        if shard not in saved:
            if offline():
                return headers, f"{spec}: safetensors headers not cached and HF_HUB_OFFLINE is set"
            head, total = safetensors_head(repo, commit, shard, stats)
            saved[shard] = {"size": total, "head": base64.b64encode(head).decode()}
        try:
            tensors, _, _ = _parse_head(saved[shard], shard)
        except SafetensorsError as exc:
            problem = f"{spec}: {exc}"
            continue
        headers.update(tensors)
    return headers, problem


def fetch_base(repo: str, revision: str | None, label: str | None = None) -> RemoteBase:
    """config.json and every safetensors header of a hub base; never raises (problem says what failed, after
    `label`, the base as the user or the adapter wrote it; by default hf:REPO[@REVISION])."""
    spec = label or f"hf:{repo}" + (f"@{revision}" if revision else "")
    stats = FetchStats()
    try:
        blobs: dict[str, str | None] = {}
        commit, files = resolve_commit(spec, repo, revision, stats, blobs)
        side = load_side(repo, commit)
        if files is None:
            if side is None:
                return RemoteBase(
                    None, {}, f"{spec}: not in the local huggingface_hub cache and HF_HUB_OFFLINE is set", stats, commit
                )
            files = {k: int(v) for k, v in side["files"].items()}
        cfg = _base_config(spec, repo, commit, files, stats, blobs.get("config.json"))
        if isinstance(cfg, str):
            return RemoteBase(None, {}, cfg, stats, commit)
        saved: dict[str, Any] = dict((side or {}).get("headers", {}))
        headers, problem = _base_headers(spec, repo, commit, files, saved, stats)
        if side is None or saved != side.get("headers"):
            save_side(repo, commit, {"files": files, "headers": saved, "scans": (side or {}).get("scans", {})})
        return RemoteBase(cfg, headers, problem, stats, commit)
    except SourceError as exc:
        return RemoteBase(None, {}, str(exc), stats)
    except Exception as exc:  # huggingface_hub and httpx raise many types: each becomes one line
        return RemoteBase(None, {}, hub_error_line(spec, exc, revision), stats)


def cached_headers(repo: str, commit: str) -> dict[str, TensorInfo]:
    """Safetensors headers of a base that an earlier online run read by range (empty when none)."""
    out: dict[str, TensorInfo] = {}
    side = load_side(repo, commit)
    for shard, entry in sorted(((side or {}).get("headers") or {}).items()):
        try:
            tensors, _, _ = _parse_head(entry, shard)
        except (SafetensorsError, KeyError, ValueError, TypeError):
            continue
        out.update(tensors)
    return out


def read_config(path: Path, spec: str) -> dict[str, Any] | str:
    """A fetched config.json as a dict, or the problem in one line."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{spec}: config.json is not readable JSON ({type(exc).__name__})"
    return cfg if isinstance(cfg, dict) else f"{spec}: config.json is not a JSON object"
