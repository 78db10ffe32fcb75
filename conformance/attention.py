"""The attention oracle: a logical mask and the attention it gives, in pure Python.

A `LogicalMask` is what attention code means by its mask, before any API has encoded it:
per-sequence key padding, query padding, causal with upper-left or lower-right alignment, a
sliding window, documents (block-diagonal), and an arbitrary per-head pattern, combined.
`keep(b, h, i, j)` says whether query i of sequence b in head h may attend to key j; every
API the suite checks (SDPA's masks and causal variants, MultiheadAttention, the encoder,
nested tensors, FlexAttention) must compute the attention `attend` computes from it.

Nothing here imports torch or numpy (the per-head pattern is given as a nested list, drawn
by the strategy), so a faulty backend cannot corrupt an expected value.
"""

from __future__ import annotations

import itertools
import math
import operator
from dataclasses import dataclass
from typing import Sequence

from conformance import rules

ALIGNMENTS = ("upper-left", "lower-right")


@dataclass(frozen=True)
class LogicalMask:
    """Which keys each query may attend to, for B sequences, H heads, L queries, S keys.

    * ``key_lengths[b]``: key j of sequence b is kept iff j < key_lengths[b] (0: every key
      padded, so no query of that sequence sees anything);
    * ``query_lengths[b]``: query i of sequence b sees nothing iff i >= query_lengths[b];
    * ``causal``: "upper-left" keeps j <= i, "lower-right" keeps j <= i + S - L (the last
      query sees every key: a decode step, chunked prefill);
    * ``window``: keeps |i' - j| < window, with i' the query's diagonal (i, or i + S - L when
      aligned lower-right): a sliding window, one-sided when combined with causal;
    * ``documents``: (query document ids, key document ids): keeps same-document pairs;
    * ``per_head``: a [B][H][L][S] list of bools, combined with the rest by ``combine``
      ("and": also required; "or": also allowed).
    """

    b: int
    h: int
    L: int
    S: int
    key_lengths: tuple[int, ...] | None = None
    query_lengths: tuple[int, ...] | None = None
    causal: str | None = None
    window: int | None = None
    documents: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    per_head: tuple | None = None
    combine: str = "and"

    def __post_init__(self):
        if self.causal not in (None, *ALIGNMENTS):
            raise ValueError(f"causal must be one of {ALIGNMENTS} or None, not {self.causal!r}")
        if self.combine not in ("and", "or"):
            raise ValueError(f"combine must be 'and' or 'or', not {self.combine!r}")

    @property
    def offset(self) -> int:
        """How far the diagonal of query i sits from key i: S - L aligned lower-right."""
        return self.S - self.L if self.causal == "lower-right" else 0

    def structural(self, b: int, i: int, j: int) -> bool:
        """The mask without its per-head part (the same for every head)."""
        if self.key_lengths is not None and j >= self.key_lengths[b]:
            return False
        if self.query_lengths is not None and i >= self.query_lengths[b]:
            return False
        d = i + self.offset
        if self.causal is not None and j > d:
            return False
        if self.window is not None and abs(d - j) >= self.window:
            return False
        if self.documents is not None and self.documents[0][i] != self.documents[1][j]:
            return False
        return True

    def keep(self, b: int, h: int, i: int, j: int) -> bool:
        base = self.structural(b, i, j)
        if self.per_head is None:
            return base
        extra = self.per_head[b][h][i][j]
        return (base and extra) if self.combine == "and" else (base or extra)

    def kept_none(self, b: int, h: int, i: int) -> bool:
        """Query i of sequence b in head h keeps no key (every API has its own policy for it)."""
        return not any(self.keep(b, h, i, j) for j in range(self.S))

    def table(self) -> list:
        """keep as a nested [B][H][L][S] list."""
        return [[[[self.keep(b, h, i, j) for j in range(self.S)] for i in range(self.L)]
                 for h in range(self.h)] for b in range(self.b)]

    def varies(self) -> set[str]:
        """The dims of [B, H, L, S] the mask changes along ("B", "H", "L", "S")."""
        t = self.table()
        out = set()
        flat = [(b, h, i, j, t[b][h][i][j]) for b in range(self.b) for h in range(self.h)
                for i in range(self.L) for j in range(self.S)]
        for name, pos in (("B", 0), ("H", 1), ("L", 2), ("S", 3)):
            for b, h, i, j, v in flat:
                idx = [b, h, i, j]
                idx[pos] = 0
                if t[idx[0]][idx[1]][idx[2]][idx[3]] != v:
                    out.add(name)
                    break
        return out

    def words(self) -> str:
        """The mask in words, for failure messages."""
        parts = [f"B={self.b}, H={self.h}, L={self.L}, S={self.S}"]
        if self.key_lengths is not None:
            parts.append(f"key padding: sequence b keeps keys j < {list(self.key_lengths)}[b]")
        if self.query_lengths is not None:
            parts.append(f"query padding: queries i >= {list(self.query_lengths)}[b] see nothing")
        if self.causal:
            parts.append(f"causal aligned {self.causal} (keeps j <= i{' + S - L' if self.offset else ''})")
        if self.window is not None:
            parts.append(f"sliding window {self.window} (keeps |i{' + S - L' if self.offset else ''} - j| < "
                         f"{self.window})")
        if self.documents is not None:
            parts.append(f"documents: queries {list(self.documents[0])}, keys {list(self.documents[1])}")
        if self.per_head is not None:
            parts.append(f"per-head pattern ({self.combine} the rest)")
        return "; ".join(parts)

    def code(self) -> list[str]:
        """Python (torch only) that builds ``keep``, a [B, H, L, S] bool tensor of this mask."""
        lines = [f"B, H, L, S = {self.b}, {self.h}, {self.L}, {self.S}",
                 "i = torch.arange(L).view(1, 1, L, 1); j = torch.arange(S).view(1, 1, 1, S)",
                 "keep = torch.ones(B, H, L, S, dtype=torch.bool)"]
        d = "(i + S - L)" if self.offset else "i"
        if self.key_lengths is not None:
            lines.append(f"keep &= j < torch.tensor({list(self.key_lengths)}).view(B, 1, 1, 1)")
        if self.query_lengths is not None:
            lines.append(f"keep &= i < torch.tensor({list(self.query_lengths)}).view(B, 1, 1, 1)")
        if self.causal:
            lines.append(f"keep &= j <= {d}")
        if self.window is not None:
            lines.append(f"keep &= ({d} - j).abs() < {self.window}")
        if self.documents is not None:
            lines.append(f"keep &= torch.tensor({list(self.documents[0])}).view(1, 1, L, 1) == "
                         f"torch.tensor({list(self.documents[1])}).view(1, 1, 1, S)")
        if self.per_head is not None:
            op = "&=" if self.combine == "and" else "|="
            lines.append(f"keep {op} torch.tensor({bools(self.per_head)})")
        return lines


