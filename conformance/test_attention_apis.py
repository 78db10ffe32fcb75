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

import math
import random
import warnings

import pytest
import torch
from hypothesis import given, strategies as st

from conformance import (attention, attention_apis as apis, capabilities, device_ops, profiles, reach, rules,
                        semantics, tolerances)
from conformance.attention_checks import (MhaCall, encoder_case, grid, judge, mask_mod_of, problem_case, run_checked,
                                          run_pinned, scale_of, sdpa_kw, v_rows_of)
from conformance.failures import Case, attempt, close_with
from conformance.tensors import TORCH_DTYPES, read
from strategies.attention import COMPONENTS, attention_problems, logical_masks
from strategies.attention_calls import causal_args, encoder_args, gqa_args, jagged_args, mha_args, sdpa_mask_args

pytestmark = pytest.mark.torch_tensors
FLOATS = rules.FLOAT_DTYPES

# --------------------------------------------------------------------------- SDPA: mask expressions

@pytest.mark.default_dispatch  # also unpinned: on CPU a plain call takes the flash kernel
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
    ops = device_ops.for_device(device)
    out = run_checked(case, kernel, lambda: ops.scaled_dot_product_attention(q, k, v, attn_mask=mask, **sdpa_kw(p)))
    if out is None:
        return
    got = read(out)
    if expression == "float finfo.min" and p.dtype == "float16":  # those rows are checked apart
        judge(case, p, got, None, what="SDPA output differs from the oracle",
              empty_rows=lambda want: _check_convex_rows(case, got, want, p))
        return
    judge(case, p, got, apis.policy("sdpa-finfo-min" if expression == "float finfo.min" else "sdpa"),
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


@pytest.mark.default_dispatch  # also unpinned: on CPU a plain call takes the flash kernel
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
    ops = device_ops.for_device(device)
    p0 = type(p)(m, p.q, p.k, p.v, p.kv_heads, None)
    mask = torch.tensor(keep, device=device)
    out = run_checked(case, kernel, lambda: ops.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    if out is not None:
        judge(case, p, read(out), apis.policy("sdpa"), scale=scale_of(p0),
              what="SDPA with a 1-d mask differs from the oracle")


# --------------------------------------------------------------------------- SDPA: causal variants

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


@pytest.mark.default_dispatch  # also unpinned: on CPU a plain call takes the flash kernel
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
    call = {"is_causal=True": "is_causal=True"}.get(how, "attn_mask=mask")
    if how.startswith("causal_"):
        case.run(f"from torch.nn.attention.bias import {how.split('(')[0]}", f"mask = {how.replace('L, S', f'{m.L}, {m.S}')}")
    elif how.startswith("tril"):
        case.run(f"mask = torch.ones({m.L}, {m.S}, dtype=torch.bool).tril({m.S - m.L if m.offset else 0})")
    case.run(f"with pinned: out = F.scaled_dot_product_attention(q, k, v, {call}"
             f"{', scale=' + repr(p.scale) if p.scale is not None else ''})", "print(out)")
    q, k, v = (t.build(device) for t in (p.q, p.k, p.v))
    ops = device_ops.for_device(device)
    out = run_checked(case, kernel, lambda: _causal_call(ops, how, q, k, v, sdpa_kw(p), device))
    if out is not None:
        judge(case, p, read(out), apis.policy("sdpa"),
              what=f"SDPA with {how} differs from the oracle's {m.causal} causal mask")


@pytest.mark.default_dispatch  # also unpinned: on CPU a plain call takes the flash kernel
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
    ops = device_ops.for_device(device)
    with apis.pinned(kernel):
        _, err = attempt(lambda: ops.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=True))
    case.check_outcome(RuntimeError("Explicit attn_mask should not be set when is_causal=True"), err,
                       kind="sdpa_mask_with_causal")


# --------------------------------------------------------------------------- SDPA: GQA


@pytest.mark.ops("scaled_dot_product_attention")
@pytest.mark.reach(*reach.of("scaled_dot_product_attention", "enable_gqa", "gqa:divides", "gqa:does-not-divide",
                             "attn_mask.kind:bool", "outcome:raises", "outcome:returns"), "group:1", "group:2", "group:3")
# every claim is reached within 31 examples of a ci run: 150 examples, not 300
@profiles.fraction(1 / 2, at_least=profiles.SELFTEST_EXAMPLES)
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
    ops = device_ops.for_device(device)
    out, err, refused = run_pinned(kernel, lambda: ops.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, enable_gqa=True, **sdpa_kw(p)), count=not wrong)  # wrong: an error is due
    if wrong:
        case.check_outcome(RuntimeError(f"{m.h + 1} query heads, {p.kv_heads} kv heads"), err,
                           kind="gqa_heads", warned=getattr(err, "warned", ()))
        return
    if refused:
        return
    case.check_outcome(None, err)
    judge(case, p, read(out), apis.policy("sdpa"),
          mask=m if mask is not None else attention.LogicalMask(m.b, m.h, m.L, m.S),
          what="SDPA with enable_gqa differs from the oracle (kv head h // group)")


# --------------------------------------------------------------------------- SDPA: jagged nested tensors


@pytest.mark.ops("scaled_dot_product_attention")
@pytest.mark.reach(*reach.of("scaled_dot_product_attention", "nested:jagged", "q.layout:jagged"), "length:0",
                   "lengths:ragged")
