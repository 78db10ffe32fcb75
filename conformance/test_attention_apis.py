"""One logical mask, every attention API: each must compute the oracle's attention.

Hypothesis draws a `conformance.attention.LogicalMask` (key and query padding, causal aligned
upper-left or lower-right, sliding windows, documents, per-head patterns) and q, k, v on exact
grids; the oracle computes attention from it in pure Python; every API that can express the
mask must agree on every query that keeps a key, and follow its own stated policy
(`conformance.attention_apis.POLICIES`) on the queries that keep none.  Properties over SDPA
run once per kernel the device offers (the test id names it: ``[cpu-flash]``); a kernel that
refuses an input is counted in the report (``refused:`` in the property's reach), not rerouted.
"""

from __future__ import annotations

import dataclasses
import math
import random
import warnings

import pytest
import torch
from hypothesis import assume, given, strategies as st

from conformance import (attention, attention_apis as apis, backends, capabilities, profiles, reach, rules,
                         semantics, tolerances)
from conformance.attention_checks import (check_rows, policy_row, problem_case, run_pinned, scale_of, sdpa_kw,
                                          v_rows_of)
from conformance.failures import Case, attempt, close_with
from conformance.tensors import TORCH_DTYPES, TensorSpec, read
from strategies import booleans, sampled_from
from strategies.attention import COMPONENTS, attention_problems, logical_masks
from strategies.layouts import relayout

pytestmark = pytest.mark.torch_tensors
FLOATS = ("float16", "bfloat16", "float32", "float64")

# --------------------------------------------------------------------------- SDPA: mask expressions

EXPRESSIONS = ("bool", "float -inf", "float finfo.min")


def mask_forms(varies: set[str]) -> list[tuple[str, ...]]:
    """The attn_mask shapes (as dim names, "1" for a broadcast dim) that express a mask varying
    along `varies`: the full [B,H,L,S], [B,1,L,S] when heads agree, the smallest form, and that
    form without its leading 1s (e.g. [L,S] for a causal mask, [S] for one padding row)."""
    full = ("B", "H", "L", "S")
    forms = [full]
    if "H" not in varies:
        forms.append(("B", "1", "L", "S"))
    small = tuple(d if d in varies else "1" for d in full)
    forms.append(small)
    while len(small) > 2 and small[0] == "1":
        small = small[1:]
    forms.append(small)  # 1-d masks: test_sdpa_accepts_a_one_dimensional_mask
    return list(dict.fromkeys(forms))


# the masks attention code builds, each a share of the draws: key padding alone (the tutorial's
# (B,1,1,S) mask), causal alone (an (L,S) mask), and any mix of components.  Drawn as one mix,
# a mask that varies along B and S only is one in 64, and its form one in 256 examples.
_KEY_PADDING = logical_masks(components=("key_padding",), require=("key_padding",))
_SCENARIOS = sampled_from((_KEY_PADDING,
                              logical_masks(components=("causal",), require=("causal",)),
                              logical_masks(), logical_masks()))


@st.composite
def sdpa_mask_args(draw):
    """(problem, expression, form, layout, mask spec): a mask expression from EXPRESSIONS in a
    drawn form, contiguous, expanded to the full shape, or in another layout."""
    masks = draw(_SCENARIOS)
    p = draw(attention_problems(masks=masks))
    expression = draw(sampled_from(EXPRESSIONS))
    # key padding alone: the tutorial's (B,1,1,S) mask, whatever the lengths
    form = ("B", "1", "1", "S") if masks is _KEY_PADDING else draw(sampled_from(mask_forms(p.mask.varies())))
    m = p.mask
    sizes = {"B": m.b, "H": m.h, "L": m.L, "S": m.S, "1": 1}
    shape = tuple(sizes[d] for d in form)
    table = m.table()
    full = ("B", "H", "L", "S")[-len(form):]
    lead = 4 - len(form)
    values = []
    for idx in rules.ndindex(shape):
        ix = [0] * lead + [i if f != "1" else 0 for i, f in zip(idx, form)]
        values.append(table[ix[0]][ix[1]][ix[2]][ix[3]])
    if expression == "bool":
        spec = TensorSpec.contiguous(shape, "bool", values)
    else:
        fill = -math.inf if expression == "float -inf" else -rules.finfo_max(p.dtype)
        spec = TensorSpec.contiguous(shape, p.dtype, [0.0 if kept else fill for kept in values])
    layout = draw(sampled_from(("contiguous", "expanded", "other")))
    if layout == "other":
        spec = relayout(draw, spec, kinds=("permuted", "strided", "offset"))
    del full
    return p, expression, form, layout, spec


@pytest.mark.ops("scaled_dot_product_attention")
@pytest.mark.reach(*reach.of("scaled_dot_product_attention", "attn_mask.kind:bool", "attn_mask.kind:float",
                             "attn_mask.form:(B,H,L,S)", "attn_mask.form:(B,1,L,S)", "attn_mask.form:(B,1,1,S)",
                             "attn_mask.form:(L,S)", "attn_mask.layout:expanded", "attn_mask.layout:permuted",
                             "attn_mask.layout:strided", "L<S", "L=S", "L>S", "L:1", "S:1", "S:2^10+1", "S:2^11+1",
                             *(f"q.dtype:{d}" for d in FLOATS)),
                   "expression:float finfo.min", "rows:fully-masked", *(f"component:{c}" for c in COMPONENTS))
