"""ADAPTER arguments -> local folders: a folder, a .zip of one (extracted safely), or hf:OWNER/NAME[@REV].

This is the one seam where adapter files come from the outside world.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from loravet.adapter.limits import MAX_ZIP_MEMBERS, MAX_ZIP_TOTAL_BYTES
from loravet.errors import SourceError, UnsafeArchiveError
from loravet.sources.hub import parse_hub_spec

if TYPE_CHECKING:
    from loravet.sources.remote import RemoteAdapter

__all__ = ["AdapterSource", "ArchiveUnreadable", "assign_names", "resolve_adapter", "safe_extract_zip"]

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


class ArchiveUnreadable(UnsafeArchiveError):
    """The archive cannot be opened or a member extracted (corrupt, encrypted, unsupported compression);
    plain UnsafeArchiveError is an archive built to escape (absolute or '..' paths, links, a zip bomb)."""


@dataclass
class AdapterSource:
    spec: str  # as given on the command line
    path: Path  # local folder holding adapter_config.json
    kind: str  # "folder" | "zip" | "hub"
    default_name: str
    parent_name: str
    hub_id: str | None = None
    revision: str | None = None
    cleanup: list[Path] = field(default_factory=list)
    name: str = ""
    remote: RemoteAdapter | None = None  # an hf: adapter fetched header-only
    error: str | None = None
    """Set when the archive's content cannot be opened safely: the adapter gets this as a finding."""
    hostile: bool = False
    """The archive tries to escape (paths, links, bomb), not merely unreadable."""

    def close(self) -> None:
        for p in self.cleanup:
            shutil.rmtree(p, ignore_errors=True)
        self.cleanup.clear()

    def __enter__(self) -> AdapterSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def safe_extract_zip(archive: Path, dest: Path) -> None:
    """Extract with no absolute paths, no '..', no links, and caps on members and total size."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveUnreadable(f"{archive}: not a readable zip ({exc})") from None
    with zf:
        members = zf.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise UnsafeArchiveError(f"{archive}: {len(members):,} members, over the limit of {MAX_ZIP_MEMBERS:,}")
        total = 0
        for info in members:  # every member judged before anything is written
            _refuse_unsafe_member(archive, info)
            total += info.file_size
            if total > MAX_ZIP_TOTAL_BYTES:
                raise UnsafeArchiveError(f"{archive}: expands to over {MAX_ZIP_TOTAL_BYTES:,} bytes")
            if info.compress_size and info.file_size / max(info.compress_size, 1) > 1000 and info.file_size > 1 << 26:
                raise UnsafeArchiveError(
                    f"{archive}: member {info.filename!r} has a compression ratio typical of a zip bomb"
                )
        for info in members:
            _extract_member(zf, info, archive, dest)


def _refuse_unsafe_member(archive: Path, info: zipfile.ZipInfo) -> None:
    """UnsafeArchiveError for an absolute path, a '..' or a symbolic link."""
    name = info.filename
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} escapes the archive with '..'")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a symbolic link")


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: Path, dest: Path) -> None:
    """One judged member, streamed, never more bytes than its header declares."""
    target = dest / PurePosixPath(info.filename.replace("\\", "/"))
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with zf.open(info) as src, target.open("wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > info.file_size:
                    raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is larger than declared")
                out.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, ValueError) as exc:
        # RuntimeError: encrypted member; NotImplementedError: a compression method zipfile lacks
        raise ArchiveUnreadable(
            f"{archive}: member {info.filename!r} cannot be extracted ({type(exc).__name__}: {str(exc)[:120]})"
        ) from None


def _find_adapter_root(root: Path) -> Path:
    """The folder holding adapter_config.json: root itself or a single nested folder."""
    if (root / "adapter_config.json").exists():
        return root
    # walked at most 4 levels deep, errors ignored: `loravet check .` in a big or changing folder (a home,
    # /tmp) neither walks the whole tree nor dies on a file that vanished mid-walk
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda _exc: None):
        depth = len(Path(dirpath).relative_to(root).parts)
        if "adapter_config.json" in filenames and depth >= 1:
            found.append(Path(dirpath))
        if depth >= 3:
            dirnames.clear()
        if len(found) > 1:
            break
    if len(found) == 1:
        return found[0]
    return root


def _looks_like_adapter(folder: Path) -> bool:
    return any((folder / f).exists() for f in ADAPTER_FILES)


def resolve_adapter(spec: str) -> AdapterSource:
    """Turn one ADAPTER argument into a local folder; raises SourceError with one line when it cannot."""
    if not spec.strip():  # Path("") is the working directory: an empty argument is a mistake, not "."
        raise SourceError("an empty ADAPTER argument (a path, a .zip or hf:OWNER/NAME)")
    if spec.startswith("hf:"):
        return _resolve_hub(spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise SourceError(f"{spec}: no such file or folder")
    if path.is_dir():
        root = _find_adapter_root(path)
        if not _looks_like_adapter(root):
            raise SourceError(f"{spec}: no adapter_config.json or adapter weights in this folder")
        return AdapterSource(spec, root.resolve(), "folder", root.resolve().name, root.resolve().parent.name)
    return _resolve_file(spec, path)


def _resolve_file(spec: str, path: Path) -> AdapterSource:
    """A regular file: a zip of an adapter folder (extracted safely), or one of an adapter folder's files."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SourceError(f"{spec}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):  # a FIFO, device or socket: opening it to look inside could block forever
        raise SourceError(f"{spec}: not a folder, a regular file or hf:OWNER/NAME")
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        import tempfile  # only for a .zip source

        tmp = Path(tempfile.mkdtemp(prefix="loravet-zip-"))
        try:
            safe_extract_zip(path, tmp)
            root = _find_adapter_root(tmp)
            if not _looks_like_adapter(root):
                raise SourceError(f"{spec}: the zip holds no adapter_config.json or adapter weights")
            return AdapterSource(spec, root, "zip", path.stem, path.resolve().parent.name, cleanup=[tmp])
        except BaseException:  # interrupted too: the extracted folder never outlives a failed open
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if path.name in ADAPTER_FILES:
        return resolve_adapter(str(path.parent))
    raise SourceError(f"{spec}: not a folder, a .zip, or hf:OWNER/NAME")


def _resolve_hub(spec: str) -> AdapterSource:
    """hf:OWNER/NAME[@REV]: only the small files and headers the checks need (loravet.sources.remote)."""
    # lazy (cold start, #12): the hub source loads only for an hf: adapter
    from loravet.sources.remote import fetch_adapter

    repo, revision = parse_hub_spec(spec)
    remote = fetch_adapter(spec)
    owner, name = repo.split("/")
    return AdapterSource(spec, remote.local, "hub", name, owner, hub_id=repo, revision=revision, remote=remote)


RESERVED = frozenset({"base", "ensemble", "ensemble_rank", "row_id"})


def assign_names(sources: list[AdapterSource]) -> None:
    """Folder basename / zip stem / hub NAME; `parent/name` when two collide or a name is reserved."""
    counts: dict[str, int] = {}
    for s in sources:
        counts[s.default_name] = counts.get(s.default_name, 0) + 1
    used: set[str] = set()
    for s in sources:
        name = s.default_name
        if counts[name] > 1 or name in RESERVED:
            name = f"{s.parent_name}/{s.default_name}"
        base, i = name, 2
        while name in used:
            name = f"{base}~{i}"
            i += 1
        used.add(name)
        s.name = name
