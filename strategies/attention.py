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

from conformance import rules
from conformance.attention import ALIGNMENTS, LogicalMask
from conformance.tensors import TensorSpec
from strategies import buckets
from strategies._cache import HALF, booleans, cached, evenly, integers, sampled_from
from strategies.layouts import draw_elements
from strategies.values import mapped

COMPONENTS = ("key_padding", "query_padding", "causal", "window", "documents", "per_head")
FLOATS = rules.FLOAT_DTYPES
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
    on = {c: c in require or (c in components and draw(booleans())) for c in COMPONENTS}
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


# --------------------------------------------------------------------------- at model sizes
#
# Where the CPU flash kernel tiles (aten/src/ATen/native/cpu/FlashAttentionKernel.cpp,
# flash_attention_kernel_impl and cpu_flash_attention): queries in blocks of 32 (L < 192), 64
# (192 <= L < 768) or 256 (L >= 768), keys in blocks of 512; a partial block where L or S is not
# a multiple.  Each size below is a block boundary, one short of it or one past it.
MODEL_L_PAST = (257, 511, 512, 513, 767, 768, 769, 1023, 1024, 1025)  # queries past a 256 block
MODEL_L_SOME = (33, 63, 64, 65, 127, 191, 192, 193, 255, 256)  # several 32 or 64 blocks
MODEL_L_FEW = (1, 2, 16, 17, 31, 32)  # one query block (decode steps among them)
MODEL_S_PAST = (513, 1023, 1024, 1025, 1536, 2047, 2048, 2049)  # keys past a 512 block
MODEL_S_ONE = (1, 17, 33, 64, 65, 255, 256, 257, 511, 512)  # one key block
MODEL_HEAD_DIMS = (65, 64, 128, 80, 96)  # what models use, and an odd one (vector tails)
# (rows, columns) past a block: both, the queries only, the keys only, neither
TILE_PAIRS = ((MODEL_L_PAST, MODEL_S_PAST), (MODEL_L_PAST, MODEL_S_ONE),
              (MODEL_L_FEW + MODEL_L_SOME, MODEL_S_PAST), (MODEL_L_SOME, MODEL_S_ONE))
# one example's memory: the math kernel's scores, B * H * L * S, and k, B * H * S * E
MAX_SCORES = 1 << 22
MAX_KV = 1 << 21
# the mask forms SDPA is called with at model sizes (see `model_size_problems`)
SCENARIOS = ("key padding (B,1,1,S)", "causal is_causal", "causal lower-right (L,S)", "any bool (B,1,L,S)",
             "any float (B,1,L,S)")
# values of k's component p: few, so that each query has few distinct scores
KEY_VALUES = ((-1.0, 0.0, 1.0), (0.0, 0.5, 2.0))


@dataclass(frozen=True)
class ModelSizeProblem:
    """SDPA at the sizes models use, in the form `conformance.attention.FewScores` judges
    cheaply: q zero but for component p (``a``), k's component p from `values` (``c``), its
    other components kappa * rho (rank one), v = alpha * beta, an upstream gradient gamma *
    delta; all on grids exact in every float dtype, drawn by NumPy from `seed` (`arrays`;
    `source` is the same as code)."""

    mask: LogicalMask
    scenario: str
    e: int
    p: int
    dtype: str
    scale: float | None
    values: tuple[float, ...]
    seed: int

    def arrays(self) -> dict:
        """The problem as NumPy float64 arrays: a [B,H,L], c, kappa, alpha [B,H,S], rho, beta,
        delta [E], gamma [B,H,L]; k = kappa * rho with c at component p; grad_out = gamma * delta."""
        import numpy as np

        m = self.mask
        rng = np.random.default_rng(self.seed)
        a = rng.integers(-32, 33, (m.b, m.h, m.L)) / 4
        c = rng.choice(np.array(self.values), (m.b, m.h, m.S))
        kappa = rng.integers(-8, 9, (m.b, m.h, m.S)) / 4
        rho = rng.integers(-4, 5, self.e) / 4
        rho[self.p] = 0
        alpha = rng.integers(-8, 9, (m.b, m.h, m.S)) / 4
        beta = rng.integers(1, 9, self.e) / 8
        gamma = rng.integers(-4, 5, (m.b, m.h, m.L)) / 4
        delta = rng.integers(-4, 5, self.e) / 4
        return {"a": a, "c": c, "kappa": kappa, "rho": rho, "alpha": alpha, "beta": beta, "gamma": gamma,
                "delta": delta}

    def source(self) -> list[str]:
        """The code that builds q, k, v and g (grad_out) with torch and NumPy only, as `arrays` does."""
        m, dt = self.mask, f"torch.{self.dtype}"
        return [f"rng = np.random.default_rng({self.seed})",
                f"a = rng.integers(-32, 33, ({m.b}, {m.h}, {m.L})) / 4",
                f"c = rng.choice(np.array({list(self.values)}), ({m.b}, {m.h}, {m.S}))",
                f"kappa = rng.integers(-8, 9, ({m.b}, {m.h}, {m.S})) / 4",
                f"rho = rng.integers(-4, 5, {self.e}) / 4; rho[{self.p}] = 0",
                f"alpha = rng.integers(-8, 9, ({m.b}, {m.h}, {m.S})) / 4",
                f"beta = rng.integers(1, 9, {self.e}) / 8",
                f"gamma = rng.integers(-4, 5, ({m.b}, {m.h}, {m.L})) / 4",
                f"delta = rng.integers(-4, 5, {self.e}) / 4",
                f"q = np.zeros(({m.b}, {m.h}, {m.L}, {self.e})); q[..., {self.p}] = a",
                f"k = kappa[..., None] * rho; k[..., {self.p}] = c",
                f"q, k, v, g = (torch.from_numpy(x).to({dt}) for x in (q, k, alpha[..., None] * beta, "
                f"gamma[..., None] * delta))"]