@given(args=sdpa_mask_args())
def test_sdpa_mask_expressions_match_oracle(device, kernel, args):
    """F.scaled_dot_product_attention with the drawn mask as a bool attn_mask (True = take part)
    or an additive float mask (-inf, or finfo.min) in any broadcastable form and layout equals
    the oracle on every query with a kept key; queries with none follow SDPA's policy (zeros
    since torch 2.5; the uniform mean of v under a finfo.min bias, which masks nothing)."""
    p, expression, form, layout, spec = args
    m = p.mask
    _note_mask(m)
    reach.note(f"expression:{expression}")
    case = problem_case("SDPA: softmax(q @ k.T * scale + mask) @ v over the kept keys", device, p, kernel)
    case.tensor("attn_mask", spec)
    case.inputs.append(f"attn_mask: {expression}, form [{','.join(form)}], {layout}")
    expand = ".expand(B, H, L, S)" if layout == "expanded" else ""
    case.run(f"with pinned: out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask{expand}"
             f"{', scale=' + repr(p.scale) if p.scale is not None else ''})", "print(out)")
    q, k, v, mask = (t.build(device) for t in (p.q, p.k, p.v, spec))
    if expand:
        mask = mask.expand(m.b, m.h, m.L, m.S)
    ops = backends.for_device(device)
    out, err, refused = run_pinned(kernel, lambda: ops.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                                                   **sdpa_kw(p)))
    if refused:
        return
    case.check_outcome(None, err)
    want, smax = attention.expected(m, p.q.values, p.k.values, p.v.values, p.kv_heads, p.e, scale_of(p))
    if any(r is None for r in want):
        reach.note("rows:fully-masked")
    policy = apis.policy("sdpa-finfo-min" if expression == "float finfo.min" else "sdpa")
    got = read(out)
    if expression == "float finfo.min" and p.dtype == "float16":
        _check_convex_rows(case, got, want, p)
        policy = None  # those rows are checked; the kept ones below
    check_rows(case, got, want, (m.b, m.h, m.L, p.e), p.dtype, m.S, smax, p.v.values, policy,
               what="SDPA output differs from the oracle", v_for=v_rows_of(p))


def _check_convex_rows(case, got, want, p):
    """float16 under a finfo.min bias: a query with no kept key gets a convex combination of v's
    rows (x + finfo.min rounds to a few neighbouring values, not one), so each output lies
    within the column's range of v."""
    v_for, e = v_rows_of(p), p.e
    for r, row in enumerate(want):
        if row is not None:
            continue
        vr = v_for(r)
        for c in range(e):
            lo, hi = min(x[c] for x in vr), max(x[c] for x in vr)
            x = got[r * e + c]
            slack = 2 * rules.finfo_eps("float16") * max(abs(lo), abs(hi), 1.0)
            if not (lo - slack <= x <= hi + slack):
                case.fail(f"a query with no kept key under a finfo.min bias is not a convex combination of v "
                          f"(row {r}, column {c})", expected=f"within [{lo}, {hi}]", actual=repr(x))


def _note_mask(m) -> None:
    reach.note(*(f"component:{c}" for c, on in (
        ("key_padding", m.key_lengths is not None), ("query_padding", m.query_lengths is not None),
        ("causal", m.causal is not None), ("window", m.window is not None),
        ("documents", m.documents is not None), ("per_head", m.per_head is not None)) if on))
    if m.causal:
        reach.note(f"causal:{m.causal}")


@pytest.mark.ops("scaled_dot_product_attention")
@pytest.mark.reach(*reach.of("scaled_dot_product_attention", "attn_mask.ndim:1"),
                   property=reach.of("scaled_dot_product_attention", "outcome:returns"))  # a deviation stops early
@given(p=attention_problems(logical_masks(components=("key_padding",), max_batch=1)))
def test_sdpa_accepts_a_one_dimensional_mask(device, kernel, p):
    """A 1-d bool attn_mask [S] (one padding row for every query) broadcasts to [B,H,L,S] like any
    other broadcastable mask and gives the oracle's attention (the documentation asks for a
    mask broadcastable to the attention weights, nothing more)."""
    m = p.mask
    keep = [m.keep(0, 0, 0, j) for j in range(m.S)]
    case = problem_case("SDPA: a 1-d attn_mask [S] broadcasts like any other", device, p, kernel)
    case.run(f"keep = torch.tensor({keep})  # [S]",
             "with pinned: out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)", "print(out)")
    q, k, v = (t.build(device) for t in (p.q, p.k, p.v))
    ops = backends.for_device(device)
    p0 = type(p)(m, p.q, p.k, p.v, p.kv_heads, None)
    out, err, refused = run_pinned(kernel, lambda: ops.scaled_dot_product_attention(
        q, k, v, attn_mask=torch.tensor(keep, device=device)))
    if refused:
        return
    case.check_outcome(None, err)
    want, smax = attention.expected(m, p.q.values, p.k.values, p.v.values, p.kv_heads, p.e, scale_of(p0))
    check_rows(case, read(out), want, (m.b, m.h, m.L, p.e), p.dtype, m.S, smax, p.v.values, apis.policy("sdpa"),
               what="SDPA with a 1-d mask differs from the oracle")


# --------------------------------------------------------------------------- SDPA: causal variants

CAUSAL_EXPRESSIONS = {
    "upper-left": ("is_causal=True", "causal_upper_left(L, S)", "tril(ones(L, S))"),
    "lower-right": ("causal_lower_right(L, S)", "tril(ones(L, S), diagonal=S - L)"),
}


_EXPRESSED = tuple((how, alignment) for alignment, hows in CAUSAL_EXPRESSIONS.items() for how in hows)


@st.composite
def causal_args(draw):
    """(problem, expression): one of the five expressions, each as often as the others, and a
    causal mask aligned as that expression aligns it."""
    how, alignment = draw(sampled_from(_EXPRESSED))
    p = draw(attention_problems(logical_masks(components=("causal",), require=("causal",))))
    return dataclasses.replace(p, mask=dataclasses.replace(p.mask, causal=alignment)), how


def _causal_call(ops, how, q, k, v, kw, device):
    L, S = q.shape[-2], k.shape[-2]
    if how == "is_causal=True":
        return ops.scaled_dot_product_attention(q, k, v, is_causal=True, **kw)
    if how.startswith("causal_"):
        from torch.nn.attention import bias

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lower right with L > S: "will produce NaNs" (it gives 0 since 2.5)
            mask = getattr(bias, how.split("(")[0])(L, S)
        return ops.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)
    diagonal = S - L if "diagonal" in how else 0
    mask = ops.tril(torch.ones(L, S, dtype=torch.bool, device=device), diagonal)
    return ops.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)


@pytest.mark.ops("scaled_dot_product_attention", "tril")
@pytest.mark.reach(*reach.of("scaled_dot_product_attention", "is_causal", "attn_mask.kind:causal-bias",
                             "attn_mask.causal-bias:upper-left", "attn_mask.causal-bias:lower-right",
                             "L<S", "L=S", "L>S", "L:1", "S:2^11+1"),
                   "causal:upper-left", "causal:lower-right", "rows:fully-masked")
