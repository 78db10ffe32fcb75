"""The attention harness: what every attention property needs around its oracle.

Running SDPA pinned to one kernel (a refusal counted, never rerouted), the scale SDPA applies,
the rows a policy gives a query with no kept key, and the comparison of an output with the
oracle's rows within the attention tolerance.  Helpers only: the properties are in the
``test_attention_*`` modules, which import from here (a test never imports a test).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from conformance import attention, attention_apis as apis, reach, tolerances
from conformance.failures import Case, attempt, close_with
from conformance.tensors import TORCH_DTYPES


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
    if kernel == apis.DEFAULT_KERNEL:
        case.run("import contextlib", "pinned = contextlib.nullcontext()  # no kernel pinned: what a plain call runs")
    elif kernel:
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


def run_checked(case, kernel, fn):
    """fn()'s result with SDPA pinned to `kernel` (`run_pinned`), its error checked against none
    expected; None when the kernel refused the input (counted: the example checks nothing more)."""
    out, err, refused = run_pinned(kernel, fn)
    if refused:
        return None
    case.check_outcome(None, err)
    return out


def judge(case, p, got, policy, *, what, mask=None, scale=None, v_for=None, empty_rows=None):
    """The oracle's verdict on flat output `got` of problem `p` (its mask, or `mask`; its scale,
    or `scale`): each row within the attention tolerance, a query with no kept key as `policy`
    says (noted in reach as ``rows:fully-masked``).  `empty_rows(want)`, when given, checks the
    rows with no kept key itself (then `policy` is None)."""
    m = mask or p.mask
    want, smax = attention.expected(m, p.q.values, p.k.values, p.v.values, p.kv_heads, p.e,
                                    scale if scale is not None else scale_of(p))
    if any(r is None for r in want):
        reach.note("rows:fully-masked")
    if empty_rows is not None:
        empty_rows(want)
    check_rows(case, got, want, (m.b, m.h, m.L, p.e), p.dtype, m.S, smax, p.v.values, policy, what=what, v_for=v_for)


def sdpa_kw(p):
    """SDPA's keyword arguments for problem `p` (its scale, when it sets one)."""
    return {} if p.scale is None else {"scale": p.scale}


def mha_masks(m: attention.LogicalMask, heads: int, attn: str, kpm_type: str, attn_type: str, dt, device):
    """(key_padding_mask, attn_mask or None) of nn.MultiheadAttention for mask `m` on `device`:
    keys past each sequence's key length ignored, and `attn` none, causal [T, T] or per-head
    [B * heads, T, T]; each bool (True = ignore) or float (-inf) as its type says."""
    b, t = m.b, m.L
    ignore_k = torch.tensor([[j >= n for j in range(t)] for n in m.key_lengths], device=device).reshape(b, t)
    kpm = ignore_k if kpm_type == "bool" else \
        torch.zeros(b, t, dtype=dt, device=device).masked_fill(ignore_k, -math.inf)
    if attn == "none":
        return kpm, None
    if attn == "per-head":
        ignore = ~torch.tensor(m.per_head, dtype=torch.bool, device=device).reshape(b * heads, t, t)
    else:
        ignore = torch.ones(t, t, dtype=torch.bool, device=device).triu(1)  # causal: the keys after the query
    am = ignore if attn_type == "bool" else \
        torch.zeros(ignore.shape, dtype=dt, device=device).masked_fill(ignore, -math.inf)
    return kpm, am


