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

import math
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
            lines.append(f"keep {op} torch.tensor({_bools(self.per_head)})")
        return lines


def _bools(nested) -> list:
    return [_bools(x) for x in nested] if isinstance(nested, (list, tuple)) else bool(nested)


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