@given(args=causal_args())
def test_sdpa_causal_variants_align_as_documented(device, kernel, args):
    """is_causal=True and causal_upper_left keep key j for query i iff j <= i (upper-left, also
    when L != S), causal_lower_right iff j <= i + S - L; each equals the oracle and the same
    mask written as a tril bool mask, and a query with no key left (lower-right, L > S) gives 0."""
    if (why := apis.has("causal_bias")):
        pytest.skip(why)
    p, how = args
    m = p.mask
    reach.note(f"causal:{m.causal}", f"expression:{how}")
    case = problem_case(f"SDPA causal {m.causal}: keeps j <= i{' + S - L' if m.offset else ''}", device, p, kernel)
    case.inputs.append(f"expressed as: {how}")
    call = {"is_causal=True": "is_causal=True"}.get(how, f"attn_mask=mask")
    if how.startswith("causal_"):
        case.run(f"from torch.nn.attention.bias import {how.split('(')[0]}", f"mask = {how.replace('L, S', f'{m.L}, {m.S}')}")
    elif how.startswith("tril"):
        case.run(f"mask = torch.ones({m.L}, {m.S}, dtype=torch.bool).tril({m.S - m.L if m.offset else 0})")
    case.run(f"with pinned: out = F.scaled_dot_product_attention(q, k, v, {call}"
             f"{', scale=' + repr(p.scale) if p.scale is not None else ''})", "print(out)")
    q, k, v = (t.build(device) for t in (p.q, p.k, p.v))
    ops = backends.for_device(device)
    out, err, refused = run_pinned(kernel, lambda: _causal_call(ops, how, q, k, v, sdpa_kw(p), device))
    if refused:
        return
    case.check_outcome(None, err)
    want, smax = attention.expected(m, p.q.values, p.k.values, p.v.values, p.kv_heads, p.e, scale_of(p))
    if any(r is None for r in want):
        reach.note("rows:fully-masked")
    check_rows(case, read(out), want, (m.b, m.h, m.L, p.e), p.dtype, m.S, smax, p.v.values, apis.policy("sdpa"),
               what=f"SDPA with {how} differs from the oracle's {m.causal} causal mask")


@pytest.mark.ops("scaled_dot_product_attention")
@pytest.mark.reach(*reach.of("scaled_dot_product_attention", "is_causal", "attn_mask.kind:bool"),
                   property=reach.of("scaled_dot_product_attention", "L<S", "L=S", "L>S"))  # a deviation stops early
@given(p=attention_problems(logical_masks(components=("key_padding", "causal"))))
def test_sdpa_refuses_attn_mask_with_is_causal(device, kernel, p):
    """SDPA raises when both attn_mask and is_causal=True are given ("An error is thrown if both
    attn_mask and is_causal are set": the documentation), whatever the kernel."""
    m = p.mask
    keep = [[[[m.keep(b, h, i, j) for j in range(m.S)] for i in range(m.L)] for h in range(m.h)] for b in range(m.b)]
    case = problem_case("SDPA: attn_mask together with is_causal=True is an error", device, p, kernel)
    case.run("with pinned: out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, is_causal=True)",
             "print(out)  # the documentation says this raises")
    q, k, v = (t.build(device) for t in (p.q, p.k, p.v))
    mask = torch.tensor(keep, dtype=torch.bool, device=device)
    ops = backends.for_device(device)
    with apis.pinned(kernel):
        _, err = attempt(lambda: ops.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=True))
    case.check_outcome(RuntimeError("Explicit attn_mask should not be set when is_causal=True"), err,
                       kind="sdpa_mask_with_causal")


# --------------------------------------------------------------------------- SDPA: GQA


@st.composite
def gqa_args(draw):
    """A GQA problem (H = Hkv * group) with a [B,H,L,S] bool mask or none; one in four with one
    query head too many (Hkv >= 2, so the kv heads do not divide the query heads)."""
    p = draw(attention_problems(gqa=True))
    with_mask = draw(booleans())
    wrong = p.kv_heads >= 2 and draw(st.integers(0, 3)) == 0
    return p, with_mask, wrong


@pytest.mark.ops("scaled_dot_product_attention")
@pytest.mark.reach(*reach.of("scaled_dot_product_attention", "enable_gqa", "gqa:divides", "gqa:does-not-divide",
                             "attn_mask.kind:bool", "outcome:raises", "outcome:returns"), "group:1", "group:2", "group:3")
@given(args=gqa_args())
def test_sdpa_gqa_matches_repeated_kv_heads(device, kernel, args):
    """SDPA with enable_gqa=True lets query head h read kv head h // (H / Hkv), as
    k.repeat_interleave(H // Hkv, dim=-3) lays them out, and raises when Hkv does not divide H."""
    if (why := apis.has("enable_gqa")):
        pytest.skip(why)
    p, with_mask, wrong = args
    m = p.mask
    reach.note(f"group:{m.h // p.kv_heads}")
    case = problem_case("SDPA enable_gqa: query head h reads kv head h // (H / Hkv)", device, p, kernel)
    q, k, v = (t.build(device) for t in (p.q, p.k, p.v))
    if wrong:
        q = torch.cat([q, q[:, :1]], dim=1)
        case.run("q = torch.cat([q, q[:, :1]], dim=1)  # one query head more: Hkv no longer divides H")
    mask = torch.tensor(m.table(), dtype=torch.bool, device=device) if with_mask and not wrong else None
    case.run(f"with pinned: out = F.scaled_dot_product_attention(q, k, v, attn_mask={'keep' if mask is not None else None}"
             f", enable_gqa=True{', scale=' + repr(p.scale) if p.scale is not None else ''})", "print(out)")
    ops = backends.for_device(device)
    out, err, refused = run_pinned(kernel, lambda: ops.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, enable_gqa=True, **sdpa_kw(p)), count=not wrong)  # wrong: an error is due
    if wrong:
        case.check_outcome(RuntimeError(f"{m.h + 1} query heads, {p.kv_heads} kv heads"), err,
                           kind="gqa_heads", warned=getattr(err, "warned", ()))
        return
    if refused:
        return
    case.check_outcome(None, err)
    if mask is None:
        m = attention.LogicalMask(m.b, m.h, m.L, m.S)
    want, smax = attention.expected(m, p.q.values, p.k.values, p.v.values, p.kv_heads, p.e, scale_of(p))
    check_rows(case, read(out), want, (m.b, m.h, m.L, p.e), p.dtype, m.S, smax, p.v.values, apis.policy("sdpa"),
               what="SDPA with enable_gqa differs from the oracle (kv head h // group)")


