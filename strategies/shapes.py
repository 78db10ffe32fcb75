"""Shapes: single shapes under an element budget, and tuples of shapes that do or do not broadcast.

Unlike ``hypothesis.extra.numpy.array_shapes`` these draw size-0 dimensions by default,
and the budget counts a 0 as a 1 so that stretching a 0 against a 1 cannot blow up.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from conformance import rules
from strategies._cache import booleans, cached, integers, sampled_from
from strategies.buckets import bucketed_factory
from strategies._coding import bits, subsets

MAX_DIMS = 8
MAX_SIDE = 8
MAX_ELEMENTS = 128  # a vectorised loop of 16-64 elements, a tail, and the tail of a second one


def _check(min_dims, max_dims, min_side, max_side, max_elements):
    if not 0 <= min_dims <= max_dims:
        raise InvalidArgument(f"need 0 <= min_dims={min_dims} <= max_dims={max_dims}")
    if not 0 <= min_side <= max_side:
        raise InvalidArgument(f"need 0 <= min_side={min_side} <= max_side={max_side}")
    if max_elements < 1:
        raise InvalidArgument(f"max_elements={max_elements} must be at least 1")
    if min_side > 1 and min_side ** min_dims > max_elements:
        raise InvalidArgument(f"no shape of {min_dims} dims with sides >= {min_side} fits in {max_elements}")


def _budget(shape) -> int:
    return math.prod(max(s, 1) for s in shape)


@bucketed_factory
@cached
@st.composite
def array_shapes(draw, *, min_dims=0, max_dims=MAX_DIMS, min_side=0, max_side=MAX_SIDE,
                 max_elements=MAX_ELEMENTS):
    """A shape of min_dims..max_dims sizes in [min_side, max_side] whose product
    (counting 0 as 1) is at most max_elements."""
    return draw_shape(draw, min_dims, max_dims, min_side, max_side, max_elements)


def draw_shape(draw, min_dims=0, max_dims=MAX_DIMS, min_side=0, max_side=MAX_SIDE,
               max_elements=MAX_ELEMENTS):
    """What `array_shapes` draws, drawn with `draw` inside the caller's composite (no span of
    its own; see `strategies.layouts.draw_elements`).  Where min_side is 0, one shape in three
    has a side of 0."""
    _check(min_dims, max_dims, min_side, max_side, max_elements)
    ndim = draw(integers(min_dims, max_dims))
    # sides of 0 are drawn apart: as one side among 0..max_side, a third of all shapes came out
    # empty, and an empty tensor reaches no value, dtype edge or layout class
    lo = 1 if min_side == 0 and max_side >= 1 else min_side
    shape = []
    for i in range(ndim):
        left = max_elements // _budget(shape)
        reserve = max(lo, 1) ** (ndim - i - 1)
        hi = max(min(max_side, left // reserve), min(lo, 1))
        shape.append(draw(integers(lo, max(hi, lo))))
    if lo != min_side and ndim and draw(_EMPTY) == 0:
        shape[draw(integers(0, ndim - 1))] = 0
    return tuple(shape)


_EMPTY = integers(0, 2)  # one shape in three that may have a side of 0 has one


_LARGE = integers(0, 3)
LARGE_MIN_SIDE = 3


def draw_scaffold(draw, min_dims, max_dims, min_side, max_side, max_elements):
    """The shape operands are cut from: a `draw_shape`, or (a quarter of the draws) one of
    1-3 sides of at least 3, so that operands past 16 elements (a vector loop and its tail)
    are common, not a rare product of many small sides."""
    if draw(_LARGE) == 0 and max_dims >= 1 and min_dims <= 3 and min_side <= LARGE_MIN_SIDE <= max_side \
            and LARGE_MIN_SIDE ** max(min_dims, 1) <= max_elements:
        return draw_shape(draw, max(min_dims, 1), min(max_dims, 3), LARGE_MIN_SIDE, max_side, max_elements)
    return draw_shape(draw, min_dims, max_dims, min_side, max_side, max_elements)


@bucketed_factory
@cached
@st.composite
def broadcastable_shapes(draw, num_shapes=2, *, min_dims=0, max_dims=MAX_DIMS, min_side=0,
                         max_side=MAX_SIDE, max_elements=MAX_ELEMENTS):
    """`num_shapes` shapes that broadcast together.

    A result scaffold is drawn first; each shape takes a right-aligned suffix of it,
    with some sizes replaced by 1 (so 1-vs-n and 1-vs-0 columns are common).
    """
    if num_shapes < 1:
        raise InvalidArgument(f"num_shapes={num_shapes} must be at least 1")
    scaffold = draw_scaffold(draw, min_dims, max_dims, min_side, max_side, max_elements)
    shapes = []
    for _ in range(num_shapes):
        ndim = draw(integers(0, len(scaffold)))
        suffix = scaffold[len(scaffold) - ndim:]
        ones = bits(draw(subsets(ndim)), ndim)
        shapes.append(tuple(1 if one else s for s, one in zip(suffix, ones)))
    return tuple(shapes)


@bucketed_factory
@cached
@st.composite
def one_way_pairs(draw, *, min_dims=0, max_dims=MAX_DIMS, max_side=MAX_SIDE, max_elements=MAX_ELEMENTS):
    """(shape, target) where shape broadcasts one-way to target (expand / in-place operand)."""
    target = draw_scaffold(draw, min_dims, max_dims, 0, max_side, max_elements)
    ndim = draw(integers(0, len(target)))
    suffix = target[len(target) - ndim:]
    ones = bits(draw(subsets(ndim)), ndim)
    return tuple(1 if one else s for s, one in zip(suffix, ones)), target


@cached
def _index_pairs(n):
    return st.lists(integers(0, n - 1), min_size=2, max_size=2, unique=True)


@cached
@st.composite
def stretched_to_zero(draw, num_shapes=2, **kw):
    """`num_shapes` broadcastable shapes (see `broadcastable_shapes`) where a 1 is stretched
    against a 0: one drawn shape's last side is 0 (the first's half the time), the others' 1 (a
    0-d shape gains that dim).  Cut from broadcastable shapes this needs a 0 in the scaffold and
    a 1 in the same column of another operand, one draw in a hundred or fewer."""
    shapes = draw(broadcastable_shapes(num_shapes, **kw))
    zero = 0 if draw(booleans()) else draw(integers(0, num_shapes - 1))
    return tuple(tuple(s[:-1] if s else ()) + ((0,) if k == zero else (1,)) for k, s in enumerate(shapes))


@bucketed_factory
@cached
@st.composite
def incompatible_shapes(draw, num_shapes=2, *, max_dims=MAX_DIMS, max_side=MAX_SIDE,
                        max_elements=MAX_ELEMENTS):
    """`num_shapes` shapes that do not broadcast: broadcastable shapes with one aligned
    dimension perturbed so two operands hold different sizes, neither of them 1
    (0 against n >= 2 included)."""
    if num_shapes < 2:
        raise InvalidArgument(f"num_shapes={num_shapes}: incompatibility needs at least 2 shapes")
    shapes = list(draw(broadcastable_shapes(num_shapes, min_dims=1, max_dims=max_dims,
                                            max_side=max_side, max_elements=max_elements // 2)))
    i, j = draw(_index_pairs(num_shapes))
    for k in (i, j):
        if not shapes[k]:
            shapes[k] = (1,)
    depth = draw(integers(1, min(len(shapes[i]), len(shapes[j]))))
    a = draw(sampled_from(tuple(s for s in range(max_side + 1) if s != 1)))
    b = draw(sampled_from(tuple(s for s in range(max_side + 1) if s not in (1, a))))
    for k, size in ((i, a), (j, b)):
        s = list(shapes[k])
        s[-depth] = size
        shapes[k] = tuple(s)
    return tuple(shapes)


NEGATIVE_SIZES = (-1, -2, -7)


@bucketed_factory
@cached
@st.composite
def negative_size_shapes(draw, num_shapes=2, *, max_dims=MAX_DIMS, max_side=MAX_SIDE, max_elements=MAX_ELEMENTS):
    """`num_shapes` shapes that would broadcast but for one size made negative (-1, which
    expand reads as "keep", and others): shapes no rule accepts."""
    if num_shapes < 1:
        raise InvalidArgument(f"num_shapes={num_shapes} must be at least 1")
    shapes = list(draw(broadcastable_shapes(num_shapes, min_dims=1, max_dims=max_dims, max_side=max_side,
                                            max_elements=max_elements)))
    i = draw(integers(0, num_shapes - 1))
    s = list(shapes[i] or (1,))
    s[draw(integers(0, len(s) - 1))] = draw(sampled_from(NEGATIVE_SIZES))
    shapes[i] = tuple(s)
    return tuple(shapes)


def _compatible(s, t):
    return s == t or s == 1 or t == 1


@cached
@st.composite
def _misaligned(draw, max_dims):
    b = tuple(draw(st.lists(sampled_from((1, 1, 2, 3)), min_size=2, max_size=max_dims)))
    k = draw(integers(1, len(b) - 1))
    lead = len(b) - k
    a = tuple(draw(sampled_from(tuple(s for s in (1, 2, 3) if _compatible(s, b[lead + i])
                                      and _compatible(s, b[i])))) for i in range(k))
    return a, b


@bucketed_factory
def misalignable_pairs(*, max_dims=6):
    """(a, b), len(a) < len(b), that broadcast right-aligned (the rule) *and* would broadcast
    left-aligned (a padded with 1s on the right), to a different shape: the pairs on which
    an alignment bug gives a wrong answer instead of an error (the source material's
    mistake: walking [2,1,1,5] against [2,2,5,5] from the wrong end)."""
    def differs(pair):
        a, b = pair
        lead = len(b) - len(a)
        return rules.broadcast_shapes((1,) * lead + a, b) != rules.broadcast_shapes(a + (1,) * lead, b)
    return _misaligned(max_dims).filter(differs)


@bucketed_factory
@cached
def inplace_shape_pairs(**kw):
    """(self_shape, other_shape): one-way pairs, reversed ones (self would have to grow),
    incompatible ones, a lower-rank other that would also broadcast onto self aligned on the
    left (where an alignment bug writes wrong values instead of raising), and a 1 of other
    stretched against a 0 of self; an in-place op must accept the first kind, the lower-rank
    other and the stretch to 0."""
    return st.one_of(
        one_way_pairs(**kw).map(lambda p: (p[1], p[0])),
        one_way_pairs(**kw),
        broadcastable_shapes(2, **kw),
        incompatible_shapes(2),
        _both_ways_onto(),
        stretched_to_zero(2, **kw),  # self of side 0, other of side 1: in place, legal and empty
    )


@cached
@st.composite
def _both_ways_onto(draw):
    """(self, other): other of lower rank fits self aligned on the right (the rule) and, padded
    with 1s on the right, aligned on the left too, onto the same shape: self's sides all equal
    (2 or 3), other's sides that side or 1.  Only the element mapping tells the two apart."""
    n = draw(integers(2, 3))
    m = draw(integers(2, 3))
    k = draw(integers(1, m - 1))
    ones = bits(draw(integers(0, 2**k - 2)), k)  # never all 1s: then both mappings agree
    return (n,) * m, tuple(1 if one else n for one in ones)


