"""Leakage: validation rows that are training rows (one adapter's split, k-fold siblings' splits), and rows of the
data an adapter is judged on that are in its training artifacts."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from loravet.adapter.artifacts import Artifact
from loravet.checks.provenance import kfold_groups
from loravet.context import AdapterContext
from loravet.errors import LoravetError
from loravet.findings import Finding, Severity, make_finding
from loravet.textnorm import normalise_text

__all__ = [
    "contamination_findings",
    "fold_findings",
    "fold_leakage_stage",
    "near_duplicates",
    "read_eval_texts",
    "split_overlap_findings",
    "split_overlap_stage",
]


def read_eval_texts(path: str, text_column: str = "body") -> list[str]:
    import csv  # only with --eval-data: a plain check does not load the CSV reader

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


def contamination_findings(texts: list[str], eval_path: str, artifacts: list[Artifact]) -> list[Finding]:
    """eval-contamination: rows of the data the adapter is judged on (`texts`, read by read_eval_texts from
    `eval_path`) that are in its training artifacts."""
    wanted = {normalise_text(t) for t in texts if t.strip()}
    train_texts: set[str] = set()
    for art in artifacts:
        if art.kind in ("train", "other") and art.texts:
            train_texts.update(normalise_text(t) for t in art.texts)
    if not train_texts:
        return []
    hits = [t for t in texts if normalise_text(t) in train_texts]
    if not hits:
        return []
    share = len(hits) / max(len(texts), 1)
    return [
        make_finding(
            "eval-contamination",
            f"{len(hits)} of {len(texts)} rows of {Path(eval_path).name} ({share:.1%}) are in the adapter's "
            "training artifacts",
            severity=Severity.CRITICAL,
            rows=len(hits),
            total=len(texts),
            share=round(share, 4),
            distinct=len({normalise_text(h) for h in hits} & wanted),
            examples=[h[:120] for h in hits[:5]],
        )
    ]


def _texts(artifacts: list[Artifact], kind: str) -> list[str]:
    out: list[str] = []
    for art in artifacts:
        if art.kind == kind and art.texts:
            out.extend(art.texts)
    return out


_PRIME = (1 << 31) - 1  # a * x stays below 2**62: int64 arithmetic, no overflow
_N_HASH, _BANDS = 32, 16  # 16 bands of 2 rows: pairs at Jaccard 0.8 collide with probability ~1


def _shingles(text: str) -> set[int]:
    words = normalise_text(text).split()
    if len(words) < 3:
        return {zlib.crc32(" ".join(words).encode())} if words else set()
    return {zlib.crc32(" ".join(words[i : i + 3]).encode()) for i in range(len(words) - 2)}


def near_duplicates(queries: list[str], corpus: list[str], threshold: float = 0.8) -> list[tuple[int, int, float]]:
    """(query index, corpus index, Jaccard) for query texts within `threshold` of a corpus text but not equal
    to it after normalisation: MinHash over word 3-grams, LSH bands for candidates, exact Jaccard to confirm."""
    rng = np.random.default_rng(12345)
    a = rng.integers(1, _PRIME, _N_HASH, dtype=np.int64)[:, None]
    b = rng.integers(0, _PRIME, _N_HASH, dtype=np.int64)[:, None]

    def signature(sh: set[int]) -> tuple[int, ...]:
        if not sh:
            return (0,) * _N_HASH
        x = np.fromiter(sh, dtype=np.int64, count=len(sh)) % _PRIME
        return tuple(((a * x[None, :] + b) % _PRIME).min(axis=1).tolist())

    corpus_sh = [_shingles(t) for t in corpus]
    corpus_norm = [normalise_text(t) for t in corpus]
    buckets: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    rows = _N_HASH // _BANDS
    for j, sh in enumerate(corpus_sh):
        sig = signature(sh)
        for band in range(_BANDS):
            buckets.setdefault((band, sig[band * rows : (band + 1) * rows]), []).append(j)
    out: list[tuple[int, int, float]] = []
    for i, text in enumerate(queries):
        sh = _shingles(text)
        if len(sh) < 3:
            continue
        sig = signature(sh)
        norm = normalise_text(text)
        candidates: set[int] = set()
        for band in range(_BANDS):
            candidates.update(buckets.get((band, sig[band * rows : (band + 1) * rows]), []))
        best: tuple[int, float] | None = None
        for j in candidates:
            if corpus_norm[j] == norm:
                best = None
                break
            inter = len(sh & corpus_sh[j])
            jac = inter / len(sh | corpus_sh[j])
            if jac >= threshold and (best is None or jac > best[1]):
                best = (j, jac)
        if best is not None:
            out.append((i, best[0], round(best[1], 3)))
    return out


def split_overlap_findings(artifacts: list[Artifact]) -> list[Finding]:
    """train-val-overlap: the same normalised comment text on both sides of an adapter's split."""
    train, val = _texts(artifacts, "train"), _texts(artifacts, "val")
    if not train or not val:
        return []
    out: list[Finding] = []
    train_norm = {normalise_text(t) for t in train}
    shared = [t for t in val if normalise_text(t) in train_norm]
    if shared:
        distinct = len({normalise_text(t) for t in shared})
        out.append(
            make_finding(
                "train-val-overlap",
                f"{len(shared)} validation row(s) ({distinct} distinct comment text(s)) also appear "
                "in the training split",
                rows=len(shared),
                distinct=distinct,
                val_rows=len(val),
                examples=[t[:120] for t in shared[:5]],
            )
        )
    if len(val) * len(train) <= 50_000_000:
        near = near_duplicates(val, train)
        if near:
            out.append(
                make_finding(
                    "train-val-near-duplicate",
                    f"{len(near)} validation row(s) are near-duplicates (word 3-gram Jaccard "
                    ">= 0.8) of training rows without being the same text",
                    rows=len(near),
                    val_rows=len(val),
                    examples=[{"val": val[i][:120], "train": train[j][:120], "jaccard": jac} for i, j, jac in near[:5]],
                )
            )
    return out


