"""Low-level hub fetches, each counted: the commit and file list, whole small files into the cache, byte
ranges of big ones, and loravet's side records of what it read by range.

Headers and file lists are kept beside the cache ($HF_HOME/loravet/remote/...), keyed by commit, so that
HF_HUB_OFFLINE=1 works from what an earlier run fetched. huggingface_hub is imported inside the functions
that call it, on purpose (loravet.sources.hub says why).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import struct
import tempfile
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from loravet.adapter.limits import MAX_SAFETENSORS_HEADER
from loravet.errors import SourceError
from loravet.sources.hub import (
    cache_dir,
    endpoint,
    hub_error_line,
    offline,
    quiet_client,
    repo_folder,
    side_dir,
    timeout,
)

__all__ = [
    "FetchStats",
    "RangeFile",
    "cached_file",
    "download",
    "head_size",
    "load_side",
    "read_range",
    "resolve_commit",
    "safetensors_head",
    "save_side",
    "snapshot",
    "stage",
    "stage_dir",
]

FIRST_RANGE = 100_000  # one request holds most safetensors headers whole


@dataclass
class FetchStats:
    bytes: int = 0
    requests: int = 0
    downloaded: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "requests": self.requests,
            "downloaded": self.downloaded,
            "cached": len(self.cached),
            "ranges": self.ranges,
        }


def read_range(repo: str, commit: str, filename: str, start: int, end: int, stats: FetchStats) -> tuple[bytes, int]:
    """Bytes start..end (inclusive) of a hub file and the file's total size, through huggingface_hub's session."""
    response = _get(repo, commit, filename, {"Range": f"bytes={start}-{end}"})
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
        data = data[start : end + 1]
    return data, total


def safetensors_head(repo: str, commit: str, filename: str, stats: FetchStats) -> tuple[bytes, int]:
    """The 8-byte length and JSON header of a hub safetensors file (one or two range reads)."""
    head, total = read_range(repo, commit, filename, 0, FIRST_RANGE - 1, stats)
    if len(head) >= 8:
        (n,) = struct.unpack("<Q", head[:8])
        if n <= MAX_SAFETENSORS_HEADER and 8 + n > len(head) and 8 + n <= total:
            rest, _ = read_range(repo, commit, filename, len(head), 8 + n - 1, stats)
            head += rest
        elif 8 + n <= len(head):
            head = head[: 8 + n]
    return head, total


class RangeFile(io.RawIOBase):
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
            self.buf, _ = read_range(self.repo, self.commit, self.filename, self.pos, fetch_end, self.stats)
            self.buf_start = self.pos
            self.chunks.append((self.pos, self.buf))
        out = self.buf[self.pos - self.buf_start : end - self.buf_start]
        self.pos += len(out)
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def cached_file(repo: str, filename: str, commit: str | None) -> Path | None:
    """The file in the huggingface_hub cache, or None (no request is made)."""
    from huggingface_hub import try_to_load_from_cache  # lazy: loravet.sources.hub says why

    hit = try_to_load_from_cache(repo, filename, cache_dir=cache_dir(), revision=commit)
    return Path(hit) if isinstance(hit, str) else None


def _get(repo: str, commit: str, filename: str, extra: dict[str, str] | None = None) -> Any:
    """One GET of a hub file at `commit` through huggingface_hub's own session and headers (HF_ENDPOINT,
    HF_TOKEN, proxies honoured; redirects to a CDN followed, httpx dropping the token off the hub's host);
    an HTTP error raised as huggingface_hub's own error types (gated, not found, revision...)."""
    hf = _client()
    url = hf.hf_hub_url(repo, filename, revision=commit, endpoint=endpoint())
    return _request(url, {**_headers(), **extra} if extra else _headers())


MIN_RATE = 64 << 10  # bytes a second: past LORAVET_HUB_TIMEOUT, a body slower than this on average is cut off


@dataclass
class _Body:
    status_code: int
    headers: Any
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def _request(url: str, headers: dict[str, str], params: dict[str, Any] | None = None) -> _Body:
    """One GET through huggingface_hub's session, its body read within a deadline: the client's timeout
    bounds each read, so a server that drips a byte a second held a check for hours (LORAVET_HUB_TIMEOUT,
    plus the announced length at MIN_RATE)."""
    hf = _client()
    started = time.monotonic()
    session = hf.get_session()
    with session.stream("GET", url, headers=headers, params=params, timeout=timeout(), follow_redirects=True) as r:
        if r.status_code >= 400:
            r.read()  # the error's small body, which the error mapping reads
        hf.hf_raise_for_status(r)
        length = r.headers.get("Content-Length", "")
        deadline = started + timeout() + (int(length) if length.isdigit() else 0) / MIN_RATE
        chunks = []
        for chunk in r.iter_bytes():
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the body was still arriving after {deadline - started:.0f} s (timed out)")
        return _Body(r.status_code, r.headers, b"".join(chunks))


