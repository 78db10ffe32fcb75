"""The softmax kernels on the inputs the idioms never hand them: views, kept nan, bad arguments.

Every masking idiom of `conformance.implementations` passes the softmax kernel a tensor it
just computed (``masked_fill``'s or ``add``'s result), dense and contiguous; attention code
also calls ``softmax`` on a view (``scores.transpose(-1, -2).softmax(-1)``), and
``torch.masked.softmax`` and SDPA take their inputs as given.  These properties give each
kernel its logits (and keep mask) in every layout, a nan where it must spread, and the
arguments it must refuse.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, strategies as st

from conformance import device_ops, profiles, reach, rules
from conformance.failures import Case, attempt
from conformance.implementations import IMPLEMENTATIONS, IDENTITY_WIDTH, identity
from conformance.softmax_checks import check_against_oracle
from conformance.tensors import TensorSpec, read
from strategies import array_shapes, keep_masks, logits
from strategies._cache import HALF, integers, sampled_from
from strategies.layouts import relayout
from strategies.softmax import MAX_ELEMENTS, softmax_inputs
from strategies.values import dtypes, logit_widths

pytestmark = pytest.mark.torch_tensors
IMPLS = sorted(IMPLEMENTATIONS)
SDPA_ELEMENTS = 1024  # SDPA's identity trick costs rows x width^2
_ZERO_D = integers(0, 15)

# op -> (its argument names for the logits and the mask, the user code)
KERNELS = {
    "softmax": ("x", None, "x.softmax(dim={dim})"),
    "masked_softmax": ("x", "mask", "torch.masked.softmax(x, {dim}, mask=keep)"),
    "scaled_dot_product_attention": ("q", "attn_mask", "F.scaled_dot_product_attention(x, I[None], I[None], "
                                                       "attn_mask=keep, scale=1.0)"),
}


def _kernel_claims(op):
    arg, mask, _ = KERNELS[op]
    sdpa = op == "scaled_dot_product_attention"
    widest = IDENTITY_WIDTH if sdpa else 4096
    return (*reach.layouts(f"{op}.{arg}"), *(reach.layouts(f"{op}.{mask}") if mask else ()),
            f"{op}.{arg}.{'numel:0' if sdpa else 'ndim:0'}",
            *reach.dtypes(f"{op}.{arg}", rules.FLOAT_DTYPES), *reach.ranges(f"{op}.{'S' if mask == 'attn_mask' else 'width'}",
                                                               widest, 1))


@st.composite
def kernel_inputs(draw, op):
    """(logits, keep, dim) for `op`, both in layouts drawn from every kind: SDPA's logits are the
    query (1, rows, width) of the identity trick, softmax's keep every entry."""
    dtype = draw(dtypes(rules.FLOAT_DTYPES))
    sdpa = op == "scaled_dot_product_attention"
    width = draw(logit_widths(max_width=IDENTITY_WIDTH if sdpa else 4096, min_width=1))
    if sdpa:
        shape, dim = (1, draw(integers(0, max(1, SDPA_ELEMENTS // width))), width), -1  # 0 rows: empty
    elif draw(_ZERO_D) == 0:  # a 0-d tensor is one row of one entry (dim 0 or -1)
        shape, dim = (), draw(sampled_from((0, -1)))
    else:
        other = draw(array_shapes(max_dims=3, min_side=1, max_side=4, max_elements=max(1, MAX_ELEMENTS // width)))
        pos = draw(integers(0, len(other)))
        shape = (*other[:pos], width, *other[pos:])
        dim = draw(sampled_from((pos, pos - len(shape))))
    x = relayout(draw, draw(logits(shape, dtype, kind="ordinary")), canary=math.nan)
    keep = draw(keep_masks(shape, dim)) if op != "softmax" else \
        TensorSpec.contiguous(shape, "bool", [True] * rules.numel(shape))
    return x, relayout(draw, keep), dim


@pytest.mark.ops(param="op")
@pytest.mark.parametrize("op", reach.params(KERNELS, _kernel_claims))
@pytest.mark.storage("inputs in non-contiguous memory layouts")
@given(data=st.data())
def test_softmax_kernels_read_views_by_their_strides(device, op, data):
    """softmax, torch.masked.softmax and SDPA given logits and a keep mask in any layout
    (permuted, strided, at an offset, expanded; 0-d too) keep their shape and match the
    oracle's softmax of the values the views show."""
    x, keep, dim = data.draw(kernel_inputs(op), label="logits, keep, dim")
    ops = device_ops.for_device(device)
    case = Case(f"{op} reads its inputs by their strides", device).tensor("x", x).tensor("keep", keep)
    code = KERNELS[op][2].format(dim=dim)
    case.run(*(["import torch.nn.functional as F", f"I = torch.eye({x.shape[-1]}, dtype=x.dtype)"]
               if op == "scaled_dot_product_attention" else []), f"p = {code}", "print(p)")
    t, k = x.build(device), keep.build(device)
    if op == "softmax":
        out = ops.softmax(t, dim)
    elif op == "masked_softmax":
        out = ops.masked_softmax(t, dim, k)
    else:
        eye = identity(x.shape[-1], t.dtype, t.device)
        out = ops.scaled_dot_product_attention(t, eye[None], eye[None], attn_mask=k, scale=1.0)
    if tuple(out.shape) != x.shape:
        case.fail(f"{op} changed the shape", expected=x.shape, actual=tuple(out.shape))
    if not x.shape:  # the oracle's rows need a dim: a 0-d tensor is the row of one entry
        x, keep, dim = TensorSpec.contiguous((1,), x.dtype, x.values), TensorSpec.contiguous((1,), "bool", keep.values), 0
    check_against_oracle(case, x, keep, dim, read(out))


def _nan_claims(impl):
    return ("logits.values:nan",)


@pytest.mark.ops(param="impl_name", rename={n: IMPLEMENTATIONS[n].ops for n in IMPLS})
@pytest.mark.parametrize("impl_name", reach.params(IMPLS, _nan_claims))
# every example reaches the one claim (a kept nan): 75 examples, not 300
@profiles.fraction(1 / 4, at_least=profiles.SELFTEST_EXAMPLES)
@given(data=st.data())
def test_masked_softmax_spreads_a_kept_nan_to_its_row(device, impl_name, data):
    """A nan at a kept position makes every entry of its row nan (IEEE: the max and the sum are
    nan), and every other row is what the oracle says."""
    impl = IMPLEMENTATIONS[impl_name]
    x, keep, dim = data.draw(softmax_inputs(impl, kind="ordinary", wide=False), label="logits, keep, dim")
    kept = [p for p, k in enumerate(keep.values) if k]
    assume(kept)  # nothing kept anywhere: no row to spread a nan in (the policy properties cover them)
    at = kept[data.draw(integers(0, len(kept) - 1), label="nan position")]
    poisoned = TensorSpec.contiguous(x.shape, x.dtype, [math.nan if p == at else v for p, v in enumerate(x.values)])
    case = Case("a kept nan spreads to its whole row, and no further", device)
    case.tensor("x", poisoned).tensor("keep", keep).run(*impl.setup(x.shape[-1]), f"p = {impl.code(dim)}", "print(p)")
    ops = device_ops.for_device(device)
    reach.note_tensor("logits", t := poisoned.build(device))
    got = read(impl(ops, t, keep.build(device), dim))
    for row in rules.rows_along(x.shape, dim):
        vals = rules.row_values(got, row)
        if at in row:
            if not all(math.isnan(v) for v in vals):
                case.fail("the row holding a kept nan is not all nan", expected="nan in every entry", actual=vals[:8])
            continue
        others = TensorSpec.contiguous((len(row),), x.dtype, rules.row_values(poisoned.values, row))
        mask = TensorSpec.contiguous((len(row),), "bool", rules.row_values(keep.values, row))
        check_against_oracle(case, others, mask, 0, vals, what="a row without the nan changed")


def _error_claims(impl):
    impl = IMPLEMENTATIONS[impl]
    return ("keep.sizes:incompatible", *(() if impl.mask_stretches else ("keep.sizes:larger where the logits have 1",)),
            *(("logits.dim:out of range",) if impl.any_dim else ()))


@pytest.mark.ops(param="impl_name", rename={n: IMPLEMENTATIONS[n].ops for n in IMPLS})
@pytest.mark.parametrize("impl_name", reach.params(IMPLS, _error_claims))
# every example reaches the claims (a clash of sizes, a dim out of range): 75 examples, not 300
@profiles.fraction(1 / 4, at_least=profiles.SELFTEST_EXAMPLES)
@given(data=st.data())
def test_masked_softmax_refuses_what_it_cannot_apply(device, impl_name, data):
    """A keep mask with a size that clashes with the logits' (neither equal nor 1; for an idiom
    whose mask must broadcast to the logits, such as SDPA's, also larger where the logits have a
    1) raises, and so does a softmax dim outside the logits' dims (for the idioms that take a
    dim): nothing is silently broadcast or wrapped."""
    impl = IMPLEMENTATIONS[impl_name]
    # an idiom whose mask must broadcast to the logits gets a branch of its own: one row of logits
    # and a mask with more rows (a 1 broken), the clash a two-way broadcast lets through
    break_a_one = not impl.mask_stretches and data.draw(HALF, label="one row, a mask with more")
    x, keep, dim = data.draw(softmax_inputs(impl, kind="ordinary", wide=False, any_dim=True, min_dims=2,
                                            single_row=break_a_one), label="logits, keep, dim")
    ops = device_ops.for_device(device)
    if break_a_one:
        breakable = [d for d, n in enumerate(x.shape[:-1]) if n == 1]
    else:  # out-of-place masking stretches a 1 in x; an idiom whose mask must fit x may not
        breakable = [d for d, n in enumerate(x.shape) if n != 1 or not impl.mask_stretches]
    if breakable:
        bad_dim = breakable[data.draw(integers(0, len(breakable) - 1), label="dim to break")]
        sizes = list(x.shape)
        sizes[bad_dim] = max(sizes[bad_dim] + data.draw(integers(1, 3), label="extra"), 2)  # not 1, not equal
        wrong = TensorSpec.contiguous(tuple(sizes), "bool", [True] * rules.numel(sizes))
        case = Case("a keep mask whose sizes clash with the logits' raises", device).tensor("x", x).tensor("keep", wrong)
        case.run(*impl.setup(x.shape[-1]), f"p = {impl.code(dim)}")
        reach.note("keep.sizes:incompatible")
        if x.shape[bad_dim] == 1:
            reach.note("keep.sizes:larger where the logits have 1")
        got, err = attempt(lambda: impl(ops, x.build(device), wrong.build(device), dim))
        if err is None:
            case.fail("a keep mask of clashing sizes was accepted", expected=f"an error: dim {bad_dim} has "
                      f"{sizes[bad_dim]} in the mask and {x.shape[bad_dim]} in the logits"
                      + ("" if impl.mask_stretches else " (the mask must broadcast to the logits)"),
                      actual=f"a result of shape {tuple(got.shape)}")
    if impl.any_dim:
        out_of_range = data.draw(sampled_from((len(x.shape), -len(x.shape) - 1)), label="dim out of range")
        reach.note("logits.dim:out of range")
        case = Case("a softmax dim out of range raises", device).tensor("x", x).tensor("keep", keep)
        case.run(*impl.setup(x.shape[-1]), f"p = {impl.code(out_of_range)}")
        _, err = attempt(lambda: impl(ops, x.build(device), keep.build(device), out_of_range))
        if err is None:
            case.fail(f"softmax along dim {out_of_range} of a {len(x.shape)}-d tensor was accepted",
                      expected="IndexError", actual="a result")
