"""Attention at the sizes models use, judged by the oracle.

The other attention properties draw L and S up to 9 (a few keys past 1024 and 2048 with one
or two queries), so no example ever had both past a tile: the CPU flash kernel's query-block
loop never ran twice.  Here L and S pass the flash kernel's query blocks (32, 64, 256) and key
block (512) together, one at a time, or not at all (`strategies.attention.TILE_PAIRS`), with head
dims of 64 to 128 and an odd one, B * H past the thread count, in every form SDPA takes a mask.

The pure-Python oracle stays the judge because the inputs are chosen so that exact attention is
cheap (`conformance.attention.FewScores`: few distinct scores per query, v of rank one, an
interval of kept keys per query).  It is evaluated on a sample of rows: every row at a query
block boundary of any of the kernel's block sizes, the first and last rows, the rows at each
sequence's query length, and 16 random rows per head.  docs/attention.md says which checks rest
on what.
"""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch
from hypothesis import given

from conformance import attention, attention_apis as apis, device_ops, profiles, reach, rules, tolerances
from conformance.attention_checks import mha_masks, run_pinned, scale_of
from conformance.failures import Case, _short, attempt, close_with, rows_within
from conformance.tensors import TORCH_DTYPES
from strategies.attention import MHA_T, mha_model_size_problems, model_size_problems

pytestmark = pytest.mark.torch_tensors

SDPA = "scaled_dot_product_attention"
# block sizes whose boundaries each sampled row set includes: the CPU flash kernel's query
# blocks, and the tiles other kernels use (16 to 128)
ROW_BLOCKS = (16, 32, 64, 128, 256)
RANDOM_ROWS = 16