def bools(nested) -> list:
    """`nested` (lists of bool-like values) as lists of Python bools: a literal for the snippets."""
    return [bools(x) for x in nested] if isinstance(nested, (list, tuple)) else bool(nested)


def scores(q_rows: Sequence[Sequence[float]], k_rows: Sequence[Sequence[float]], scale: float) -> list[list[float]]:
    """q @ k.T * scale for one head, with exact sums (fsum)."""
    return [[math.fsum(a * c for a, c in zip(qr, kr)) * scale for kr in k_rows] for qr in q_rows]


def attend_head(q_rows, k_rows, v_rows, keep_rows, scale: float, bias_rows=None):
    """One head's attention: (output rows, which rows had no kept key, largest |score|).

    Output rows of queries with no kept key are None (each API has its own policy for them).
    `bias_rows` (optional) is an additive float bias added to the scores of kept keys (a
    float mask's finite part)."""
    s = scores(q_rows, k_rows, scale)
    out, smax = [], 0.0
    for i, row in enumerate(s):
        if bias_rows is not None:
            row = [x + bb for x, bb in zip(row, bias_rows[i])]
        smax = max([smax, *(abs(x) for x in row)])
        p = rules.softmax(row, keep_rows[i])
        if p is None:
            out.append(None)
            continue
        e = len(v_rows[0]) if v_rows else 0
        out.append([math.fsum(p[j] * v_rows[j][c] for j in range(len(v_rows))) for c in range(e)])
    return out, smax