# --------------------------------------------------------------------------- SDPA: jagged nested tensors


@st.composite
def jagged_args(draw):
    """(lengths, H, E, dtype, q, k, v as [sum(lengths), H, E] flat lists): self-attention over
    sequences of different lengths (0 allowed, not all), packed without padding."""
    b = draw(st.integers(1, 4))
    lengths = tuple(draw(st.integers(0, 9)) for _ in range(b))
    assume(any(lengths))  # a batch with no token at all: test_fast_paths_accept_a_batch_of_empty_sequences
    h = draw(st.integers(1, 3))
    e = draw(sampled_from((1, 2, 4, 8, 16)))
    dtype = draw(sampled_from(FLOATS))
    n = sum(lengths) * h * e
    from strategies.attention import EIGHTHS, QUARTERS
    from strategies.layouts import draw_elements

    q, k = (draw_elements(draw, QUARTERS, n) for _ in range(2))
    return lengths, h, e, dtype, q, k, draw_elements(draw, EIGHTHS, n)


@pytest.mark.ops("scaled_dot_product_attention")
@pytest.mark.reach(*reach.of("scaled_dot_product_attention", "nested:jagged", "q.layout:jagged"), "length:0",
                   "lengths:ragged")
@given(args=jagged_args())
def test_sdpa_on_jagged_nested_tensors_matches_oracle(device, kernel, args):
    """SDPA on jagged nested tensors (torch.nested, layout=torch.jagged) attends within each
    sequence over exactly its own keys: equal to the oracle on every real position (what the
    same batch padded, with a key padding mask, gives)."""
    if (why := apis.has("jagged")):
        pytest.skip(why)
    lengths, h, e, dtype, qv, kv, vv = args
    if 0 in lengths:
        reach.note("length:0")
    if len(set(lengths)) > 1:
        reach.note("lengths:ragged")
    case = Case("SDPA on jagged nested tensors: each sequence attends to its own keys", device)
    case.inputs.append(f"sequences of lengths {list(lengths)}, H={h}, E={e}, {dtype}")
    case.run(f"lengths, H, E = {list(lengths)}, {h}, {e}", "import torch.nn.functional as F",
             *(f"{n}_flat = torch.tensor({vals}, dtype=torch.{dtype}).reshape(-1, H, E)" for n, vals in
               (("q", qv), ("k", kv), ("v", vv))),
             "q, k, v = (torch.nested.nested_tensor(list(t.split(lengths)), layout=torch.jagged).transpose(1, 2)"
             " for t in (q_flat, k_flat, v_flat))",
             f"with torch.nn.attention.sdpa_kernel([torch.nn.attention.SDPBackend."
             f"{next(k.backend for k in apis.KERNELS if k.name == kernel)}]):",
             "    out = F.scaled_dot_product_attention(q, k, v)", "print(out.transpose(1, 2).unbind())")
    dt = TORCH_DTYPES[dtype]

    def nested(vals):
        flat = torch.tensor(vals, dtype=dt, device=device).reshape(-1, h, e)
        return torch.nested.nested_tensor(list(flat.split(list(lengths))), layout=torch.jagged).transpose(1, 2)

    with capabilities.feature("jagged", device, dtype):
        q, k, v = nested(qv), nested(kv), nested(vv)
    ops = backends.for_device(device)
    out, err, refused = run_pinned(kernel, lambda: ops.scaled_dot_product_attention(q, k, v))
    if refused:
        return
    case.check_outcome(None, err)
    got = [x for t in out.transpose(1, 2).unbind() for x in read(t)]
    want, start, smax = [], 0, 0.0
    scale = 1 / math.sqrt(e)
    for n in lengths:
        seq = [[qv, kv, vv][w][start * h * e:(start + n) * h * e] for w in range(3)]
        per_head = []
        for hh in range(h):
            pick = [[vals[(i * h + hh) * e:(i * h + hh + 1) * e] for i in range(n)] for vals in seq]
            rows_, m_ = attention.attend_head(*pick, [[True] * n] * n, scale)
            per_head.append(rows_)
            smax = max(smax, m_)
        for i in range(n):
            for hh in range(h):
                want.extend(per_head[hh][i])
        start += n
    tol = tolerances.attention_output(dtype, max(lengths, default=1), max(map(abs, vv), default=1.0), smax)
    case.check_values(got, want, (sum(lengths), h, e), close=close_with(tol),
                      what=f"jagged SDPA differs from the oracle on real positions ({tol})")


# --------------------------------------------------------------------------- FlexAttention


_FLEX = {}  # the parameters of the mask being checked, read by `flex_mask_mod`


def flex_mask_mod(bi, hi, qi, kj):
    """The logical mask as a FlexAttention mask_mod: one function for every example, reading the
    example's mask from tensors (`mask_mod_of` sets them).  FlexAttention in eager mode traces its
    mask_mod: a new closure per example costs 100 ms a call, the same function 40 ms."""
    f = _FLEX
    d = qi + f["off"][0]
    keep = ((kj < f["kl"][bi]) & (qi < f["ql"][bi]) & ((kj <= d) | ~f["causal"][0]) & ((d - kj).abs() < f["window"][0])
            & (f["qd"][qi] == f["kd"][kj]))
    return torch.where(f["or"][0], keep | f["ph"][bi, hi, qi, kj], keep & f["ph"][bi, hi, qi, kj])


