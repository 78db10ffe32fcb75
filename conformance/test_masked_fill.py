"""masked_fill (out-of-place) and masked_fill_ (in-place).

The out-of-place op broadcasts self and mask together and never touches its input; the
in-place op returns self, keeps its storage, advances the version counter, never
broadcasts self, and agrees with the out-of-place op on every valid input.
"""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, strategies as st

from conformance import device_ops, errors, reach, rules, semantics
from conformance.failures import Case, attempt, show
from conformance.tensors import TensorSpec, layout_of, read
from strategies import inplace_shape_pairs, masked_fill_args
from strategies._cache import cached
from strategies.layouts import WRITABLE, tensors
from strategies.masks import bool_masks
from strategies.values import FillValue, dtypes, elements, value_tensor_scalars, values_or_edges

pytestmark = [pytest.mark.ops("masked_fill", "masked_fill_"), pytest.mark.torch_tensors]


def describe(rule, device, x, mask, fill, op="masked_fill"):
    case = Case(rule, device).tensor("x", x).tensor("mask", mask)
    case.value("value", fill.describe(), fill.code(device))
    return case.run(f"out = x.{op}(mask, value)", "print(out)")


def expected_fill(x, mask, fill, *, inplace=False):
    """(shape, values, error) the oracle gives for ``x.masked_fill(mask, fill)``; an error is
    marked with the kinds that satisfy it (`conformance.errors`): where the value does not fit and
    the shapes do not broadcast either, torch may check either first."""
    try:
        shape = rules.broadcast_shapes(x.shape, mask.shape)
        grows = inplace and shape != x.shape
    except rules.BroadcastError as e:
        shape, grows, shape_error = None, False, e
    else:
        shape_error = None if not grows else rules.BroadcastError(
            f"in-place: mask {mask.shape} would broadcast self {x.shape} to {shape}")
    shape_kind = "inplace_grows_self" if grows else "broadcast"
    try:
        value = rules.cast_scalar(fill.scalar(), x.dtype)
    except rules.ConversionError as e:
        return None, None, errors.expect(e, "conversion", *((shape_kind,) if shape_error else ()))
    if shape_error is not None:
        return None, None, errors.expect(shape_error, shape_kind)
    shape, values = rules.masked_fill(x.values, x.shape, mask.values, mask.shape, value)
    return shape, values, None


def check_untouched(case, spec, t, base, version, what, device):
    """self afterwards: same shape and values, version counter unmoved; where the device has
    storage, the same strides and offset and every byte of its storage as before."""
    if tuple(t.shape) != spec.shape:
        case.fail(f"{what} changed self's shape", expected=spec.shape, actual=tuple(t.shape))
    if semantics.applies(device, "self's strides, storage offset and every byte of its storage unchanged"):
        if layout_of(t)[:3] != (spec.shape, spec.strides, spec.offset):
            case.fail(f"{what} changed self's shape, strides or offset",
                      expected=(spec.shape, spec.strides, spec.offset), actual=layout_of(t)[:3])
        if not rules.same_values(read(base), spec.storage):
            case.fail(f"{what} changed self's memory", expected=show(spec.storage, (len(spec.storage),)),
                      actual=show(read(base), (len(spec.storage),)))
    elif not rules.same_values(read(t), spec.values):
        case.fail(f"{what} changed self's values", expected=show(spec.values, spec.shape),
                  actual=show(read(t), spec.shape))
    if semantics.applies(device, "self's version counter unmoved", needs="version_counter") and t._version != version:
        case.fail(f"{what} advanced self's version counter", expected=version, actual=t._version)


# --------------------------------------------------------------------------- reach claims

VALUE_KINDS = ("value:python float", "value:python int", "value:python bool",
               *(f"value:0-d {d}" for d in rules.DTYPES))


def fills(op, *, kinds=reach.LAYOUTS, errors=False, values=VALUE_KINDS, one_way=None, mask_kinds=()):
    """What `op`'s arguments reach: self of every dtype (special values too) in each layout of
    `kinds`, masks of every pattern in each layout of `mask_kinds` (the properties about values
    claim them all), every kind of fill value in `values`, self
    and mask of mixed ranks (the mask of higher rank too, unless `one_way`: default for the
    in-place op) and, when `errors`, shapes that do not broadcast."""
    one_way = op == "masked_fill_" if one_way is None else one_way
    names = ("self",) if one_way else ("self", "mask")
    return (*reach.operand(f"{op}.self", kinds=kinds), *reach.mask(f"{op}.mask", mask_kinds), *reach.of(op, *values),
            *reach.broadcasting(op, *names, errors=errors))


# --------------------------------------------------------------------------- out of place