def rows(values: Sequence[float], start: int, n: int, width: int) -> list[list[float]]:
    """n rows of `width` values from flat `values` at `start`."""
    return [list(values[start + r * width: start + (r + 1) * width]) for r in range(n)]


def mean_rows(v_rows) -> list[float]:
    """The uniform average of v's rows: what a query whose scores are all equal gets."""
    n = len(v_rows)
    return [math.fsum(r[c] for r in v_rows) / n for c in range(len(v_rows[0]))] if n else []


def expected(mask: LogicalMask, q: Sequence[float], k: Sequence[float], v: Sequence[float], kv_heads: int,
             e: int, scale: float, bias=None):
    """The oracle's attention for flat row-major q [B,H,L,E], k and v [B,Hkv,S,E] (query head h
    reads kv head h // (H / Hkv), as repeat_interleave lays them out): (rows, largest |score|),
    rows a list over (b, h, i) of E values, or None for a query with no kept key.  `bias(b, h,
    i, j)` (optional) is added to the score of each kept key."""
    b_, h_, L, S = mask.b, mask.h, mask.L, mask.S
    group = h_ // kv_heads
    out, smax = [], 0.0
    for b in range(b_):
        for h in range(h_):
            kvh = h // group
            qr = rows(q, (b * h_ + h) * L * e, L, e)
            kr = rows(k, (b * kv_heads + kvh) * S * e, S, e)
            vr = rows(v, (b * kv_heads + kvh) * S * e, S, e)
            keep = [[mask.keep(b, h, i, j) for j in range(S)] for i in range(L)]
            br = None if bias is None else [[bias(b, h, i, j) for j in range(S)] for i in range(L)]
            got, m = attend_head(qr, kr, vr, keep, scale, br)
            out.extend(got)
            smax = max(smax, m)
    return out, smax


def jagged_expected(lengths: Sequence[int], h: int, e: int, q, k, v, scale: float) -> tuple[list[float], float]:
    """Self-attention of packed sequences (q, k, v flat [sum(lengths), H, E]): each query over
    exactly its own sequence's keys.  (flat output in the same packed order, largest |score|)."""
    want, start, smax = [], 0, 0.0
    for n in lengths:
        seq = [vals[start * h * e:(start + n) * h * e] for vals in (q, k, v)]
        per_head = []
        for hh in range(h):
            pick = [[vals[(i * h + hh) * e:(i * h + hh + 1) * e] for i in range(n)] for vals in seq]
            head_rows, head_max = attend_head(*pick, [[True] * n] * n, scale)
            per_head.append(head_rows)
            smax = max(smax, head_max)
        want.extend(x for i in range(n) for hh in range(h) for x in per_head[hh][i])
        start += n
    return want, smax


@dataclass(frozen=True)
class MhaExpected:
    """What nn.MultiheadAttention should return: `rows` over (b, i) of E values (None for a
    query the policy leaves to the caller), `weights` flat over (b, h, i, j) (nan for a query
    with no kept key), the largest |score|."""

    rows: list
    weights: list
    smax: float