def mask_mod_of(m: attention.LogicalMask, device):
    """`flex_mask_mod` set to mask `m`: every part is a tensor, absent parts included (a key
    length of S, a window wider than both lengths, one document)."""
    b, h, L, S = m.b, m.h, m.L, m.S
    t = lambda x: torch.tensor(x, device=device)  # noqa: E731
    _FLEX.update(
        kl=t(m.key_lengths if m.key_lengths is not None else [S] * b),
        ql=t(m.query_lengths if m.query_lengths is not None else [L] * b),
        causal=t([m.causal is not None]), off=t([m.offset]),
        window=t([m.window if m.window is not None else L + S + 1]),
        qd=t(m.documents[0] if m.documents is not None else [0] * L),
        kd=t(m.documents[1] if m.documents is not None else [0] * S),
        ph=t(m.per_head) if m.per_head is not None else torch.ones(b, h, L, S, dtype=torch.bool, device=device),
        **{"or": t([m.per_head is not None and m.combine == "or"])})
    return flex_mask_mod


# FlexAttention in eager mode traces each new shape and dtype once (a quarter of a second): a few
# shapes, all alignments of L and S, one wide enough for more than one key block of 1024 keys
FLEX_SIZES = ((2, 2, 1, 5), (2, 2, 4, 4), (2, 2, 6, 3), (1, 2, 2, 2049))


@pytest.mark.ops("flex_attention")
@pytest.mark.reach(*reach.of("flex_attention", "L<S", "L=S", "L>S", "S:2^11+1",
                             "q.dtype:float16", "q.dtype:float32"),
                   *(f"component:{c}" for c in COMPONENTS), "causal:upper-left", "causal:lower-right",
                   "rows:fully-masked")
