"""Memory layouts: the same logical values stored contiguously, permuted, strided, offset or
expanded (zero stride), and tensors drawn in them."""

from __future__ import annotations

import random

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from conformance import rules
from conformance.tensors import TensorSpec
from strategies._cache import booleans, cached, evenly, integers
from strategies._coding import bits, digit_strings, digits, permutation, permutation_indices, subsets

KINDS = ("contiguous", "permuted", "strided", "offset", "expanded")
# Layouts whose elements never share memory: the ones an in-place op may write through.
WRITABLE = ("contiguous", "permuted", "strided", "offset")


@cached
@st.composite
def layouts(draw, shape, kinds=KINDS):
    """(strides, storage offset, expanded dims, words) for `shape`: one or more of `kinds`
    combined (a permuted, strided view at an offset is one draw)."""
    return draw_layout(draw, shape, kinds)


def draw_layout(draw, shape, kinds=KINDS):
    """What `layouts(shape, kinds)` draws, drawn with `draw` inside the caller's own
    composite: the same choices, without a span of its own (see `tensors`)."""
    bad = set(kinds) - set(KINDS)
    if bad or not kinds:
        raise InvalidArgument(f"unknown layout kinds {sorted(bad)}; choose from {KINDS}")
    ndim = len(shape)
    # one integer choice per part (see strategies._coding); each shrinks to the plain layout
    chosen = {k for k, on in zip(kinds, bits(draw(subsets(len(kinds), min_size=1)), len(kinds))) if on}
    perm = list(range(ndim))
    moving = [d for d in range(ndim) if shape[d] > 1]  # permuting a size-1 dim changes nothing
    if "permuted" in chosen and len(moving) > 1:
        order = permutation(draw(permutation_indices(len(moving), identity=False)), len(moving))
        for d, k in zip(moving, order):
            perm[d] = moving[k]
    steps = [1] * ndim
    if "strided" in chosen:
        steps = [1 + d for d in digits(draw(digit_strings(3, ndim)), 3, ndim)]
    offset = draw(integers(1, 5)) if "offset" in chosen else 0
    expanded = ()
    if "expanded" in chosen and ndim:
        expanded = tuple(d for d, on in enumerate(bits(draw(subsets(ndim, min_size=1)), ndim)) if on)
    strides, acc = [0] * ndim, 1
    for d in reversed(perm):
        if d in expanded:
            continue
        strides[d] = acc * steps[d]
        acc *= max(shape[d], 1) * steps[d]
    words = [w for w in (
        f"permuted {tuple(perm)}" if perm != list(range(ndim)) else "",
        f"steps {tuple(steps)}" if any(s > 1 for s in steps) else "",
        f"offset {offset}" if offset else "",
        f"expanded dims {expanded}" if expanded else "",
    ) if w]
    return tuple(strides), offset, expanded, ", ".join(words) or "contiguous"


# Past this many values, a list is drawn as a pool of POOL values spread over the positions
# by a drawn arrangement: POOL + 1 draws instead of n.  (hypothesis.extra.numpy.arrays with
# a fill draws about 10 scattered elements at 3 choices each, more than n below 30 values;
# our tensors have at most 64.)  Every value still comes from `elements`, nan and the
# extremes included; with POOL values in the pool, a misplaced element is visible about
# 3 times in 4 (less where drawn values repeat).
POOLED_FROM = 8
POOL = 4
_ARRANGEMENTS = st.integers(0, 2**32 - 1)


@cached
@st.composite
def element_lists(draw, elements, n):
    """`n` values from `elements`, as a list: element by element up to POOLED_FROM values,
    POOL drawn values in a drawn arrangement past that.  Two shortcuts cost fewer choices:
    up to MAX_BITS booleans are the bits of one draw, and for `elements(...)` with nan or
    +-inf allowed every value's kind is one draw (see `draw_elements`)."""
    return draw_elements(draw, elements, n)


_BOOLEANS = booleans()
MAX_BITS = 16  # Hypothesis draws integers of up to 24 bits evenly; wider ones favour small values
_SPREAD = 0x9E3779B1  # odd and not a multiple of 3 or 5: a unit modulo 2**a * 3**b * 5**c