def _spread(draw, options, salt: int):
    """One of `options`, its index an even draw shifted by `salt` (sizes drawn before): with
    90 examples, an even draw alone gave one dtype of four 1 example; mixed with the sizes,
    which vary from example to example, each option gets its share."""
    return options[(draw(evenly(tuple(range(len(options))))) + salt) % len(options)]


def _boundary_or_any(draw, n, marks):
    """A length in 0..n: one of `marks` (those in range), n, n - 1, or any."""
    picks = tuple(x for x in (*marks, n, n - 1, 0) if 0 <= x <= n)
    if draw(booleans()):
        return draw(sampled_from(picks))
    return draw(integers(0, n))


@st.composite
def model_size_problems(draw, *, scenarios=SCENARIOS, dtypes=FLOATS):
    """A `ModelSizeProblem`: (L, S) from one of `TILE_PAIRS` (each a quarter of the draws), B and
    H with B * H up to 8 within `MAX_SCORES`, E from `MODEL_HEAD_DIMS` within `MAX_KV`, a mask
    for one of `scenarios`: key padding alone, causal alone (upper-left, as is_causal means
    it), causal lower-right as an (L,S) mask, or any mix of key and query padding, causal either
    way, a window and documents (every one keeps an interval of keys per query, which the
    oracle needs)."""
    bad = set(scenarios) - set(SCENARIOS)
    if bad:
        raise InvalidArgument(f"unknown scenarios {sorted(bad)}; choose from {SCENARIOS}")
    rows, cols = draw(evenly(TILE_PAIRS))
    L, S = draw(evenly(rows)), draw(evenly(cols))
    room = max(1, min(8, MAX_SCORES // (L * S)))
    b = draw(integers(1, min(3, room)))
    h = draw(integers(1, max(1, room // b)))
    scenario = _spread(draw, tuple(scenarios), L + S + b + h)
    if scenario.startswith("key padding"):
        # a padding mask (B,1,1,S) is told from a per-head or per-query one only where H and L pass 1
        L, h = max(L, 2), max(h, min(2, room // b))
    e = _spread(draw, tuple(x for x in MODEL_HEAD_DIMS if b * h * S * x <= MAX_KV) or (64,), L + S + b + h)
    kw = {}
    if scenario.startswith("key padding"):
        kw["key_lengths"] = tuple(_boundary_or_any(draw, S, (1, 512, 513)) for _ in range(b))
    elif scenario == "causal is_causal":
        kw["causal"] = "upper-left"  # what is_causal means
    elif scenario.startswith("causal"):
        kw["causal"] = "lower-right"  # a decode step, chunked prefill: what is_causal cannot say
    else:  # each component in half the examples, evenly: booleans() leans to False, and the
        # fourth of five draws (the window) fell under its margin in 90 examples
        if draw(HALF):
            kw["key_lengths"] = tuple(_boundary_or_any(draw, S, (1, 512, 513)) for _ in range(b))
        if draw(HALF):
            kw["query_lengths"] = tuple(_boundary_or_any(draw, L, (1, 32, 33, 256, 257)) for _ in range(b))
        if draw(HALF):
            kw["causal"] = draw(evenly(ALIGNMENTS))
        if draw(HALF):
            kw["window"] = draw(sampled_from((1, 32, 256, 513))) if draw(booleans()) else draw(integers(1, max(L, S)))
        if draw(HALF):
            kw["documents"] = (_documents(draw, L), _documents(draw, S))
    mask = LogicalMask(b, h, L, S, **kw)
    return ModelSizeProblem(mask, scenario, e, draw(integers(0, e - 1)), _spread(draw, tuple(dtypes), L + S + e + h),
                            draw(sampled_from((None, 1.0))), draw(sampled_from(KEY_VALUES)),
                            draw(integers(0, 2**32 - 1)))


# nn.MultiheadAttention at model sizes: self-attention over T tokens, T past the 256 and 512
# tiles (the flash kernel's query and key blocks, through SDPA on the need_weights=False and
# fast paths; one explicit softmax over [B*H, T, T] on the need_weights=True path)
MHA_T = (257, 320, 511, 513, 640, 767, 1025)
MHA_PATHS = ("need_weights", "no_weights", "eval")


@dataclass(frozen=True)
class MhaModelProblem:
    """nn.MultiheadAttention(E = heads * hd) on B sequences of T tokens in the form
    `conformance.attention.FewScores` judges cheaply: each token x_i is zero but for three
    components, x_i[0] = a_i, x_i[1] = c_i (from `values`), x_i[2] = alpha_i; the in-projection
    maps them to head h's q component 0 = scales[h] * a_i, k component 0 = c_i and v = alpha_i *
    beta, so head h's score is scales[h] * a_i * c_j / sqrt(hd); out_proj is I with a bias.  The
    mask: key padding past `mask.key_lengths`, causal when `mask.causal`, given as a bool or
    float (-inf) key_padding_mask and [T, T] attn_mask; `path` as in `MHA_PATHS`."""

    mask: LogicalMask
    hd: int
    dtype: str
    path: str
    mask_type: str
    values: tuple[float, ...]
    scales: tuple[float, ...]
    seed: int

    def arrays(self) -> dict:
        """a, c, alpha [B, T], beta [hd], the out-projection bias [E], as NumPy float64."""
        import numpy as np

        m, rng = self.mask, np.random.default_rng(self.seed)
        return {"a": rng.integers(-32, 33, (m.b, m.L)) / 4, "c": rng.choice(np.array(self.values), (m.b, m.L)),
                "alpha": rng.integers(-8, 9, (m.b, m.L)) / 4, "beta": rng.integers(1, 9, self.hd) / 8,
                "bias": rng.integers(-4, 5, self.hd * m.h) / 8}

    def source(self) -> list[str]:
        m = self.mask
        return [f"rng = np.random.default_rng({self.seed})",
                f"a = rng.integers(-32, 33, ({m.b}, {m.L})) / 4",
                f"c = rng.choice(np.array({list(self.values)}), ({m.b}, {m.L}))",
                f"alpha = rng.integers(-8, 9, ({m.b}, {m.L})) / 4",
                f"beta = rng.integers(1, 9, {self.hd}) / 8",
                f"bias = rng.integers(-4, 5, {self.hd * m.h}) / 8"]


@st.composite
def mha_model_size_problems(draw):
    """An `MhaModelProblem`: T from `MHA_T`, B * heads * T * T within `MAX_SCORES`, head dims of
    64, 128 or an odd 65, key lengths at a boundary or anywhere (0 allowed), causal or not, bool
    or float masks, every path, float32 or float64."""
    t = draw(evenly(MHA_T))
    heads = draw(evenly(tuple(h for h in (1, 2, 4) if h * t * t <= MAX_SCORES)))
    b = draw(integers(1, max(1, min(2, MAX_SCORES // (heads * t * t)))))
    hd = draw(evenly((64, 128, 65)))
    lengths = tuple(_boundary_or_any(draw, t, (256, 512, 1024)) for _ in range(b))
    causal = draw(booleans())
    mask = LogicalMask(b, heads, t, t, key_lengths=lengths, causal="upper-left" if causal else None)
    scales = tuple(draw(sampled_from((1.0, 0.5, -1.0, 2.0))) for _ in range(heads))
    return MhaModelProblem(mask, hd, draw(evenly(("float32", "float64"))), draw(evenly(MHA_PATHS)),
                           draw(evenly(("bool", "float"))), draw(sampled_from(KEY_VALUES)), scales,
                           draw(integers(0, 2**32 - 1)))
