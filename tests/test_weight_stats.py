"""Update statistics from r x r Gram matrices equal the direct computation on B @ A."""

from __future__ import annotations

import numpy as np
import pytest

from loravet.checks.weight_stats import batched_update_stats, tensor_facts, update_stats


def test_norm_and_effective_rank_match_direct_svd() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, 96)).astype(np.float32)
    b = rng.standard_normal((48, 8)).astype(np.float32)
    b[:, 5:] = 0  # rank 5
    st = update_stats(a, b, 2.0, "m")
    assert st is not None
    delta = 2.0 * b.astype(np.float64) @ a.astype(np.float64)
    sv = np.linalg.svd(delta, compute_uv=False)
    assert st.norm == np.float64(np.linalg.norm(delta)).item() or abs(st.norm - np.linalg.norm(delta)) < 1e-6 * st.norm
    p = sv[sv > 1e-9 * sv[0]] / sv.sum()
    assert abs(st.effective_rank - float(np.exp(-np.sum(p * np.log(p))))) < 1e-4
    assert 4.0 < st.effective_rank <= 5.0


def test_batched_equals_single_and_handles_zero_and_nan() -> None:
    rng = np.random.default_rng(1)
    items = [(f"m{i}", rng.standard_normal((4, 32)).astype(np.float32),
              rng.standard_normal((16, 4)).astype(np.float32), 0.5 * (i + 1)) for i in range(6)]
    items.append(("zero", np.ones((4, 32), np.float32), np.zeros((16, 4), np.float32), 2.0))
    nan_b = np.ones((16, 4), np.float32)
    nan_b[0, 0] = np.nan
    items.append(("nan", np.ones((4, 32), np.float32), nan_b, 2.0))
    batched = {s.module: s for s in batched_update_stats(items)}
    for name, a, b, scaling in items:
        single = update_stats(a, b, scaling, name)
        assert single is not None
        if name == "nan":
            assert np.isnan(batched[name].norm) and np.isnan(single.norm)
            continue
        assert abs(single.norm - batched[name].norm) <= 1e-6 * max(1.0, single.norm)
        assert abs(single.effective_rank - batched[name].effective_rank) < 1e-6
        # and both equal the direct computation on the full update
        direct = np.linalg.norm(scaling * b.astype(np.float64) @ a.astype(np.float64))
        assert abs(batched[name].norm - direct) <= 1e-5 * max(1.0, direct)
    assert batched["zero"].norm == 0 and batched["zero"].effective_rank == 0


@pytest.mark.filterwarnings("error")  # an overflowing sum is counted, never a RuntimeWarning on the user's stderr
def test_tensor_facts_see_values_that_cancel_signed_zeros_and_nonfinite() -> None:
    """All-zero decides `inert`: values summing to zero are not a zero tensor; -0.0 is zero; NaN/inf are counted."""
    f = tensor_facts({
        "cancel": np.array([[1.0, -1.0], [2.5, -2.5]], dtype=np.float32),
        "zeros": np.array([0.0, -0.0, 0.0], dtype=np.float32),
        "nan": np.array([0.0, np.nan, 0.0], dtype=np.float32),
        "infs": np.array([np.inf, -np.inf, 1.0], dtype=np.float32),
        "overflow": np.full(4, 3e38, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    })
    zero = {k: v.all_zero for k, v in f.items()}
    assert zero == {"cancel": False, "zeros": True, "nan": False, "infs": False, "overflow": False, "empty": True}
    assert (f["nan"].nonfinite, f["infs"].nonfinite, f["overflow"].nonfinite, f["cancel"].nonfinite) == (1, 2, 0, 0)
