"""Output files of `eval`: checked writable before any scoring, written with spreadsheet-safe cells."""

from __future__ import annotations

import os
from pathlib import Path

from loravet.errors import EvaluationError

__all__ = ["check_writable"]



def check_writable(path: str | None, option: str) -> None:
    """Fail now, in one line, if `path` cannot be written (not after an hour of scoring). A file that did not
    exist is created by the probe and removed again."""
    if not path:
        return
    p = Path(path)
    if p.is_dir():
        raise EvaluationError(f"{option} {path}: is a directory")
    if not p.parent.exists():  # created, as `-o` does for every command (`--predictions out/preds.csv`)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EvaluationError(f"{option} {path}: the folder {p.parent} cannot be created "
                                  f"({exc.strerror or exc})") from None
    existed = p.exists()
    try:
        with open(p, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise EvaluationError(f"{option} {path}: cannot be written ({exc.strerror or exc})") from None
    if not existed:
        os.unlink(p)