def in_projection(tokens, w: Sequence[float], bias: Sequence[float], emb: int, part: int) -> list[list[float]]:
    """Part `part` (0 q, 1 k, 2 v) of MultiheadAttention's packed in-projection of each token:
    x @ W[part * E:(part + 1) * E].T + b[...], exact sums."""
    return [[math.fsum(wv * xv for wv, xv in zip(w[r * emb:(r + 1) * emb], tok)) + bias[r]
             for r in range(part * emb, (part + 1) * emb)] for tok in tokens]


def mha_expected(mask: LogicalMask, xs: Sequence[float], heads: int, w_in, b_in, w_out=None, b_out=None, *,
                 empty_head: str = "unknown") -> MhaExpected:
    """nn.MultiheadAttention(E, heads) on self-attention input `xs` (flat [B, T, E]) with
    in_proj `w_in` [3E, E], `b_in` [3E] and out_proj `w_out` [E, E], `b_out` [E] (None: the
    weights only): per head, the softmax of q k^T / sqrt(E / heads) over the keys `mask` keeps
    (key_padding_mask and attn_mask combined), then out_proj of the heads' outputs concatenated.
    A query whose head keeps no key: `empty_head` "zeros" (that head adds 0, as SDPA's policy),
    else its row is None (the caller applies the path's policy)."""
    b_, t = mask.b, mask.L
    emb = len(xs) // max(b_ * t, 1) if b_ * t else len(b_in) // 3
    hd = emb // heads
    scale = 1 / math.sqrt(hd)
    out, weights, smax = [], [], 0.0
    for b in range(b_):
        tok = rows(xs, b * t * emb, t, emb)
        proj = [in_projection(tok, w_in, b_in, emb, part) for part in range(3 if w_out is not None else 2)]
        per_head = []
        for h in range(heads):
            sl = slice(h * hd, (h + 1) * hd)
            keep = [[mask.keep(b, h, i, j) for j in range(t)] for i in range(t)]
            s = scores([r[sl] for r in proj[0]], [r[sl] for r in proj[1]], scale)
            smax = max([smax, *(abs(z) for row in s for z in row)])
            for row, kr in zip(s, keep):
                weights.extend(rules.softmax(row, kr) or [math.nan] * t)
            if w_out is not None:
                per_head.append(attend_head([r[sl] for r in proj[0]], [r[sl] for r in proj[1]],
                                            [r[sl] for r in proj[2]], keep, scale)[0])
        if w_out is None:
            continue
        for i in range(t):
            if any(per_head[h][i] is None for h in range(heads)) and empty_head != "zeros":
                out.append(None)  # a head with no key poisons the concatenation (nan) or zeros it
                continue
            cat = [z for h in range(heads) for z in (per_head[h][i] if per_head[h][i] is not None else [0.0] * hd)]
            out.append([math.fsum(wo * c for wo, c in zip(w_out[r * emb:(r + 1) * emb], cat)) + b_out[r]
                        for r in range(emb)])
    return MhaExpected(out, weights, smax)


# --------------------------------------------------------------------------- at model sizes
#
# At L = S = 1024 and E = 64 the general oracle above costs tens of seconds an example.  The
# problems below keep it the judge at the sizes models use by choosing inputs whose exact
# attention is cheap: q is zero but for one component p, so query i's score for key j is
# a[i] * c[j] * scale with c[j] (k's component p) from a few values; v is rank one,
# v[j, e] = alpha[j] * beta[e].  The other components of k are arbitrary (q multiplies them by
# 0), and every structured mask keeps an interval of keys per query, so each row of the output
# comes from prefix sums over keys, O(S * values) per head and O(E) per row.


