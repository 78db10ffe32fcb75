"""Inputs for masked softmax: logits, a keep mask and the softmax dim, for one masking idiom.

Shared by the softmax properties (`conformance.test_masked_softmax`) and the softmax-kernel
properties (`conformance.test_softmax_kernels`).
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from conformance import rules
from strategies import array_shapes, booleans, keep_masks, logits
from strategies._cache import cached, integers, sampled_from
from strategies.layouts import relayout
from strategies.values import dtypes, logit_widths

__all__ = ["MAX_ELEMENTS", "softmax_inputs"]

MAX_ELEMENTS = 2048  # a row may still be 4096 wide: then it is the only one
_VIEWS = booleans()


@cached
@st.composite
def softmax_inputs(draw, impl, *, kind=None, patterns=None, wide=True, any_dim=False, min_dims=1, single_row=False):
    """(logits, keep, dim) for idiom `impl` (a `conformance.implementations.Implementation`): a row width (some > 1024), up to 3 other small dims,
    the softmax dim anywhere (negative too) when `any_dim` and the idiom allows it; with
    `single_row`, every other dim is 1 (one row of logits)."""
    dtype = draw(dtypes(rules.FLOAT_DTYPES))
    width = draw(logit_widths(wide=wide, max_width=impl.max_width, min_width=impl.min_width))
    other = draw(array_shapes(min_dims=max(min_dims - 1, 0), max_dims=3, min_side=1, max_side=4,
                              max_elements=max(1, MAX_ELEMENTS // max(width, 1))))
    if single_row:
        other = (1,) * len(other)
    pos = draw(integers(0, len(other))) if any_dim and impl.any_dim else len(other)
    shape = (*other[:pos], width, *other[pos:])
    dim = draw(sampled_from((pos, pos - len(shape)))) if any_dim else -1
    kind = kind or ("ordinary" if not impl.extreme else None)
    x = draw(logits(shape, dtype, kind=kind))
    keep = draw(keep_masks(shape, dim, **({"patterns": patterns} if patterns else {})))
    if draw(_VIEWS):  # half the inputs are views: permuted, strided, at an offset, expanded
        x, keep = relayout(draw, x, canary=math.nan), relayout(draw, keep)
    return x, keep, dim


