"""Per-tensor facts (all zero, NaN/Inf) and per-module update statistics, in numpy.

The update of a LoRA module is scaling * B @ A. Its Frobenius norm and singular values come from a symmetric
k x k eigenproblem, k = min(r, in, out): from the r x r Gram matrices of A and B when r is below the module's
width, from the product itself when r exceeds it (rank 8,192 on a 512-wide module costs a 512 x 512 problem).
The work is estimated first; over a budget, modules are skipped (and the report says so), never computed for
minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loravet.adapter import limits

__all__ = ["TensorFacts", "UpdateStats", "batched_update_stats", "stats_cost", "tensor_facts", "update_stats"]


@dataclass(frozen=True)
class TensorFacts:
    all_zero: bool
    nonfinite: int


def tensor_facts(values_by_name: dict[str, np.ndarray]) -> dict[str, TensorFacts]:
    """Facts for every tensor given."""
    facts: dict[str, TensorFacts] = {}
    # the ufuncs that ndarray.sum() and .any() call, without their Python wrappers: an adapter has hundreds of
    # small tensors, and the wrappers cost as much as the reductions
    add, logical_or, isfinite = np.add.reduce, np.logical_or.reduce, math.isfinite
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN are counted here, never warned about on stderr
        for name, values in values_by_name.items():
            if values.size == 0:
                facts[name] = TensorFacts(all_zero=True, nonfinite=0)
                continue
            # One pass in the usual case: a sum that is not exactly zero proves a non-zero value (NaN and inf
            # included); only a zero sum (a zero tensor, or values that cancel) needs the any() pass. A float32
            # sum overflowing to inf only sends us to the exact count.
            total = float(add(values, axis=None))
            nonfinite = 0 if isfinite(total) else int(values.size - np.count_nonzero(np.isfinite(values)))
            all_zero = total == 0.0 and not logical_or(values, axis=None)
            facts[name] = TensorFacts(all_zero=bool(all_zero), nonfinite=nonfinite)
    return facts


@dataclass(frozen=True)
class UpdateStats:
    module: str
    rank: int
    scaling: float
    norm: float
    """Frobenius norm of scaling * B @ A (NaN: not computed, see `skipped`)."""
    effective_rank: float
    """exp(entropy) of the normalised singular values (Roy & Vetterli); 0 for a zero update."""
    skipped: bool = False
    """Over the cost budget: not computed."""


def update_stats(a: np.ndarray, b: np.ndarray, scaling: float, module: str) -> UpdateStats | None:
    """Stats of scaling * B @ A for A [r, in] and B [out, r] (embedding: A [r, num], B [dim, r])."""
    stats = batched_update_stats([(module, a, b, scaling)])
    return stats[0] if stats else None


def stats_cost(r: int, n_in: int, n_out: int) -> int:
    """Work for one module, in units of one r^3 eigenproblem step (a matrix product's multiply-adds count 1/20:
    BLAS does them that much faster). The eigenproblem is k x k with k = min(r, in, out): a rank above the
    module's width costs a product, never r^3."""
    if r <= min(n_in, n_out):
        return r**3 + (n_in + n_out) * r * r // 20
    k = min(n_in, n_out)
    return k**3 + n_in * n_out * r // 20 + max(n_in, n_out) * k * k // 20