def draw_elements(draw, elements, n):
    """What `element_lists(elements, n)` draws, drawn with `draw` inside the caller's own
    composite.  Every layer of strategy between a test and its choices is a span Hypothesis
    records, and its mutator walks all of them after each example, so this draws the values
    directly: no list, map or composite of its own (the same choices as those would make)."""
    from strategies.values import cycled_values, draw_value, split_specials

    if (cycle := cycled_values(elements)) is not None:
        start = draw(evenly(tuple(range(len(cycle)))))
        return [cycle[(start + i) % len(cycle)] for i in range(n)]
    if elements is _BOOLEANS and n <= MAX_BITS:
        # the bits of one draw, spread as below (0: all False)
        return bits(draw(subsets(n)) * _SPREAD % 2**n, n)
    k = n if n <= POOLED_FROM else POOL
    split = split_specials(elements)
    if split is None:
        values = [draw_value(draw, elements) for _ in range(k)]
    else:
        finite, branches, edges = split
        # each value's branch (finite, nan, +-inf, edge) is one base-2B digit of a single draw
        # (B branches in all; the digit's parity picks the sign of an infinity), so only the
        # finite and edge values cost a draw of their own.  The kinds come out close to what drawing element by
        # element gives, finite somewhat more often (measured at 6 values: 48 % against 37 %;
        # Hypothesis favours the draw 0, all finite); shrinks to all finite.  Hypothesis draws
        # small integers more often than large ones, which would leave the high digits at 0
        # (finite); multiplying by a unit modulo base**k spreads them and still maps 0 (what a
        # shrink aims for) to 0.
        slots = 1 + len(branches) + (edges is not None)
        base = 2 * slots
        kinds = digits(draw(digit_strings(base, k)) * _SPREAD % base**k, base, k)
        values = [draw_value(draw, finite) if d < 2 else
                  draw(edges) if d // 2 == slots - 1 and edges is not None else
                  branches[d // 2 - 1][d % len(branches[d // 2 - 1])]
                  for d in kinds]
    if n <= POOLED_FROM:
        return values
    return random.Random(draw(_ARRANGEMENTS)).choices(values, k=n)


@cached
@st.composite
def tensors(draw, shape, dtype, *, elements=None, kinds=KINDS):
    """A `TensorSpec` of `shape` and `dtype` in a layout drawn from `kinds`, its values from
    `elements` (default: finite values of the dtype, edges included).

    Values along an expanded dimension are equal (they share memory); storage outside the
    view holds a canary value.
    """
    from strategies.values import elements as default_elements

    elements = elements if elements is not None else default_elements(dtype, edges=True)
    shape = tuple(shape)
    strides, offset, expanded, words = draw_layout(draw, shape, kinds)
    reduced = tuple(1 if d in expanded and s > 1 else s for d, s in enumerate(shape))
    small = draw_elements(draw, elements, rules.numel(reduced))
    if not words or words == "contiguous":
        return TensorSpec.contiguous(shape, dtype, rules.broadcast_values(small, reduced, shape))
    extra, canary = draw(integers(0, 2)), draw(elements)
    values, storage = _placed(shape, dtype, small, reduced, strides, offset, extra, canary)
    return TensorSpec(shape, dtype, values, strides, offset, storage, words)


_RELAYOUT_AT = 64  # past this many elements, positions and storage are computed with NumPy


def _placed(shape, dtype, values, reduced, strides, offset, extra, canary) -> tuple[tuple, tuple]:
    """(values, storage): `values` (row-major, of shape `reduced`: 1 along the expanded dims)
    stretched to `shape`, and a storage of `extra` elements past the last one the view reads,
    holding them at ``offset + sum(index * stride)`` and `canary` elsewhere.  Past
    _RELAYOUT_AT elements NumPy computes it (float and bool values as float64 and bool_, which
    hold every dtype's values exactly; ints as Python ints): the same tuples, a few times faster."""
    n = rules.numel(shape)
    if n < _RELAYOUT_AT:
        values = rules.broadcast_values(values, reduced, shape)
        positions = [offset + sum(i * s for i, s in zip(idx, strides)) for idx in rules.ndindex(shape)]
        storage = [canary] * ((max(positions) + 1 if positions else offset) + extra)
        for p, v in zip(positions, values):
            storage[p] = v
        return tuple(values), tuple(storage)
    import numpy as np

    kind = float if dtype in rules.FLOAT_DTYPES else bool if dtype == "bool" else object
    arr = np.broadcast_to(np.array(values, dtype=kind).reshape(reduced), shape).reshape(-1)
    positions = np.full(1, offset, dtype=np.int64)
    for size_d, stride in zip(shape, strides):
        positions = (positions[:, None] + np.arange(size_d, dtype=np.int64) * stride).reshape(-1)
    storage = np.full(int(positions.max()) + 1 + extra, canary, dtype=kind)
    storage[positions] = arr
    return tuple(arr.tolist()), tuple(storage.tolist())


def relayout(draw, spec: TensorSpec, kinds=KINDS, canary=None) -> TensorSpec:
    """`spec`'s values in a layout drawn from `kinds` (inside the caller's composite).  Along
    an expanded dim every value equals the first slice's (they share memory), so an
    expanded layout changes the values to those; storage outside the view holds `canary`
    (default: the first value)."""
    shape = spec.shape
    strides, offset, expanded, words = draw_layout(draw, shape, kinds)
    if words == "contiguous":
        return spec
    n = len(spec.values)
    canary = spec.values[0] if canary is None and n else (canary if canary is not None else 0)
    # along an expanded dim every value is the first slice's
    reduced = tuple(1 if d in expanded and s > 1 else s for d, s in enumerate(shape))
    first = spec.values if not expanded else \
        [spec.values[rules._flat(idx, shape)] for idx in rules.ndindex(reduced)]
    values, storage = _placed(shape, spec.dtype, first, reduced, strides, offset, draw(integers(0, 2)), canary)
    return TensorSpec(shape, spec.dtype, values, strides, offset, storage, words)