@pytest.mark.reach(*fills("masked_fill", mask_kinds=reach.LAYOUTS), "masked_fill.outcome:raises",
                   *reach.stretched_to_0("masked_fill"))
@given(args=masked_fill_args())
def test_masked_fill_matches_oracle(device, args):
    """x.masked_fill(mask, v) has shape broadcast(x, mask), holds v (cast to x's dtype) where
    the broadcast mask is True and x elsewhere, and raises exactly when v doesn't fit the dtype."""
    ops = device_ops.for_device(device)
    x, mask, fill = args
    case = describe("masked_fill: result shape broadcast(self, mask); value where mask is True", device,
                    x, mask, fill)
    shape, want, err = expected_fill(x, mask, fill)
    out, terr = attempt(lambda: ops.masked_fill(x.build(device), mask.build(device), fill.build(device)))
    if case.check_outcome(err, terr):
        return
    if tuple(out.shape) != shape:
        case.fail("wrong result shape (masked_fill broadcasts self and mask together)",
                  expected=shape, actual=tuple(out.shape))
    if out.dtype != x.build().dtype:
        case.fail("the result changed dtype", expected=x.dtype, actual=out.dtype)
    case.check_values(read(out), want, shape)


@pytest.mark.reach(*fills("masked_fill"))
@given(args=masked_fill_args())
def test_masked_fill_leaves_input_untouched(device, args):
    """The out-of-place masked_fill leaves self bit-identical: values, shape, strides, offset,
    every byte of its storage and its version counter."""
    ops = device_ops.for_device(device)
    x, mask, fill = args
    case = describe("masked_fill (out-of-place) never modifies its input", device, x, mask, fill)
    case.run("print(x)  # must be unchanged")
    t, base = x.build_with_base(device)
    version = t._version
    attempt(lambda: ops.masked_fill(t, mask.build(device), fill.build(device)))
    check_untouched(case, x, t, base, version, "masked_fill", device)


@pytest.mark.reach(*fills("masked_fill", values=VALUE_KINDS[:3]))
@given(args=masked_fill_args(fills=lambda dt: elements(dt).map(FillValue)))
def test_masked_fill_result_does_not_share_storage(device, args):
    """The out-of-place result owns new memory: it never aliases self, even when nothing is masked."""
    ops = device_ops.for_device(device)
    x, mask, fill = args
    case = describe("masked_fill returns a new tensor that does not share storage with self", device,
                    x, mask, fill)
    case.run("print(out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr())")
    t = x.build(device)
    out = ops.masked_fill(t, mask.build(device), fill.build(device))
    if out is t:
        case.fail("the result is self", expected="a new tensor", actual="self")
    if out.numel() and t.numel() and semantics.applies(device, "the result's storage is not self's (data_ptr)") \
            and out.untyped_storage().data_ptr() == t.untyped_storage().data_ptr():
        case.fail("the result aliases self's storage", expected="new storage", actual="self's storage")


# --------------------------------------------------------------------------- in place


@pytest.mark.reach(*fills("masked_fill_", kinds=WRITABLE, values=VALUE_KINDS[:3]))
@given(args=masked_fill_args(one_way=True, self_kinds=WRITABLE,
                             fills=lambda dt: elements(dt, allow_nan=True, allow_infinity=True)
                             .map(FillValue)))
def test_masked_fill_inplace_returns_self(device, args):
    """x.masked_fill_(mask, v) returns x itself: the same object, storage, shape and strides."""
    ops = device_ops.for_device(device)
    x, mask, fill = args
    case = describe("masked_fill_ returns self (same object, same storage)", device, x, mask, fill,
                    op="masked_fill_")
    case.run("print(out is x)")
    t = x.build(device)
    storage = semantics.applies(device, "self keeps its storage (data_ptr) and strides")
    before, ptr = layout_of(t), t.untyped_storage().data_ptr() if storage else None
    out = ops.masked_fill_(t, mask.build(device), fill.build(device))
    if out is not t:
        case.fail("masked_fill_ returned a different tensor object", expected="self", actual="a new tensor")
    if storage and (layout_of(t) != before or t.untyped_storage().data_ptr() != ptr):
        case.fail("masked_fill_ moved self to other memory or changed its layout",
                  expected=before, actual=layout_of(t))
    if not storage and (tuple(t.shape), t.dtype, t.device) != (before[0], before[3], before[4]):
        case.fail("masked_fill_ changed self's shape, dtype or device", expected=before, actual=layout_of(t))


