"""The oracle against NumPy (a second opinion) and against hand-written tables."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, strategies as st

from conformance import rules
from strategies import broadcastable_shapes, incompatible_shapes, one_way_pairs

shape_lists = st.integers(1, 4).flatmap(
    lambda n: st.one_of(broadcastable_shapes(n), incompatible_shapes(n) if n >= 2 else broadcastable_shapes(n)))


@given(shapes=shape_lists)
def test_broadcast_shapes_agrees_with_numpy(shapes):
    try:
        want = np.broadcast_shapes(*shapes)
    except ValueError:
        with pytest.raises(rules.BroadcastError):
            rules.broadcast_shapes(*shapes)
    else:
        assert rules.broadcast_shapes(*shapes) == want


TABLE = [
    (((2, 1, 1, 5), (2, 2, 5, 5)), (2, 2, 5, 5)),  # the source material's padding mask
    (((5, 5), (2, 1, 5, 5)), (2, 1, 5, 5)),
    (((1, 0), (3, 1)), (3, 0)),                     # 1 against 0 gives 0
    (((0,), (1,)), (0,)),
    (((), ()), ()),                                 # 0-d
    (((), (3, 0)), (3, 0)),
    ((3, (2, 1)), (2, 3)),                          # ints are shapes, as in NumPy
    (((2, 4, 1), (2, 4, 8)), (2, 4, 8)),            # same-rank mask with a size-1 dim
    (((2, 3), (4, 3)), None),
    (((0,), (2,)), None),                           # 0 is not 1
    (((3,), (1, 2)), None),
]


@pytest.mark.parametrize("shapes, want", TABLE)
def test_broadcast_shapes_table(shapes, want):
    if want is None:
        with pytest.raises(rules.BroadcastError, match="dimension"):
            rules.broadcast_shapes(*shapes)
    else:
        assert rules.broadcast_shapes(*shapes) == want


def test_negative_sizes_raise():
    with pytest.raises(ValueError):
        rules.broadcast_shapes((-1,), (3,))


def test_explain_walks_from_the_rightmost_dimension():
    table = rules.explain((2, 1, 1, 5), (2, 2, 5, 5)).splitlines()
    assert [line.split()[0] for line in table[2:]] == ["-1", "-2", "-3", "-4"]
    assert "5" in table[2] and "equal" in table[2]
    assert "stretched from 1 to 5" in table[3]
    assert "incompatible" in rules.explain((2, 3), (4, 3))


@given(pair=one_way_pairs())
def test_one_way_rule_and_element_mapping_agree_with_numpy(pair):
    shape, target = pair
    assert rules.can_broadcast_to(shape, target)
    values = list(range(rules.numel(shape)))
    want = np.broadcast_to(np.arange(rules.numel(shape)).reshape(shape), target).ravel().tolist()
    assert rules.broadcast_values(values, shape, target) == want
    if rules.numel(target) and shape != target:
        assert not rules.can_broadcast_to(target, shape) or rules.broadcast_shapes(shape, target) == shape


@given(pair=incompatible_shapes(2))
def test_incompatible_shapes_do_not_broadcast_one_way(pair):
    a, b = pair
    assert not rules.can_broadcast_to(a, b) and not rules.can_broadcast_to(b, a)


@pytest.mark.parametrize("shape, sizes, want", [
    ((2, 1), (-1, 4), (2, 4)),
    ((2,), (3, -1), (3, 2)),
    ((1,), (0,), (0,)),
    ((0,), (1,), None),
    ((2,), (-1, 2), None),   # -1 in a new leading dimension
    ((2, 1), (4,), None),    # fewer sizes than dims
])
def test_expand_target_table(shape, sizes, want):
    if want is None:
        with pytest.raises(rules.BroadcastError):
            rules.expand_target(shape, sizes)
    else:
        assert rules.expand_target(shape, sizes) == want


# Observed in torch 2.13 (CPU) and matching c10's checked_convert; see rules.cast_scalar.
CASTS = [
    ("bool", 2, True), ("bool", 0.5, True), ("bool", math.nan, True), ("bool", 0.0, False),
    ("int64", 2.7, 2), ("int64", -2.7, -2), ("int64", True, 1), ("int64", 2**63, None),
    ("int64", -math.inf, None), ("int64", math.nan, None), ("int32", 2147483647.5, None),
    ("int32", 2**31, None), ("int32", -2147483648, -2147483648),
    ("float16", 65504.0, 65504.0), ("float16", 65504.5, None), ("float16", 65505, None),
    ("float16", 0.1, 0.0999755859375), ("float16", 1 + 2**-11 + 2**-40, 1.0),  # rounds twice
    ("bfloat16", 65504.0, 65536.0), ("bfloat16", 0.1, 0.10009765625), ("bfloat16", 3.4e38, None),
    ("float32", 3.4e38, 3.3999999521443642e38), ("float32", 1e-50, 0.0), ("float32", -math.inf, -math.inf),
    ("float64", 2**53, float(2**53)), ("float64", 2**70, None), ("bool", 2**70, None),
]


@pytest.mark.parametrize("dtype, value, want", CASTS)
def test_cast_scalar_table(dtype, value, want):
    if want is None:
        with pytest.raises(rules.ConversionError):
            rules.cast_scalar(value, dtype)
    else:
        assert rules.same_value(rules.cast_scalar(value, dtype), want)


@given(x=st.floats(allow_nan=False, width=32))
def test_round_to_agrees_with_numpy(x):
    assert rules.round_to("float32", x) == float(np.float32(x))
    with np.errstate(over="ignore"):  # beyond float16's range NumPy gives inf, as the rule must
        f16 = float(np.float32(x).astype(np.float16))
    assert rules.same_value(rules.round_to("float16", x), f16)
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    assert rules.round_to("bfloat16", x) in (struct.unpack("<f", struct.pack("<I", (bits >> 16) << 16))[0],
                                             struct.unpack("<f", struct.pack("<I", ((bits >> 16) + 1) << 16))[0],
                                             math.copysign(math.inf, x))


@pytest.mark.parametrize("dtype", rules.FLOAT_DTYPES)
def test_is_subnormal_matches_the_smallest_normal(dtype):
    """The subnormal range ends at finfo's smallest normal (torch as the second opinion: NumPy
    has no bfloat16)."""
    import torch

    tiny = torch.finfo(getattr(torch, dtype)).tiny
    assert not rules.is_subnormal(tiny, dtype) and not rules.is_subnormal(-tiny, dtype)
    assert rules.is_subnormal(tiny / 2, dtype) and rules.is_subnormal(-tiny / 2, dtype)
    assert not rules.is_subnormal(0.0, dtype) and not rules.is_subnormal(-0.0, dtype)
    assert not rules.is_subnormal(math.nan, dtype) and not rules.is_subnormal(1, dtype)


@given(row=st.lists(st.floats(-50, 50), min_size=1, max_size=64), data=st.data())
def test_softmax_agrees_with_numpy(row, data):
    keep = data.draw(st.lists(st.booleans(), min_size=len(row), max_size=len(row)))
    got = rules.softmax(row, keep)
    if not any(keep):
        assert got is None
        return
    x = np.where(keep, np.array(row), -np.inf)
    e = np.exp(x - x.max())
    want = e / e.sum()
    assert np.allclose(got, want, rtol=1e-12, atol=1e-15)
    assert all(p == 0.0 for p, k in zip(got, keep) if not k)
    assert math.isclose(math.fsum(got), 1.0, rel_tol=1e-15)


@given(shapes=broadcastable_shapes(2), data=st.data())
def test_masked_fill_agrees_with_numpy(shapes, data):
    a, m = shapes
    values = list(range(rules.numel(a)))
    mask = data.draw(st.lists(st.booleans(), min_size=rules.numel(m), max_size=rules.numel(m)))
    shape, got = rules.masked_fill(values, a, mask, m, -1)
    want = np.where(np.array(mask, dtype=bool).reshape(m), -1, np.arange(rules.numel(a)).reshape(a))
    assert shape == want.shape and got == want.ravel().tolist()


_NEAR = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1.0, 1.0 + 2**-20])


@given(pairs=st.lists(st.tuples(_NEAR, _NEAR), min_size=32, max_size=80),
       atol=st.sampled_from([0.0, 1e-6, 1e-3]), rtol=st.sampled_from([0.0, 1e-6, 1e-3]))
def test_vectorised_closeness_shortcut_agrees_with_the_per_element_rule(pairs, atol, rtol):
    """first_differences' NumPy shortcut for long float rows says "all close" exactly when
    close_with's per-element rule finds no difference."""
    from conformance.failures import _all_within, close_with
    from conformance.tolerances import Tolerance

    tol = Tolerance(atol, rtol)
    close = close_with(tol)
    actual, expected = [a for a, _ in pairs], [e for _, e in pairs]
    assert _all_within(actual, expected, tol) == all(close(a, e) for a, e in pairs)