def _squared_singular_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Eigenvalues of (B A)^T (B A), stacked, for r > min(in, out): from the product itself."""
    n_in, n_out = a.shape[2], b.shape[1]
    m = b @ a  # [n, out, in]: cheaper than any r x r problem when r exceeds the module's width
    p = m.transpose(0, 2, 1) @ m if n_in <= n_out else m @ m.transpose(0, 2, 1)
    return np.asarray(np.linalg.eigvalsh(p.astype(np.float64)))


def _gram_eigenvalues(gram_a: np.ndarray, gram_b: np.ndarray) -> np.ndarray:
    """Eigenvalues of Gb Ga (the squared singular values of B A), stacked, from the r x r Gram matrices."""
    r = gram_a.shape[1]
    # eig(Gb Ga) = eig(L^T Gb L) for Ga = L L^T: symmetric, so eigvalsh (several times cheaper than eigvals).
    # A tiny ridge keeps the Cholesky factorisation defined for rank-deficient A; it moves no value visibly.
    ridge = 1e-12 * np.maximum(np.trace(gram_a, axis1=1, axis2=2) / r, 1e-300)
    try:
        chol = np.linalg.cholesky(gram_a + ridge[:, None, None] * np.eye(r))
    except np.linalg.LinAlgError:
        return np.asarray(np.linalg.eigvals(gram_b @ gram_a).real)
    return np.asarray(np.linalg.eigvalsh(chol.transpose(0, 2, 1) @ gram_b @ chol))


def _grams(a_list: list[np.ndarray], b_list: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The r x r Gram matrices A A^T and B^T B of each module (float64, stacked) and which modules are finite.

    One small product per module instead of stacking every A and B first: the stack copied all of an
    adapter's values once more (the largest cost of a cold `loravet check`). A non-finite module gets zero
    matrices, as zeroed factors would give. A finite Gram matrix implies finite factors (its diagonal sums
    the squares of every value); a non-finite one is checked value by value (a finite A can overflow it)."""
    ga = [x @ x.T for x in a_list]
    gb = [y.T @ y for y in b_list]
    gram_a = np.stack(ga).astype(np.float64)
    gram_b = np.stack(gb).astype(np.float64)
    finite: np.ndarray = np.asarray(np.isfinite(gram_a).all(axis=(1, 2)) & np.isfinite(gram_b).all(axis=(1, 2)))
    for j in np.flatnonzero(~finite):
        finite[j] = bool(np.isfinite(a_list[j]).all() and np.isfinite(b_list[j]).all())
    if not finite.all():
        gram_a[~finite] = 0.0
        gram_b[~finite] = 0.0
    return gram_a, gram_b, finite


def batched_update_stats(
    items: list[tuple[str, np.ndarray, np.ndarray, float]], budget: int | None = None
) -> list[UpdateStats]:
    """update_stats for many modules at once: modules with equal shapes share one stacked computation.
    Groups are computed cheapest first until `budget` (default UPDATE_STATS_BUDGET, see stats_cost) is spent;
    the rest are returned with skipped=True."""
    left = limits.UPDATE_STATS_BUDGET if budget is None else budget  # read now: a test may lower it
    groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
    for i, (_, a, b, _) in enumerate(items):
        if a.ndim == 2 and b.ndim == 2 and a.shape[0] == b.shape[1]:
            groups.setdefault((a.shape, b.shape), []).append(i)
    out: dict[int, UpdateStats] = {}
    for (a_shape, b_shape), idx in sorted(
        groups.items(), key=lambda g: stats_cost(g[0][0][0], g[0][0][1], g[0][1][0]) * len(g[1])
    ):
        r = a_shape[0]
        cost = stats_cost(r, a_shape[1], b_shape[0]) * len(idx)
        if cost > left:
            for i in idx:
                out[i] = UpdateStats(items[i][0], r, items[i][3], float("nan"), float("nan"), skipped=True)
            continue
        left -= cost
        if r <= min(a_shape[1], b_shape[0]):
            gram_a, gram_b, finite = _grams([items[i][1] for i in idx], [items[i][2] for i in idx])
            eig = np.clip(_gram_eigenvalues(gram_a, gram_b), 0.0, None)
        else:
            a = np.stack([items[i][1] for i in idx])
            b = np.stack([items[i][2] for i in idx])
            finite = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
            if not finite.all():
                a[~finite] = 0.0
                b[~finite] = 0.0
            eig = np.clip(_squared_singular_values(a, b), 0.0, None)
        scal = np.abs(np.array([items[i][3] for i in idx], dtype=np.float64))[:, None]
        with np.errstate(over="ignore"):  # a scaling of 1e300 overflows: the norm is then reported as null
            sv = np.sqrt(eig) * scal
            norms = np.sqrt(np.sum(sv**2, axis=1))
            totals = np.sum(sv, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = sv / np.where(totals > 0, totals, 1.0)[:, None]
            entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
        eff = np.where(totals > 0, np.exp(entropy), 0.0)
        for j, i in enumerate(idx):
            name, _, _, scaling = items[i]
            if not finite[j]:
                out[i] = UpdateStats(name, r, scaling, float("nan"), float("nan"))
            else:
                out[i] = UpdateStats(name, r, scaling, float(norms[j]), float(eff[j]))
    return [out[i] for i in sorted(out)]