def kept_interval(mask: LogicalMask, b: int, i: int) -> tuple[int, int] | None:
    """The keys query i of sequence b keeps, as [lo, hi), or None when it keeps none.  Every
    component but the per-head pattern keeps an interval (document ids are sorted), and so
    does their intersection."""
    if mask.per_head is not None:
        raise ValueError("a per-head pattern does not keep an interval of keys")
    lo, hi = 0, mask.S
    if mask.key_lengths is not None:
        hi = min(hi, mask.key_lengths[b])
    if mask.query_lengths is not None and i >= mask.query_lengths[b]:
        return None
    d = i + mask.offset
    if mask.causal is not None:
        hi = min(hi, d + 1)
    if mask.window is not None:
        lo, hi = max(lo, d - mask.window + 1), min(hi, d + mask.window)
    if mask.documents is not None:
        doc, keys = mask.documents[0][i], mask.documents[1]
        start, end = _first(keys, doc), _first(keys, doc + 1)
        if start is None or keys[start] != doc:
            return None
        lo, hi = max(lo, start), min(hi, mask.S if end is None else end)
    return (lo, hi) if lo < hi else None


def _first(ids: Sequence[int], doc: int) -> int | None:
    """The first position whose id is >= doc (ids sorted), or None."""
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if ids[mid] < doc:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < len(ids) else None


@dataclass(frozen=True)
class FewScores:
    """The inputs of one attention problem in the form above, flat and row-major: ``a`` [B,H,L]
    (q's component p), ``c`` [B,Hkv,S] (k's component p, from ``values``), ``alpha`` [B,Hkv,S]
    and ``beta`` [E] (v = alpha * beta)."""

    a: Sequence[float]
    c: Sequence[float]
    values: tuple[float, ...]
    alpha: Sequence[float]
    beta: Sequence[float]


def few_scores_rows(mask: LogicalMask, x: FewScores, kv_heads: int, scale: float, picked):
    """The oracle's output rows for the (b, h, i) in `picked` (any order): {(b, h, i): E values
    or None for a query with no kept key}, and the largest |score|.  Exact but for the final
    exp and division: prefix sums of alpha per value of c are sums of grid values."""
    h_, L, S = mask.h, mask.L, mask.S
    group = h_ // kv_heads
    prefix = {}  # (b, kv head) -> per value: running count and alpha sum over keys < j
    out, smax = {}, 0.0
    for b, h, i in sorted(picked):
        kvh = h // group
        if (b, kvh) not in prefix:
            base = (b * kv_heads + kvh) * S
            cs, als = x.c[base:base + S], x.alpha[base:base + S]
            table = {}
            for val in x.values:  # running sums, left to right, of the keys whose c is val
                hit = [cj == val for cj in cs]
                table[val] = (list(itertools.accumulate(hit, initial=0)),
                              list(itertools.accumulate((al if h else 0.0 for al, h in zip(als, hit)), initial=0.0)))
            prefix[(b, kvh)] = table
        span = kept_interval(mask, b, i)
        if span is None:
            out[(b, h, i)] = None
            continue
        lo, hi = span
        ai = x.a[(b * h_ + h) * L + i]
        terms = []
        for val, (counts, sums) in prefix[(b, kvh)].items():
            n = counts[hi] - counts[lo]
            if n:
                terms.append((ai * val * scale, n, sums[hi] - sums[lo]))
        top = max(s for s, _, _ in terms)
        smax = max(smax, *(abs(s) for s, _, _ in terms))
        weights = [(math.exp(s - top), n, total) for s, n, total in terms]
        norm = math.fsum(w * n for w, n, _ in weights)
        mix = math.fsum(w * total for w, _, total in weights) / norm
        out[(b, h, i)] = [mix * be for be in x.beta]
    return out, smax


@dataclass(frozen=True)
class FewScoresGrad:
    """What the backward pass of a `FewScores` problem needs besides it: q's and k's component
    ``p``; k's other components ``kappa[j] * rho[e]`` (rank one, ``rho[p] == 0``); the upstream
    gradient ``gamma[i] * delta[e]`` (rank one)."""

    x: FewScores
    p: int
    kappa: Sequence[float]
    rho: Sequence[float]
    gamma: Sequence[float]
    delta: Sequence[float]


