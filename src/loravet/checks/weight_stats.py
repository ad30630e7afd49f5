"""Per-tensor facts (all zero, NaN/Inf) and per-module update statistics, in numpy.

The update of a LoRA module is scaling * B @ A. Its Frobenius norm and singular values come from r x r
matrices (Gram matrices of A and B), never from the out x in product itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TensorFacts", "UpdateStats", "tensor_facts", "update_stats"]


@dataclass(frozen=True)
class TensorFacts:
    all_zero: bool
    nonfinite: int
    abs_max: float


def tensor_facts(values_by_name: dict[str, np.ndarray]) -> dict[str, TensorFacts]:
    """Facts for every tensor given."""
    facts: dict[str, TensorFacts] = {}
    for name, values in values_by_name.items():
        finite = np.isfinite(values)
        nonfinite = int(values.size - int(np.count_nonzero(finite)))
        abs_max = float(np.max(np.abs(values[finite]))) if values.size and nonfinite < values.size else 0.0
        facts[name] = TensorFacts(all_zero=bool(values.size == 0 or not np.any(values)),
                                  nonfinite=nonfinite, abs_max=abs_max)
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
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
        return None
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not (np.all(np.isfinite(a64)) and np.all(np.isfinite(b64))):
        return UpdateStats(module, a.shape[0], scaling, float("nan"), float("nan"))
    gram_a = a64 @ a64.T  # r x r
    gram_b = b64.T @ b64  # r x r
    # singular values of BA squared = eigenvalues of G_b G_a (both PSD)
    eig = np.linalg.eigvals(gram_b @ gram_a).real
    eig = np.clip(eig, 0.0, None)
    sv = np.sqrt(eig) * abs(scaling)
    norm = float(np.sqrt(np.sum(sv**2)))
    total = float(np.sum(sv))
    if total <= 0 or not np.isfinite(total):
        return UpdateStats(module, a.shape[0], scaling, norm, 0.0)
    p = sv[sv > 0] / total
    eff = float(np.exp(-np.sum(p * np.log(p))))
    return UpdateStats(module, a.shape[0], scaling, norm, eff)