_CLIENT: Any = None
_HEADERS: tuple[tuple[object, ...], dict[str, str]] | None = None


def _client() -> Any:
    """huggingface_hub's URL builder, session and error mapping, imported on first use (loravet.sources.hub
    says why) and then kept: a `from huggingface_hub import ...` in a function that runs four times per
    adapter costs ~30 us a call through the package's lazy loader."""
    global _CLIENT
    if _CLIENT is None:
        from huggingface_hub import constants, hf_hub_url  # lazy: loravet.sources.hub says why
        from huggingface_hub.utils import (  # type: ignore[attr-defined]  # public, documented; re-exported lazily
            build_hf_headers,
            get_session,
            hf_raise_for_status,
            validate_repo_id,
        )

        quiet_client()
        _CLIENT = types.SimpleNamespace(
            hf_hub_url=hf_hub_url,
            get_session=get_session,  # called per request: close_session() may replace the client
            hf_raise_for_status=hf_raise_for_status,
            build_hf_headers=build_hf_headers,
            validate_repo_id=validate_repo_id,
            token_path=constants.HF_TOKEN_PATH,  # where the client's get_token() reads a saved token
        )
    return _CLIENT


def _headers() -> dict[str, str]:
    """huggingface_hub's request headers (its user agent; HF_TOKEN, else the token file), built again only
    when an HF_* setting or the token file changes (a login in a notebook between two checks is seen):
    building them reads and parses the token file, ~90 us a request. Identity encoding: a byte range and a
    length check mean the bytes on the wire."""
    global _HEADERS
    hf = _client()
    try:
        token_file: object = os.stat(hf.token_path).st_mtime_ns
    except OSError:
        token_file = None
    key = (token_file, *sorted((k, v) for k, v in os.environ.items() if k.startswith("HF_")))
    if _HEADERS is None or _HEADERS[0] != key:
        _HEADERS = (key, {**hf.build_hf_headers(), "Accept-Encoding": "identity"})
    return _HEADERS[1]


def download(repo: str, commit: str, filename: str, size: int, stats: FetchStats, blob: str | None = None) -> Path:
    """A whole (small) file into the cache at `commit`; from the cache when it is already there.

    With its size and blob id known from model info (`blob`: the git blob id, or an LFS file's sha256, the
    ETag the hub's HEAD would give), one GET stores it in huggingface_hub's cache layout (blobs/<id>,
    snapshots/<commit>/<file> -> ../../blobs/<id>), where `try_to_load_from_cache` and `hf_hub_download`
    find it; else `hf_hub_download` (a HEAD, then the GET)."""
    hit = _cached_at(repo, commit, filename)
    if hit is not None:
        stats.cached.append(filename)
        return hit
    if blob is None or size < 0 or not _SAFE_BLOB.fullmatch(blob):
        from huggingface_hub import hf_hub_download  # lazy: loravet.sources.hub says why

        path = Path(
            hf_hub_download(
                repo, filename, revision=commit, cache_dir=cache_dir(), endpoint=endpoint(), etag_timeout=timeout()
            )
        )
        stats.requests += 2
        stats.bytes += max(size, 0)
        stats.downloaded.append(filename)
        return path
    data = _get(repo, commit, filename).content
    stats.requests += 1
    stats.bytes += len(data)
    if len(data) != size:
        raise SourceError(f"{filename}: the hub sent {len(data):,} of {size:,} bytes (truncated response)")
    if _content_id(blob, data) != blob.lower():  # the cache names the bytes by this id: never by a wrong one
        raise SourceError(f"{filename}: the hub's bytes do not match their listed blob id {blob[:12]}: none used")
    stats.downloaded.append(filename)
    return _store(repo, commit, filename, blob, data)


_SAFE_BLOB = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")


def _content_id(blob: str, data: bytes) -> str:
    """The id `data` has in the form of `blob`: an LFS file's sha256 (64 hex digits) or a git blob id (40)."""
    if len(blob) == 64:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


