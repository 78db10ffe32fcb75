"""The attention harness: what every attention property needs around its oracle.

Running SDPA pinned to one kernel (a refusal counted, never rerouted), the scale SDPA applies,
the rows a policy gives a query with no kept key, and the comparison of an output with the
oracle's rows within the attention tolerance.  Helpers only: the properties are in the
``test_attention_*`` modules, which import from here (a test never imports a test).
"""

from __future__ import annotations

import math
import warnings

from conformance import attention, attention_apis as apis, reach, tolerances
from conformance.failures import Case, attempt, close_with


def scale_of(p) -> float:
    """The scale SDPA applies to problem `p`'s scores: its own, or 1 / sqrt(E)."""
    return p.scale if p.scale is not None else 1 / math.sqrt(p.e)


def policy_row(rows_policy: str, v_rows, e: int) -> list:
    """The output row a policy gives a query with no kept key (`attention_apis.POLICIES`)."""
    if rows_policy == "zeros":
        return [0.0] * e
    if rows_policy == "nan":
        return [math.nan] * e
    if rows_policy == "mean-of-v":
        return attention.mean_rows(v_rows)
    raise ValueError(rows_policy)


def check_rows(case, got, want_rows, shape, dtype, width, smax, v_values, policy, *, what, v_for=None):
    """Compare flat `got` [.., L, E] with the oracle's rows: kept rows within the attention
    tolerance, rows with no kept key as `policy` says (its source in the message)."""
    e = shape[-1]
    vmax = max(map(abs, v_values), default=1.0)
    tol = tolerances.attention_output(dtype, width, vmax, smax)
    want = []
    for r, row in enumerate(want_rows):
        if row is None:  # policy None: those rows were checked by the caller
            row = got[r * e:(r + 1) * e] if policy is None else policy_row(policy.rows, v_for(r) if v_for else None, e)
        want.extend(row)
    case.check_values(got, want, shape, close=close_with(tol), what=f"{what} ({tol})",
                      extra="" if policy is None else
                      f"a query with no kept key: {policy.rows} ({policy.api}, torch {policy.torch}: {policy.source})")


def v_rows_of(p):
    """For row r of the flat (b, h, i) order: the v rows of its kv head."""
    m, e, hkv = p.mask, p.e, p.kv_heads
    group = m.h // hkv

    def v_for(r):
        b, h = r // (m.h * m.L), (r // m.L) % m.h
        return attention.rows(p.v.values, (b * hkv + h // group) * m.S * e, m.S, e)
    return v_for


def problem_case(rule, device, p, kernel=None) -> Case:
    case = Case(rule, device).tensor("q", p.q).tensor("k", p.k).tensor("v", p.v)
    case.inputs.append("mask: " + p.mask.words())
    case.run(*p.mask.code(), "import torch.nn.functional as F")
    if kernel:
        backend = next(k.backend for k in apis.KERNELS if k.name == kernel)
        case.run("from torch.nn.attention import sdpa_kernel, SDPBackend",
                 f"pinned = sdpa_kernel([SDPBackend.{backend}])  # the kernel under test")
    return case


def run_pinned(kernel, fn, count=True):
    """(result, error, refusal reason) of fn() with SDPA pinned to `kernel`; a refusal is
    counted (``refused:REASON`` in the report's reach tally, the kernel's own warning saying
    why) and the example checks nothing more."""
    with apis.pinned(kernel), warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        out, err = attempt(fn)
    if err is not None:  # a refusal says why in a warning: `conformance.errors` reads it
        err.warned = [str(w.message) for w in said]
    why = apis.refusal(err)
    if why and count:
        reasons = [str(w.message).split(" (Triggered internally")[0] for w in said]
        reasons = [r for r in reasons if not r.endswith("not used because:")]
        reach.tally(f"refused:{(reasons[-1] if reasons else why)[:90]}")
    return out, err, why


def sdpa_kw(p):
    """SDPA's keyword arguments for problem `p` (its scale, when it sets one)."""
    return {} if p.scale is None else {"scale": p.scale}