# every claim is reached within 17 examples of a ci run: 150 examples, not 300
@profiles.fraction(1 / 2, at_least=profiles.SELFTEST_EXAMPLES)
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
    ops = device_ops.for_device(device)
    out = run_checked(case, kernel, lambda: ops.scaled_dot_product_attention(q, k, v))
    if out is None:
        return
    got = [x for t in out.transpose(1, 2).unbind() for x in read(t)]
    want, smax = attention.jagged_expected(lengths, h, e, qv, kv, vv, 1 / math.sqrt(e))
    tol = tolerances.attention_output(dtype, max(lengths, default=1), max(map(abs, vv), default=1.0), smax)
    case.check_values(got, want, (sum(lengths), h, e), close=close_with(tol),
                      what=f"jagged SDPA differs from the oracle on real positions ({tol})")


# --------------------------------------------------------------------------- FlexAttention


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
    ops = device_ops.for_device(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "flex_attention called without torch.compile()": eager is what is checked
        out, err = attempt(lambda: ops.flex_attention(q, k, v, mask_mod_of(m, device)))
    capabilities.lacking("flex_attention", device, p.dtype, err)
    case.check_outcome(None, err)
    judge(case, p, read(out), apis.policy("flex"), what="flex_attention differs from the oracle")


# --------------------------------------------------------------------------- nn.MultiheadAttention

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
    a query with no key left follows each path's own policy (out_proj's bias and the other heads
    where SDPA gives the empty head 0), and a bool mask next to a float one warns that mixing
    them is deprecated."""
    b, t, heads, hd, dtype, lengths, attn, kpm_type, attn_type, path, seed = args
    emb = heads * hd
    rnd = random.Random(seed)
    w_in, b_in, w_out, b_out = grid(rnd, 3 * emb * emb), grid(rnd, 3 * emb), grid(rnd, emb * emb), grid(rnd, emb)
    xs = grid(rnd, b * t * emb)
    per_head = [[[[rnd.random() < 0.6 for _ in range(t)] for _ in range(t)] for _ in range(heads)] for _ in range(b)]
    m = attention.LogicalMask(b, heads, t, t, key_lengths=lengths, causal="upper-left" if attn == "causal" else None,
                              per_head=per_head if attn == "per-head" else None)
    taken = apis.mha_path(path, heads, kpm_type, attn_type, attn)
    reach.note(f"policy:{taken}")
    call = MhaCall(m, dtype, heads, (w_in, b_in, w_out, b_out), xs, attn, kpm_type, attn_type, path, seed)
    mha, x, kpm, am = call.build(device)
    case = call.case(device, taken)
    ops = device_ops.for_device(device)
    with warnings.catch_warnings(record=True) as said, torch.set_grad_enabled(path != "eval"):
        warnings.simplefilter("always")
        result, err = attempt(lambda: ops.multihead_attention(mha, x, x, x, key_padding_mask=kpm, attn_mask=am,
                                                              need_weights=path != "no_weights"))
    case.check_outcome(None, err)
    out, weights = result
    if am is not None and kpm_type != attn_type:
        reach.note("masks:mixed-types")
        if not any("mismatched key_padding_mask and attn_mask is deprecated" in str(w.message) for w in said):
            case.fail("a bool mask next to a float one did not warn", expected="'Support for mismatched "
                      "key_padding_mask and attn_mask is deprecated'", actual=[str(w.message)[:80] for w in said])
    policy = apis.policy(taken)
    want = attention.mha_expected(m, xs, heads, w_in, b_in, w_out, b_out, empty_head=policy.rows)
    if any(m.kept_none(bi, hh, i) for bi in range(b) for hh in range(heads) for i in range(t)):
        reach.note("rows:fully-masked")
    att = tolerances.attention_output(dtype, t, max(abs(z) for z in xs + b_in + w_in) * emb + 1, want.smax)
    out_norm = max(sum(abs(z) for z in w_out[r * emb:(r + 1) * emb]) for r in range(emb))
    tol = tolerances.projected(att, dtype, out_norm, emb)
    flat = [z for r in want.rows for z in (r if r is not None else [math.nan] * emb)]
    case.check_values(read(out), flat, (b, t, emb), close=close_with(tol), what=f"output differs from the oracle on "
                      f"the {taken} path ({tol})", extra=f"a query with no key left: {policy.rows} ({policy.source})")
    if weights is not None:
        case.check_values(read(weights), want.weights, (b, heads, t, t),
                          close=close_with(tolerances.probabilities(dtype, t)),
                          what="per-head attention weights differ from the oracle")


# --------------------------------------------------------------------------- nn.TransformerEncoder


@pytest.mark.ops("transformer_encoder")
@pytest.mark.reach(*reach.of("transformer_encoder", "path:fast", "path:slow", "is_causal",
                             "src_key_padding_mask.rows:other", "src_key_padding_mask.mask:mixed"), "sequence:fully-padded")
# every claim is reached within 11 examples of a ci run: 150 examples, not 300
@profiles.fraction(1 / 2, at_least=profiles.SELFTEST_EXAMPLES)
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
            prm.copy_(torch.tensor(grid(rnd, prm.numel()), dtype=dt).reshape(prm.shape))
    xs = grid(rnd, b * t * d)
    src = torch.tensor(xs, dtype=dt, device=device).reshape(b, t, d)
    pad = torch.tensor([[j >= n for j in range(t)] for n in lengths], device=device).reshape(b, t)
    mask = torch.ones(t, t, dtype=torch.bool, device=device).triu(1) if causal else None
    kw = dict(mask=mask, src_key_padding_mask=pad, is_causal=True if causal else None)
    case = encoder_case(device, b, t, lengths, layers, causal, dtype, seed)
    ops = device_ops.for_device(device)
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
    ops = device_ops.for_device(device)
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