_COMMIT = re.compile(r"[0-9a-f]{40}")


def _cached_at(repo: str, commit: str, filename: str) -> Path | None:
    """The cached file at a full commit: snapshots/<commit>/<file> where it exists, which is what
    `try_to_load_from_cache` answers for a commit, in one stat instead of six and a folder listing (four
    look-ups per adapter in a scan, most of them misses in an empty cache)."""
    if not _COMMIT.fullmatch(commit):
        return cached_file(repo, filename, commit)
    path = snapshot(repo, commit) / filename
    return path if path.is_file() else None


def _store(repo: str, commit: str, filename: str, blob: str, data: bytes) -> Path:
    """`data` into the cache as huggingface_hub lays it out (written whole to a temporary name, then
    renamed: a reader never sees part of a blob); a cache that cannot hold symbolic links gets a copy."""
    blob_path = repo_folder(repo) / "blobs" / blob
    pointer = snapshot(repo, commit) / filename
    _write_atomic(blob_path, data)
    try:
        _made(lambda: os.symlink(os.path.relpath(blob_path, pointer.parent), pointer), pointer)
    except FileExistsError:
        pass
    except OSError:  # no symbolic links here (some Windows and network file systems): a copy, as the client does
        _write_atomic(pointer, data)
    return pointer


def _made(action: Callable[[], object], target: Path) -> None:
    """action() (which creates `target`), the folders above `target` made only when they are missing: a
    scan writes thousands of files into folders that mostly exist, and each mkdir is a system call."""
    try:
        action()
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        action()


def _write_atomic(path: Path, data: bytes) -> None:
    """`data` written to a temporary name beside `path`, then renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.incomplete")
    _made(lambda: tmp.write_bytes(data), tmp)
    tmp.replace(path)


def head_size(repo: str, commit: str, filename: str, stats: FetchStats) -> int:
    """A file's size from a HEAD request (model info without sizes, as some mirrors answer)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url  # lazy: loravet.sources.hub says why

    meta = get_hf_file_metadata(hf_hub_url(repo, filename, revision=commit, endpoint=endpoint()), timeout=timeout())
    stats.requests += 1
    return int(meta.size) if meta.size is not None else 1 << 62  # unknown: over every cap


def snapshot(repo: str, commit: str) -> Path:
    return repo_folder(repo) / "snapshots" / commit


def _side_file(repo: str, commit: str) -> Path:
    """One file per commit in one folder: every folder a scan makes is an inode to allocate (see stage_dir)."""
    return side_dir() / f"{repo.replace('/', '--')}--{commit}.json"


def save_side(repo: str, commit: str, data: dict[str, Any]) -> None:
    """Record what was read by range at `commit` (atomically; a read-only cache only costs a refetch)."""
    with contextlib.suppress(OSError):
        _write_atomic(_side_file(repo, commit), json.dumps(data).encode())


def load_side(repo: str, commit: str) -> dict[str, Any] | None:
    data = None
    for path in (_side_file(repo, commit), side_dir() / repo.replace("/", "--") / f"{commit}.json"):
        try:  # the second: where loravet kept these before (a folder per repository), still read
            data = json.loads(path.read_text())
            break
        except (OSError, ValueError):
            continue
    return data if isinstance(data, dict) else None


def resolve_commit(
    spec: str, repo: str, revision: str | None, stats: FetchStats, blobs: dict[str, str | None] | None = None
) -> tuple[str, dict[str, int] | None]:
    """(commit, {file: size}) from the hub, each file's blob id into `blobs`; offline, the commit from the
    cache's refs (files None)."""
    blobs = {} if blobs is None else blobs
    if offline():
        ref = revision or "main"
        folder = repo_folder(repo)
        if len(ref) == 40 and (folder / "snapshots" / ref).is_dir():
            return ref, None
        try:
            return (folder / "refs" / ref).read_text().strip(), None
        except OSError:
            raise SourceError(f"{spec}: not in the local huggingface_hub cache and HF_HUB_OFFLINE is set") from None
    try:
        info = _model_info(repo, revision)
    except Exception as exc:  # huggingface_hub and httpx raise many types: each becomes one line
        raise SourceError(hub_error_line(spec, exc, revision)) from None
    stats.requests += 1
    sha = info.get("sha")
    if not isinstance(sha, str) or not sha:
        raise SourceError(f"{spec}: the hub gave no commit for this revision")
    if not _COMMIT.fullmatch(sha):  # it names the cache's snapshot, staging and side-record paths
        raise SourceError(f"{spec}: the hub gave a malformed commit id for this revision ({ascii(sha)[:60]}): refused")
    siblings = [s for s in info.get("siblings") or [] if isinstance(s, dict) and isinstance(s.get("rfilename"), str)]
    unsafe = next((s["rfilename"] for s in siblings if not _safe_name(s["rfilename"])), None)
    if unsafe is not None:  # it would be written outside the cache's snapshot (and linked into the staged folder)
        raise SourceError(f"{spec}: the hub listed a file name no repository can hold ({ascii(unsafe)[:120]}): refused")
    files = {s["rfilename"]: _size(s.get("size")) for s in siblings}
    blobs.update({s["rfilename"]: _blob_id(s) for s in siblings})
    _write_ref(repo, revision or "main", sha)
    return sha, files


