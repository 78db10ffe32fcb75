"""Masked softmax, run and judged: one idiom's call on a device, its failure snippet, and the
check of its rows against the oracle.  Shared by `conformance.test_masked_softmax` and
`conformance.test_softmax_kernels` (a test module never imports another)."""

from __future__ import annotations

import math

from conformance import device_ops, reach, rules, tolerances
from conformance.failures import Case, close_with

__all__ = ["check_against_oracle", "describe", "rows", "run"]


def describe(rule, device, impl, x, keep, dim) -> Case:
    """The failure case of idiom `impl` on logits `x` and mask `keep`: its inputs and its code."""
    case = Case(rule, device).tensor("x", x).tensor("keep", keep)
    return case.run(*impl.setup(x.shape[-1]), f"p = {impl.code(dim)}", "print(p)")


def run(impl, x, keep, dim, device, requires_grad=False):
    """(the logits tensor, idiom `impl`'s result) on `device`, the inputs' classes recorded."""
    t, k = x.build(device, requires_grad=requires_grad), keep.build(device)
    reach.note_tensor("logits", t)
    reach.note_tensor("keep", k)
    reach.note_softmax("logits", t, dim)
    return t, impl(device_ops.for_device(device), t, k, dim)


def rows(x, keep, dim, oracle=True):
    """(positions, logits, keep flags, oracle probabilities) for each softmax row; the
    probabilities are None for a row softmax leaves undefined (no kept entry above -inf).
    With `oracle=False` they are not computed (True for a defined row): for the checks that
    only need to know which rows count."""
    for row in rules.rows_along(x.shape, dim):
        vals = rules.row_values(x.values, row)
        kp = rules.row_values(keep.values, row)
        yield row, vals, kp, (rules.softmax(vals, kp) if oracle else
                              rules.softmax_defined(vals, kp) or None)


def check_against_oracle(case, x, keep, dim, got, what="probabilities differ from the oracle"):
    """Every row of `got` (values row-major) with a kept entry is finite and equals the oracle's
    softmax over the kept entries within `conformance.tolerances.probabilities`."""
    for row, _, kp, want in rows(x, keep, dim):
        if want is None:
            continue
        vals = rules.row_values(got, row)
        bad = [v for v in vals if not math.isfinite(v)]
        if bad:
            case.fail("a row with kept entries has non-finite probabilities", expected="finite",
                      actual=bad[:5])
        tol = tolerances.probabilities(x.dtype, len(row))
        case.check_values(vals, want, (len(row),), what=f"{what} ({tol})", close=close_with(tol),
                          extra=f"row at flat positions {list(row[:6])}...")
