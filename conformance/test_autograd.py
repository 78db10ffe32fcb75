"""Autograd through masked_fill and masked_fill_.

d(masked_fill(x, m, v))/dx passes the gradient where m is False and blocks it where m is
True; d/dv (a 0-d tensor) sums the gradient over the masked positions; in-place fills
respect autograd's leaf and version rules.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st

from conformance import device_ops, reach, rules
from conformance.failures import Case, attempt
from conformance.tensors import read
from strategies import array_shapes, broadcastable_shapes, one_way_pairs, sampled_from
from strategies.layouts import WRITABLE, tensors
from strategies.masks import bool_masks
from strategies.values import dtypes, elements, mapped

GRAD_DTYPES = ("float32", "float64")
pytestmark = [pytest.mark.ops("masked_fill", "masked_fill_"), pytest.mark.torch_tensors]
_SMALL_INTS = mapped(st.integers(-8, 8), float)  # gradients and values with exact sums


def grads(op, *, one_way=False, kinds=WRITABLE, returns=True):
    """What a gradient property's `op` call reaches: self of both float dtypes in each layout of
    `kinds` (every one an in-place op may write through; a computed self, ``x * 1``, is dense:
    contiguous or permuted), masks of every pattern, mixed ranks (the mask of higher rank too,
    unless `one_way`), and results unless the op must always raise (not `returns`)."""
    meet = [c for c in reach.broadcasting(op, *(("self",) if one_way else ("self", "mask")), errors=False)
            if returns or not c.endswith("outcome:returns")]
    return (*reach.layouts(f"{op}.self", kinds), *reach.dtypes(f"{op}.self", GRAD_DTYPES),
            *reach.mask(f"{op}.mask", ()), *meet)


DENSE = ("contiguous", "permuted")


_SAME_SHAPE = sampled_from((True, False, False))
_WIDE = st.integers(0, 7)
WIDE_ROWS = (1025, 2049, 4097)


@st.composite
def grad_args(draw, one_way=False):
    """(self, mask, grad_out, value): self of a float dtype, a mask that broadcasts with it (onto
    it when `one_way`), grad_out of the broadcast shape; one in eight a row past 1024 or 4096
    elements (where backward kernels reduce in blocks), with a mask of its shape or of one row."""
    dtype = draw(dtypes(GRAD_DTYPES))
    if draw(_WIDE) == 0:
        shape = (draw(st.integers(1, 2)), draw(sampled_from(WIDE_ROWS)))
        mask_shape = shape if draw(st.booleans()) else (1, shape[1])
    elif draw(_SAME_SHAPE):
        # a mask the shape of self: one-way pairs mostly give a mask of one element, which
        # is all True or all False, never mixed; and broadcast pairs rarely give self two
        # sides past 1, which a permuted layout needs
        shape = mask_shape = draw(array_shapes(min_dims=1 if one_way else 2, max_dims=4, min_side=2))
    elif one_way:
        mask_shape, shape = draw(one_way_pairs(max_dims=4))
    else:
        shape, mask_shape = draw(broadcastable_shapes(2, max_dims=4))
    x = draw(tensors(shape, dtype, kinds=WRITABLE, elements=elements(dtype, min_value=-100, max_value=100)))
    mask = draw(bool_masks(mask_shape))
    out_shape = rules.broadcast_shapes(shape, mask_shape)
    g = draw(tensors(out_shape, dtype, kinds=("contiguous",),
                     elements=_SMALL_INTS))
    value = draw(_SMALL_INTS)
    return x, mask, g, value


def _reduce_to(values, out_shape, shape):
    """Sum a gradient of out_shape down to shape (the adjoint of broadcasting)."""
    sums = [[] for _ in range(rules.numel(shape))]
    strides = rules.contiguous_strides(shape)
    for idx, v in zip(rules.ndindex(out_shape), values):
        src = rules.source_index(idx, shape)
        sums[sum(i * s for i, s in zip(src, strides))].append(v)
    return [math.fsum(s) for s in sums]


def _case(rule, device, x, mask, g, value, op="masked_fill"):
    case = Case(rule, device).tensor("x", x).tensor("mask", mask).tensor("grad", g)
    return case.run("x.requires_grad_(True)",
                    f"v = torch.tensor({value!r}, dtype=x.dtype, requires_grad=True)",
                    f"x.{op}(mask, v).backward(grad)" if op == "masked_fill" else
                    f"x.clone().{op}(mask, v).backward(grad)",
                    "print(x.grad, v.grad)")


# past 1024 and past 4096 elements: where a backward kernel reduces in blocks
_WIDE_CLAIMS = reach.ranges("masked_fill.self.numel", 2 * WIDE_ROWS[-1], WIDE_ROWS[0], edges=(4096,))


@pytest.mark.reach(*grads("masked_fill"), *_WIDE_CLAIMS)
@given(args=grad_args())
def test_masked_fill_grad_wrt_self_is_zero_where_masked(device, args):
    """The gradient of masked_fill w.r.t. self is grad_out where the mask is False and 0 where it
    is True, summed over the dimensions broadcasting added or stretched."""
    ops = device_ops.for_device(device)
    x, mask, g, value = args
    case = _case("d masked_fill / d self: pass where the mask is False, block where it is True",
                 device, x, mask, g, value)
    t = x.build(device, requires_grad=True)
    out_shape = g.shape
    ops.masked_fill(t, mask.build(device), value).backward(g.build(device))
    mb = rules.broadcast_values(mask.values, mask.shape, out_shape)
    want = _reduce_to([0.0 if m else gv for gv, m in zip(g.values, mb)], out_shape, x.shape)
    case.check_values(read(t.grad), want, x.shape, what="wrong gradient w.r.t. self")


@pytest.mark.reach(*grads("masked_fill"), *reach.of("masked_fill", "value:0-d float32", "value:0-d float64"),
                   *_WIDE_CLAIMS)
@given(args=grad_args())
def test_masked_fill_grad_wrt_value_is_sum_over_masked(device, args):
    """The gradient w.r.t. a 0-d value tensor is the sum of grad_out over the masked positions
    of the broadcast result."""
    ops = device_ops.for_device(device)
    x, mask, g, value = args
    case = _case("d masked_fill / d value = sum of grad_out where the mask is True", device,
                 x, mask, g, value)
    v = torch.tensor(value, dtype=x.build().dtype, device=device, requires_grad=True)
    ops.masked_fill(x.build(device), mask.build(device), v).backward(g.build(device))
    mb = rules.broadcast_values(mask.values, mask.shape, g.shape)
    want = math.fsum(gv for gv, m in zip(g.values, mb) if m)
    if v.grad is None or not math.isclose(v.grad.item(), want, rel_tol=1e-6, abs_tol=1e-6):
        case.fail("wrong gradient w.r.t. the value", expected=want,
                  actual=None if v.grad is None else v.grad.item())


@pytest.mark.reach(*grads("masked_fill_", one_way=True, returns=False), "masked_fill_.outcome:raises")
@given(args=grad_args(one_way=True))
def test_masked_fill_inplace_on_leaf_requiring_grad_raises(device, args):
    """masked_fill_ on a leaf that requires grad raises (autograd cannot rewrite a leaf's history)
    and leaves it unchanged."""
    ops = device_ops.for_device(device)
    x, mask, g, value = args
    case = Case("in-place ops on a leaf that requires grad raise", device).tensor("x", x).tensor("mask", mask)
    case.run("x.requires_grad_(True)", f"x.masked_fill_(mask, {value!r})")
    t = x.build(device, requires_grad=True)
    _, err = attempt(lambda: ops.masked_fill_(t, mask.build(device), value))
    if err is None:
        case.fail("masked_fill_ modified a leaf that requires grad", expected="RuntimeError",
                  actual="no error")
    if not rules.same_values(read(t), x.values):
        case.fail("the refused call changed the leaf")


@pytest.mark.reach(*grads("masked_fill_", one_way=True, kinds=DENSE))
@given(args=grad_args(one_way=True))
def test_masked_fill_inplace_on_non_leaf_has_correct_grad(device, args):
    """masked_fill_ on a non-leaf (x * 1) works and gives the same gradients as masked_fill:
    grad_out where unmasked, 0 where masked; the value tensor gets the masked sum."""
    ops = device_ops.for_device(device)
    x, mask, g, value = args
    case = _case("masked_fill_ on a non-leaf is differentiable like masked_fill", device,
                 x, mask, g, value, op="masked_fill_")
    t = x.build(device, requires_grad=True)
    v = torch.tensor(value, dtype=t.dtype, device=device, requires_grad=True)
    y = t * 1
    ops.masked_fill_(y, mask.build(device), v)
    y.backward(g.build(device))
    mb = rules.broadcast_values(mask.values, mask.shape, x.shape)
    want = [0.0 if m else gv for gv, m in zip(g.values, mb)]
    case.check_values(read(t.grad), want, x.shape, what="wrong gradient through masked_fill_")
    vwant = math.fsum(gv for gv, m in zip(g.values, mb) if m)
    if v.grad is None or not math.isclose(v.grad.item(), vwant, abs_tol=1e-6):
        case.fail("wrong gradient w.r.t. the value", expected=vwant,
                  actual=None if v.grad is None else v.grad.item())


@pytest.mark.reach(*grads("masked_fill_", one_way=True, kinds=DENSE))
@given(args=grad_args(one_way=True))
def test_inplace_fill_of_saved_tensor_makes_backward_raise(device, args):
    """Filling in place a tensor that autograd saved for backward (y in y * y) makes backward
    raise instead of silently using the new values."""
    ops = device_ops.for_device(device)
    x, mask, g, value = args
    case = Case("modifying a saved tensor in place invalidates the graph", device)
    case.tensor("x", x).tensor("mask", mask).run(
        "x.requires_grad_(True)", "y = x * 1", "z = y * y", f"y.masked_fill_(mask, {value!r})",
        "z.sum().backward()  # must raise")
    t = x.build(device, requires_grad=True)
    y = t * 1
    z = y * y
    ops.masked_fill_(y, mask.build(device), value)
    _, err = attempt(lambda: z.sum().backward())
    if err is None:
        case.fail("backward used a tensor modified in place after it was saved",
                  expected="RuntimeError (... modified by an inplace operation)", actual="no error")
