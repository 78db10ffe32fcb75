"""Logical attention masks and the q, k, v they are applied to.

`logical_masks` draws B, H, L and S independently (L < S, L = S, L > S, decode steps with
L = 1, a single key) and a `conformance.attention.LogicalMask` built from key padding
(0 allowed: a fully padded sequence), query padding, causal aligned either way, a sliding
window, documents and a per-head pattern.  `attention_problems` adds E, a float dtype and
q, k, v on grids whose products are exact (scores carry no rounding but the scale's).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from conformance.attention import ALIGNMENTS, LogicalMask
from conformance.tensors import TensorSpec
from strategies import buckets
from strategies._cache import cached, integers, sampled_from
from strategies.layouts import draw_elements
from strategies.values import mapped

COMPONENTS = ("key_padding", "query_padding", "causal", "window", "documents", "per_head")
FLOATS = ("float16", "bfloat16", "float32", "float64")
# where SDPA's kernels tile over keys (the CPU flash kernel's key blocks, vector widths): a few
# rows past 1024 and 2048 keys, with one or two queries so that the oracle stays cheap
WIDE_S = (1023, 1024, 1025, 2047, 2048, 2049)
# one past a tile is where a kernel's last partial block starts: drawn half the time
WIDE_S_DRAWN = (1025, 2049, 1025, 2049, 1025, 2049, *WIDE_S)
QUARTERS = mapped(st.integers(-8, 8), lambda k: k / 4)
EIGHTHS = mapped(st.integers(-4, 4), lambda k: k / 8)
HEAD_DIMS = (1, 2, 4, 8, 16)


def _lengths(draw, b, n):
    return tuple(draw(integers(0, n)) for _ in range(b))


def _documents(draw, n):
    """Document ids of n positions: sorted, starting at 0, from drawn boundaries."""
    cuts = sorted(set(draw(st.lists(integers(1, max(n - 1, 1)), max_size=3)))) if n > 1 else []
    return tuple(sum(1 for c in cuts if c <= p) for p in range(n))


@cached
@st.composite
def logical_masks(draw, *, components=COMPONENTS, max_batch=3, max_heads=3, max_len=9, wide=True,
                  heads=None, require=(), sizes=None):
    """A `LogicalMask`: B in [1, max_batch], H in [1, max_heads] (or `heads`), L and S in
    [1, max_len] drawn independently (1 in 8 masks have S past 1024 or 2048 with L <= 2 when
    `wide`), or (B, H, L, S) from `sizes`; each of `components` with its own chance (those in
    `require` always)."""
    bad = (set(components) | set(require)) - set(COMPONENTS)
    if bad:
        raise InvalidArgument(f"unknown mask components {sorted(bad)}; choose from {COMPONENTS}")
    on = {c: c in require or (c in components and draw(st.booleans())) for c in COMPONENTS}
    if sizes is not None:
        b, h, L, S = draw(sampled_from(tuple(sizes)))
        if S > 1000:
            on["per_head"] = on["documents"] = False
    elif buckets.active() is not None:  # the graph profile: (B, H, L, S) from fixed buckets
        b, h, L, S = draw(buckets.bucketed(
            attention_sizes(max_batch=max_batch, max_heads=max_heads, max_len=max_len, wide=wide, heads=heads),
            f"attention_sizes/{max_batch}/{max_heads}/{max_len}/{wide}/{heads}", attention_size_classes))
        if S > 1000:
            on["per_head"] = on["documents"] = False
    elif wide and draw(integers(0, 7)) == 0:
        b, h, L, S = 1, heads or 1, draw(integers(1, 2)), draw(sampled_from(WIDE_S_DRAWN))
        on["per_head"] = on["documents"] = False
    else:
        b, h = draw(integers(1, max_batch)), heads or draw(integers(1, max_heads))
        L, S = draw(integers(1, max_len)), draw(integers(1, max_len))
    per_head, combine = None, "and"
    if on["per_head"]:
        rnd = random.Random(draw(integers(0, 2**16)))
        per_head = tuple(tuple(tuple(tuple(rnd.random() < 0.5 for _ in range(S)) for _ in range(L))
                               for _ in range(h)) for _ in range(b))
        combine = draw(sampled_from(("and", "or")))
    return LogicalMask(
        b, h, L, S,
        key_lengths=_lengths(draw, b, S) if on["key_padding"] else None,
        query_lengths=_lengths(draw, b, L) if on["query_padding"] else None,
        causal=draw(sampled_from(ALIGNMENTS)) if on["causal"] else None,
        window=draw(integers(1, max(L, S))) if on["window"] else None,
        documents=(_documents(draw, L), _documents(draw, S)) if on["documents"] else None,
        per_head=per_head, combine=combine)


@cached
@st.composite
def attention_sizes(draw, *, max_batch=3, max_heads=3, max_len=9, wide=True, heads=None):
    """(B, H, L, S) as `logical_masks` draws them: the graph profile's candidates for its buckets."""
    if wide and draw(integers(0, 7)) == 0:
        return 1, heads or 1, draw(integers(1, 2)), draw(sampled_from(WIDE_S_DRAWN))
    b, h = draw(integers(1, max_batch)), heads or draw(integers(1, max_heads))
    return b, h, draw(integers(1, max_len)), draw(integers(1, max_len))


