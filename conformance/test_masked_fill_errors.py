"""masked_fill's error paths and dtype rules: non-bool masks, value tensors with dims, and
values that do or do not fit the dtype (float into int truncates; nan and +-inf fit the
float dtypes; out-of-range values, nan and inf into ints raise)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from conformance import device_ops, reach, rules
from conformance.failures import Case, attempt
from conformance.tensors import TensorSpec, read
from strategies import array_shapes, dtypes, non_bool_masks, tensors
from strategies._cache import cached, evenly, sampled_from
from strategies.values import FillValue, fill_values, fractional_floats, supported, unrepresentable, value_tensor_scalars

OPS = ("masked_fill", "masked_fill_")
pytestmark = [pytest.mark.ops(param="op"), pytest.mark.torch_tensors]
NON_BOOL = ("uint8", "int32", "int64", "float32", "float16")


def each_op(claims, shared=()):
    """The two ops as parameters, each claiming `claims(op)`, and both together `shared` (see
    `conformance.reach`)."""
    return reach.params(OPS, claims, shared)


def _non_bool(op):
    return (*reach.dtypes(f"{op}.mask", NON_BOOL), *reach.dtypes(f"{op}.self", rules.DTYPES), f"{op}.outcome:raises")


def _value_with_dims(op):
    return (f"{op}.value:with dims", *reach.dtypes(f"{op}.self", rules.DTYPES), f"{op}.outcome:raises")


@cached
@st.composite
def _fills(draw, dtype):
    """Fill values: 0-d tensors of every dtype, values just past what the dtype can hold, for an
    integer dtype floats with a fractional part (truncation against rounding), `fill_values`,
    Python bools: each branch drawn evenly (`evenly`), so that each reaches its share of the
    examples (a backend that saturates, wraps or rounds deviates only in its own branch)."""
    # for an integer dtype, fractional floats twice: truncation is what an int target decides
    fractional = (fractional_floats().map(FillValue),) * 2 if dtype in rules.INT_DTYPES else ()
    branches = (_zero_d_fills(dtype), sampled_from(tuple(unrepresentable(dtype))).map(FillValue), *fractional,
                fill_values(dtype), _PYTHON_BOOLS)
    return draw(branches[draw(evenly(tuple(range(len(branches)))))])


@cached
@st.composite
def _zero_d_fills(draw, dtype):
    """A 0-d tensor fill value for a `dtype` self, of a dtype drawn evenly and shifted by self's
    (which varies from example to example: an even draw alone left one dtype 4 of 600)."""
    names = supported(rules.DTYPES)
    shift = names.index(dtype) if dtype in names else 0
    vdtype = names[(draw(evenly(tuple(range(len(names))))) + shift) % len(names)]
    return FillValue(draw(value_tensor_scalars(vdtype)), vdtype)


_PYTHON_BOOLS = sampled_from((True, False)).map(FillValue)


def _cast_rules(op):
    return (*reach.of(op, "value:python float", "value:python int", "value:python bool", "outcome:raises",
                      "outcome:returns"), *reach.dtypes(f"{op}.self", rules.DTYPES))


# 0-d tensor values of every dtype, by either op (a seventh of the tensor values each)
_ZERO_D_VALUES = tuple(f"*.value:0-d {d}" for d in rules.DTYPES)


@pytest.mark.parametrize("op", each_op(_non_bool))
@given(data=st.data())
def test_masked_fill_rejects_non_bool_masks(device, op, data):
    """A mask of any dtype but bool (uint8 legacy masks included) raises, and self is unchanged."""
    ops = device_ops.for_device(device)
    shape = data.draw(array_shapes(max_dims=4), label="shape")
    dtype = data.draw(dtypes(), label="dtype")
    x = data.draw(tensors(shape, dtype), label="x")
    mask = data.draw(non_bool_masks(shape), label="mask")
    case = Case("masked_fill takes bool masks only", device).tensor("x", x).tensor("mask", mask)
    case.run(f"x.{op}(mask, 0)")
    t = x.build(device)
    _, err = attempt(lambda: getattr(ops, op)(t, mask.build(device), 0))
    case.check_outcome(TypeError(f"a {mask.dtype} mask"), err, kind="mask_dtype")
    if not rules.same_values(read(t), x.values):
        case.fail("a refused call changed self")


@pytest.mark.parametrize("op", each_op(_value_with_dims))
@given(data=st.data())
def test_masked_fill_rejects_value_tensors_with_dims(device, op, data):
    """The value must be a Python scalar or a 0-d tensor; a tensor with dim > 0 raises,
    even with a single element."""
    ops = device_ops.for_device(device)
    shape = data.draw(array_shapes(max_dims=4), label="shape")
    dtype = data.draw(dtypes(), label="dtype")
    x = data.draw(tensors(shape, dtype), label="x")
    vshape = data.draw(array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3), label="value shape")
    value = data.draw(tensors(vshape, dtype), label="value")
    case = Case("masked_fill's value is a scalar or a 0-d tensor", device)
    case.tensor("x", x).tensor("value", value).run(f"x.{op}(torch.ones_like(x, dtype=torch.bool), value)")
    t = x.build(device)
    mask = TensorSpec.contiguous(shape, "bool", [True] * rules.numel(shape)).build(device)
    _, err = attempt(lambda: getattr(ops, op)(t, mask, value.build(device)))
    case.check_outcome(ValueError(f"a value tensor of shape {vshape}"), err, kind="value_dim")


@pytest.mark.parametrize("op", each_op(_cast_rules, _ZERO_D_VALUES))
@given(data=st.data())
def test_masked_fill_value_conversion_follows_cast_rules(device, op, data):
    """The value is converted to self's dtype as c10 converts scalars: bool takes truthiness,
    ints truncate floats toward zero, floats round (half types via float32) and keep nan/inf;
    a value outside the dtype's range, or nan/inf into an int, raises."""
    ops = device_ops.for_device(device)
    # every dtype evenly, the integer ones twice: where truncation, not rounding, and the
    # overflow checks of ints are decided (a backend that rounds deviates only there)
    dtype = data.draw(evenly(supported((*rules.DTYPES, *rules.INT_DTYPES))), label="dtype")
    shape = data.draw(array_shapes(max_dims=2, min_side=1, max_side=3), label="shape")
    x = data.draw(tensors(shape, dtype, kinds=("contiguous",)), label="x")
    fill = data.draw(_fills(dtype), label="value")
    case = Case("fill values convert like c10 scalars; unrepresentable values raise", device)
    case.tensor("x", x).value("value", fill.describe(), fill.code(device))
    case.run(f"print(x.{op}(torch.ones_like(x, dtype=torch.bool), value))")
    try:
        want, err = rules.cast_scalar(fill.scalar(), dtype), None
    except rules.ConversionError as e:
        want, err = None, e
    t = x.build(device)
    mask = TensorSpec.contiguous(shape, "bool", [True] * rules.numel(shape)).build(device)
    out, terr = attempt(lambda: getattr(ops, op)(t, mask, fill.build(device)))
    if case.check_outcome(err, terr):
        return
    case.check_values(read(out), [want] * rules.numel(shape), shape,
                      what=f"{fill.describe()} was stored wrongly in {dtype}")