@cached
def _size_lists(max_side, max_size):
    return st.lists(integers(0, max_side), max_size=max_size)


@cached
def _one_sizes(max_side):
    return sampled_from((1, -1)) | integers(0, max_side)


@bucketed_factory
@cached
@st.composite
def expand_sizes(draw, shape, *, max_side=MAX_SIDE, max_elements=MAX_ELEMENTS):
    """Arguments for ``Tensor.expand(*sizes)`` against `shape`: usually valid (leading new
    dims, 1s stretched, -1 to keep a size), sometimes not (a non-1 size changed, -1 in a
    new dimension, fewer sizes than dims)."""
    lead = draw(_size_lists(max_side, max(0, 3 - len(shape) // 3)))
    sizes = list(lead)
    for s in shape:
        if s == 1:
            sizes.append(draw(_one_sizes(max_side)))
        else:
            sizes.append(draw(sampled_from((s, -1))))
    if draw(integers(0, 4)) == 0 and sizes:  # break it
        k = draw(integers(0, len(sizes) - 1))
        sizes[k] = draw(sampled_from((-1, 0, 2, 3, max_side)))
    if draw(integers(0, 9)) == 0 and shape:
        sizes = sizes[1:]
    budget = math.prod(max(s, 1) for s in sizes) * math.prod(max(s, 1) for s in shape)
    if budget > max_elements * max_elements:
        sizes = [min(abs(s), 2) if s != -1 else -1 for s in sizes]
    return tuple(sizes)
