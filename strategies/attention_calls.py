"""The arguments of each attention API's call: mask expressions and forms for SDPA, its causal
variants, GQA, jagged nested tensors, MultiheadAttention and TransformerEncoder.

Drawn for the properties in `conformance.test_attention_apis`; the problems themselves (a
logical mask with q, k, v) come from `strategies.attention`.
"""

from __future__ import annotations

import dataclasses
import math

from hypothesis import assume, strategies as st

from conformance import rules
from conformance.tensors import TensorSpec
from strategies._cache import booleans, sampled_from
from strategies.attention import EIGHTHS, QUARTERS, attention_problems, logical_masks
from strategies.layouts import draw_elements, relayout

__all__ = ["CAUSAL_EXPRESSIONS", "EXPRESSIONS", "MHA_PATHS", "causal_args", "encoder_args", "gqa_args",
           "jagged_args", "mask_forms", "mha_args", "sdpa_mask_args"]

FLOATS = rules.FLOAT_DTYPES

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
    return p, expression, form, layout, spec


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


@st.composite
def gqa_args(draw):
    """A GQA problem (H = Hkv * group) with a [B,H,L,S] bool mask or none; one in four with one
    query head too many (Hkv >= 2, so the kv heads do not divide the query heads)."""
    p = draw(attention_problems(gqa=True))
    with_mask = draw(booleans())
    wrong = p.kv_heads >= 2 and draw(st.integers(0, 3)) == 0
    return p, with_mask, wrong


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
    q, k = (draw_elements(draw, QUARTERS, n) for _ in range(2))
    return lengths, h, e, dtype, q, k, draw_elements(draw, EIGHTHS, n)


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


@st.composite
def encoder_args(draw):
    """(B, T, lengths, layers, causal, dtype, seed): left-aligned padding (0 allowed)."""
    b, t = draw(st.integers(1, 3)), draw(st.integers(1, 8))
    lengths = tuple(draw(st.integers(0, t)) for _ in range(b))
    assume(any(lengths))  # a batch with no token at all: test_fast_paths_accept_a_batch_of_empty_sequences
    return (b, t, lengths, draw(st.integers(1, 2)), draw(booleans()),
            draw(sampled_from(("float32", "float64"))), draw(st.integers(0, 2**16)))