@profiles.fraction(1 / 4)  # 40 ms an example: FlexAttention's eager path traces and vmaps its mask_mod
@pytest.mark.timeout(1200)  # compiled (torch-compile), each new shape compiles FlexAttention's kernels: a minute each
@given(p=attention_problems(logical_masks(sizes=FLEX_SIZES), dtypes=("float16", "float32"), head_dims=(4,)))
def test_flex_attention_mask_mod_matches_oracle(device, p):
    """flex_attention(q, k, v, block_mask=create_block_mask(mask_mod, B, H, L, S)) with the
    logical mask as a mask_mod (causal either way, windows, padding, documents, per-head) equals
    the oracle; a query with no kept key gives 0."""
    if (why := apis.has("flex_attention")):
        pytest.skip(why)
    m = p.mask
    _note_mask(m)
    if p.scale is not None:  # flex_attention's own default scale, 1 / sqrt(E), is what is checked
        p = type(p)(m, p.q, p.k, p.v, p.kv_heads, None)
    case = problem_case("FlexAttention with a mask_mod equals the oracle", device, p)
    case.run("from torch.nn.attention.flex_attention import flex_attention, create_block_mask",
             "mask_mod = lambda b, h, qi, kj: keep[b, h, qi, kj]",
             "out = flex_attention(q, k, v, block_mask=create_block_mask(mask_mod, B, H, L, S, device=q.device))",
             "print(out)")
    q, k, v = (t.build(device) for t in (p.q, p.k, p.v))
    ops = backends.for_device(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "flex_attention called without torch.compile()": eager is what is checked
        out, err = attempt(lambda: ops.flex_attention(q, k, v, mask_mod_of(m, device)))
    capabilities.lacking("flex_attention", device, p.dtype, err)
    case.check_outcome(None, err)
    want, smax = attention.expected(m, p.q.values, p.k.values, p.v.values, p.kv_heads, p.e, scale_of(p))
    if any(r is None for r in want):
        reach.note("rows:fully-masked")
    check_rows(case, read(out), want, (m.b, m.h, m.L, p.e), p.dtype, m.S, smax, p.v.values, apis.policy("flex"),
               what="flex_attention differs from the oracle")


# --------------------------------------------------------------------------- nn.MultiheadAttention

MHA_PATHS = ("need_weights", "no_weights", "eval")


@st.composite
def mha_args(draw):
    """(B, T, heads, head dim, dtype, lengths, attn_mask kind, kpm/attn_mask dtypes, path, seed):
    self-attention of B sequences of T tokens with a key padding mask (lengths, 0 allowed) and an
    attn_mask: none, causal [T, T] or per head [B * heads, T, T]; each mask bool or float (-inf)."""
    b, t = draw(st.integers(1, 3)), draw(st.integers(1, 8))
    heads, hd = draw(sampled_from(((1, 2), (2, 1), (2, 2), (4, 1), (3, 1))))
    dtype = draw(sampled_from(("float32", "float64")))
    lengths = tuple(draw(st.integers(0, t)) for _ in range(b))
    attn = draw(sampled_from(("none", "causal", "per-head")))
    kpm_type, attn_type = draw(sampled_from(("bool", "float"))), draw(sampled_from(("bool", "float")))
    return b, t, heads, hd, dtype, lengths, attn, kpm_type, attn_type, draw(sampled_from(MHA_PATHS)), \
        draw(st.integers(0, 2**16))


def _grid(rnd, n):
    return [rnd.randint(-4, 4) / 8 for _ in range(n)]


def mha_path(path, heads, kpm_type, attn_type, attn) -> str:
    """The path nn.MultiheadAttention takes (torch/nn/modules/activation.py, why_not_fast_path):
    the native fast path needs eval mode, no grad, an even number of heads, bool masks and
    self-attention; else F.multi_head_attention_forward, with or without the weights."""
    if path == "eval" and heads % 2 == 0 and kpm_type == "bool" and (attn == "none" or attn_type == "bool"):
        return "mha-fast-path"
    return "mha-need-weights" if path in ("need_weights", "eval") else "mha-no-weights"


@pytest.mark.ops("multihead_attention")
@pytest.mark.reach(*reach.of("multihead_attention", "need_weights:True", "need_weights:False", "path:fast",
                             "path:slow", "key_padding_mask.dtype:bool", "key_padding_mask.dtype:float32",
                             "attn_mask.dtype:bool", "attn_mask.ndim:2", "attn_mask.ndim:3"),
                   "policy:mha-fast-path", "policy:mha-need-weights", "policy:mha-no-weights", "rows:fully-masked",
                   "masks:mixed-types")
@given(args=mha_args())
def test_multihead_attention_paths_match_oracle(device, args):
    """nn.MultiheadAttention's output equals the oracle (in-projection, per-head softmax over the
    keys neither key_padding_mask nor attn_mask hides (True or -inf = hide), out-projection) on
    every path: need_weights=True, need_weights=False, and the native fast path (eval, no grad);
    a query with no key left follows each path's own policy, and a bool mask next to a float one
    warns that mixing them is deprecated."""
    b, t, heads, hd, dtype, lengths, attn, kpm_type, attn_type, path, seed = args
    emb = heads * hd
    rnd = random.Random(seed)
    w_in, b_in, w_out, b_out = _grid(rnd, 3 * emb * emb), _grid(rnd, 3 * emb), _grid(rnd, emb * emb), _grid(rnd, emb)
    xs = _grid(rnd, b * t * emb)
    per_head = [[[[rnd.random() < 0.6 for _ in range(t)] for _ in range(t)] for _ in range(heads)] for _ in range(b)]
    m = attention.LogicalMask(b, heads, t, t, key_lengths=lengths, causal="upper-left" if attn == "causal" else None,
                              per_head=per_head if attn == "per-head" else None)
    taken = mha_path(path, heads, kpm_type, attn_type, attn)
    reach.note(f"policy:{taken}")
    dt = TORCH_DTYPES[dtype]
    mha = torch.nn.MultiheadAttention(emb, heads, batch_first=True, dtype=dt, device=device, dropout=0.0)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.tensor(w_in, dtype=dt).reshape(3 * emb, emb))
        mha.in_proj_bias.copy_(torch.tensor(b_in, dtype=dt))
        mha.out_proj.weight.copy_(torch.tensor(w_out, dtype=dt).reshape(emb, emb))
        mha.out_proj.bias.copy_(torch.tensor(b_out, dtype=dt))
    x = torch.tensor(xs, dtype=dt, device=device).reshape(b, t, emb)
    ignore_k = torch.tensor([[j >= n for j in range(t)] for n in lengths], device=device).reshape(b, t)
    kpm = ignore_k if kpm_type == "bool" else torch.zeros(b, t, dtype=dt, device=device).masked_fill(ignore_k, -math.inf)
    am = None
    if attn != "none":
        keep = torch.tensor(m.per_head if attn == "per-head" else [[[[j <= i for j in range(t)] for i in range(t)]]],
                            dtype=torch.bool, device=device)
        ignore = ~(keep.reshape(b * heads, t, t) if attn == "per-head" else keep.reshape(t, t))
        am = ignore if attn_type == "bool" else torch.zeros(ignore.shape, dtype=dt, device=device).masked_fill(ignore, -math.inf)
    need = path != "no_weights"
    case = Case("MultiheadAttention = out_proj(softmax over unhidden keys of q k^T / sqrt(hd)) @ v), every path", device)
    case.inputs.append(f"B={b}, T={t}, heads={heads}, head dim={hd}, {dtype}; key lengths {list(lengths)} "
                       f"({kpm_type} key_padding_mask); attn_mask: {attn} ({attn_type}); path: {path} ({taken})")
    case.run("import random, math", f"rnd = random.Random({seed}); grid = lambda n: [rnd.randint(-4, 4) / 8 for _ in range(n)]",
             f"mha = torch.nn.MultiheadAttention({emb}, {heads}, batch_first=True, dtype=torch.{dtype})",
             "with torch.no_grad():",
             f"    mha.in_proj_weight.copy_(torch.tensor(grid({3 * emb * emb})).reshape({3 * emb}, {emb})); "
             f"mha.in_proj_bias.copy_(torch.tensor(grid({3 * emb})))",
             f"    mha.out_proj.weight.copy_(torch.tensor(grid({emb * emb})).reshape({emb}, {emb})); "
             f"mha.out_proj.bias.copy_(torch.tensor(grid({emb})))",
             f"x = torch.tensor(grid({b * t * emb}), dtype=torch.{dtype}).reshape({b}, {t}, {emb})",
             f"pad = torch.tensor({[[j >= n for j in range(t)] for n in lengths]}).reshape({b}, {t})  # True = ignore",
             "kpm = pad" if kpm_type == "bool" else f"kpm = torch.zeros({b}, {t}, dtype=torch.{dtype}).masked_fill(pad, -math.inf)",
             *([] if attn == "none" else
               [f"ignore = torch.ones({t}, {t}, dtype=torch.bool).triu(1)" if attn == "causal" else
                f"ignore = ~torch.tensor({_bools(per_head)}).reshape({b * heads}, {t}, {t})",
                "am = ignore" if attn_type == "bool" else
                f"am = torch.zeros(ignore.shape, dtype=torch.{dtype}).masked_fill(ignore, -math.inf)"]),
             "mha.eval()" if path == "eval" else "mha.train()",
             ("with torch.no_grad(): " if path == "eval" else "") +
             f"out, w = mha(x, x, x, key_padding_mask=kpm, attn_mask={'am' if am is not None else None}, "
             f"need_weights={need}, average_attn_weights=False)", "print(out)")
    mha.train(path != "eval")
    ops = backends.for_device(device)
    with warnings.catch_warnings(record=True) as said, torch.set_grad_enabled(path != "eval"):
        warnings.simplefilter("always")
        result, err = attempt(lambda: ops.multihead_attention(mha, x, x, x, key_padding_mask=kpm,
                                                              attn_mask=am, need_weights=need))
    case.check_outcome(None, err)
    out, weights = result
    mixed = am is not None and kpm_type != attn_type
    if mixed:
        reach.note("masks:mixed-types")
        if not any("mismatched key_padding_mask and attn_mask is deprecated" in str(w.message) for w in said):
            case.fail("a bool mask next to a float one did not warn", expected="'Support for mismatched "
                      "key_padding_mask and attn_mask is deprecated'", actual=[str(w.message)[:80] for w in said])
    want, w_rows, smax = [], [], 0.0
    for bi in range(b):
        tok = [xs[(bi * t + i) * emb:(bi * t + i + 1) * emb] for i in range(t)]
        proj = [[[math.fsum(wv * xv for wv, xv in zip(w_in[r * emb:(r + 1) * emb], row)) + b_in[r]
                  for r in range(part * emb, (part + 1) * emb)] for row in tok] for part in range(3)]
        heads_out = []
        for hh in range(heads):
            sl = slice(hh * hd, (hh + 1) * hd)
            keep = [[m.keep(bi, hh, i, j) for j in range(t)] for i in range(t)]
            s = attention.scores([r[sl] for r in proj[0]], [r[sl] for r in proj[1]], 1 / math.sqrt(hd))
            smax = max([smax, *(abs(z) for row in s for z in row)])
            for row, kr in zip(s, keep):
                w_rows.extend(rules.softmax(row, kr) or [math.nan] * t)
            got_rows, _ = attention.attend_head([r[sl] for r in proj[0]], [r[sl] for r in proj[1]],
                                                [r[sl] for r in proj[2]], keep, 1 / math.sqrt(hd))
            heads_out.append(got_rows)
        for i in range(t):
            if any(heads_out[hh][i] is None for hh in range(heads)):
                want.append(None)  # a head with no key poisons the concatenation (nan) or zeros it
                continue
            cat = [z for hh in range(heads) for z in heads_out[hh][i]]
            want.append([math.fsum(wo * c for wo, c in zip(w_out[r * emb:(r + 1) * emb], cat)) + b_out[r]
                         for r in range(emb)])
    if any(r is None for r in want):
        reach.note("rows:fully-masked")
    policy = apis.policy(taken)
    got = read(out)
    # a query with a head that keeps no key: that head's part is nan (or 0) before the out-projection
    if policy.rows == "zeros":  # zeros from SDPA, then projected: out_proj's bias plus the other heads
        want = [r if r is not None else _zero_head_rows(m, bi_i, heads, hd, emb, w_out, b_out, xs, w_in, b_in, t)
                for bi_i, r in enumerate(want)]
    att = tolerances.attention_output(dtype, t, max(abs(z) for z in xs + b_in + w_in) * emb + 1, smax)
    tol = tolerances.projected(att, dtype, max(sum(abs(z) for z in w_out[r * emb:(r + 1) * emb]) for r in range(emb)), emb)
    flat = [z for r in want for z in (r if r is not None else [math.nan] * emb)]
    case.check_values(got, flat, (b, t, emb), close=close_with(tol), what=f"output differs from the oracle on the "
                      f"{taken} path ({tol})", extra=f"a query with no key left: {policy.rows} ({policy.source})")
    if weights is not None:
        case.check_values(read(weights), w_rows, (b, heads, t, t), close=close_with(tolerances.probabilities(dtype, t)),
                          what="per-head attention weights differ from the oracle")