def fold_findings(folds: list[AdapterContext]) -> list[tuple[str, Finding]]:
    """fold-overlap across k-fold siblings: shared validation rows, identical splits; rows of the folds'
    union that no validation split holds are reported at low severity. Each finding with the name of the
    adapter it is about."""
    vals: dict[str, set[str]] = {}
    union: set[str] = set()
    for ctx in folds:
        v = _texts(ctx.artifacts, "val")
        if not v:
            continue
        vals[ctx.report.name] = {normalise_text(t) for t in v}
        union.update(vals[ctx.report.name])
        union.update(normalise_text(t) for t in _texts(ctx.artifacts, "train"))
    names = sorted(vals)
    if len(names) < 2:
        return []
    out = _shared_validation(names, vals)
    never = union - set().union(*vals.values())
    total_siblings = max(len(c.report.kfold.get("siblings", [])) + 1 if c.report.kfold else 0 for c in folds)
    if never and len(names) >= total_siblings:
        message = f"{len(never)} comment text(s) of the folds' union are in no validation split"
        out += [
            (
                n,
                make_finding(
                    "fold-unvalidated", message, severity=Severity.LOW, never_validated=len(never), union=len(union)
                ),
            )
            for n in names
        ]
    return out


def _shared_validation(names: list[str], vals: dict[str, set[str]]) -> list[tuple[str, Finding]]:
    """Pairs of folds whose validation splits are the same, or share rows."""
    out: list[tuple[str, Finding]] = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if vals[a] == vals[b]:
                out += [
                    (
                        n,
                        make_finding(
                            "fold-overlap", f"{a} and {b} have identical validation splits", identical_splits=[a, b]
                        ),
                    )
                    for n in (a, b)
                ]
                continue
            shared = vals[a] & vals[b]
            if shared:
                out += [
                    (
                        n,
                        make_finding(
                            "fold-overlap",
                            f"{len(shared)} comment text(s) are in the validation splits of both {a} and {b}",
                            pair=[a, b],
                            shared=len(shared),
                            examples=sorted(shared)[:3],
                            shared_with={(b if n == a else a): len(shared)},
                        ),
                    )
                    for n in (a, b)
                ]
    return out


def split_overlap_stage(ctx: AdapterContext) -> list[Finding]:
    """One adapter's own splits: validation rows that are training rows, or nearly."""
    return split_overlap_findings(ctx.artifacts)


def fold_leakage_stage(contexts: list[AdapterContext]) -> list[tuple[str, Finding]]:
    """k-fold siblings given together: validation splits that overlap, or leave rows unvalidated."""
    return [x for folds in kfold_groups(contexts) for x in fold_findings(folds)]