def _safe_name(name: str) -> bool:
    """A file name that stays inside the snapshot folder it is stored under: relative, no empty, "." or ".."
    part, no backslash (a separator on Windows) and no NUL. The hub's git repositories list no absolute or dot-dot
    name; a mirror or proxy that does is refused, never followed out of the cache (it made files anywhere)."""
    parts = name.split("/")
    return bool(name) and "\\" not in name and "\0" not in name and all(p not in ("", ".", "..") for p in parts)


def _model_info(repo: str, revision: str | None) -> dict[str, Any]:
    """The hub's model info with file metadata: the request `HfApi.model_info(files_metadata=True)` sends
    (same URL, `blobs=true`, headers and error mapping), its JSON read directly: building the client's
    ModelInfo object cost more CPU than the request, and only the commit and the files are used."""
    hf = _client()
    hf.validate_repo_id(repo)  # as the client's own call does: a malformed id never reaches the network
    path = f"{endpoint()}/api/models/{repo}" + (f"/revision/{quote(revision, safe='')}" if revision else "")
    data = _request(path, _headers(), {"blobs": True}).json()
    return data if isinstance(data, dict) else {}  # not an object: no commit, said as such by the caller


def _size(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else -1


def _blob_id(sibling: dict[str, Any]) -> str | None:
    """The id the cache names a file's blob by: an LFS file's sha256, else its git blob id (as the client's
    RepoSibling gives them)."""
    lfs = sibling.get("lfs")
    if isinstance(lfs, dict) and isinstance(lfs.get("sha256"), str):
        return str(lfs["sha256"])
    blob = sibling.get("blobId")
    return blob if isinstance(blob, str) else None


def _write_ref(repo: str, ref: str, commit: str) -> None:
    if ref == commit:
        return
    path = repo_folder(repo) / "refs" / ref
    try:
        if path.read_text().strip() == commit:
            return
    except OSError:
        pass
    with contextlib.suppress(OSError):
        _made(lambda: path.write_text(commit), path)


def stage_dir(repo: str, commit: str, root: str) -> Path:
    """One folder per (repository, commit, adapter root), side by side in one parent: each folder made is an
    inode, and on a file system that allocates them slowly (ext4 without a journal skips every inode deleted
    in the last minutes, one buffer look-up each) the three nested folders per adapter this replaced cost
    more kernel time than the checks' CPU."""
    name = f"{repo.replace('/', '--')}--{commit}"
    return side_dir().parent / "stage" / (f"{name}--{quote(root, safe='')}" if root else name)


def _blob_of(src: Path) -> Path:
    """The file a cache entry stands for: the blob its symbolic link names (one readlink, where resolving the
    whole path costs a system call per folder), or the entry itself in a cache without links. os.link on
    Linux links a symbolic link itself, never its target, so this is needed before linking."""
    try:
        target = src.parent / os.readlink(src)
    except OSError:
        return src
    return target.resolve() if target.is_symlink() else target


def stage(target: Path, fetched: dict[str, Path]) -> None:
    """A real folder of the fetched files (hard links to the cache's blobs, else copies): the checks never
    follow the cache's symbolic links out of an adapter folder. Built once per commit, atomically."""
    if target.is_dir() and all((target / n).is_file() for n in fetched):
        return
    made: list[Path] = []
    _made(lambda: made.append(Path(tempfile.mkdtemp(prefix=".stage-", dir=target.parent))), target)
    tmp = made[0]
    try:
        for name, src in fetched.items():
            dest = tmp / name
            real = _blob_of(src)
            try:
                _made(lambda: os.link(real, dest), dest)  # noqa: B023  # called at once, in this iteration
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
