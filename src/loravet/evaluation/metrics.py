"""ACRC metric (ROC AUC within each rule, averaged), overall AUC, bootstrap intervals, agreement,
ensembles, and the degenerate-prediction test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Floats = Sequence[float] | np.ndarray
Ints = Sequence[int] | np.ndarray

__all__ = ["auc", "bootstrap_ci", "degenerate_reason", "ensemble_mean", "ensemble_rank", "rank_correlation",
           "roc_points", "rule_mean_auc"]


def auc(labels: Ints, scores: Floats) -> float | None:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=float)
    if len(set(y.tolist())) < 2 or not np.all(np.isfinite(s)):
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def rule_mean_auc(labels: Ints, scores: Floats, groups: Sequence[str] | np.ndarray) -> tuple[
        float | None, dict[str, float | None], int]:
    """Mean of per-group AUCs over groups with both classes; per-group values; groups skipped."""
    per: dict[str, float | None] = {}
    y, s, g = np.asarray(labels), np.asarray(scores, dtype=float), np.asarray(groups)
    for group in sorted(set(g.tolist())):
        mask = g == group
        per[group] = auc(y[mask], s[mask])
    valid = [v for v in per.values() if v is not None]
    skipped = sum(1 for v in per.values() if v is None)
    return (float(np.mean(valid)) if valid else None), per, skipped


def _fast_auc(y: np.ndarray, s: np.ndarray) -> float | None:
    """ROC AUC by the Mann-Whitney U statistic (ties get half credit), as roc_auc_score computes it."""
    pos = int(np.sum(y == 1))
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return None
    ranks = _ranks(s)
    return float((np.sum(ranks[y == 1]) - pos * (pos + 1) / 2) / (pos * neg))


def _fast_rule_mean(y: np.ndarray, s: np.ndarray, g: np.ndarray) -> float | None:
    values = [v for v in (_fast_auc(y[g == k], s[g == k]) for k in np.unique(g)) if v is not None]
    return float(np.mean(values)) if values else None


def bootstrap_ci(labels: Ints, scores: Floats, groups: Sequence[str] | np.ndarray | None,
                 n: int = 200, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile interval of the metric over row resamples (stratified by group)."""
    y, s = np.asarray(labels), np.asarray(scores, dtype=float)
    if not np.all(np.isfinite(s)):
        return None
    g = np.asarray(groups) if groups is not None else np.zeros(len(y), dtype=int)
    rng = np.random.default_rng(seed)
    idx_by = [np.flatnonzero(g == v) for v in np.unique(g)]
    values = []
    for _ in range(n):
        pick = np.concatenate([rng.choice(ix, size=len(ix), replace=True) for ix in idx_by])
        v = _fast_rule_mean(y[pick], s[pick], g[pick]) if groups is not None else _fast_auc(y[pick], s[pick])
        if v is not None:
            values.append(v)
    if len(values) < n // 2:
        return None
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    ranks: np.ndarray = np.asarray(rankdata(x), dtype=float)
    return ranks


def rank_correlation(scores: dict[str, np.ndarray]) -> dict[str, dict[str, float | None]]:
    """Spearman correlation between every pair of scored models."""
    names = list(scores)
    out: dict[str, dict[str, float | None]] = {a: {} for a in names}
    for a in names:
        for b in names:
            x, y = scores[a], scores[b]
            if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.std(x) == 0 or np.std(y) == 0:
                out[a][b] = None
                continue
            rx, ry = _ranks(x), _ranks(y)
            out[a][b] = round(float(np.corrcoef(rx, ry)[0, 1]), 4)
    return out


def ensemble_mean(members: list[np.ndarray]) -> np.ndarray:
    mean: np.ndarray = np.asarray(np.mean(np.vstack(members), axis=0), dtype=float)
    return mean


def ensemble_rank(members: list[np.ndarray], groups: Sequence[str] | None) -> np.ndarray:
    """Per-rule rank average, scaled to [0, 1] within each rule."""
    g = np.asarray(groups) if groups is not None else np.zeros(len(members[0]), dtype=int)
    out = np.zeros(len(members[0]))
    for value in np.unique(g):
        mask = g == value
        ranks = [(_ranks(m[mask]) - 1) / max(mask.sum() - 1, 1) for m in members]
        out[mask] = np.mean(ranks, axis=0)
    return out


def degenerate_reason(scores: np.ndarray, base: np.ndarray | None) -> str | None:
    if not np.all(np.isfinite(scores)):
        return f"{int(np.sum(~np.isfinite(scores)))} non-finite score(s)"
    if float(np.std(scores)) < 1e-6:
        return f"constant scores ({float(scores[0]):.4g} for every row)"
    if float(np.mean(scores < 0.01)) >= 0.99:
        return f"{float(np.mean(scores < 0.01)):.1%} of scores below 0.01"
    if float(np.mean(scores > 0.99)) >= 0.99:
        return f"{float(np.mean(scores > 0.99)):.1%} of scores above 0.99"
    if base is not None and np.all(np.isfinite(base)):
        diff = float(np.max(np.abs(scores - base)))
        if diff < 1e-4:
            return f"indistinguishable from the bare base (max abs difference {diff:.2g})"
    return None


def roc_points(labels: Ints, scores: Floats, max_points: int = 60) -> list[list[float]]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(labels), np.asarray(scores, dtype=float))
    step = max(1, len(fpr) // max_points)
    pts = [[round(float(a), 4), round(float(b), 4)] for a, b in zip(fpr[::step], tpr[::step], strict=True)]
    if pts[-1] != [1.0, 1.0]:
        pts.append([1.0, 1.0])
    return pts


def histogram(scores: np.ndarray, bins: int = 10) -> list[tuple[str, int]]:
    counts, edges = np.histogram(np.clip(scores[np.isfinite(scores)], 0, 1), bins=bins, range=(0, 1))
    return [(f"{edges[i]:.1f}-{edges[i + 1]:.1f}", int(c)) for i, c in enumerate(counts)]