def _zero_head_rows(m, r, heads, hd, emb, w_out, b_out, xs, w_in, b_in, t):
    """Output of query row r (flat over b, i) when heads that keep no key contribute 0 (SDPA's
    policy) and the others their attention: recomputed here for that row only."""
    bi, i = divmod(r, t)
    tok = [xs[(bi * t + j) * emb:(bi * t + j + 1) * emb] for j in range(t)]
    proj = [[[math.fsum(wv * xv for wv, xv in zip(w_in[q * emb:(q + 1) * emb], row)) + b_in[q]
              for q in range(part * emb, (part + 1) * emb)] for row in tok] for part in range(3)]
    cat = []
    for hh in range(heads):
        sl = slice(hh * hd, (hh + 1) * hd)
        keep = [[m.keep(bi, hh, i, j) for j in range(t)]]
        rows_, _ = attention.attend_head([proj[0][i][sl]], [r_[sl] for r_ in proj[1]], [r_[sl] for r_ in proj[2]],
                                         keep, 1 / math.sqrt(hd))
        cat.extend(rows_[0] if rows_[0] is not None else [0.0] * hd)
    return [math.fsum(wo * c for wo, c in zip(w_out[q * emb:(q + 1) * emb], cat)) + b_out[q] for q in range(emb)]


def _bools(nested):
    return [_bools(x) for x in nested] if isinstance(nested, (list, tuple)) else bool(nested)


# --------------------------------------------------------------------------- nn.TransformerEncoder


@st.composite
def encoder_args(draw):
    """(B, T, lengths, layers, causal, dtype, seed): left-aligned padding (0 allowed)."""
    b, t = draw(st.integers(1, 3)), draw(st.integers(1, 8))
    lengths = tuple(draw(st.integers(0, t)) for _ in range(b))
    assume(any(lengths))  # a batch with no token at all: test_fast_paths_accept_a_batch_of_empty_sequences
    return (b, t, lengths, draw(st.integers(1, 2)), draw(booleans()),
            draw(sampled_from(("float32", "float64"))), draw(st.integers(0, 2**16)))


@pytest.mark.ops("transformer_encoder")
@pytest.mark.reach(*reach.of("transformer_encoder", "path:fast", "path:slow", "is_causal",
                             "src_key_padding_mask.rows:other", "src_key_padding_mask.mask:mixed"), "sequence:fully-padded")