def _picked_rows(p) -> list[tuple[int, int, int]]:
    """(b, h, i) of the rows the oracle judges (see the module docstring)."""
    m = p.mask
    rows = {0, m.L - 1}
    for t in ROW_BLOCKS:
        rows |= {i for k in range(1, m.L // t + 1) for i in (k * t - 1, k * t) if i < m.L}
    for n in m.query_lengths or ():
        rows |= {i for i in (n - 1, n) if 0 <= i < m.L}
    rnd = random.Random(p.seed)
    out = []
    for b in range(m.b):
        for h in range(m.h):
            extra = {rnd.randrange(m.L) for _ in range(RANDOM_ROWS)}
            out += [(b, h, i) for i in sorted(rows | extra)]
    return out


def _keep(m) -> torch.Tensor:
    """The mask as a [B, L, S] bool tensor on the CPU, from each query's interval of keys."""
    spans = [[attention.kept_interval(m, b, i) or (0, 0) for i in range(m.L)] for b in range(m.b)]
    lo = torch.tensor([[s[0] for s in row] for row in spans]).view(m.b, m.L, 1)
    hi = torch.tensor([[s[1] for s in row] for row in spans]).view(m.b, m.L, 1)
    j = torch.arange(m.S).view(1, 1, m.S)
    return (j >= lo) & (j < hi)


def _mask_argument(p, dtype):
    """(SDPA keyword arguments, the code that makes them from the reproduction's ``keep``)."""
    m, scenario = p.mask, p.scenario
    if scenario == "causal is_causal":
        return {"is_causal": True}, "kw = dict(is_causal=True)"
    keep = _keep(m)
    if scenario.startswith("key padding"):
        return {"attn_mask": keep[:, :1, :].reshape(m.b, 1, 1, m.S)}, "kw = dict(attn_mask=keep[:, :1, :1, :])"
    if scenario == "causal lower-right (L,S)":
        return {"attn_mask": keep[0]}, "kw = dict(attn_mask=keep[0, 0])"
    if scenario.startswith("any bool"):
        return {"attn_mask": keep[:, None]}, "kw = dict(attn_mask=keep[:, :1])"
    bias = torch.zeros(m.b, 1, m.L, m.S, dtype=dtype).masked_fill(~keep[:, None], -math.inf)
    return {"attn_mask": bias}, ("kw = dict(attn_mask=torch.zeros(B, 1, L, S, dtype=q.dtype)"
                                 ".masked_fill(~keep[:, :1], float('-inf')))")


def _claims():
    between = reach.tiles_between
    # a whole last block (L or S a multiple of the block) is counted, not claimed: 3 of the 18
    # key sizes, too few of 90 examples to hold a margin whatever the seed
    return (*reach.of(SDPA, "q-blocks:partial", "kv-blocks:partial",
                      "is_causal", "attn_mask.kind:float", "attn_mask.form:(B,1,1,S)", "attn_mask.form:(L,S)",
                      "attn_mask.form:(B,1,L,S)", "E:2^6", "E:2^7", "E:2^6+1",
                      *(f"q.dtype:{d}" for d in rules.FLOAT_DTYPES)),
            # L and S each past a flash block: both, the queries only, the keys only, neither
            between(SDPA, "L", (256, 1024), "S", (512, 1024)), between(SDPA, "L", (256, 1024), "S", (0, 256)),
            between(SDPA, "L", (0, 128), "S", (512, 1024)), between(SDPA, "L", (16, 128), "S", (16, 256)),
            "component:causal", "component:key_padding", "component:query_padding", "component:window",
            "component:documents", "causal:lower-right", "rows:fully-masked")


def _note(p) -> None:
    m = p.mask
    for name, on in (("causal", m.causal), ("key_padding", m.key_lengths), ("query_padding", m.query_lengths),
                     ("window", m.window is not None), ("documents", m.documents)):
        if on:
            reach.note(f"component:{name}")
    if m.causal:
        reach.note(f"causal:{m.causal}")


def _setup(p, device, kernel, rule, *, grad=False):
    """(case, q, k, v, g, SDPA keyword arguments, the arrays) of problem `p` on `device`; with
    `grad`, q, k and v are leaves that require grad and the reproduction runs the backward."""
    m = p.mask
    x = p.arrays()
    dtype = TORCH_DTYPES[p.dtype]
    q_np = torch.zeros(m.b, m.h, m.L, p.e, dtype=torch.float64)
    q_np[..., p.p] = torch.from_numpy(x["a"])
    k_np = torch.from_numpy(x["kappa"][..., None] * x["rho"])
    k_np[..., p.p] = torch.from_numpy(x["c"])
    q, k, v, g = (t.to(device=device, dtype=dtype) for t in
                  (q_np, k_np, torch.from_numpy(x["alpha"][..., None] * x["beta"]),
                   torch.from_numpy(x["gamma"][..., None] * x["delta"])))
    if grad:
        for t in (q, k, v):
            t.requires_grad_(True)
    kw, kw_code = _mask_argument(p, dtype)
    kw = {name: t.to(device) if isinstance(t, torch.Tensor) else t for name, t in kw.items()}
    if p.scale is not None:
        kw["scale"] = p.scale
    case = Case(rule, device)
    case.inputs += [f"q [B={m.b}, H={m.h}, L={m.L}, E={p.e}] {p.dtype}: zero but for component {p.p}; k's "
                    f"component {p.p} from {list(p.values)}, the others rank one; v = alpha * beta (rank one); "
                    f"scale {'1/sqrt(E)' if p.scale is None else p.scale}",
                    f"mask ({p.scenario}): " + m.words()]
    backend = next(kk.backend for kk in apis.KERNELS if kk.name == kernel)
    dev = repr(device)
    case.run(*p.source(), *m.code(), kw_code, *((f"kw['scale'] = {p.scale!r}",) if p.scale is not None else ()),
             *((f"q, k, v = (t.to({dev}).requires_grad_() for t in (q, k, v))",) if grad else ()),
             "import torch.nn.functional as F",
             "from torch.nn.attention import sdpa_kernel, SDPBackend",
             f"with sdpa_kernel([SDPBackend.{backend}]):  # the kernel under test",
             f"    out = F.scaled_dot_product_attention(q.to({dev}), k.to({dev}), v.to({dev}), "
             f"**{{n: t.to({dev}) if torch.is_tensor(t) else t for n, t in kw.items()}})",
             *(("    (out * g.to(out.device)).sum().backward()",) if grad else ()))
    for expr, t in ((f"q.to({dev})", q), (f"k.to({dev})", k), (f"v.to({dev})", v),
                    *((f"kw['{n}'].to({dev})", t) for n, t in kw.items() if isinstance(t, torch.Tensor))):
        case.name(expr, t)
    return case, q, k, v, g, kw, x


def _few_scores(p, x) -> attention.FewScores:
    return attention.FewScores(x["a"].ravel().tolist(), x["c"].ravel().tolist(), p.values,
                               x["alpha"].ravel().tolist(), x["beta"].tolist())


@pytest.mark.ops(SDPA)
@pytest.mark.reach(*_claims())
@profiles.fraction(0.3)  # each example is a model-sized problem: 90 large examples, not 300 small
@given(p=model_size_problems())
def test_sdpa_at_model_sizes_matches_oracle(device, kernel, p):
    """SDPA with L and S past the flash kernel's query and key blocks, head dims 64-128 and odd,
    under every mask form (a (B,1,1,S) padding mask, is_causal, an (L,S) or (B,1,L,S) bool or
    -inf mask) equals the oracle on every judged row; a query with no kept key follows SDPA's
    policy."""
    m = p.mask
    _note(p)
    case, q, k, v, _, kw, x = _setup(p, device, kernel, "SDPA at model sizes: softmax(q @ k.T * scale + mask) @ v "
                                                        "over the kept keys")
    ops = device_ops.for_device(device)
    out, err, refused = run_pinned(kernel, lambda: ops.scaled_dot_product_attention(q, k, v, **kw))
    if refused:
        return
    case.check_outcome(None, err)
    picked = _picked_rows(p)
    want, smax = attention.few_scores_rows(m, _few_scores(p, x), m.h, scale_of(p), picked)
    if any(row is None for row in want.values()):
        reach.note("rows:fully-masked")
    policy = apis.policy("sdpa")
    alpha, beta = x["alpha"], x["beta"]
    vmax = float(abs(alpha).max() * beta.max()) if alpha.size else 1.0
    tol = tolerances.attention_output(p.dtype, m.S, vmax, smax)
    close = close_with(tol)
    rows = {}
    for b, h, i in picked:
        row = want[(b, h, i)]
        if row is None:
            if policy.rows == "mean-of-v":
                row = [float(alpha[b, h].mean()) * be for be in beta.tolist()]
            else:
                row = [0.0 if policy.rows == "zeros" else math.nan] * p.e
        rows[(b, h, i)] = row
    got_all = out.detach().to("cpu", torch.float64).numpy()
    ok = rows_within(got_all[tuple(np.array(picked).T)], np.array(list(rows.values()), dtype=np.float64), tol)
    for (b, h, i), row in itertools.compress(rows.items(), ~ok):
        got = got_all[b, h, i].tolist()
        case.run(f"print(out[{b}, {h}, {i}])  # the row that differs")
        extra = "" if want[(b, h, i)] is not None else \
            f"a query with no kept key: {policy.rows} ({policy.api}, torch {policy.torch}: {policy.source})"
        case.check_values(got, row, (p.e,), close=close,
                          what=f"SDPA output row (b={b}, h={h}, query {i}) differs from the oracle ({tol})",
                          extra=extra)


def _picked_keys(p) -> list[tuple[int, int, int]]:
    """(b, h, j) of the keys whose gradients the oracle judges: each key block boundary (512,
    and the tiles 16 to 256), the first and last keys, each sequence's key length, 16 random."""
    m = p.mask
    keys = {0, m.S - 1}
    for t in (*ROW_BLOCKS, 512, 1024):
        keys |= {j for k in range(1, m.S // t + 1) for j in (k * t - 1, k * t) if j < m.S}
    for n in m.key_lengths or ():
        keys |= {j for j in (n - 1, n) if 0 <= j < m.S}
    rnd = random.Random(p.seed + 1)
    return [(b, h, j) for b in range(m.b) for h in range(m.h)
            for j in sorted(keys | {rnd.randrange(m.S) for _ in range(RANDOM_ROWS)})]


GRAD_DTYPES = ("float32", "float64")
# the backward's own branches: a (B,1,1,S) mask, is_causal (its key loop stops at the diagonal),
# and a float mask of any structure; each a third of its 45 examples
BACKWARD_SCENARIOS = ("key padding (B,1,1,S)", "causal is_causal", "any float (B,1,L,S)")


@pytest.mark.ops(SDPA)
@pytest.mark.reach(*reach.of(SDPA, "q-blocks:partial", "kv-blocks:partial", "is_causal", "attn_mask.kind:float",
                             "attn_mask.form:(B,1,1,S)", *(f"q.dtype:{d}" for d in GRAD_DTYPES)),
                   f"{SDPA}.E:2^6 | {SDPA}.E:2^7",  # both, and 65, 80, 96: the forward claims each
                   reach.tiles_between(SDPA, "L", (256, 1024), "S", (512, 1024)), "component:causal",
                   "component:key_padding", "rows:fully-masked")
@profiles.fraction(0.15)  # a forward and a backward at model size each: 45 examples
@given(p=model_size_problems(scenarios=BACKWARD_SCENARIOS, dtypes=GRAD_DTYPES))
def test_sdpa_backward_at_model_sizes_matches_oracle(device, kernel, p):
    """The gradients of sum(SDPA(q, k, v) * g) w.r.t. q, k and v, with L and S past the flash
    kernel's blocks (its backward sums dK and dV over every query block), equal the oracle's on
    every judged query and key, within the rounding of the terms each sums."""
    m = p.mask
    _note(p)
    case, q, k, v, g, kw, x = _setup(p, device, kernel, "SDPA's backward: dq, dk, dv of sum(out * g)", grad=True)
    ops = device_ops.for_device(device)

    def forward_backward():
        out = ops.scaled_dot_product_attention(q, k, v, **kw)
        (out * g).sum().backward()
        return out
    _, err, refused = run_pinned(kernel, forward_backward)
    if refused:
        return
    case.check_outcome(None, err)
    rows, keys = _picked_rows(p), _picked_keys(p)
    grad_in = attention.FewScoresGrad(_few_scores(p, x), p.p, x["kappa"].ravel().tolist(), x["rho"].tolist(),
                                      x["gamma"].ravel().tolist(), x["delta"].tolist())
    dq, dk, dv = attention.few_scores_grads(m, grad_in, scale_of(p), rows, keys)
    if any(kept_none for kept_none in (attention.kept_interval(m, b, i) is None for b, _, i in rows)):
        reach.note("rows:fully-masked")
    policy = apis.policy("sdpa")
    if policy.rows == "nan":  # before 2.5 a query with no kept key gets nan, and so does every gradient it feeds
        _nan_where_a_row_is_dead(m, dq, dk, dv, p.e)
    smax = float(abs(x["a"]).max() * max(abs(v_) for v_ in p.values) * scale_of(p)) if x["a"].size else 0.0
    rel = tolerances.attention_gradient(p.dtype, max(m.L, m.S), smax)
    eps = tolerances.finfo_eps(p.dtype)
    for name, t, want in (("dq", q, dq), ("dk", k, dk), ("dv", v, dv)):
        if not want:
            continue
        # the comparison over every judged row at once, in NumPy float64 (the same IEEE operations
        # as element by element in Python, a fifth of the property's time that way): the
        # expectations are the pure-Python oracle's
        index = sorted(want)
        wants, bounds, noises = (np.array([want[i][n] for i in index], dtype=np.float64) for n in range(3))
        gots = t.grad.detach().to("cpu", torch.float64).numpy()[tuple(np.array(index).T)]
        allowed_all = rel * bounds + eps * np.abs(wants) + noises
        failing = ~((np.abs(gots - wants) <= allowed_all) | (np.isnan(wants) & np.isnan(gots)))  # a nan
        # fails unless the oracle expects one (the pre-2.5 policy for a query with no kept key)
        for r in np.flatnonzero(failing.any(axis=1)):
            (b, h, n), vals, got = index[r], wants[r].tolist(), gots[r].tolist()
            bad = [(int(c), got[c], vals[c], float(allowed_all[r, c])) for c in np.flatnonzero(failing[r])]
            what = "query" if name == "dq" else "key"
            case.run(f"print({name[1]}.grad[{b}, {h}, {n}])  # the {name} row that differs")
            case.fail(f"{name} for {what} {n} (b={b}, h={h}) differs from the oracle in {len(bad)} of {p.e} "
                      f"components (allowed: {rel:.3g} x the sum of the magnitudes of the terms each adds, "
                      f"+ 1 ulp)", expected=_short(vals), actual=_short(got),
                      extra="\n".join(f"  component {c}: expected {w!r}, got {a_!r} (allowed error {al:.3g})"
                                      for c, a_, w, al in bad[:5]))


def _nan_where_a_row_is_dead(m, dq, dk, dv, e) -> None:
    """Under the pre-2.5 policy (a query with no kept key gets nan): that query's dq is nan, and
    so are dk and dv of every key of its head, since each sums over every query's weights
    (p_ij * g_i and dS_ij * q_i, with row i all nan); the other queries' dq are unchanged."""
    nan = ([math.nan] * e,) * 3
    for b in range(m.b):
        dead = {i for i in range(m.L) if attention.kept_interval(m, b, i) is None}
        if not dead:
            continue
        for grads in (dk, dv):
            for key in [k_ for k_ in grads if k_[0] == b]:
                grads[key] = nan
        for key in [k_ for k_ in dq if k_[0] == b and k_[2] in dead]:
            dq[key] = nan


# --------------------------------------------------------------------------- nn.MultiheadAttention


def _mha_setup(p, device):
    """(module in the path's mode, x, key_padding_mask, attn_mask or None, the arrays) of
    problem `p` (`strategies.attention.MhaModelProblem`) on `device`."""
    m, x_np, dt = p.mask, p.arrays(), TORCH_DTYPES[p.dtype]
    emb = m.h * p.hd
    x = torch.zeros(m.b, m.L, emb, dtype=torch.float64)
    for comp, name in enumerate(("a", "c", "alpha")):
        x[..., comp] = torch.from_numpy(x_np[name])
    w = torch.zeros(3 * emb, emb, dtype=torch.float64)
    beta = torch.from_numpy(x_np["beta"])
    for h, s in enumerate(p.scales):
        w[h * p.hd, 0] = s                                    # q of head h: scales[h] * a at component 0
        w[emb + h * p.hd, 1] = 1.0                            # k of head h: c at component 0
        w[2 * emb + h * p.hd:2 * emb + (h + 1) * p.hd, 2] = beta  # v of head h: alpha * beta
    mha = torch.nn.MultiheadAttention(emb, m.h, batch_first=True, dtype=dt, device=device, dropout=0.0)
    with torch.no_grad():
        mha.in_proj_weight.copy_(w.to(dt))
        mha.in_proj_bias.zero_()
        mha.out_proj.weight.copy_(torch.eye(emb, dtype=dt))
        mha.out_proj.bias.copy_(torch.from_numpy(x_np["bias"]).to(dt))
    mha.train(p.path != "eval")
    kpm, am = mha_masks(m, m.h, "causal" if m.causal else "none", p.mask_type, p.mask_type, dt, device)
    return mha, x.to(device=device, dtype=dt), kpm, am, x_np


@pytest.mark.ops("multihead_attention")
@pytest.mark.reach(*reach.ranges("multihead_attention.S", MHA_T[-1], MHA_T[0], edges=(512,)),
                   *reach.of("multihead_attention", "need_weights:True", "need_weights:False", "path:fast",
                             "path:slow"), "component:causal", "component:key_padding", "rows:fully-masked")
@profiles.fraction(0.1)  # 30 model-sized self-attention problems
@given(p=mha_model_size_problems())
def test_multihead_attention_at_model_sizes_matches_oracle(device, p):
    """nn.MultiheadAttention over T past 256 and 512 tokens, head dims 64 to 128 and odd, with a
    key padding mask and a causal attn_mask (bool or -inf), on every path, equals out_proj of the
    oracle's per-head attention on every judged query; a query with no kept key follows its
    path's policy (out_proj's bias where SDPA gives 0)."""
    m = p.mask
    _note(p)
    taken = apis.mha_path(p.path, m.h, p.mask_type, p.mask_type, "causal" if m.causal else "none")
    mha, x, kpm, am, x_np = _mha_setup(p, device)
    case = Case("MultiheadAttention at model sizes = out_proj(concat of each head's softmax(q k^T / sqrt(hd)) v)",
                device)
    emb = m.h * p.hd
    case.inputs += [f"B={m.b}, T={m.L}, heads={m.h}, head dim={p.hd}, {p.dtype}; x zero but for a, c, alpha at "
                    f"components 0-2; head h scores scales[h] * a_i * c_j, scales {list(p.scales)}; v = alpha * "
                    f"beta; out_proj I with a bias; path {p.path} ({taken})", "mask: " + m.words()]
    case.run("import math", *p.source(), f"B, T, H, hd, E = {m.b}, {m.L}, {m.h}, {p.hd}, {emb}",
             "x = torch.zeros(B, T, E, dtype=torch.float64); x[..., 0], x[..., 1], x[..., 2] = (torch.from_numpy(v) "
             "for v in (a, c, alpha))",
             "w = torch.zeros(3 * E, E, dtype=torch.float64)",
             f"for h, s in enumerate({list(p.scales)}):",
             "    w[h * hd, 0] = s; w[E + h * hd, 1] = 1.0; w[2 * E + h * hd:2 * E + (h + 1) * hd, 2] = "
             "torch.from_numpy(beta)",
             f"mha = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.{p.dtype})",
             "with torch.no_grad():",
             "    mha.in_proj_weight.copy_(w); mha.in_proj_bias.zero_(); mha.out_proj.weight.copy_(torch.eye(E)); "
             "mha.out_proj.bias.copy_(torch.from_numpy(bias))",
             f"pad = torch.tensor({[list(range(n, m.L)) for n in m.key_lengths]!r})  # padded key positions",
             "ignore = torch.zeros(B, T, dtype=torch.bool)",
             "for b, cols in enumerate(pad): ignore[b, cols] = True",
             "kpm = ignore" if p.mask_type == "bool" else
             f"kpm = torch.zeros(B, T, dtype=torch.{p.dtype}).masked_fill(ignore, -math.inf)",
             ("am = torch.ones(T, T, dtype=torch.bool).triu(1)" if p.mask_type == "bool" else
              f"am = torch.zeros(T, T, dtype=torch.{p.dtype}).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), "
              "-math.inf)") if m.causal else "am = None",
             "mha.eval()" if p.path == "eval" else "mha.train()",
             ("with torch.no_grad(): " if p.path == "eval" else "") +
             f"out, _ = mha(x.to(torch.{p.dtype}), x.to(torch.{p.dtype}), x.to(torch.{p.dtype}), key_padding_mask=kpm, "
             f"attn_mask=am, need_weights={p.path != 'no_weights'})")
    ops = device_ops.for_device(device)
    with torch.set_grad_enabled(p.path != "eval"):
        result, err = attempt(lambda: ops.multihead_attention(mha, x, x, x, key_padding_mask=kpm, attn_mask=am,
                                                              need_weights=p.path != "no_weights"))
    case.check_outcome(None, err)
    out = result[0]
    queries = sorted({(b, i) for b, _, i in _picked_rows(p)})  # every head of each judged query
    picked = [(b, h, i) for b, i in queries for h in range(m.h)]
    a = [s * v for b in range(m.b) for s in p.scales for v in x_np["a"][b].tolist()]
    per_head = lambda arr: [v for b in range(m.b) for _ in range(m.h) for v in arr[b].tolist()]  # noqa: E731
    fs = attention.FewScores(a, per_head(x_np["c"]), p.values, per_head(x_np["alpha"]), x_np["beta"].tolist())
    want, smax = attention.few_scores_rows(m, fs, m.h, 1 / math.sqrt(p.hd), picked)
    if any(row is None for row in want.values()):
        reach.note("rows:fully-masked")
    policy = apis.policy(taken)
    bias = x_np["bias"].tolist()
    vmax = float(abs(x_np["alpha"]).max() * x_np["beta"].max()) if x_np["alpha"].size else 1.0
    tol = tolerances.attention_output(p.dtype, m.L, vmax, smax)
    close = close_with(tol)
    expects = []
    for b, i in queries:
        parts = []
        for h in range(m.h):
            row = want.get((b, h, i))
            if row is None:
                row = [0.0 if policy.rows == "zeros" else math.nan] * p.hd
            parts += row
        if policy.rows != "zeros" and any(want.get((b, h, i)) is None for h in range(m.h)):
            parts = [math.nan] * emb  # a head with no kept key poisons the whole concatenation (nan)
        expects.append([v + bb for v, bb in zip(parts, bias)])
    got_all = out.detach().to("cpu", torch.float64).numpy()
    ok = rows_within(got_all[tuple(np.array(queries).T)], np.array(expects, dtype=np.float64), tol)
    for (b, i), expect in itertools.compress(zip(queries, expects), ~ok):
        got = got_all[b, i].tolist()
        case.run(f"print(out[{b}, {i}])  # the row that differs")
        case.check_values(got, expect, (emb,), close=close,
                          what=f"MultiheadAttention output row (b={b}, query {i}) differs from the oracle ({tol})",
                          extra=f"a query with no kept key: {policy.rows} ({policy.source})")