def attention_size_classes(sizes) -> set[str]:
    """What the attention properties claim of (B, H, L, S): L against S, and the size class of
    each (S one past 1024 and 2048 among them)."""
    from conformance import reach

    b, h, L, S = sizes
    return {"L<S" if L < S else "L=S" if L == S else "L>S", f"L:{reach.band(L)}", f"S:{reach.band(S)}",
            f"B:{b}", f"H:{h}"}


@dataclass(frozen=True)
class Problem:
    """One attention problem: the mask, q [B,H,L,E], k and v [B,Hkv,S,E], the scale."""

    mask: LogicalMask
    q: TensorSpec
    k: TensorSpec
    v: TensorSpec
    kv_heads: int
    scale: float | None  # None: SDPA's default 1 / sqrt(E)

    @property
    def e(self) -> int:
        return self.q.shape[-1]

    @property
    def dtype(self) -> str:
        return self.q.dtype


@st.composite
def attention_problems(draw, masks=None, *, dtypes=FLOATS, gqa=False, head_dims=HEAD_DIMS):
    """A `Problem` for a mask from `masks` (default `logical_masks()`): E from `head_dims`, a
    dtype from `dtypes`, q and k in quarters, v in eighths; with `gqa`, H = Hkv * group with a
    group of 1 to 3 (k and v have Hkv heads)."""
    from strategies.values import dtypes as dtype_names

    if gqa:
        kv_heads, group = draw(integers(1, 2)), draw(integers(1, 3))
        mask = draw(masks if masks is not None else logical_masks(heads=kv_heads * group))
    else:
        mask = draw(masks if masks is not None else logical_masks())
        kv_heads = mask.h
    e = draw(sampled_from(head_dims if mask.S < 1000 else tuple(x for x in head_dims if x <= 4)))
    dtype = draw(dtype_names(dtypes))
    b, L, S = mask.b, mask.L, mask.S
    q = TensorSpec.contiguous((b, mask.h, L, e), dtype, draw_elements(draw, QUARTERS, b * mask.h * L * e))
    k = TensorSpec.contiguous((b, kv_heads, S, e), dtype, draw_elements(draw, QUARTERS, b * kv_heads * S * e))
    v = TensorSpec.contiguous((b, kv_heads, S, e), dtype, draw_elements(draw, EIGHTHS, b * kv_heads * S * e))
    scale = draw(sampled_from((None, 1.0)))
    return Problem(mask, q, k, v, kv_heads, scale)
