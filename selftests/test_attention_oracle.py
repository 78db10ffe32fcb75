"""The model-size attention oracle against the general one and against NumPy.

`conformance.attention.few_scores_rows` and `few_scores_grads` judge SDPA at model sizes from
prefix sums (see `conformance/test_attention_model_sizes.py`).  Here they meet, on small random
problems with every mask component, the general pure-Python oracle (`attention.expected`, the
softmax of every score) and NumPy's float64 gradient of the dense formula.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from conformance import attention
from conformance.attention import ALIGNMENTS, LogicalMask

VALUES = (-1.0, 0.0, 1.0)


def _mask(rnd: random.Random) -> LogicalMask:
    b, h, L, S = rnd.randint(1, 2), rnd.randint(1, 2), rnd.randint(1, 7), rnd.randint(1, 7)
    kw = {}
    if rnd.random() < 0.5:
        kw["key_lengths"] = tuple(rnd.randint(0, S) for _ in range(b))
    if rnd.random() < 0.5:
        kw["query_lengths"] = tuple(rnd.randint(0, L) for _ in range(b))
    if rnd.random() < 0.5:
        kw["causal"] = rnd.choice(ALIGNMENTS)
    if rnd.random() < 0.5:
        kw["window"] = rnd.randint(1, max(L, S))
    if rnd.random() < 0.5:
        kw["documents"] = (tuple(sorted(rnd.randint(0, 2) for _ in range(L))),
                           tuple(sorted(rnd.randint(0, 2) for _ in range(S))))
    return LogicalMask(b, h, L, S, **kw)


def _problem(rnd: random.Random, m: LogicalMask, e: int = 4):
    p = rnd.randrange(e)
    n_q, n_k = m.b * m.h * m.L, m.b * m.h * m.S
    x = attention.FewScores([rnd.randint(-8, 8) / 4 for _ in range(n_q)], [rnd.choice(VALUES) for _ in range(n_k)],
                            VALUES, [rnd.randint(-8, 8) / 4 for _ in range(n_k)], [rnd.randint(1, 8) / 8 for _ in range(e)])
    g = attention.FewScoresGrad(x, p, [rnd.randint(-8, 8) / 4 for _ in range(n_k)],
                                [0.0 if c == p else rnd.randint(-4, 4) / 4 for c in range(e)],
                                [rnd.randint(-4, 4) / 4 for _ in range(n_q)], [rnd.randint(-4, 4) / 4 for _ in range(e)])
    return g


def _dense(m: LogicalMask, g: attention.FewScoresGrad):
    """q, k, v, grad_out and keep as NumPy float64 arrays [B, H, ., .]."""
    x, e = g.x, len(g.x.beta)
    q = np.zeros((m.b, m.h, m.L, e))
    q[..., g.p] = np.array(x.a).reshape(m.b, m.h, m.L)
    k = np.array(g.kappa).reshape(m.b, m.h, m.S, 1) * np.array(g.rho)
    k[..., g.p] = np.array(x.c).reshape(m.b, m.h, m.S)
    v = np.array(x.alpha).reshape(m.b, m.h, m.S, 1) * np.array(x.beta)
    grad = np.array(g.gamma).reshape(m.b, m.h, m.L, 1) * np.array(g.delta)
    keep = np.array([[[[m.keep(b, h, i, j) for j in range(m.S)] for i in range(m.L)] for h in range(m.h)]
                     for b in range(m.b)])
    return q, k, v, grad, keep


def test_kept_intervals_are_the_mask():
    rnd = random.Random(0)
    for _ in range(300):
        m = _mask(rnd)
        for b in range(m.b):
            for i in range(m.L):
                span = attention.kept_interval(m, b, i)
                got = [span is not None and span[0] <= j < span[1] for j in range(m.S)]
                assert got == [m.keep(b, 0, i, j) for j in range(m.S)], (m, b, i, span)
    with pytest.raises(ValueError, match="per-head"):
        attention.kept_interval(LogicalMask(1, 1, 1, 1, per_head=(((((True,),),),),)), 0, 0)


def test_few_scores_rows_equal_the_general_oracle():
    rnd = random.Random(1)
    for _ in range(200):
        m = _mask(rnd)
        g = _problem(rnd, m)
        q, k, v, _, _ = _dense(m, g)
        scale = rnd.choice((0.5, 1.0))
        want, _ = attention.expected(m, q.ravel().tolist(), k.ravel().tolist(), v.ravel().tolist(), m.h, 4, scale)
        picked = [(b, h, i) for b in range(m.b) for h in range(m.h) for i in range(m.L)]
        got, _ = attention.few_scores_rows(m, g.x, m.h, scale, picked)
        for r, key in enumerate(picked):
            if want[r] is None:
                assert got[key] is None, (m, key)
            else:
                assert got[key] is not None and all(math.isclose(a, w, rel_tol=1e-12, abs_tol=1e-12)
                                                    for a, w in zip(got[key], want[r])), (m, key)


def _numpy_grads(q, k, v, grad, keep, scale):
    """dq, dk, dv of sum(softmax(q k^T * scale, masked) v * grad); a row with no kept key
    gives 0 output and no gradient."""
    s = np.where(keep, q @ np.swapaxes(k, -1, -2) * scale, -np.inf)
    top = np.max(s, -1, keepdims=True)
    ex = np.where(keep, np.exp(s - np.where(np.isfinite(top), top, 0.0)), 0.0)
    z = ex.sum(-1, keepdims=True)
    p = np.divide(ex, z, out=np.zeros_like(ex), where=z > 0)
    dv = np.swapaxes(p, -1, -2) @ grad
    dp = grad @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (p * dp).sum(-1, keepdims=True))
    return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, dv


def test_few_scores_gradients_equal_numpys_dense_gradients():
    rnd = random.Random(2)
    for _ in range(150):
        m = _mask(rnd)
        g = _problem(rnd, m)
        q, k, v, grad, keep = _dense(m, g)
        scale = rnd.choice((0.5, 1.0))
        want = _numpy_grads(q, k, v, grad, keep[:, :, :, :], scale)
        rows = [(b, h, i) for b in range(m.b) for h in range(m.h) for i in range(m.L)]
        keys = [(b, h, j) for b in range(m.b) for h in range(m.h) for j in range(m.S)]
        got = attention.few_scores_grads(m, g, scale, rows, keys)
        for name, ours, theirs in zip(("dq", "dk", "dv"), got, want):
            for (b, h, n), (vals, bounds, noise) in ours.items():
                ref = theirs[b, h, n].tolist()
                assert all(abs(a - w) <= 1e-9 for a, w in zip(vals, ref)), (name, m, (b, h, n), vals, ref)
                # a bound is the sum of the magnitudes of the terms: never below the value itself
                assert all(abs(w) <= bd + ns + 1e-12 for w, bd, ns in zip(vals, bounds, noise)), (name, m, (b, h, n))


def test_a_gradient_that_cancels_exactly_still_allows_the_rounding_of_its_terms():
    """Keys 0 and 1 score alike and their v rows are opposite, so each query's mix is exactly 0
    and so is dk of key 2 (its v is 0); a kernel computes D_i = rowsum(dO * O) as a sum of
    +-x, which may round to a tiny nonzero: the bound is the terms' magnitudes, not 0."""
    m = LogicalMask(1, 1, 2, 3)
    fs = attention.FewScores([1.0, 2.0], [0.0, 0.0, 1.0], VALUES, [1.0, -1.0, 0.0], [0.5, 0.25])
    g = attention.FewScoresGrad(fs, 0, [0.0, 0.0, 0.0], [0.0, 1.0], [1.0, -0.5], [1.0, 1.0])
    dq, dk, _ = attention.few_scores_grads(m, g, 1.0, [(0, 0, 0), (0, 0, 1)], [(0, 0, 2)])
    (value, bound, _) = dk[(0, 0, 2)]
    assert value[0] == 0.0 and bound[0] > 0.1
    assert all(b[0] > 0 for _, b, _ in dq.values())
