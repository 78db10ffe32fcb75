"""The strategies really produce each case class, and specs build into what they describe."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, find, given, settings, strategies as st

from conformance import rules
from conformance.tensors import read
from strategies import (
    array_shapes,
    broadcastable_shapes,
    dtypes,
    elements,
    fill_values,
    incompatible_shapes,
    keep_masks,
    logits,
    tensors,
)
from strategies.layouts import element_lists
from strategies.values import logit_widths

FIND = settings(max_examples=5000, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def reaches(strategy, condition):
    return find(strategy, condition, settings=FIND)


CASES = {
    "zero-size dimension": (array_shapes(), lambda s: 0 in s),
    "0-d shape": (array_shapes(), lambda s: s == ()),
    "8 dimensions": (array_shapes(), lambda s: len(s) == 8),
    "1 against 0": (broadcastable_shapes(2),
                    lambda p: any(x * y == 0 and x + y == 1 for x, y in zip(p[0][::-1], p[1][::-1]))),
    "4 shapes": (st.integers(4, 4).flatmap(broadcastable_shapes), lambda p: len(p) == 4),
    "0 against n >= 2": (incompatible_shapes(2),
                         lambda p: any({x, y} & {0} and max(x, y) >= 2 for x, y in zip(p[0][::-1], p[1][::-1]))),
    "non-contiguous layout": (tensors((3, 4), "float32"), lambda s: not s.is_contiguous_layout and 0 not in s.strides),
    "expanded (zero stride)": (tensors((3, 4), "float32"), lambda s: 0 in s.strides),
    "storage offset": (tensors((3, 4), "float32"), lambda s: s.offset > 0),
    "all-False row": (keep_masks((4, 6)), lambda m: any(not any(m.values[i * 6:(i + 1) * 6]) for i in range(4))),
    "all-True row": (keep_masks((4, 6)), lambda m: any(all(m.values[i * 6:(i + 1) * 6]) for i in range(4))),
    "row wider than 1024": (logit_widths(), lambda w: w > 1024),
    "non-power-of-two width > 1024": (logit_widths(), lambda w: w > 1024 and w & (w - 1)),
    "extreme logits": (logits((8,), "float16"), lambda x: max(map(abs, x.values)) >= 32752),
    "-inf fill value": (fill_values("int64"), lambda f: f.value == -math.inf),
    "nan fill value": (fill_values("float32"), lambda f: isinstance(f.value, float) and math.isnan(f.value)),
    "0-d tensor fill value": (fill_values("float32"), lambda f: f.tensor_dtype is not None),
    "bfloat16": (dtypes(), lambda d: d == "bfloat16"),
    # the value kinds drawn as one number (layouts.draw_elements): every kind, in every position
    "nan, inf, -inf and a finite value in one list": (
        element_lists(elements("float16", allow_nan=True, allow_infinity=True), 6),
        lambda v: any(math.isnan(x) for x in v) and math.inf in v and -math.inf in v
        and any(math.isfinite(x) for x in v)),
    "last of 8 values is -inf": (element_lists(elements("float32", allow_nan=True, allow_infinity=True), 8),
                                 lambda v: v[-1] == -math.inf),
    "pooled list with nan and a finite value": (
        element_lists(elements("float64", allow_nan=True, allow_infinity=True), 30),
        lambda v: any(math.isnan(x) for x in v) and any(math.isfinite(x) for x in v)),
    # booleans drawn as the bits of one number (layouts.draw_elements)
    "16 booleans, the last True, the rest mostly False": (
        element_lists(st.booleans(), 16), lambda v: v[-1] and sum(v) <= 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_strategy_reaches(name):
    strategy, condition = CASES[name]
    reaches(strategy, condition)


@given(data=st.data())
def test_tensor_specs_build_into_their_values_and_layout(data):
    shape = data.draw(array_shapes(max_dims=4))
    dtype = data.draw(dtypes())
    spec = data.draw(tensors(shape, dtype))
    t, base = spec.build_with_base()
    assert tuple(t.shape) == spec.shape and tuple(t.stride()) == spec.strides
    assert t.storage_offset() == spec.offset
    got = read(t)
    assert len(got) == len(spec.values)
    assert all(rules.same_value(a, b) for a, b in zip(got, spec.values))
    assert all(rules.same_value(a, b) for a, b in zip(read(base), spec.storage))


@given(shapes=broadcastable_shapes(3))
def test_broadcastable_shapes_broadcast(shapes):
    rules.broadcast_shapes(*shapes)


@given(shapes=incompatible_shapes(3))
def test_incompatible_shapes_do_not(shapes):
    with pytest.raises(rules.BroadcastError):
        rules.broadcast_shapes(*shapes)


@given(x=logits((2048,), "bfloat16"))
def test_wide_logits_are_representable(x):
    assert all(rules.round_to("bfloat16", v) == v for v in x.values)


@given(x=st.sampled_from(["float16", "bfloat16", "float32", "float64"]).flatmap(
    lambda dt: st.sampled_from([(64,), (3, 40), (2049,)]).flatmap(lambda s: logits(s, dt))))
def test_generated_logits_equal_their_numpy_source(x):
    """A failure's reproduction rebuilds wide logits from `numpy_source`: it must give the values."""
    import numpy as np

    from strategies.values import round_array

    assert x.numpy_source is not None
    rebuilt = round_array(x.dtype, eval(x.numpy_source, {"np": np})).tolist()  # noqa: S307
    assert all(rules.same_value(a, b) for a, b in zip(rebuilt, x.values))


@given(m=st.sampled_from([(70, 3), (9, 100)]).flatmap(keep_masks))
def test_keep_masks_equal_their_numpy_source(m):
    import numpy as np

    assert m.numpy_source is not None
    assert np.asarray(eval(m.numpy_source, {"np": np})).reshape(-1).tolist() == list(m.values)  # noqa: S307


def test_strategy_factories_are_reused():
    """The same arguments give the same strategy object (see strategies/_cache.py)."""
    assert tensors((2, 3), "float32") is tensors((2, 3), "float32")
    assert array_shapes(max_dims=4) is array_shapes(max_dims=4)
    unhashable = tensors([2, 3], "float32")  # unhashable arguments bypass the cache: a new strategy
    assert unhashable is not tensors([2, 3], "float32")
    assert find(unhashable, lambda x: True).shape == (2, 3)


def _draw_from_choices(choice, draw):
    """What `draw` returns when the next choice Hypothesis makes is `choice`."""
    from strategies.hypothesis_internals import draw_from_choices

    return draw_from_choices([choice], draw)


@pytest.mark.parametrize("bounds", [{}, {"min_value": -30, "max_value": 30}])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@given(choice=st.floats(allow_nan=False) | st.sampled_from(
    # above a float16 half-way point by less than float32 keeps: rounding through float32
    # first (double rounding) lands on the tie and rounds to even instead of up
    [1 + 2**-11 + 2**-40, -(1 + 2**-11 + 2**-40), 2049 + 2**-30, 65519.99]))
def test_draw_value_draws_what_the_elements_strategy_draws(dtype, bounds, choice):
    """`draw_value` skips the downcast maps of `elements` (their spans) but gives the same
    value for the same choice: a float16 drawn from float64 directly, as Hypothesis does."""
    from strategies.values import _RAW, draw_value

    strategy = elements(dtype, **bounds)
    assert strategy in _RAW
    want = _draw_from_choices(choice, lambda d: d.draw(strategy))
    got = _draw_from_choices(choice, lambda d: draw_value(d.draw, strategy))
    assert rules.same_value(got, want), (choice, want, got)
