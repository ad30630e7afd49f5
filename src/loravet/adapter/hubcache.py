"""huggingface_hub cache layout: `<repo>/snapshots/<rev>/<file>` are symlinks to `../../blobs/<hash>`."""

from __future__ import annotations

from pathlib import Path

__all__ = ["hub_blob_target"]


def hub_blob_target(link: Path) -> Path | None:
    """For a symlink inside a huggingface_hub cache (``<repo>/snapshots/<rev>/...``), its target when
    that stays inside the same repository's ``blobs/`` folder; None otherwise."""
    parts = link.absolute().parts
    if "snapshots" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("snapshots")
    repo = Path(*parts[:i])
    try:
        target = link.resolve(strict=True)
        blobs = (repo / "blobs").resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return target if blobs in target.parents else None
