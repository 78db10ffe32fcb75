"""Every numerical tolerance of the suite, with its justification, in one place.

Exact ops (broadcasting, masked_fill, expand) are compared bit for bit: they move values,
they do not compute them.  Only softmax and attention compute, and for them the expected
value is the oracle's float64-with-fsum result on the *stored* inputs, so the only error
left is the kernel's own:

* the kernel accumulates in ``ACCUMULATE[dtype]`` (float32 for the half types on CPU and
  CUDA) and rounds each output once to ``dtype``: at most one unit of ``eps(dtype)``;
* ``exp(x - max)`` and the normalising sum add a few ulps of the accumulation dtype plus
  ``log2(width)`` ulps for a pairwise/vectorised sum;
* an entry ``p = exp(-t)`` whose ``x - max`` was rounded has an error ``eps * t * exp(-t)``
  which is below ``eps / e`` for every t, so one absolute term covers the tiny entries;
* attention computes its scores itself (``q @ k.T * scale`` in the input dtype), so an
  error of ``eps(dtype) * |score|`` in the exponent is added for it.

The same bound serves the row sum: fsum of outputs that are each within ``rel * p`` of
the truth is within ``rel`` of 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from conformance.rules import finfo_eps

ACCUMULATE = {"float16": "float32", "bfloat16": "float32", "float32": "float32", "float64": "float64"}

# ulps of the accumulation dtype granted to exp, the max subtraction and the division
KERNEL_ULPS = 8


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float

    def allows(self, actual: float, expected: float) -> bool:
        return abs(actual - expected) <= self.atol + self.rtol * abs(expected)

    def __str__(self) -> str:
        return f"atol={self.atol:.3g}, rtol={self.rtol:.3g}"


def probabilities(dtype: str, width: int, score_magnitude: float = 0.0) -> Tolerance:
    """Tolerance for softmax outputs of a row of `width` entries (see the module docstring).

    `score_magnitude` is the largest |score| an attention kernel computed itself; 0 for
    softmax of given logits.
    """
    eps_out = finfo_eps(dtype)
    eps_acc = finfo_eps(ACCUMULATE[dtype])
    rel = eps_out + eps_acc * (KERNEL_ULPS + math.log2(max(width, 2))) + 2 * eps_out * score_magnitude
    return Tolerance(atol=rel, rtol=rel)


def row_sum(dtype: str, width: int, score_magnitude: float = 0.0) -> float:
    """|fsum(row) - 1| allowed for a row with at least one unmasked entry."""
    return probabilities(dtype, width, score_magnitude).rtol


def attention_output(dtype: str, width: int, v_magnitude: float, score_magnitude: float) -> Tolerance:
    """Tolerance for ``weights @ V``: weights within `rel` move the convex combination by
    at most ``2 * rel * max|V|``; the output is rounded once more to `dtype`."""
    rel = probabilities(dtype, width, score_magnitude).rtol
    return Tolerance(atol=2 * rel * max(v_magnitude, 1.0), rtol=finfo_eps(dtype))


def attention_gradient(dtype: str, width: int, score_magnitude: float) -> float:
    """The error allowed of an SDPA gradient entry, per unit of the sum of the magnitudes of the
    terms it adds (the oracle gives that sum with each entry): the probabilities' relative
    error (`probabilities`, with the scores' own rounding), carried through a backward that
    forms g @ v.T, subtracts rowsum(p * dp) and multiplies by k or q, four steps that each
    round like the forward (as `gradient` does for softmax).  Plus one ulp of the value."""
    return 4 * probabilities(dtype, width, score_magnitude).rtol


def gradient(dtype: str, width: int) -> Tolerance:
    """Softmax backward ``p * (g - sum(p * g))`` adds one more reduction over the row."""
    tol = probabilities(dtype, width)
    return Tolerance(atol=4 * tol.atol, rtol=4 * tol.rtol)


# Two implementations of the same op on the same inputs (a device against CPU, compiled
# against eager).  Ops that move values (broadcasting, masked_fill, where, comparisons) and
# correctly rounded elementwise arithmetic agree bit for bit, so integer and bool results
# must be equal.  Floats get slack only for what may legitimately differ: the order of a
# reduction (softmax sums over rows up to 4096 wide, attention matmuls, fused or vectorised
# kernels) and the accumulation dtype of the half types.  A few eps of the output dtype per
# element, scaled by log2 of the longest reduction we run (12), covers both.
CROSS_BACKEND_ULPS = {"float16": 16, "bfloat16": 16, "float32": 64, "float64": 64}


def cross_backend(dtype: str) -> Tolerance | None:
    """Tolerance between two backends' results of dtype `dtype`; None: must be identical."""
    if dtype not in CROSS_BACKEND_ULPS:
        return None
    slack = CROSS_BACKEND_ULPS[dtype] * finfo_eps(dtype)
    return Tolerance(atol=slack, rtol=slack)


def projected(tol: Tolerance, dtype: str, row_abs_sum: float, terms: int) -> Tolerance:
    """Tolerance after a linear layer ``y = W @ x + b``: an error of ``tol`` in each x moves y by
    at most ``tol.atol * sum_c |W[r, c]|`` (plus its relative part on |x|), and the layer's own
    sum of `terms` products rounds once per term in `dtype`."""
    eps = finfo_eps(dtype)
    return Tolerance(atol=tol.atol * max(row_abs_sum, 1.0) + 2 * terms * eps,
                     rtol=tol.rtol + 2 * terms * eps)