_EXACT = (_NEAR | st.floats(allow_nan=True).map(lambda x: -x) | st.integers(-2**70, 2**70) | st.booleans()
          | st.sampled_from([0, 1, True, False, math.nan, -math.nan]))


@given(pairs=st.lists(st.tuples(_EXACT, _EXACT) | _EXACT.map(lambda x: (x, x)), min_size=32, max_size=80),
       same_kind=st.sampled_from([None, float, int, bool]))
def test_vectorised_exactness_shortcut_agrees_with_same_value(pairs, same_kind):
    """first_differences' NumPy shortcut for long exact comparisons says "all the same" only
    when rules.same_value finds no difference (types, signed zeros, nans, ints past int64), and
    always does so for same-valued sequences of one type that fits (float, bool, int64)."""
    from conformance.failures import _all_same

    if same_kind is not None:
        pairs = [(a, b) for a, b in pairs if type(a) is same_kind and type(b) is same_kind
                 and (same_kind is not int or -2**63 <= min(a, b) <= max(a, b) < 2**63)]
    actual, expected = [a for a, _ in pairs], [e for _, e in pairs]
    all_same = all(rules.same_value(a, e) for a, e in pairs)
    if same_kind is None:
        assert not _all_same(actual, expected) or all_same
    else:
        assert _all_same(actual, expected) == all_same


