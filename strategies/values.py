"""Dtypes, elements, fill values and logits.

Every value is a Python scalar exactly representable in its dtype, so the oracle and the
backend start from the same numbers.  bfloat16 has no native Hypothesis strategy: float32
draws are rounded to it with the oracle's own rounding.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from conformance import rules
from conformance.tensors import TensorSpec, py_literal
from strategies._cache import booleans, cached, evenly, integers, sampled_from
from strategies.buckets import bucketed_factory, size_classes

FLOATS = rules.FLOAT_DTYPES
ALL = rules.DTYPES
_WIDTH = {"float16": 16, "float32": 32, "float64": 64, "bfloat16": 32}


@cached
def dtypes(names=ALL):
    """One of the dtype names in `names` (strings; see `conformance.rules.DTYPES`) that the
    backend under test supports (its ``DTYPES``; all of them for torch)."""
    bad = set(names) - set(ALL)
    if bad:
        raise InvalidArgument(f"unknown dtypes {sorted(bad)}; choose from {ALL}")
    return st.deferred(lambda: sampled_from(supported(tuple(names))))


def supported(names):
    """The dtypes of `names` the backend under test supports (InvalidArgument when none)."""
    from conformance import backends

    have = backends.active().dtypes
    kept = tuple(n for n in names if n in have)
    if not kept:
        raise InvalidArgument(f"the backend under test supports none of the dtypes {names}")
    return kept


@cached
def elements(dtype, *, allow_nan=False, allow_infinity=False, min_value=None, max_value=None, edges=False):
    """Python scalars representable in `dtype` (finite by default).  With `edges`, a share of
    them are the dtype's edge values within the bounds (see `edge_values`: extremes, the
    smallest normal and subnormal, -0.0, values that need every significand bit)."""
    if dtype == "bool":
        return booleans()
    if dtype in rules.INT_DTYPES:
        lo, hi = rules.iinfo(dtype)
        lo = lo if min_value is None else max(lo, math.ceil(min_value))
        hi = hi if max_value is None else min(hi, math.floor(max_value))
        return _with_branches(st.integers(lo, hi), [], _edges_within(dtype, lo, hi) if edges else ())
    if dtype not in FLOATS:
        raise InvalidArgument(f"unknown dtype {dtype!r}")
    big = rules.finfo_max(dtype)
    lo = -big if min_value is None else max(-big, min_value)
    hi = big if max_value is None else min(big, max_value)
    strat = st.floats(lo, hi, width=_WIDTH[dtype], allow_nan=False, allow_infinity=False)
    if dtype == "bfloat16":
        strat = strat.map(lambda x: rules.round_to("bfloat16", x)).filter(lambda x: lo <= x <= hi)
    if dtype != "float64" and lo <= 0 <= hi and rules.round_to(dtype, lo) == lo and rules.round_to(dtype, hi) == hi:
        _RAW[strat] = (st.floats(lo, hi, allow_nan=False, allow_infinity=False), _DOWNCAST[dtype])
    specials = ([(math.nan,)] if allow_nan else []) + ([(math.inf, -math.inf)] if allow_infinity else [])
    return _with_branches(strat, specials, _edges_within(dtype, lo, hi) if edges else ())


def _with_branches(strat, specials, edge_list):
    """`strat`, or a one_of of it, the special values and the edge values (registered for
    `split_specials`, which draws a list's branches in one choice)."""
    if not specials and not edge_list:
        return strat
    edge = sampled_from(tuple(edge_list)) if edge_list else None
    out = st.one_of(strat, *(sampled_from(v) for v in specials), *([edge] if edge is not None else []))
    _SPLITS[out] = (strat, tuple(specials), edge)
    return out


# the smallest normal and subnormal magnitudes: 2**TINY[dtype][0] and 2**TINY[dtype][1]
TINY = {"float16": (-14, -24), "bfloat16": (-126, -133), "float32": (-126, -149), "float64": (-1022, -1074)}


def edge_values(dtype) -> list:
    """A dtype's finite edges: the extremes, 0 and -0.0 (twice as often), values that need every
    significand bit (see `_extremes`); for floats the smallest normal magnitude and three
    subnormal ones (the smallest, the largest, one between); for ints the extremes again."""
    out = [v for v in _extremes(dtype) if not (isinstance(v, float) and not math.isfinite(v))]
    if dtype in TINY:
        normal, sub = (2.0 ** e for e in TINY[dtype])
        # the smallest and largest subnormals, one between, the smallest normal; -0.0 again
        out += [v for m in (normal, sub, normal - sub, normal / 2) for v in (m, -m)] + [-0.0]
    elif dtype in rules.INT_DTYPES:
        out += list(rules.iinfo(dtype))  # the extremes twice as often: where wrapping starts
    return out


@cached
def values_or_edges(dtype):
    """A strategy of element strategies for one `dtype` tensor: half the tensors take any value
    (finite, edges, nan, +-inf), the other half only edge values (with nan and +-inf for
    floats), `cycled`: a tensor of n elements holds n of them in a row.  A property that claims
    every value class (-0, the dtype's minimum, ...) then reaches each in several percent of its
    examples, not in one or two of 300, which a re-draw of the examples loses."""
    special = (math.nan, math.inf, -math.inf) if dtype in rules.FLOAT_DTYPES else ()
    anything = elements(dtype, allow_nan=True, allow_infinity=True, edges=True)
    # the edges second: Hypothesis draws the first of a few options far more often than the rest
    edges = cycled(_distinct((*edge_values(dtype), *special)))
    return sampled_from((anything, edges, anything, edges))


def _distinct(values) -> tuple:
    """`values` without repeats (-0.0 and 0.0 are distinct; nan is kept once)."""
    out, seen = [], set()
    for v in values:
        key = (type(v), repr(v))
        if key not in seen:
            seen.add(key)
            out.append(v)
    return tuple(out)


# cycled() strategies -> their values: what `strategies.layouts.draw_elements` draws a list from
_CYCLED: dict = {}


@cached
def cycled(values: tuple):
    """An element strategy: one of `values`.  A list drawn from it (`strategies.layouts.
    element_lists`) is `values` in turn from a start drawn evenly, so a tensor of n elements
    holds min(n, len(values)) distinct ones: each value is in about n / len(values) of such
    tensors, where drawing each element alone would leave the values in the middle of the
    list to a few of 300 examples (Hypothesis leans to the first and the last)."""
    out = st.sampled_from(values).map(lambda v: v)  # an object of its own for the registry
    _CYCLED[out] = tuple(values)
    return out


def cycled_values(elements) -> tuple | None:
    """The values of a `cycled` strategy, else None."""
    return _CYCLED.get(elements)


@cached
def _edges_within(dtype, lo, hi) -> tuple:
    return tuple(v for v in edge_values(dtype) if lo <= v <= hi)


# float16/float32/bfloat16 elements(), and `mapped` strategies -> (a strategy, a function):
# what `draw_value` draws instead.  Hypothesis's floats(lo, hi, width=32) is floats(lo, hi)
# mapped through a downcast (a struct round trip, like rules.round_to), and a map costs two
# spans per value; bfloat16 adds its own map and a filter.  Only where the two draw the same
# choices: bounds exact in the dtype (so the filter never rejects: rounding is monotone) and
# 0 between them (so both widths allow subnormals and give the same constraints).
_RAW: dict = {}
_DOWNCAST = {
    "float32": functools.partial(rules.round_to, "float32"),
    "float16": lambda x: struct.unpack("<e", struct.pack("<e", x))[0],  # directly, like Hypothesis
    "bfloat16": functools.partial(rules.round_to, "bfloat16"),  # through float32, as above
}


def mapped(strategy, f):
    """``strategy.map(f)``, which `draw_value` draws as ``f(draw(strategy))``: the same choice,
    without the map's two spans (for values drawn many to an example)."""
    out = strategy.map(f)
    _RAW[out] = (strategy, f)
    return out


def draw_value(draw, elements):
    """One value of `elements`, drawn with `draw` inside the caller's composite: the same
    choices and value as ``draw(elements)``, without the spans of a float's downcast."""
    raw = _RAW.get(elements)
    return draw(elements) if raw is None else raw[1](draw(raw[0]))


# elements() strategies with nan/+-inf -> (the finite part, the specials' branches): what lets
# `element_lists` name the kind of every value of a list in one draw (see `split_specials`)
_SPLITS: dict = {}


def split_specials(elements):
    """(finite, branches, edges) for a strategy from `elements` with nan, +-inf or edge values,
    else None.  Drawing from it picks one of its 1 + len(branches) (+ 1 with edges) branches
    uniformly: the finite part, a tuple of special values (then one of those uniformly) or
    the edge values' strategy."""
    return _SPLITS.get(elements)


@dataclass(frozen=True)
class FillValue:
    """A masked_fill value: a Python scalar, or a 0-d tensor of `tensor_dtype` holding it."""

    value: float | int | bool
    tensor_dtype: str | None = None

    def scalar(self):
        """The Python scalar torch reads from this value (``Tensor.item()`` for a 0-d tensor)."""
        return self.value

    def build(self, device="cpu", requires_grad=False):
        if self.tensor_dtype is None:
            return self.value
        import torch

        from conformance.tensors import TORCH_DTYPES
        return torch.tensor(self.value, dtype=TORCH_DTYPES[self.tensor_dtype], device=device,
                            requires_grad=requires_grad)

    def code(self, device="cpu") -> str:
        if self.tensor_dtype is None:
            return py_literal(self.value)
        dev = "" if device == "cpu" else f", device={device!r}"
        return f"torch.tensor({py_literal(self.value)}, dtype=torch.{self.tensor_dtype}{dev})"

    def describe(self) -> str:
        if self.tensor_dtype is None:
            return f"{py_literal(self.value)} (Python {type(self.value).__name__})"
        return f"{py_literal(self.value)} (0-d {self.tensor_dtype} tensor)"


def _extremes(dtype):
    """The dtype's edges, and precision probes: values that need every significand bit, so
    any detour through a narrower dtype changes them."""
    if dtype == "bool":
        return [True, False]
    if dtype in rules.INT_DTYPES:
        lo, hi = rules.iinfo(dtype)
        return [lo, hi, lo + 1, hi - 1, 0, -1] + [p for p in (2**24 + 1, 2**53 + 1) if p <= hi]
    big = rules.finfo_max(dtype)
    probes = [rules.round_to(dtype, 0.1), rules.round_to(dtype, 1 / 3), 1 + rules.finfo_eps(dtype)]
    return [big, -big, math.inf, -math.inf, math.nan, 0.0, -0.0, rules.finfo_eps(dtype), *probes]


@cached
def fractional_floats():
    """Floats with a fractional part where truncation, rounding and flooring all disagree
    (2.75, -2.5, -0.25 ...): what converting a float into an integer dtype must get right."""
    # the fractions where rounding and truncation disagree first (Hypothesis draws the first most)
    return st.builds(lambda i, f: i + f, st.integers(-(2**20), 2**20),
                     sampled_from([0.75, -0.75, 0.9990234375, 0.25, 0.5, -0.25, -0.5]))


def unrepresentable(dtype):
    """Python scalars a `dtype` tensor cannot take, just past its edges: ints too big to be a
    scalar at all, for integer dtypes one past each end and nan/inf, for the narrow floats
    twice their largest value."""
    out = [2**64, -(2**63) - 1]
    if dtype in rules.INT_DTYPES:
        lo, hi = rules.iinfo(dtype)
        out += [hi + 1, lo - 1, math.inf, -math.inf, math.nan]
    elif dtype != "float64" and dtype != "bool":
        out += [2 * rules.finfo_max(dtype), -2 * rules.finfo_max(dtype)]
    return out


@cached
def python_scalars(dtype):
    """Python scalars to fill into a `dtype` tensor, valid or not: representable elements,
    the dtype's extremes, values just past them, +-inf, nan, arbitrary floats (many
    overflow), ints (ints beyond 2**53 only for integer targets, where they are exact),
    bools, and floats with a fractional part (see `fractional_floats`)."""
    ints = st.integers(-(2**63), 2**63 - 1) if dtype in rules.INT_DTYPES else st.integers(-(2**53), 2**53)
    pool = [*_extremes(dtype)] + [v for d in ALL if d != dtype for v in _extremes(d)]
    return st.one_of(
        elements(dtype, allow_nan=True, allow_infinity=True),
        sampled_from(pool),
        sampled_from(unrepresentable(dtype)),
        # float(2**63) converts to int64 with undefined behaviour in C++: not a rule to test
        st.floats().filter(lambda x: abs(x) != 2.0**63),
        ints,
        booleans(),
        fractional_floats(),
    )


@cached
def value_tensor_scalars(dtype):
    """What a 0-d `dtype` tensor value holds: any element (nan and +-inf included), one of
    the dtype's extremes, or (half the time) a value that needs every bit of the dtype,
    which any detour through a narrower dtype changes."""
    edges = _extremes(dtype)
    needs_every_bit = [v for v in edges if isinstance(v, (int, float)) and not isinstance(v, bool)
                       and math.isfinite(v) and v not in (0, -1) and rules.round_to("float32", v) != v]
    probes = sampled_from(needs_every_bit or edges)
    return st.one_of(elements(dtype, allow_nan=True, allow_infinity=True), sampled_from(edges),
                     probes, probes)


# two values in three are 0-d tensors: a claim per value dtype (seven) gets a share of about 5 %
# of the examples, which holds its margin (`conformance.reach.margin`) whatever the seed
_TENSOR_SHARE = evenly((False, True, True))


@cached
@st.composite
def fill_values(draw, dtype, *, tensors=True):
    """A `FillValue` for a `dtype` tensor: a Python scalar (see `python_scalars`) or, two in
    three when `tensors`, a 0-d tensor of any dtype holding one of its own elements or extremes. For an
    integer `dtype`, a third of the values are floats with a fractional part, the inputs
    on which truncation toward zero (the rule) and rounding or flooring (common bugs) differ."""
    if dtype in rules.INT_DTYPES and draw(integers(0, 2)) == 0:
        return FillValue(draw(fractional_floats()))
    if tensors and draw(_TENSOR_SHARE):
        vdtype = draw(evenly(supported(ALL)))  # each 0-d dtype is claimed: none left to the bias
        return FillValue(draw(value_tensor_scalars(vdtype)), vdtype)
    return FillValue(draw(python_scalars(dtype)))


# --------------------------------------------------------------------------- logits

# Logits of at least this many values are generated with a seeded NumPy generator
# (Hypothesis draws the seed and scale): drawing floats one by one costs a choice each and
# is no better at finding softmax bugs; up to 8 values are drawn one by one, and shrink.
WIDE = 9


@cached
def width_classes(max_width=4096, min_width=0):
    """The size classes of softmax row widths min_width..max_width (see `conformance.reach.band`),
    grouped by octave (0, 1, [2, 4), [4, 8), ...): every power of two, one past and one short
    of it (each listed twice: drawn twice as often), and the odd and even widths between."""
    from conformance import reach

    octaves: dict[int, list[str]] = {}
    for n in range(min_width, max_width + 1):
        b = reach.band(n)
        group = octaves.setdefault(n.bit_length(), [])
        if b not in group:
            # powers of two and their neighbours twice: they are single widths, where a
            # kernel's block boundaries are, and the odd/even classes have many members
            group += [b] * (1 if "<n<" in b else 2)
    return tuple(tuple(g) for g in octaves.values())


@cached
def _members(cls, max_width, min_width):
    from conformance import reach

    return sampled_from(tuple(reach.members(cls, max_width, min_width)))


@cached
def _weighted_octaves(top, min_width):
    """The octaves of `width_classes`, those up to 256 wide listed twice: drawn evenly, every
    octave past 256 still gets a twentieth of the examples or more (a dozen of 300, their claims'
    margin four times over), and the rows past 1024, a hundred times the work of a narrow one,
    are not a third of a property's time."""
    octaves = width_classes(top, min_width)
    return tuple(o for o in octaves for _ in range(2 if max(_reach_members(o, top, min_width)) <= 256 else 1))


def _reach_members(group, top, min_width):
    from conformance import reach

    return [n for cls in group for n in reach.members(cls, top, min_width)] or [0]


@cached
def _octave_classes(group):
    return evenly(group)


@bucketed_factory(classes=size_classes)
@cached
@st.composite
def logit_widths(draw, *, wide=True, max_width=4096, min_width=0):
    """Softmax row widths: an octave drawn uniformly (0, 1, [2, 4), ... [2048, 4096), 4096),
    then a size class in it (a power of two, one past or one short of it, odd or even
    between: see `width_classes`), then a width in that class.  Every octave and class gets
    its share of the examples, the blocks of 256, 512 and 1024 and the widths past 1024
    included; up to 16 only, unless `wide`.  Shrinks towards the narrowest."""
    top = max_width if wide else min(16, max_width)
    # evenly, not sampled_from: Hypothesis leans to the first and the last of a few options,
    # and the octave of width 1 got no example of 300 in one property
    cls = draw(_octave_classes(draw(evenly(_weighted_octaves(top, min_width)))))
    return draw(_members(cls, top, min_width))


_SCALES = st.floats(0.1, 30.0)


@cached
@st.composite
def logits(draw, shape, dtype, *, kind=None):
    """A float `TensorSpec` of logits: "ordinary" (normal, scale up to 30), "extreme" (half
    to all of the dtype's largest magnitude, both signs) or "grid" (multiples of 1/4,
    exact under shifts; see `shift_range`)."""
    kind = kind or draw(sampled_from(("ordinary", "ordinary", "extreme", "grid")))
    shape = tuple(shape)
    n = rules.numel(shape)
    big = rules.finfo_max(dtype)
    if n >= WIDE:
        import numpy as np

        # the values, and the same computation as source for the reproduction (the self-tests
        # check that evaluating `src` gives `values`)
        seed, rng = draw(integers(0, 2**32 - 1)), np.random.default_rng
        if kind == "extreme":
            src = (f"(np.random.default_rng({seed}).uniform(0.5, 1.0, {n}) * {big!r} * "
                   f"np.random.default_rng({seed + 1}).choice([-1.0, 1.0], {n}))")
            raw = rng(seed).uniform(0.5, 1.0, n) * big * rng(seed + 1).choice([-1.0, 1.0], n)
        elif kind == "grid":
            src = f"(np.random.default_rng({seed}).integers(-64, 65, {n}) / 4.0)"
            raw = rng(seed).integers(-64, 65, n) / 4.0
        else:
            scale = draw(_SCALES)
            src = f"(np.random.default_rng({seed}).standard_normal({n}) * {scale!r})"
            raw = rng(seed).standard_normal(n) * scale
        if dtype != "float64":
            src, raw = f"{src}.astype(np.float32)", raw.astype(np.float32)
        values = tuple(round_array(dtype, raw).tolist())
        return TensorSpec(shape, dtype, values, rules.contiguous_strides(shape), 0, values,
                          numpy_source=src)
    elem = _short_logit_elements(kind, dtype)  # n < WIDE: one by one, with no list span
    return TensorSpec.contiguous(shape, dtype, [rules.round_to(dtype, draw_value(draw, elem)) for _ in range(n)])


_GRID = mapped(st.integers(-64, 64), lambda k: k / 4)


@cached
def _short_logit_elements(kind, dtype):
    big = rules.finfo_max(dtype)
    if kind == "extreme":
        return elements(dtype, min_value=big / 2) | elements(dtype, max_value=-big / 2)
    if kind == "grid":
        return _GRID
    return elements(dtype, min_value=-30, max_value=30)


def round_array(dtype, raw):
    """`rules.round_to` for a whole float32/float64 NumPy array at once (input generation
    only; the self-tests check it against `rules.round_to`)."""
    import numpy as np

    if dtype == "float64":
        return raw.astype(np.float64)
    f32 = raw.astype(np.float32)
    if dtype == "float32":
        return f32.astype(np.float64)
    if dtype == "float16":
        return f32.astype(np.float16).astype(np.float64)
    bits = f32.view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16) & 0xFFFFFFFF
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def shift_range(dtype) -> int:
    """The largest |c| such that grid logits (k/4, |k| <= 64) shifted by an integer c stay
    exact in `dtype`: |k + 4c| < 2**significand_bits."""
    return min(2 ** rules.significand_bits(dtype) // 4 - 16, 2**20)