@pytest.mark.reach(*fills("masked_fill_", kinds=WRITABLE, mask_kinds=reach.LAYOUTS), "masked_fill_.outcome:raises")
@given(args=masked_fill_args(one_way=True, self_kinds=WRITABLE))
def test_masked_fill_inplace_matches_oracle(device, args):
    """After x.masked_fill_(mask, v), x holds v (cast to its dtype) where the mask broadcast to
    x's shape is True and its old values elsewhere; an unrepresentable v raises."""
    ops = device_ops.for_device(device)
    x, mask, fill = args
    case = describe("masked_fill_ writes the value where the mask is True", device, x, mask, fill,
                    op="masked_fill_")
    _, want, err = expected_fill(x, mask, fill, inplace=True)
    t = x.build(device)
    _, terr = attempt(lambda: ops.masked_fill_(t, mask.build(device), fill.build(device)))
    if case.check_outcome(err, terr):
        return
    case.check_values(read(t), want, x.shape)


@pytest.mark.reach(*fills("masked_fill_", kinds=WRITABLE, values=VALUE_KINDS[:3]))
@given(args=masked_fill_args(one_way=True, self_kinds=WRITABLE,
                             fills=lambda dt: elements(dt).map(FillValue)))
def test_masked_fill_inplace_advances_version_counter(device, args):
    """Every successful masked_fill_ advances self's version counter (autograd relies on it),
    even when the mask selects nothing."""
    ops = device_ops.for_device(device)
    x, mask, fill = args
    case = describe("masked_fill_ advances the version counter", device, x, mask, fill, op="masked_fill_")
    case.run("print(x._version)")
    t = x.build(device)
    before = t._version
    ops.masked_fill_(t, mask.build(device), fill.build(device))
    if semantics.applies(device, "the version counter advances", needs="version_counter") and t._version <= before:
        case.fail("the version counter did not advance", expected=f"> {before}", actual=t._version)


@pytest.mark.reach(*fills("masked_fill_", kinds=WRITABLE, errors=True, values=VALUE_KINDS[:3], one_way=False))
@given(data=st.data())
def test_masked_fill_inplace_requires_one_way_broadcast(device, data):
    """masked_fill_ accepts a mask only if it broadcasts one-way to self's shape; otherwise it
    raises and self is unchanged."""
    ops = device_ops.for_device(device)
    self_shape, mask_shape = data.draw(inplace_shape_pairs(), label="(self, mask) shapes")
    dtype = data.draw(dtypes(), label="dtype")
    x = data.draw(tensors(self_shape, dtype, kinds=WRITABLE, elements=data.draw(values_or_edges(dtype))), label="x")
    mask = data.draw(bool_masks(mask_shape), label="mask")
    fill = FillValue(data.draw(elements(dtype), label="value"))
    case = describe("masked_fill_ never broadcasts self: the mask must broadcast one-way to self",
                    device, x, mask, fill, op="masked_fill_")
    _, want, err = expected_fill(x, mask, fill, inplace=True)
    t, base = x.build_with_base(device)
    version = t._version
    _, terr = attempt(lambda: ops.masked_fill_(t, mask.build(device), fill.build(device)))
    if case.check_outcome(err, terr):
        check_untouched(case, x, t, base, version, "a refused masked_fill_", device)
        return
    case.check_values(read(t), want, x.shape)


@pytest.mark.storage("views writing through to their base")
@pytest.mark.reach(*reach.layouts("masked_fill_.self", ("strided", "offset", "permuted")))
@given(args=masked_fill_args(one_way=True, self_kinds=("strided", "offset", "permuted"),
                             fills=lambda dt: elements(dt, allow_nan=True, allow_infinity=True)
                             .map(FillValue)))
def test_masked_fill_inplace_through_view_reaches_base(device, args):
    """masked_fill_ on a view writes through to the base tensor at exactly the view's
    positions; storage outside the view is untouched."""
    ops = device_ops.for_device(device)
    x, mask, fill = args
    case = describe("writing through a view reaches its base, and only the viewed elements", device,
                    x, mask, fill, op="masked_fill_")
    case.run("print(x._base)")
    t, base = x.build_with_base(device)
    ops.masked_fill_(t, mask.build(device), fill.build(device))
    value = rules.cast_scalar(fill.scalar(), x.dtype)
    mask_b = rules.broadcast_values(mask.values, mask.shape, x.shape)
    want = list(x.storage)
    for pos, m in zip(x.storage_positions(), mask_b):
        if m:
            want[pos] = value
    case.check_values(read(base), want, (len(want),), what="the base storage is wrong after the write")