# --------------------------------------------------------------------------- the attention oracle


def _numpy_keep(m):
    """The logical mask written with NumPy broadcasting, as attention code writes it."""
    i = np.arange(m.L).reshape(1, 1, m.L, 1)
    j = np.arange(m.S).reshape(1, 1, 1, m.S)
    keep = np.ones((m.b, m.h, m.L, m.S), dtype=bool)
    d = i + (m.S - m.L if m.causal == "lower-right" else 0)
    if m.key_lengths is not None:
        keep &= j < np.array(m.key_lengths).reshape(-1, 1, 1, 1)
    if m.query_lengths is not None:
        keep &= i < np.array(m.query_lengths).reshape(-1, 1, 1, 1)
    if m.causal:
        keep &= j <= d
    if m.window is not None:
        keep &= np.abs(d - j) < m.window
    if m.documents is not None:
        keep &= np.array(m.documents[0]).reshape(1, 1, -1, 1) == np.array(m.documents[1]).reshape(1, 1, 1, -1)
    if m.per_head is not None:
        ph = np.array(m.per_head, dtype=bool)
        keep = keep & ph if m.combine == "and" else keep | ph
    return keep


def _attention_problems():
    from strategies.attention import attention_problems, logical_masks

    return attention_problems(logical_masks(wide=False, max_len=6), gqa=False) | attention_problems(gqa=True)


@given(p=_attention_problems())
def test_attention_oracle_agrees_with_numpy(p):
    """LogicalMask.keep and attention.expected against the same mask and attention in NumPy
    (float64, query head h reading kv head h // group)."""
    from conformance import attention

    m = p.mask
    keep = _numpy_keep(m)
    assert np.array_equal(np.array(m.table(), dtype=bool), keep)
    group = m.h // p.kv_heads
    q = np.array(p.q.values, dtype=np.float64).reshape(p.q.shape)
    k = np.repeat(np.array(p.k.values, dtype=np.float64).reshape(p.k.shape), group, axis=1)
    v = np.repeat(np.array(p.v.values, dtype=np.float64).reshape(p.v.shape), group, axis=1)
    scale = p.scale if p.scale is not None else 1 / math.sqrt(p.e)
    s = np.where(keep, q @ k.swapaxes(-1, -2) * scale, -np.inf)
    alive = keep.any(-1, keepdims=True)
    w = np.exp(s - np.where(alive, s.max(-1, keepdims=True), 0))
    want = (w / np.where(alive, w.sum(-1, keepdims=True), 1)) @ v
    rows, _ = attention.expected(m, p.q.values, p.k.values, p.v.values, p.kv_heads, p.e, scale)
    for r, row in enumerate(rows):
        b, h, i = r // (m.h * m.L), (r // m.L) % m.h, r % m.L
        assert (row is None) == (not alive[b, h, i, 0])
        if row is not None:
            np.testing.assert_allclose(row, want[b, h, i], rtol=1e-12, atol=1e-12)
