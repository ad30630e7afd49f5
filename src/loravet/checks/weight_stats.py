"""Per-tensor facts (all zero, NaN/Inf) and per-module update statistics, in numpy.

The update of a LoRA module is scaling * B @ A. Its Frobenius norm and singular values come from r x r
matrices (Gram matrices of A and B), never from the out x in product itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TensorFacts", "UpdateStats", "batched_update_stats", "tensor_facts", "update_stats"]


@dataclass(frozen=True)
class TensorFacts:
    all_zero: bool
    nonfinite: int


def tensor_facts(values_by_name: dict[str, np.ndarray]) -> dict[str, TensorFacts]:
    """Facts for every tensor given."""
    facts: dict[str, TensorFacts] = {}
    for name, values in values_by_name.items():
        if values.size == 0:
            facts[name] = TensorFacts(all_zero=True, nonfinite=0)
            continue
        # a float32 sum overflowing to inf only sends us to the exact count below
        total = float(values.sum())
        nonfinite = 0 if np.isfinite(total) else int(values.size - np.count_nonzero(np.isfinite(values)))
        facts[name] = TensorFacts(all_zero=not values.any(), nonfinite=nonfinite)
    return facts


@dataclass(frozen=True)
class UpdateStats:
    module: str
    rank: int
    scaling: float
    norm: float
    """Frobenius norm of scaling * B @ A."""
    effective_rank: float
    """exp(entropy) of the normalised singular values (Roy & Vetterli); 0 for a zero update."""


def update_stats(a: np.ndarray, b: np.ndarray, scaling: float, module: str) -> UpdateStats | None:
    """Stats of scaling * B @ A for A [r, in] and B [out, r] (embedding: A [r, num], B [dim, r])."""
    stats = batched_update_stats([(module, a, b, scaling)])
    return stats[0] if stats else None


def batched_update_stats(items: list[tuple[str, np.ndarray, np.ndarray, float]]) -> list[UpdateStats]:
    """update_stats for many modules at once: modules with equal shapes share one stacked computation."""
    groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
    for i, (_, a, b, _) in enumerate(items):
        if a.ndim == 2 and b.ndim == 2 and a.shape[0] == b.shape[1]:
            groups.setdefault((a.shape, b.shape), []).append(i)
    out: dict[int, UpdateStats] = {}
    for idx in groups.values():
        a = np.stack([items[i][1] for i in idx])
        b = np.stack([items[i][2] for i in idx])
        finite = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
        if not finite.all():
            a[~finite] = 0.0
            b[~finite] = 0.0
        gram_a = (a @ a.transpose(0, 2, 1)).astype(np.float64)
        gram_b = (b.transpose(0, 2, 1) @ b).astype(np.float64)
        eig = np.clip(np.linalg.eigvals(gram_b @ gram_a).real, 0.0, None)
        scal = np.abs(np.array([items[i][3] for i in idx], dtype=np.float64))[:, None]
        sv = np.sqrt(eig) * scal
        norms = np.sqrt(np.sum(sv**2, axis=1))
        totals = np.sum(sv, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = sv / np.where(totals > 0, totals, 1.0)[:, None]
            entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
        eff = np.where(totals > 0, np.exp(entropy), 0.0)
        r = items[idx[0]][1].shape[0]
        for j, i in enumerate(idx):
            name, _, _, scaling = items[i]
            if not finite[j]:
                out[i] = UpdateStats(name, r, scaling, float("nan"), float("nan"))
            else:
                out[i] = UpdateStats(name, r, scaling, float(norms[j]), float(eff[j]))
    return [out[i] for i in sorted(out)]