@pytest.mark.reach(*fills("masked_fill", one_way=True, mask_kinds=reach.LAYOUTS), *fills("masked_fill_"))
@given(args=masked_fill_args(one_way=True))
def test_masked_fill_inplace_and_out_of_place_agree(device, args):
    """For a mask that broadcasts one-way to self, x.clone().masked_fill_(m, v) and
    x.masked_fill(m, v) give the same values and raise on the same inputs, in every layout."""
    ops = device_ops.for_device(device)
    x, mask, fill = args
    case = describe("masked_fill_ and masked_fill agree on every valid input", device, x, mask, fill)
    case.run("out_ = x.clone().masked_fill_(mask, value)", "print(out, out_)")
    m, v = mask.build(device), fill.build(device)
    out, err = attempt(lambda: ops.masked_fill(x.build(device), m, v))
    t = x.build(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # expanded self only warns: see the known deviation
        _, terr = attempt(lambda: ops.masked_fill_(t, m, v))
    if (err is None) != (terr is None):
        case.fail("one variant raised and the other did not",
                  expected=f"masked_fill: {err or 'ok'}", actual=f"masked_fill_: {terr or 'ok'}")
    if err is None and "expanded" not in x.layout:
        case.check_values(read(t), read(out), x.shape, what="in-place and out-of-place results differ",
                          labels=("masked_fill (out of place)", "masked_fill_ (in place)"))


@cached
def _value_dtypes(dtype):
    """self's own dtype half the time, any dtype otherwise."""
    return st.just(dtype) | dtypes()


@pytest.mark.reach(*reach.of("masked_fill_", *VALUE_KINDS[3:]), *reach.operand("masked_fill_.self", kinds=WRITABLE))
@given(data=st.data())
def test_masked_fill_tensor_value_equals_python_scalar(device, data):
    """A 0-d tensor value gives the same result as the Python scalar it holds, and raises where
    that scalar raises."""
    ops = device_ops.for_device(device)
    x, mask, _ = data.draw(masked_fill_args(one_way=True, self_kinds=WRITABLE), label="x, mask")
    vdtype = data.draw(_value_dtypes(x.dtype), label="value dtype")
    value = data.draw(value_tensor_scalars(vdtype), label="value")
    as_tensor, as_scalar = FillValue(value, vdtype), FillValue(value)
    # and a one-element self with its element masked: every example converts the value (x may be
    # empty, or its mask all False)
    one = TensorSpec.contiguous((1,), x.dtype, [rules.cast_scalar(0, x.dtype)])
    everything = TensorSpec.contiguous((1,), "bool", [True])
    case = describe("a 0-d tensor value acts like the equal Python scalar", device, x, mask, as_tensor)
    case.tensor("one", one).run(f"print(out, x.masked_fill(mask, {as_scalar.code()}))",
                                f"print(one.masked_fill(torch.tensor([True]), value), "
                                f"one.masked_fill(torch.tensor([True]), {as_scalar.code()}))")
    for op in ("masked_fill", "masked_fill_"):
        for self_, mask_ in ((x, mask), (one, everything)):
            outs = []
            for fill in (as_tensor, as_scalar):
                t = self_.build(device)
                r, e = attempt(lambda: getattr(ops, op)(t, mask_.build(device), fill.build(device)))
                outs.append(("raised", type(e).__name__) if e else ("ok", read(r)))
            if outs[0][0] != outs[1][0] or (outs[0][0] == "ok" and not rules.same_values(outs[0][1], outs[1][1])):
                case.fail(f"{op}: the tensor value and the Python scalar disagree"
                          + (" (filling a one-element tensor)" if self_ is one else ""),
                          expected=f"as with the Python scalar: {outs[1]}", actual=f"with the tensor: {outs[0]}")


@pytest.mark.storage("self-overlapping (stride 0) tensors")
@given(data=st.data())
def test_masked_fill_inplace_refuses_expanded_self(device, data):
    """masked_fill_ on an expanded (zero-stride) self raises: several elements share one memory
    location, and in-place ops refuse such tensors (add_ does)."""
    ops = device_ops.for_device(device)
    x, mask, fill = data.draw(masked_fill_args(
        one_way=True, self_kinds=("expanded",), fills=lambda dt: elements(dt).map(FillValue)))
    if not any(st == 0 and n > 1 for st, n in zip(x.strides, x.shape)):
        # nothing overlaps yet: view the same storage twice along a new leading dim of stride 0
        x = TensorSpec((2, *x.shape), x.dtype, x.values * 2, (0, *x.strides), x.offset, x.storage,
                       f"expanded dims (0,) of a {x.layout} tensor")
    case = describe("in-place ops refuse self-overlapping (expanded) tensors", device, x, mask, fill,
                    op="masked_fill_")
    t = x.build(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, terr = attempt(lambda: ops.masked_fill_(t, mask.build(device), fill.build(device)))
    if terr is None:
        said = "; ".join(str(w.message)[:80] for w in caught) or "nothing"
        case.fail("masked_fill_ wrote into an expanded tensor instead of raising",
                  expected="RuntimeError (as x.add_(1) raises)", actual=f"no error; warned: {said}")
