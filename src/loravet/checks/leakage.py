"""Leakage between an adapter's training artifacts and the data it is judged on."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from loravet.checks.provenance import normalise_text
from loravet.errors import LoravetError
from loravet.findings import Severity, make_finding
from loravet.report import AdapterReport

__all__ = ["contamination_findings", "read_eval_texts"]


def read_eval_texts(path: str, text_column: str = "body") -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            csv.field_size_limit(16 * 1024 * 1024)
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or text_column not in reader.fieldnames:
                raise LoravetError(f"{path}: no {text_column!r} column")
            return [row.get(text_column) or "" for row in reader]
    except OSError as exc:
        raise LoravetError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LoravetError(f"{path}: not a readable CSV ({exc})") from None


def contamination_findings(adapters: list[AdapterReport], details: list[dict[str, Any]], eval_path: str,
                           text_column: str = "body") -> None:
    texts = read_eval_texts(eval_path, text_column)
    wanted = {normalise_text(t) for t in texts if t.strip()}
    for report, det in zip(adapters, details, strict=True):
        train_texts: set[str] = set()
        for art in det.get("artifacts") or []:
            if art.kind in ("train", "other") and art.texts:
                train_texts.update(normalise_text(t) for t in art.texts)
        if not train_texts:
            continue
        hits = [t for t in texts if normalise_text(t) in train_texts]
        if hits:
            share = len(hits) / max(len(texts), 1)
            report.add(make_finding(
                "eval-contamination",
                f"{len(hits)} of {len(texts)} rows of {Path(eval_path).name} ({share:.1%}) are in the adapter's "
                "training artifacts",
                severity=Severity.CRITICAL, rows=len(hits), total=len(texts), share=round(share, 4),
                distinct=len({normalise_text(h) for h in hits} & wanted), examples=[h[:120] for h in hits[:5]]))