@given(args=encoder_args())
def test_transformer_encoder_fast_path_matches_slow_path(device, args):
    """nn.TransformerEncoder with src_key_padding_mask gives the same output at every real
    (non-padded) position in eval mode without grad (the nested-tensor fast path) as in train
    mode with dropout 0 (the slow path); the fast path puts 0 at padded positions (it converts
    back with to_padded_tensor(0.0)), and with a causal mask (no nested path) equals the slow path
    everywhere."""
    b, t, lengths, layers, causal, dtype, seed = args
    if 0 in lengths:
        reach.note("sequence:fully-padded")
    d, heads = 4, 2
    dt = TORCH_DTYPES[dtype]
    rnd = random.Random(seed)
    layer = torch.nn.TransformerEncoderLayer(d, heads, dim_feedforward=8, dropout=0.0, batch_first=True,
                                             dtype=dt, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "enable_nested_tensor is True, but ..." never applies here
        enc = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=True)
    with torch.no_grad():
        for prm in enc.parameters():
            prm.copy_(torch.tensor(_grid(rnd, prm.numel()), dtype=dt).reshape(prm.shape))
    xs = _grid(rnd, b * t * d)
    src = torch.tensor(xs, dtype=dt, device=device).reshape(b, t, d)
    pad = torch.tensor([[j >= n for j in range(t)] for n in lengths], device=device).reshape(b, t)
    mask = torch.ones(t, t, dtype=torch.bool, device=device).triu(1) if causal else None
    kw = dict(mask=mask, src_key_padding_mask=pad, is_causal=True if causal else None)
    case = Case("TransformerEncoder: fast path (eval, no grad) = slow path on real positions; 0 at padding", device)
    case.inputs.append(f"B={b}, T={t}, lengths {list(lengths)}, {layers} layer(s), d_model 4, 2 heads, {dtype}"
                       f"{', causal mask' if causal else ''}")
    case.run("import random", f"rnd = random.Random({seed}); grid = lambda n: [rnd.randint(-4, 4) / 8 for _ in range(n)]",
             f"layer = torch.nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, batch_first=True, "
             f"dtype=torch.{dtype})", f"enc = torch.nn.TransformerEncoder(layer, {layers}, enable_nested_tensor=True)",
             "with torch.no_grad():", "    for p in enc.parameters(): p.copy_(torch.tensor(grid(p.numel())).reshape(p.shape))",
             f"src = torch.tensor(grid({b * t * d}), dtype=torch.{dtype}).reshape({b}, {t}, 4)",
             f"pad = torch.tensor({[[j >= n for j in range(t)] for n in lengths]}).reshape({b}, {t})",
             f"mask = {'torch.ones(%d, %d, dtype=torch.bool).triu(1)' % (t, t) if causal else None}",
             f"slow = enc.train()(src, mask=mask, src_key_padding_mask=pad{', is_causal=True' if causal else ''})",
             f"with torch.no_grad(): fast = enc.eval()(src, mask=mask, src_key_padding_mask=pad"
             f"{', is_causal=True' if causal else ''})", "print(slow, fast)")
    ops = backends.for_device(device)
    enc.train()
    slow, err = attempt(lambda: ops.transformer_encoder(enc, src, **kw))
    case.check_outcome(None, err)
    enc.eval()
    with torch.no_grad():
        fast, err = attempt(lambda: ops.transformer_encoder(enc, src, **kw))
    case.check_outcome(None, err)
    got, ref = read(fast), read(slow)
    tol = tolerances.cross_backend(dtype)
    if no_fast_path := apis.fast_path("encoder", device):
        # eval runs the slow path as well: the same output at every position, padded ones too
        semantics.skip("padded positions are 0 (the fast path's to_padded_tensor(0.0))", no_fast_path)
        case.check_values(got, ref, (b, t, d), close=close_with(tol),
                          what=f"eval without grad differs from train mode, on the same (slow) path ({tol})",
                          extra=f"no fast path here: {no_fast_path}")
        return
    real = [lengths[bi] > i for bi in range(b) for i in range(t) for _ in range(d)]
    want = [r if is_real or causal else 0.0 for r, is_real in zip(ref, real)]
    if causal:  # the slow path's padded positions hold nan when a row keeps no key: compare real ones
        got = [g if is_real else 0.0 for g, is_real in zip(got, real)]
        want = [w if is_real else 0.0 for w, is_real in zip(want, real)]
    policy = apis.policy("encoder-fast-path")
    case.check_values(got, want, (b, t, d), close=close_with(tol),
                      what=f"the fast path differs from the slow path ({tol})",
                      extra=f"padded positions on the fast path: {policy.rows} ({policy.source})")


# --------------------------------------------------------------------------- a batch with no token


@pytest.mark.ops("scaled_dot_product_attention", "transformer_encoder")
@pytest.mark.parametrize("api", ["jagged-sdpa", "encoder-fast-path"])
@given(b=st.integers(1, 3), t=st.integers(1, 4))
def test_fast_paths_accept_a_batch_of_empty_sequences(device, api, b, t):
    """A batch whose every sequence is empty (jagged) or fully padded (the encoder's fast path)
    gives an empty result (jagged) or zeros (the encoder, as its slow path's shape), as a batch
    with one real token does: an empty batch is not an error."""
    case = Case("a batch of empty sequences is not an error", device)
    case.inputs.append(f"{api}: B={b} sequences, all empty (T={t} when padded)")
    ops = backends.for_device(device)
    if api == "jagged-sdpa" and (why := apis.has("jagged")):
        pytest.skip(why)
    if api == "jagged-sdpa":
        case.run("import torch.nn.functional as F", f"q = torch.nested.nested_tensor([torch.zeros(0, 1, 4)] * {b}, "
                 "layout=torch.jagged).transpose(1, 2)", "print(F.scaled_dot_product_attention(q, q, q))")
        with capabilities.feature("jagged", device, "float32"):
            q = torch.nested.nested_tensor([torch.zeros(0, 1, 4, device=device)] * b, layout=torch.jagged).transpose(1, 2)
        out, err = attempt(lambda: ops.scaled_dot_product_attention(q, q, q))
        case.check_outcome(None, err)
        got = [tuple(x.shape) for x in out.transpose(1, 2).unbind()]
        if got != [(0, 1, 4)] * b:
            case.fail("the output's sequences are not empty", expected=[(0, 1, 4)] * b, actual=got)
        return
    layer = torch.nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, batch_first=True, device=device)
    enc = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=True).eval()
    src = torch.ones(b, t, 4, device=device)
    pad = torch.ones(b, t, dtype=torch.bool, device=device)
    case.run("layer = torch.nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, batch_first=True)",
             "enc = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=True).eval()",
             f"with torch.no_grad(): print(enc(torch.ones({b}, {t}, 4), src_key_padding_mask=torch.ones({b}, {t}, "
             "dtype=torch.bool)))")
    with torch.no_grad():
        out, err = attempt(lambda: ops.transformer_encoder(enc, src, src_key_padding_mask=pad))
    case.check_outcome(None, err)
    if tuple(out.shape) != (b, t, 4):
        case.fail("the output does not have the input's shape", expected=(b, t, 4), actual=tuple(out.shape))
    if no_fast_path := apis.fast_path("encoder", device):  # the slow path's values at padding are its own
        semantics.skip("padded positions are 0 (the fast path's to_padded_tensor(0.0))", no_fast_path)
        return
    case.check_values(read(out), [0.0] * (b * t * 4), (b, t, 4), what="padded positions of the fast path are not 0")
