"""Memory layouts: the same logical values stored contiguously, permuted, strided, offset or
expanded (zero stride), and tensors drawn in them."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from conformance import rules
from conformance.tensors import TensorSpec
from strategies._cache import cached, integers

KINDS = ("contiguous", "permuted", "strided", "offset", "expanded")
# Layouts whose elements never share memory: the ones an in-place op may write through.
WRITABLE = ("contiguous", "permuted", "strided", "offset")


@cached
def _kind_sets(kinds):
    return st.lists(st.sampled_from(kinds), min_size=1, max_size=3, unique=True)


@cached
def _steps(ndim):
    return st.lists(integers(1, 3), min_size=ndim, max_size=ndim)


@cached
def _permutations(ndim):
    return st.permutations(range(ndim))


@cached
def _dim_sets(ndim):
    return st.sets(integers(0, ndim - 1), min_size=1)


@cached
@st.composite
def layouts(draw, shape, kinds=KINDS):
    """(strides, storage offset, expanded dims, words) for `shape`: one or more of `kinds`
    combined (a permuted, strided view at an offset is one draw)."""
    bad = set(kinds) - set(KINDS)
    if bad or not kinds:
        raise InvalidArgument(f"unknown layout kinds {sorted(bad)}; choose from {KINDS}")
    ndim = len(shape)
    chosen = set(draw(_kind_sets(tuple(kinds))))
    perm = list(range(ndim))
    if "permuted" in chosen and ndim > 1:
        perm = draw(_permutations(ndim))
    steps = [1] * ndim
    if "strided" in chosen:
        steps = draw(_steps(ndim))
    offset = draw(integers(1, 5)) if "offset" in chosen else 0
    expanded = ()
    if "expanded" in chosen and ndim:
        expanded = tuple(sorted(draw(_dim_sets(ndim))))
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


# Past this many values, draw them as a NumPy array: hypothesis.extra.numpy draws a fill
# value and a few distinct elements instead of every element (4x faster at 100 values),
# the shape large tensors need anyway to reach bugs in a few elements among many.
ARRAY_FROM = 8


@cached
def element_lists(elements, n, dtype):
    """`n` values from `elements`, as a list: element by element for short lists, through
    `hypothesis.extra.numpy.arrays` (fill plus scattered elements) for long ones."""
    if n <= ARRAY_FROM:
        return st.lists(elements, min_size=n, max_size=n)
    import numpy as np
    from hypothesis.extra.numpy import arrays

    np_dtype = np.bool_ if dtype == "bool" else np.int64 if dtype in rules.INT_DTYPES else np.float64
    return arrays(np_dtype, n, elements=elements, fill=elements).map(lambda a: a.tolist())


@cached
@st.composite
def tensors(draw, shape, dtype, *, elements=None, kinds=KINDS):
    """A `TensorSpec` of `shape` and `dtype` in a layout drawn from `kinds`.

    Values along an expanded dimension are equal (they share memory); storage outside the
    view holds a canary value.
    """
    from strategies.values import elements as default_elements

    elements = elements if elements is not None else default_elements(dtype)
    shape = tuple(shape)
    strides, offset, expanded, words = draw(layouts(shape, kinds))
    reduced = tuple(1 if d in expanded and s > 1 else s for d, s in enumerate(shape))
    small = draw(element_lists(elements, rules.numel(reduced), dtype))
    values = rules.broadcast_values(small, reduced, shape)
    if not words or words == "contiguous":
        return TensorSpec.contiguous(shape, dtype, values)
    positions = [offset + sum(i * s for i, s in zip(idx, strides)) for idx in rules.ndindex(shape)]
    size = (max(positions) + 1 if positions else offset) + draw(integers(0, 2))
    canary = draw(elements)
    storage = [canary] * size
    for p, v in zip(positions, values):
        storage[p] = v
    return TensorSpec(shape, dtype, tuple(values), strides, offset, tuple(storage), words)