def _row_weights(values, counts, lo, hi, ai, scale):
    """{value: exp(score - max) / Z} over the values of c present in keys [lo, hi)."""
    present = [(val, counts[val][hi] - counts[val][lo]) for val in values]
    scores = {val: ai * val * scale for val, n in present if n}
    top = max(scores.values())
    z = math.fsum(math.exp(scores[val] - top) * n for val, n in present if n)
    return {val: math.exp(ai * val * scale - top) / z for val in values}


def few_scores_grads(mask: LogicalMask, g: FewScoresGrad, scale: float, rows, keys):
    """The oracle's gradients of sum(out * grad_out) for SDPA on a `FewScores` problem (one kv
    head per head): dq for the (b, h, i) in `rows`, dk and dv for the (b, h, j) in `keys`, each
    {index: (E values, E bounds, E noises)}.  A bound is the sum of the magnitudes of the terms
    the gradient adds up (what a kernel's rounding error scales with); a noise bounds the
    oracle's own rounding (its sums run over every key or query of the head).  Pure Python, O((L + S) * values)
    per head: prefix sums over keys, and over queries difference arrays (a query adds its share
    to the interval of keys it keeps)."""
    x, p = g.x, g.p
    h_, L, S, e = mask.h, mask.L, mask.S, len(x.beta)
    db = math.fsum(d * be for d, be in zip(g.delta, x.beta))
    db_abs = math.fsum(abs(d * be) for d, be in zip(g.delta, x.beta))
    dq, dk, dv = {}, {}, {}
    # the oracle's own rounding: a running sum over n terms is off by at most n ulps of the
    # largest partial sum, which the sum of all terms' magnitudes bounds
    ulp_sums = 4 * (L + S) * 2.0 ** -52
    rho_abs, delta_abs = list(map(abs, g.rho)), list(map(abs, g.delta))
    delta_ulps = [d * ulp_sums for d in delta_abs]
    want_rows, want_keys = {}, {}
    for b, h, i in rows:
        want_rows.setdefault((b, h), []).append(i)
    for b, h, j in keys:
        want_keys.setdefault((b, h), []).append(j)
    for b, h in sorted(set(want_rows) | set(want_keys)):
        base, qbase = (b * h_ + h) * S, (b * h_ + h) * L
        cs, als, kas = x.c[base:base + S], x.alpha[base:base + S], g.kappa[base:base + S]
        aks = list(map(operator.mul, als, kas))
        per_key = (("n", [1.0] * S), ("a", als), ("ak", aks), ("k", kas), ("aabs", list(map(abs, als))),
                   ("akabs", list(map(abs, aks))), ("kabs", list(map(abs, kas))))
        pre = {}
        for val in x.values:  # prefix sums over the keys whose c is val (v * False is a zero)
            hit = [cj == val for cj in cs]
            pre[val] = {nm: list(itertools.accumulate(map(operator.mul, vs, hit), initial=0.0)) for nm, vs in per_key}
        counts = {val: t["n"] for val, t in pre.items()}
        # per query: its weights, mix and interval; keys' sums through difference arrays (per
        # value of c, one array per term: r, rabs, t1, t1abs, t2, t2abs)
        names = ("r", "rabs", "t1", "t1abs", "t2", "t2abs")
        acc = {val: {nm: [0.0] * (S + 1) for nm in names} for val in x.values}
        arrays = [(val, tuple(acc[val][nm] for nm in names)) for val in x.values]
        pre_a = [(val, pre[val]["a"], pre[val]["aabs"]) for val in x.values]
        rabs_total = t1abs_total = t2abs_total = 0.0
        info = {}
        for i in range(L):
            span = kept_interval(mask, b, i)
            if span is None:
                continue
            lo, hi = span
            ai, gi = x.a[qbase + i], g.gamma[qbase + i]
            w = _row_weights(x.values, counts, lo, hi, ai, scale)
            mix = math.fsum(w[val] * (pa[hi] - pa[lo]) for val, pa, _ in pre_a)
            # a kernel's mix (its D_i = rowsum(dO * O) / (g_i . v's scale)) is a sum whose rounding
            # scales with the magnitudes of its terms, not with the exact sum (0 where kept
            # alphas cancel): the bounds use mixabs
            mixabs = math.fsum(w[val] * (pabs[hi] - pabs[lo]) for val, _, pabs in pre_a)
            info[i] = (lo, hi, w, mix, mixabs)
            gabs, gaiabs = abs(gi), abs(gi * ai)
            for val, arrs in arrays:
                wv = w[val]
                terms = (wv * gi, wv * gabs, wv * gi * ai, wv * gaiabs, wv * gi * ai * mix, wv * gaiabs * mixabs)
                for arr, v in zip(arrs, terms):
                    arr[lo] += v
                    arr[hi] -= v
                rabs_total += terms[1]
                t1abs_total += terms[3]
                t2abs_total += terms[5]
        total = {"rabs": rabs_total, "t1abs": t1abs_total, "t2abs": t2abs_total}
        whole = {v: (pre[v]["aabs"][S], pre[v]["n"][S], pre[v]["akabs"][S], pre[v]["kabs"][S]) for v in x.values}
        for i in want_rows.get((b, h), ()):
            if i not in info:
                dq[(b, h, i)] = ([0.0] * e, [0.0] * e, [0.0] * e)
                continue
            lo, hi, w, mix, mixabs = info[i]
            gi = g.gamma[qbase + i]

            def over(name, val):
                return pre[val][name][hi] - pre[val][name][lo]
            core_p = math.fsum(w[v] * v * (over("a", v) - mix * over("n", v)) for v in x.values)
            bound_p = math.fsum(w[v] * abs(v) * (over("aabs", v) + mixabs * over("n", v)) for v in x.values)
            core_r = math.fsum(w[v] * (over("ak", v) - mix * over("k", v)) for v in x.values)
            bound_r = math.fsum(w[v] * (over("akabs", v) + mixabs * over("kabs", v)) for v in x.values)
            f, fa = scale * gi * db, abs(scale * gi) * db_abs
            vals = [f * (r * core_r) for r in g.rho]
            bounds = [fa * (r * bound_r) for r in rho_abs]
            noise_p = fa * ulp_sums * math.fsum(w[v] * abs(v) * (whole[v][0] + mixabs * whole[v][1]) for v in x.values)
            noise_r = fa * ulp_sums * math.fsum(w[v] * (whole[v][2] + mixabs * whole[v][3]) for v in x.values)
            noise = [r * noise_r for r in rho_abs]
            vals[p], bounds[p], noise[p] = f * core_p, fa * bound_p, noise_p
            dq[(b, h, i)] = (vals, bounds, noise)
        ks = want_keys.get((b, h), ())
        if ks:
            run = {val: {nm: list(itertools.accumulate(acc[val][nm])) for nm in acc[val]} for val in x.values}
            for j in ks:
                cj, al = x.c[base + j], x.alpha[base + j]
                t = {nm: run[cj][nm][j] for nm in run[cj]}
                dv[(b, h, j)] = ([d * t["r"] for d in g.delta], [d * t["rabs"] for d in delta_abs],
                                 [d * total["rabs"] for d in delta_ulps])
                kp = scale * db * (al * t["t1"] - t["t2"])
                kb = abs(scale) * db_abs * (abs(al) * t["t1abs"] + t["t2abs"])
                kn = abs(scale) * db_abs * ulp_sums * (abs(al) * total["t1abs"] + total["t2abs"])
                vals, bounds, noise = [0.0] * e, [0.0] * e, [0.0] * e  # dk is zero but for component p
                vals[p], bounds[p], noise[p] = kp, kb, kn
                dk[(b, h, j)] = (vals, bounds, noise)
    return dq, dk, dv
