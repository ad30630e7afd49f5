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


def _texts(artifacts: list[Any], kind: str) -> list[str]:
    out: list[str] = []
    for art in artifacts:
        if art.kind == kind and art.texts:
            out.extend(art.texts)
    return out


def split_overlap_findings(report: AdapterReport, artifacts: list[Any]) -> None:
    """train-val-overlap: the same normalised comment text on both sides of an adapter's split."""
    train, val = _texts(artifacts, "train"), _texts(artifacts, "val")
    if not train or not val:
        return
    train_norm = {normalise_text(t) for t in train}
    shared = [t for t in val if normalise_text(t) in train_norm]
    if shared:
        distinct = len({normalise_text(t) for t in shared})
        report.add(make_finding(
            "train-val-overlap", f"{len(shared)} validation row(s) ({distinct} distinct comment text(s)) also appear "
            "in the training split", rows=len(shared), distinct=distinct, val_rows=len(val),
            examples=[t[:120] for t in shared[:5]]))


def fold_findings(folds: list[tuple[AdapterReport, list[Any]]]) -> None:
    """fold-overlap across k-fold siblings: shared validation rows, identical splits; rows of the folds'
    union that no validation split holds are reported at low severity."""
    vals: dict[str, set[str]] = {}
    counts: dict[str, list[str]] = {}
    union: set[str] = set()
    for rep, arts in folds:
        v = _texts(arts, "val")
        if not v:
            continue
        counts[rep.name] = [normalise_text(t) for t in v]
        vals[rep.name] = set(counts[rep.name])
        union.update(vals[rep.name])
        union.update(normalise_text(t) for t in _texts(arts, "train"))
    names = sorted(vals)
    if len(names) < 2:
        return
    by_name = {rep.name: rep for rep, _ in folds}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if vals[a] == vals[b]:
                for n in (a, b):
                    by_name[n].add(make_finding("fold-overlap", f"{a} and {b} have identical validation splits",
                                                identical_splits=[a, b]))
                continue
            shared = vals[a] & vals[b]
            if shared:
                for n in (a, b):
                    other = b if n == a else a
                    by_name[n].add(make_finding(
                        "fold-overlap", f"{len(shared)} comment text(s) are in the validation splits of both {a} "
                        f"and {b}", pair=[a, b], shared=len(shared), examples=sorted(shared)[:3],
                        shared_with={other: len(shared)}))
    held = set().union(*vals.values())
    never = union - held
    total_siblings = max(len(rep.kfold.get("siblings", [])) + 1 if rep.kfold else 0 for rep, _ in folds)
    if never and len(names) >= total_siblings:
        for n in names:
            by_name[n].add(make_finding(
                "fold-overlap", f"{len(never)} comment text(s) of the folds' union are in no validation split",
                severity=Severity.LOW, never_validated=len(never), union=len(union)))