@dataclass(frozen=True)
class MhaCall:
    """One self-attention call of nn.MultiheadAttention(E, heads, batch_first=True): its
    parameters (in_proj weight and bias, out_proj weight and bias, flat), input `xs` [B, T, E],
    and the mask `mask` (key padding, causal or per-head) passed as a key_padding_mask of
    `kpm_type` and an attn_mask (`attn`: none, causal [T, T] or per-head [B * heads, T, T]) of
    `attn_type`, bool (True = ignore) or float (-inf); `path` need_weights, no_weights or eval."""

    mask: attention.LogicalMask
    dtype: str
    heads: int
    params: tuple
    xs: list
    attn: str
    kpm_type: str
    attn_type: str
    path: str
    seed: int

    def build(self, device):
        """(module in the path's mode, x, key_padding_mask, attn_mask or None) on `device`."""
        m, dt, (w_in, b_in, w_out, b_out) = self.mask, TORCH_DTYPES[self.dtype], self.params
        b, t, emb = m.b, m.L, len(b_out)
        mha = torch.nn.MultiheadAttention(emb, self.heads, batch_first=True, dtype=dt, device=device, dropout=0.0)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.tensor(w_in, dtype=dt).reshape(3 * emb, emb))
            mha.in_proj_bias.copy_(torch.tensor(b_in, dtype=dt))
            mha.out_proj.weight.copy_(torch.tensor(w_out, dtype=dt).reshape(emb, emb))
            mha.out_proj.bias.copy_(torch.tensor(b_out, dtype=dt))
        mha.train(self.path != "eval")
        x = torch.tensor(self.xs, dtype=dt, device=device).reshape(b, t, emb)
        kpm, am = mha_masks(m, self.heads, self.attn, self.kpm_type, self.attn_type, dt, device)
        return mha, x, kpm, am

    def case(self, device, taken: str) -> Case:
        """The failure's case: the call in words and as torch code (the parameters from the seed)."""
        m, dtype, heads, t, emb = self.mask, self.dtype, self.heads, self.mask.L, len(self.params[3])
        b = m.b
        case = Case("MultiheadAttention = out_proj(softmax over unhidden keys of q k^T / sqrt(hd)) @ v), every path",
                    device)
        case.inputs.append(f"B={b}, T={t}, heads={heads}, head dim={emb // heads}, {dtype}; key lengths "
                           f"{list(m.key_lengths)} ({self.kpm_type} key_padding_mask); attn_mask: {self.attn} "
                           f"({self.attn_type}); path: {self.path} ({taken})")
        pad = [[j >= n for j in range(t)] for n in m.key_lengths]
        return case.run(
            "import random, math",
            f"rnd = random.Random({self.seed}); grid = lambda n: [rnd.randint(-4, 4) / 8 for _ in range(n)]",
            f"mha = torch.nn.MultiheadAttention({emb}, {heads}, batch_first=True, dtype=torch.{dtype})",
            "with torch.no_grad():",
            f"    mha.in_proj_weight.copy_(torch.tensor(grid({3 * emb * emb})).reshape({3 * emb}, {emb})); "
            f"mha.in_proj_bias.copy_(torch.tensor(grid({3 * emb})))",
            f"    mha.out_proj.weight.copy_(torch.tensor(grid({emb * emb})).reshape({emb}, {emb})); "
            f"mha.out_proj.bias.copy_(torch.tensor(grid({emb})))",
            f"x = torch.tensor(grid({b * t * emb}), dtype=torch.{dtype}).reshape({b}, {t}, {emb})",
            f"pad = torch.tensor({pad}).reshape({b}, {t})  # True = ignore",
            "kpm = pad" if self.kpm_type == "bool" else
            f"kpm = torch.zeros({b}, {t}, dtype=torch.{dtype}).masked_fill(pad, -math.inf)",
            *([] if self.attn == "none" else
              [f"ignore = torch.ones({t}, {t}, dtype=torch.bool).triu(1)" if self.attn == "causal" else
               f"ignore = ~torch.tensor({attention.bools(m.per_head)}).reshape({b * heads}, {t}, {t})",
               "am = ignore" if self.attn_type == "bool" else
               f"am = torch.zeros(ignore.shape, dtype=torch.{dtype}).masked_fill(ignore, -math.inf)"]),
            "mha.eval()" if self.path == "eval" else "mha.train()",
            ("with torch.no_grad(): " if self.path == "eval" else "") +
            f"out, w = mha(x, x, x, key_padding_mask=kpm, attn_mask={'am' if self.attn != 'none' else None}, "
            f"need_weights={self.path != 'no_weights'}, average_attn_weights=False)", "print(out)")


def encoder_case(device, b, t, lengths, layers, causal, dtype, seed) -> Case:
    """The failure's case of the encoder property: B sequences of T tokens (d_model 4, 2 heads,
    `layers` layers, parameters from `seed`'s grid), padded past `lengths`, causal or not; the
    snippet runs the slow path (train) and the fast path (eval, no grad)."""
    case = Case("TransformerEncoder: fast path (eval, no grad) = slow path on real positions; 0 at padding", device)
    case.inputs.append(f"B={b}, T={t}, lengths {list(lengths)}, {layers} layer(s), d_model 4, 2 heads, {dtype}"
                       f"{', causal mask' if causal else ''}")
    case.run("import random", f"rnd = random.Random({seed}); grid = lambda n: [rnd.randint(-4, 4) / 8 for _ in range(n)]",
             f"layer = torch.nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, batch_first=True, "
             f"dtype=torch.{dtype})", f"enc = torch.nn.TransformerEncoder(layer, {layers}, enable_nested_tensor=True)",
             "with torch.no_grad():", "    for p in enc.parameters(): p.copy_(torch.tensor(grid(p.numel())).reshape(p.shape))",
             f"src = torch.tensor(grid({b * t * 4}), dtype=torch.{dtype}).reshape({b}, {t}, 4)",
             f"pad = torch.tensor({[[j >= n for j in range(t)] for n in lengths]}).reshape({b}, {t})",
             f"mask = {'torch.ones(%d, %d, dtype=torch.bool).triu(1)' % (t, t) if causal else None}",
             f"slow = enc.train()(src, mask=mask, src_key_padding_mask=pad{', is_causal=True' if causal else ''})",
             f"with torch.no_grad(): fast = enc.eval()(src, mask=mask, src_key_padding_mask=pad"
             f"{', is_causal=True' if causal else ''})", "print(slow, fast)")
    return case


def grid(rnd, n) -> list[float]:
    """n values on the grid of eighths in [-1/2, 1/2], from `rnd` (the snippets rebuild them from the seed)."""
    return [rnd.randint(-4, 4) / 8 for _ in range(n)]


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
