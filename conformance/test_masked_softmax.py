"""Masked softmax, for every masking idiom in `conformance.implementations`.

Rows with at least one kept entry sum to 1, masked entries are exactly 0, everything is
finite and matches the oracle (float64 + fsum) within the tolerances of
`conformance.tolerances`; fully masked rows follow each idiom's stated policy.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from conformance import profiles, reach, rules, tolerances
from conformance.failures import close_with
from conformance.implementations import IMPLEMENTATIONS
from conformance.softmax_checks import check_against_oracle, describe, rows, run
from conformance.tensors import TensorSpec, read
from strategies import elements
from strategies._cache import cached, integers, sampled_from
from strategies.layouts import element_lists
from strategies.softmax import softmax_inputs
from strategies.values import WIDE, mapped, shift_range

IMPLS = sorted(IMPLEMENTATIONS)
_GRADS = mapped(st.integers(-4, 4), float)
pytestmark = [pytest.mark.ops(param="impl_name", rename={n: IMPLEMENTATIONS[n].ops for n in IMPLS}),
              pytest.mark.torch_tensors]


def claiming(own, shared=lambda impl: (), names=IMPLS):
    """The idioms `names` as parameters, each claiming the input classes `own(impl)` and its
    property `shared(impl)` (see `conformance.reach`)."""
    return reach.params(names, lambda n: own(IMPLEMENTATIONS[n]), lambda n: shared(IMPLEMENTATIONS[n]))


def _common(impl, *, wide=True, rows=reach.MASK_ROWS):
    """What every softmax property reaches in each idiom: logits in every layout but permuted
    and in every float dtype, keep rows of the patterns `rows`, and widths in each of the
    ranges 0, 1, 2-16, 17-256, 257-1024 and past 1024 up to the idiom's widest (16 unless
    `wide`)."""
    top = impl.max_width if wide else 16
    # permuting needs two dims of size > 1, which rows of most widths leave few of: each
    # property claims the permuted layout across its idioms (`_every_width`), each softmax
    # kernel in test_softmax_kernels
    kinds = tuple(k for k in reach.LAYOUTS if k != "permuted")
    return (*reach.layouts("logits", kinds), *reach.dtypes("logits", rules.FLOAT_DTYPES),
            *reach.of("keep", *(f"rows:{r}" for r in rows)), *reach.ranges("logits.width", top, impl.min_width))


def _every_width(impl, *, wide=True):
    """What a softmax property reaches across its idioms: every layout, every width octave,
    and every power of two or a neighbour of it, up to the widest."""
    top = impl.max_width if wide else 16
    return (*reach.layouts("logits"), *reach.octaves("logits.width", top, impl.min_width),
            *reach.boundaries("logits.width", top, impl.min_width))


def _narrow(impl):
    return _every_width(impl, wide=False)


def _gradient_widths(impl):
    """Across its idioms, a gradient property reaches every layout and every width octave up to
    the widest (past 1024 and at 4096, where a backward kernel reduces across blocks)."""
    return (*reach.layouts("logits"), *reach.octaves("logits.width", impl.max_width, impl.min_width))


def _any_dim(impl):
    return (*_common(impl, wide=False), *reach.of("logits", "dim:negative", "dim:nonnegative", "dim:inner", "dim:last"))


def _extreme(impl):
    return (*_common(impl), "logits.values:huge")


def _masked_junk(impl):
    return (*_common(impl, wide=False),
            *reach.of("logits", *("values:nan", "values:+inf", "values:-inf", "values:huge")
                      if impl.masked_values == "any" else ("values:huge",)))


def _fully_masked(impl):
    return _common(impl, rows=("none", "all"))


def _gradients(impl):
    """Each idiom's gradients: `_common` but for the widths, which half as many examples (rows up
    to 4096 wide) reach per idiom too thinly to claim: `_gradient_widths` claims them across
    the idioms."""
    return tuple(c for c in _common(impl, rows=("one", "prefix", "all")) if not c.startswith("logits.width:"))


# --------------------------------------------------------------------------- row rules


def _defined_rows(data, impl_name, rule, device):
    """(case, logits, the idiom's output, [(row positions, keep flags)] of each row softmax
    defines) for inputs drawn from `softmax_inputs`."""
    impl = IMPLEMENTATIONS[impl_name]
    x, keep, dim = data.draw(softmax_inputs(impl), label="logits, keep, dim")
    case = describe(rule, device, impl, x, keep, dim)
    _, out = run(impl, x, keep, dim, device)
    return case, x, read(out), [(row, kp) for row, _, kp, want in rows(x, keep, dim, oracle=False) if want is not None]


@pytest.mark.parametrize("impl_name", claiming(_common, _every_width))
@given(data=st.data())
def test_masked_softmax_rows_sum_to_one(device, impl_name, data):
    """Every row with at least one kept entry sums to 1 (fsum of the outputs) within the
    per-dtype tolerance."""
    case, x, got, kept_rows = _defined_rows(data, impl_name, "rows with any unmasked entry sum to 1", device)
    for row, kp in kept_rows:
        total = math.fsum(rules.row_values(got, row))
        tol = tolerances.row_sum(x.dtype, len(row))
        if not abs(total - 1.0) <= tol:
            case.fail(f"a row sums to {total!r}, off by {abs(total - 1):.3g} > {tol:.3g}",
                      expected=1.0, actual=total,
                      extra=f"row at flat positions {list(row[:8])}..., keep {kp[:16]}...")


@pytest.mark.parametrize("impl_name", claiming(_common, _every_width))
@given(data=st.data())
def test_masked_softmax_masked_entries_are_zero(device, impl_name, data):
    """In every row with at least one kept entry, each masked entry is exactly 0."""
    case, _, got, kept_rows = _defined_rows(data, impl_name, "masked entries get exactly 0 probability", device)
    for row, kp in kept_rows:
        leaks = [(j, got[p]) for j, (p, k) in enumerate(zip(row, kp)) if not k and got[p] != 0.0]
        if leaks:
            case.fail(f"{len(leaks)} masked entries of a row got probability", expected="0.0",
                      actual=", ".join(f"entry {j}: {v!r}" for j, v in leaks[:5]))


@pytest.mark.parametrize("impl_name", claiming(_common, _every_width))
@given(data=st.data())
def test_masked_softmax_matches_oracle(device, impl_name, data):
    """Rows with a kept entry are finite and match the float64 oracle within the per-dtype
    tolerance, for rows from 1 to 4096 wide."""
    impl = IMPLEMENTATIONS[impl_name]
    x, keep, dim = data.draw(softmax_inputs(impl), label="logits, keep, dim")
    case = describe("masked softmax equals the oracle's softmax over the kept entries", device,
                    impl, x, keep, dim)
    _, out = run(impl, x, keep, dim, device)
    check_against_oracle(case, x, keep, dim, read(out))


@pytest.mark.parametrize("impl_name", claiming(_any_dim, _narrow, [n for n in IMPLS if IMPLEMENTATIONS[n].any_dim]))
@given(data=st.data())
def test_masked_softmax_along_any_dim(device, impl_name, data):
    """Softmax along any dim, given as a positive or negative index, normalises exactly the
    slices along that dim."""
    impl = IMPLEMENTATIONS[impl_name]
    x, keep, dim = data.draw(softmax_inputs(impl, any_dim=True, wide=False, min_dims=2),
                             label="logits, keep, dim")
    case = describe(f"softmax(dim={dim}) normalises along dim {dim}", device, impl, x, keep, dim)
    _, out = run(impl, x, keep, dim, device)
    check_against_oracle(case, x, keep, dim, read(out))


@pytest.mark.parametrize("impl_name", claiming(_extreme, _every_width, [n for n in IMPLS if IMPLEMENTATIONS[n].extreme]))
@given(data=st.data())
def test_masked_softmax_extreme_logits_do_not_overflow(device, impl_name, data):
    """Logits between half and all of the dtype's largest finite value (both signs) give finite
    probabilities that match the oracle: the max is subtracted before exp."""
    impl = IMPLEMENTATIONS[impl_name]
    x, keep, dim = data.draw(softmax_inputs(impl, kind="extreme"), label="logits, keep, dim")
    case = describe("extreme logits do not overflow", device, impl, x, keep, dim)
    _, out = run(impl, x, keep, dim, device)
    check_against_oracle(case, x, keep, dim, read(out))


# --------------------------------------------------------------------------- invariances


def _comparable_rows(impl, x, keep, dim):
    """Rows whose result must be unchanged: all of them, except fully masked rows of the
    finfo.min bias, which are a softmax of the (shifted or replaced) biased logits."""
    for row, _, _, want in rows(x, keep, dim, oracle=False):
        if want is not None or impl.fully_masked != "biased":
            yield row


def _compare(case, impl, x, keep, dim, got, ref, what):
    tol = tolerances.probabilities(x.dtype, x.shape[dim])
    for row in _comparable_rows(impl, x, keep, dim):
        case.check_values(rules.row_values(got, row), rules.row_values(ref, row), (len(row),), what=what,
                          close=close_with(tol))


@pytest.mark.parametrize("impl_name", claiming(_common, _every_width))
@given(data=st.data())
def test_masked_softmax_is_shift_invariant(device, impl_name, data):
    """Adding the same constant to every logit changes nothing (the logits are on a grid
    where the shift is exact in the dtype)."""
    impl = IMPLEMENTATIONS[impl_name]
    x, keep, dim = data.draw(softmax_inputs(impl, kind="grid"), label="logits, keep, dim")
    c = data.draw(integers(-shift_range(x.dtype), shift_range(x.dtype)), label="shift")
    shifted = TensorSpec.contiguous(x.shape, x.dtype, [v + c for v in x.values])
    case = describe("softmax(x + c) == softmax(x)", device, impl, x, keep, dim)
    case.run(f"x2 = x + {c}", f"print(p - {impl.code(dim, x='x2')})")
    _, out = run(impl, x, keep, dim, device)
    _, out2 = run(impl, shifted, keep, dim, device)
    _compare(case, impl, x, keep, dim, read(out2), read(out), f"shifting every logit by {c} changed the result")


@cached
def _junk(dtype, anything, extreme):
    """What a masked logit may hold: any finite value within reach (+-inf and nan too when
    `anything`), and the extremes."""
    big = rules.finfo_max(dtype) * (1 if extreme else 0.5)
    return elements(dtype, allow_nan=anything, allow_infinity=anything, min_value=-big, max_value=big) \
        | sampled_from([big, -big] + ([math.inf, -math.inf, math.nan] if anything else []))


@pytest.mark.parametrize("impl_name", claiming(_masked_junk, _narrow))
@given(data=st.data())
def test_masked_softmax_ignores_values_at_masked_positions(device, impl_name, data):
    """Whatever the logits at masked positions hold (any finite value, and +-inf and nan where
    the idiom allows them; at most half the dtype's max for the finfo.min bias, which a
    masked logit of finfo.max cancels), the result is the same."""
    impl = IMPLEMENTATIONS[impl_name]
    x, keep, dim = data.draw(softmax_inputs(impl, kind="ordinary", wide=False), label="logits, keep, dim")
    junk = _junk(x.dtype, impl.masked_values == "any", impl.extreme)
    n_masked = sum(1 for k in keep.values if not k)
    new = iter(data.draw(element_lists(junk, n_masked), label="masked values"))
    other = TensorSpec.contiguous(x.shape, x.dtype,
                                  [v if k else rules.round_to(x.dtype, next(new)) for v, k in zip(x.values, keep.values)])
    case = describe("values at masked positions do not matter", device, impl, x, keep, dim)
    case.tensor("x2", other).run(f"print(p, {impl.code(dim, x='x2')})")
    _, out = run(impl, x, keep, dim, device)
    _, out2 = run(impl, other, keep, dim, device)
    _compare(case, impl, x, keep, dim, read(out2), read(out), "changing masked logits changed the result")


# --------------------------------------------------------------------------- policy and grads


@pytest.mark.parametrize("impl_name", claiming(_fully_masked, _every_width))
@given(data=st.data())
def test_masked_softmax_fully_masked_rows_follow_policy(device, impl_name, data):
    """A row with no kept entry follows the idiom's stated policy: all nan (-inf + softmax,
    torch.masked.softmax), all 0 (SDPA since 2.5), or the softmax of the biased logits
    (finfo.min bias; nan only where every biased logit overflowed to -inf)."""
    impl = IMPLEMENTATIONS[impl_name]
    x, keep, dim = data.draw(softmax_inputs(impl, patterns=("none", "none", "random", "all")),
                             label="logits, keep, dim")
    case = describe(f"fully masked rows: {impl.fully_masked} ({impl.policy_source})", device,
                    impl, x, keep, dim)
    _, out = run(impl, x, keep, dim, device)
    got = read(out)
    for row, _, kp, want in rows(x, keep, dim, oracle=False):
        if want is not None:
            continue
        vals = rules.row_values(got, row)
        if impl.fully_masked == "biased":
            biased = [rules.round_to(x.dtype, x.values[p] - rules.finfo_max(x.dtype)) for p in row]
            want = rules.softmax(biased, [True] * len(row))
        if want is not None:
            tol = tolerances.probabilities(x.dtype, len(row))
            case.check_values(vals, want, (len(row),), close=close_with(tol),
                              what=f"a fully masked row is not the softmax of the biased logits ({tol})")
            continue
        ok = {"nan": all(math.isnan(v) for v in vals), "zeros": all(v == 0.0 for v in vals),
              "biased": all(math.isnan(v) for v in vals)}[impl.fully_masked]
        if not ok:
            case.fail("a fully masked row broke the idiom's policy",
                      expected=f"{impl.fully_masked} ({impl.policy_source})",
                      actual=vals[:8])


@cached
@st.composite
def upstream_gradients(draw, shape, dtype):
    """An upstream gradient for logits of `shape`: integers in [-4, 4] drawn one by one up to
    `logits.WIDE` values, past that from a seeded NumPy generator (its source in the
    reproduction, not thousands of literals)."""
    n = rules.numel(shape)
    if n < WIDE:
        return TensorSpec.contiguous(shape, dtype, draw(element_lists(_GRADS, n)))
    import numpy as np

    seed = draw(integers(0, 2**32 - 1))
    values = tuple(float(v) for v in np.random.default_rng(seed).integers(-4, 5, n))
    return TensorSpec(tuple(shape), dtype, values, rules.contiguous_strides(shape), 0, values,
                      numpy_source=f"np.random.default_rng({seed}).integers(-4, 5, {n}).astype(np.float64)")


@pytest.mark.parametrize("impl_name", claiming(_gradients, _gradient_widths))
@profiles.fraction(0.5)  # rows up to 4096 wide, each checked against the oracle: fewer, larger examples
@given(data=st.data())
def test_masked_softmax_gradients_are_finite_and_zero_where_masked(device, impl_name, data):
    """For rows with a kept entry, from 0 to 4096 wide, d(sum(g * p))/dx is finite everywhere,
    exactly 0 at masked positions, and matches the oracle p * (g - sum(p * g)) at kept ones."""
    impl = IMPLEMENTATIONS[impl_name]
    x, keep, dim = data.draw(softmax_inputs(impl, patterns=("random", "all", "one", "prefix")),
                             label="logits, keep, dim")
    gspec = data.draw(upstream_gradients(x.shape, x.dtype), label="upstream gradient")
    g = gspec.values
    case = describe("gradients are finite, 0 at masked positions, and right", device, impl, x, keep, dim)
    case.tensor("g", gspec).run("x.requires_grad_(True)", f"({impl.code(dim)} * g).sum().backward()",
                                "print(x.grad)")
    t, out = run(impl, x, keep, dim, device, requires_grad=True)
    (out * gspec.build(device)).sum().backward()
    got = read(t.grad)
    tol = tolerances.gradient(x.dtype, x.shape[dim])
    tol = tolerances.Tolerance(tol.atol * 8, tol.rtol)  # |g| <= 4: the error scales with it
    for row, _, kp, p in rows(x, keep, dim):
        if p is None:  # a random row may keep nothing; its gradient is the policy's business
            continue
        grads = rules.row_values(got, row)
        if not all(math.isfinite(v) for v in grads):
            case.fail("non-finite gradient", expected="finite", actual=grads[:8])
        masked = [v for v, k in zip(grads, kp) if not k and v != 0.0]
        if masked:
            case.fail("masked positions got a gradient", expected="0.0", actual=masked[:5])
        gr = rules.row_values(g, row)
        pg = math.fsum(a * b for a, b in zip(p, gr))
        want = [a * (b - pg) for a, b in zip(p, gr)]
        case.check_values(grads, want, (len(row),), what=f"gradient differs from the oracle ({tol})",
                          close=close_with(tol))
