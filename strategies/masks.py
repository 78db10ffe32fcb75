"""Masks: random boolean masks in any layout, softmax keep-masks built row by row, the
attention idioms (padding, causal, both), and non-bool masks for the error paths."""

from __future__ import annotations

from hypothesis import strategies as st

from conformance import rules
from conformance.tensors import TensorSpec
from strategies._cache import booleans, cached, evenly, integers, sampled_from
from strategies._coding import digit_strings, digits
from strategies.layouts import KINDS, tensors

ROW_PATTERNS = ("random", "random", "all", "none", "one", "prefix")


_MASK_ELEMENTS = {"random": booleans(), "all": st.just(True), "none": st.just(False)}


@cached
def bool_masks(shape, *, kinds=KINDS):
    """A bool `TensorSpec` of `shape` in a layout from `kinds`: all True, all False or random."""
    return sampled_from(["random", "random", "all", "none"]).flatmap(
        lambda p: tensors(shape, "bool", kinds=kinds, elements=_MASK_ELEMENTS[p]))


_ZERO_ONE = sampled_from((0, 1))
_SAME_SHAPE = sampled_from((True, False, False, False))
_TO_ZERO = evenly((False,) * 7 + (True,))


@cached
def non_bool_masks(shape):
    """A 0/1 mask of a dtype masked_fill must refuse (uint8 legacy masks, ints, floats)."""
    return sampled_from(["uint8", "int32", "int64", "float32", "float16"]).flatmap(
        lambda dt: tensors(shape, dt if dt != "uint8" else "int32", elements=_ZERO_ONE,
                           kinds=("contiguous",)).map(
            lambda spec: TensorSpec.contiguous(spec.shape, dt, spec.values)))


def _row(pattern, width, arg):
    """(values, the NumPy expression that makes them) of one keep-mask row."""
    import numpy as np

    if width == 0:  # an empty row: every pattern is the same
        return [], "np.zeros(0, bool)"
    if pattern == "all":
        return [True] * width, f"np.ones({width}, bool)"
    if pattern == "none":
        return [False] * width, f"np.zeros({width}, bool)"
    if pattern == "one":
        return [False] * arg + [True] + [False] * (width - arg - 1), f"(np.arange({width}) == {arg})"
    if pattern == "prefix":
        return [True] * arg + [False] * (width - arg), f"(np.arange({width}) < {arg})"
    seed, density = arg
    values = (np.random.default_rng(seed).random(width) < density).tolist()
    return values, f"(np.random.default_rng({seed}).random({width}) < {density!r})"


_SEEDS = st.integers(0, 2**32 - 1)
DRAWN_ROWS = 4
DENSITIES = (0.1, 0.5, 0.9)


@cached
@st.composite
def keep_masks(draw, shape, dim=-1, *, patterns=ROW_PATTERNS):
    """A bool keep-mask (True = may be attended) of `shape` whose rows along `dim` each follow
    a pattern: random, all kept, none kept (fully masked), exactly one kept, or a kept
    prefix (padding).  Wide masks carry a NumPy expression for the reproduction.

    Two draws, whatever the shape: the patterns of the first DRAWN_ROWS rows as one number
    (a digit each; shrinks to the first pattern), and a seed for the rest (each row's kept
    position, prefix length or random bits, and the patterns of further rows).  A draw per
    row and argument cost a choice each, and choice sequences of varying length, which
    Hypothesis's mutator splices into sequences that run out (discarded calls)."""
    import numpy as np

    shape = tuple(shape)
    rows = rules.rows_along(shape, dim) if shape else (range(1),)
    width = len(rows[0]) if rows else 0
    drawn = min(len(rows), DRAWN_ROWS)
    first = digits(draw(digit_strings(len(patterns), drawn)), len(patterns), drawn)
    rng = np.random.default_rng(draw(_SEEDS))
    values = [False] * rules.numel(shape)
    sources = []
    for r, row in enumerate(rows):
        pattern = patterns[first[r] if r < drawn else int(rng.integers(len(patterns)))]
        arg = (int(rng.integers(max(width, 1))) if pattern == "one" else
               int(rng.integers(1, max(width, 1) + 1)) if pattern == "prefix" else
               (int(rng.integers(2**32)), DENSITIES[int(rng.integers(len(DENSITIES)))])
               if pattern == "random" else None)
        row_values, src = _row(pattern, width, arg)
        sources.append(src)
        values[row.start:row.stop:row.step] = row_values
    canonical_last = dim in (-1, len(shape) - 1)
    source = (f"np.stack([{', '.join(sources)}]).reshape({shape})"
              if canonical_last and len(values) > 64 else None)
    return TensorSpec(shape, "bool", tuple(values), rules.contiguous_strides(shape), 0,
                      tuple(values), layout="contiguous", numpy_source=source)


ATTENTION_KINDS = ("padding", "causal", "both")


@cached
@st.composite
def attention_masks(draw, *, max_batch=3, max_heads=3, max_len=8, min_len=1, min_length=1,
                    kinds=ATTENTION_KINDS, min_batch=1):
    """An attention scenario from the source material: (B, H, T, lengths, kind, seed), lengths
    in [min_length, T] (0 pads a whole sequence: its queries see no key), and kind one of
    `kinds`: "padding" ([B,1,1,T] keep-mask from sequence lengths), "causal" (tril(ones(T,T))
    expanded to [B,1,T,T]), "both", or "per-head" (a random [B,H,T,T] keep-mask from NumPy's
    generator seeded with `seed`: a different mask for every head and sequence)."""
    b = draw(integers(min_batch, max_batch))
    h = draw(integers(1, max_heads))
    t = draw(integers(min_len, max_len))
    lengths = tuple(draw(integers(min_length, t)) for _ in range(b))
    kind = draw(sampled_from(tuple(kinds)))
    seed = draw(_SEEDS) if kind == "per-head" else 0
    return b, h, t, lengths, kind, seed


@cached
@st.composite
def masked_fill_args(draw, *, one_way=None, dtype_names=None, self_kinds=KINDS, fills=None):
    """(self, mask, fill) for masked_fill: self a `TensorSpec` of any dtype (nan/inf included)
    in a layout from `self_kinds`, a bool mask whose shape broadcasts with self's (only
    one-way onto self when `one_way`; in a quarter of draws not `one_way=False`, the shape of
    self), and a `FillValue` (valid or not for the dtype)."""
    from strategies.shapes import array_shapes, broadcastable_shapes, one_way_pairs, stretched_to_zero
    from strategies.values import fill_values, supported, values_or_edges

    # every dtype of self is claimed: drawn evenly, none left to Hypothesis's lean to the first
    dtype = draw(evenly(supported(tuple(dtype_names or rules.DTYPES))))
    if one_way is not False and draw(_SAME_SHAPE):
        # A mask the shape of self with every side past 1, as attention code builds one: the
        # one draw where a permuted mask is common (broadcast pairs rarely have two sides > 1).
        self_shape = mask_shape = draw(array_shapes(min_dims=2, min_side=2))
    elif one_way if one_way is not None else draw(booleans()):
        mask_shape, self_shape = draw(one_way_pairs())
    elif draw(_TO_ZERO):  # a side of 1 stretched against 0 (either way): one broadcast pair in a hundred
        self_shape, mask_shape = draw(stretched_to_zero(2))
    else:
        self_shape, mask_shape = draw(broadcastable_shapes(2))
    x = draw(tensors(self_shape, dtype, kinds=self_kinds, elements=draw(values_or_edges(dtype))))
    mask = draw(bool_masks(mask_shape))
    fill = draw(fills(dtype) if fills else fill_values(dtype))
    return x, mask, fill
