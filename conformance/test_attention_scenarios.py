"""The attention situations of the source material, checked against the oracle.

Masks are built the way tutorial code builds them (``torch.ones(B, T) > 0`` then
``unsqueeze``; ``torch.tril(torch.ones(T, T)).expand(B, 1, T, T)``); the expected keep
pattern is computed in pure Python: a padding mask keeps key j of sequence b iff
j < length[b]; a causal mask keeps key j for query i iff j <= i (diagonal included).  A
per-head mask is a random [B,H,T,T] keep-mask (a different one for every head and sequence).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.fx.experimental.symbolic_shapes  # noqa: F401  (see below)
from hypothesis import given, strategies as st

from conformance import attention_apis as apis
from conformance import attention, device_ops, reach, rules, tolerances
from conformance.failures import Case, attempt, close_with
from conformance.tensors import TORCH_DTYPES, TensorSpec, read
from strategies import attention_masks, dtypes, elements, sampled_from
from strategies.attention import EIGHTHS, QUARTERS
from strategies.layouts import element_lists, relayout

DTYPES = rules.FLOAT_DTYPES
pytestmark = pytest.mark.torch_tensors
# q, k, v and projection weights on grids whose products are exact: scores carry no rounding
_HEAD_DIMS = sampled_from([1, 4, 16])
_MHA_HEADS = sampled_from([(1, 4), (2, 4), (2, 1), (3, 1)])
# nn.MultiheadAttention's forward imports torch.fx.experimental.symbolic_shapes on first use
# (its shape checks; about 0.5 s, once per process): imported above, with the module, so that
# a one-time cost is not charged to the first of the property's 300 examples.  The other
# properties import it too (a serial run without this one does), so the import moves, not adds.


def keep_table(kind, b, h, t, lengths, seed):
    """The oracle's keep rule, as keep[b][h][i][j] for query i and key j: padding keeps key j of
    sequence b iff j < lengths[b]; causal iff j <= i; per-head the drawn mask (the same NumPy
    expression the reproduction shows)."""
    if kind == "per-head":
        import numpy as np

        return (np.random.default_rng(seed).random((b, h, t, t)) < PER_HEAD_DENSITY).tolist()
    return [[[[(j < lengths[bi] if kind != "causal" else True) and (j <= i if kind != "padding" else True)
               for j in range(t)] for i in range(t)]] * h for bi in range(b)]


PER_HEAD_DENSITY = 0.5


def build_mask(ops, kind, b, h, t, lengths, seed, device):
    """The keep-mask as the tutorials build it: padding [B,1,1,T], causal [B,1,T,T]; a per-head
    mask is [B,H,T,T]."""
    if kind == "per-head":
        return torch.tensor(keep_table(kind, b, h, t, lengths, seed), device=device)
    pad = torch.ones(b, t, device=device) > 0
    for s, n in enumerate(lengths):
        pad[s][n:] = False
    pad = pad.unsqueeze(1).unsqueeze(2)
    causal = ops.expand(ops.tril(torch.ones(t, t, device=device)), (b, 1, t, t)) == 1
    return {"padding": pad, "causal": causal, "both": pad & causal}[kind]


MASK_CODE = {
    "padding": ["keep = torch.ones(B, T) > 0", "for s, n in enumerate(lengths): keep[s][n:] = False",
                "keep = keep.unsqueeze(1).unsqueeze(2)  # [B, 1, 1, T]"],
    "causal": ["keep = torch.tril(torch.ones(T, T)).expand(B, 1, T, T) == 1"],
    "per-head": ["import numpy as np",
                 f"keep = torch.from_numpy(np.random.default_rng(seed).random((B, H, T, T)) < {PER_HEAD_DENSITY})"],
}
MASK_CODE["both"] = [*MASK_CODE["padding"], "keep = keep & (torch.tril(torch.ones(T, T)) == 1)"]
SCENARIO_KINDS = ("padding", "causal", "both", "per-head")


@st.composite
def scenarios(draw, large=False):
    """(B, H, T, lengths, kind, seed, scores [B, H, T, T]): a scenario of `attention_masks` with
    scores in [-20, 20]; with `large`, one in sixteen a model's sequence (T = 257 or 320, past
    the 256 tile in both dims: rows and columns) with scores from a seeded NumPy generator."""
    dtype = draw(dtypes(DTYPES))
    if large and draw(_LARGE) == 0:
        t, b = draw(sampled_from(LARGE_T)), draw(st.integers(1, 2))
        lengths = tuple(draw(st.integers(1, t)) for _ in range(b))
        kind = draw(sampled_from(SCENARIO_KINDS))
        seed = draw(st.integers(0, 2**32 - 1))
        return b, 1, t, lengths, kind, seed, _seeded_scores((b, 1, t, t), dtype, seed)
    b, h, t, lengths, kind, seed = draw(attention_masks(kinds=SCENARIO_KINDS))
    n = b * h * t * t
    scores = draw(element_lists(elements(dtype, min_value=-20, max_value=20), n))
    return b, h, t, lengths, kind, seed, TensorSpec.contiguous((b, h, t, t), dtype, scores)


_LARGE = st.integers(0, 15)
LARGE_T = (257, 320)


def _seeded_scores(shape, dtype, seed) -> TensorSpec:
    """Scores k / 4 for k in [-80, 80] (exact in every float dtype) from a seeded NumPy generator:
    its source in the reproduction instead of a hundred thousand literals."""
    import numpy as np

    n = rules.numel(shape)
    src = f"(np.random.default_rng({seed}).integers(-80, 81, {n}) / 4)"
    values = tuple(float(v) / 4 for v in np.random.default_rng(seed).integers(-80, 81, n))
    return TensorSpec(shape, dtype, values, rules.contiguous_strides(shape), 0, values, numpy_source=src)


def expected_weights(keep, b, h, t, scores):
    out = []
    for bi in range(b):
        for hi in range(h):
            for i in range(t):
                start = len(out)
                row = scores.values[start:start + t]
                out.extend(rules.softmax(row, keep[bi][hi][i]) or [math.nan] * t)
    return out


def scenario_case(rule, device, b, h, t, lengths, kind, seed, scores):
    case = Case(rule, device).tensor("scores", scores)
    case.inputs.append(f"mask: {kind}, B={b}, H={h}, T={t}, lengths={list(lengths)}"
                       + (f", seed={seed}" if kind == "per-head" else ""))
    return case.run(f"B, H, T, lengths, seed = {b}, {h}, {t}, {list(lengths)}, {seed}", *MASK_CODE[kind])


KEEP_RULES = {"padding": "key j < length[b]", "causal": "key j <= query i", "both": "j < length[b] and j <= i",
              "per-head": "the drawn [B,H,T,T] mask"}


def check_weights(case, got, want, dtype, t, kind, lengths):
    tol = tolerances.probabilities(dtype, t)
    case.check_values(got, want, (len(got) // t, t), close=close_with(tol),
                      what=f"attention weights differ from the {kind} rule ({tol})",
                      extra="keep rule: " + KEEP_RULES[kind])


MASK_SHAPES = ("rank:equal", "stretch:1-vs-n", "mask.varies:dim-3", "mask.varies:dim-4")
ROWS = ("rows:none", "rows:prefix", "rows:all", "rows:other")


@pytest.mark.ops("masked_fill", "softmax", "tril", "expand")
@pytest.mark.reach(*reach.of("masked_fill", *MASK_SHAPES, *(f"mask.{r}" for r in ROWS)),
                   *reach.dtypes("masked_fill.self", DTYPES), "softmax.x.values:-inf",
                   *reach.octaves("softmax.width", 8, 1),
                   " | ".join(dict.fromkeys(f"softmax.width:{reach.band(t)}" for t in LARGE_T)))
@given(args=scenarios(large=True))
def test_masked_fill_softmax_attends_only_to_kept_keys(device, args):
    """scores.masked_fill(keep == False, -inf).softmax(-1) gives each query the oracle's
    softmax over exactly the kept keys (padding, causal with the diagonal, or both)."""
    b, h, t, lengths, kind, seed, scores = args
    case = scenario_case("padding hides keys >= length; causal keeps j <= i; a per-head mask hides per head",
                         device, b, h, t, lengths, kind, seed, scores)
    case.run("w = scores.masked_fill(keep == False, float('-inf')).softmax(-1)", "print(w)")
    ops = device_ops.for_device(device)
    keep = build_mask(ops, kind, b, h, t, lengths, seed, device)
    w = ops.softmax(ops.masked_fill(scores.build(device), keep == False, float("-inf")), -1)  # noqa: E712
    check_weights(case, read(w), expected_weights(keep_table(kind, b, h, t, lengths, seed), b, h, t, scores),
                  scores.dtype, t, kind, lengths)


@pytest.mark.ops("scaled_dot_product_attention", "tril", "expand")
@pytest.mark.reach(*reach.of("scaled_dot_product_attention", "attn_mask.form:(B,1,1,S)", "attn_mask.form:(B,1,L,S)",
                             "attn_mask.form:(B,H,L,S)", "attn_mask.varies:dim-3", "attn_mask.varies:dim-4",
                             "E:1", "E:2^2", "E:2^4", *(f"attn_mask.{r}" for r in ROWS)),
                   *reach.dtypes("scaled_dot_product_attention.q", DTYPES),
                   *reach.octaves("scaled_dot_product_attention.S", 8, 1))
@given(args=scenarios(), data=st.data())
def test_sdpa_with_bool_mask_matches_oracle(device, args, data):
    """F.scaled_dot_product_attention(q, k, v, attn_mask=keep) equals the oracle's masked
    softmax of q @ k.T * scale, times v (True = take part, the opposite of MHA)."""
    b, h, t, lengths, kind, seed, _ = args
    dtype = args[6].dtype
    e = data.draw(_HEAD_DIMS, label="head dim")
    q, k, v = (TensorSpec.contiguous((b, h, t, e), dtype, data.draw(
        element_lists(QUARTERS, b * h * t * e), label=n)) for n in "qkv")
    case = Case("SDPA: softmax(q @ k.T / sqrt(E) over kept keys) @ v", device)
    case.tensor("q", q).tensor("k", k).tensor("v", v)
    case.inputs.append(f"mask: {kind}, lengths={list(lengths)}" + (f", seed={seed}" if kind == "per-head" else ""))
    case.run(f"B, H, T, lengths, seed = {b}, {h}, {t}, {list(lengths)}, {seed}", *MASK_CODE[kind],
             "import torch.nn.functional as F", "print(F.scaled_dot_product_attention(q, k, v, attn_mask=keep))")
    ops = device_ops.for_device(device)
    keep = build_mask(ops, kind, b, h, t, lengths, seed, device)
    table = keep_table(kind, b, h, t, lengths, seed)
    out = ops.scaled_dot_product_attention(q.build(device), k.build(device), v.build(device), attn_mask=keep)
    scale = 1 / math.sqrt(e)
    want, smax = [], 0.0
    policy = apis.policy("sdpa")  # a query with no key left: nan before torch 2.5, zeros since
    empty = 0.0 if policy.rows == "zeros" else math.nan
    for bi in range(b):
        for hi in range(h):
            base = (bi * h + hi) * t * e
            rows_q = [q.values[base + i * e: base + (i + 1) * e] for i in range(t)]
            rows_k = [k.values[base + j * e: base + (j + 1) * e] for j in range(t)]
            rows_v = [v.values[base + j * e: base + (j + 1) * e] for j in range(t)]
            for i in range(t):
                s = [math.fsum(a * c for a, c in zip(rows_q[i], rows_k[j])) * scale for j in range(t)]
                smax = max(smax, *map(abs, s))
                p = rules.softmax(s, table[bi][hi][i])
                want.extend(math.fsum(p[j] * rows_v[j][c] for j in range(t)) if p else empty for c in range(e))
    tol = tolerances.attention_output(dtype, t, max(map(abs, v.values), default=1.0), smax)
    case.check_values(read(out), want, (b, h, t, e), close=close_with(tol),
                      what=f"SDPA output differs from the oracle ({tol}; a query with no kept key: "
                           f"{policy.rows}, torch {policy.torch}: {policy.source})")


@pytest.mark.ops("multihead_attention")
@pytest.mark.reach(*reach.of("multihead_attention", "key_padding_mask.rows:none", "key_padding_mask.rows:all",
                             "key_padding_mask.rows:other", "attn_mask.dtype:bool", "attn_mask.ndim:3",
                             "attn_mask.varies:dim-3", "outcome:raises"), *reach.layouts("multihead_attention.query"),
                   *reach.dtypes("multihead_attention.query", ("float32", "float64")),
                   "multihead_attention.query.numel:0", *reach.ranges("multihead_attention.S", 20, 1, edges=(1, 8, 16)))
@given(data=st.data())
def test_multihead_attention_weights_match_oracle(device, data):
    """nn.MultiheadAttention's per-head weights equal the oracle's softmax of its own
    projections, with key_padding_mask / attn_mask (2-d, or (B * heads, T, T) per head) True
    meaning *ignore*; a query with no key left gets nan weights (observed policy,
    undocumented); a key_padding_mask of the wrong length raises."""
    # an empty batch, and sequences past 16 tokens (two 8-lane vectors and a tail)
    b, _, t, lengths, kind, seed = data.draw(attention_masks(min_length=0, min_batch=0, max_len=20,
                                                            kinds=SCENARIO_KINDS), label="scenario")
    dtype = data.draw(dtypes(("float32", "float64")), label="dtype")
    heads, hd = data.draw(_MHA_HEADS, label="heads, head dim")
    emb = heads * hd
    grid = EIGHTHS
    w = data.draw(element_lists(grid, 3 * emb * emb), label="in_proj_weight")
    bias = data.draw(element_lists(grid, 3 * emb), label="in_proj_bias")
    xs = data.draw(element_lists(grid, b * t * emb), label="x")
    use_kpm = kind in ("padding", "both")
    use_causal = kind in ("causal", "both", "per-head")  # per head: a (B * heads, T, T) attn_mask
    mha = torch.nn.MultiheadAttention(emb, heads, batch_first=True, dtype=TORCH_DTYPES[dtype], device=device)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.tensor(w, dtype=TORCH_DTYPES[dtype]).reshape(3 * emb, emb))
        mha.in_proj_bias.copy_(torch.tensor(bias, dtype=TORCH_DTYPES[dtype]))
    x = relayout(data.draw, TensorSpec.contiguous((b, t, emb), dtype, xs))  # query = key = value, any layout
    xs = list(x.values)  # an expanded layout repeats a slice's values
    kpm = torch.tensor([[j >= n for j in range(t)] for n in lengths], dtype=torch.bool,
                       device=device).reshape(b, t)  # True = ignore
    table = keep_table(kind, b, heads, t, lengths, seed)
    causal = torch.ones(t, t, dtype=torch.bool, device=device).triu(1)  # True = ignore
    if kind == "per-head":
        causal = ~torch.tensor(table, dtype=torch.bool, device=device).reshape(b * heads, t, t)
    case = Case("MultiheadAttention: True in key_padding_mask / attn_mask means ignore", device)
    case.tensor("x", x).inputs.append(f"mask: {kind}, lengths={list(lengths)}, heads={heads}")
    case.run(f"mha = torch.nn.MultiheadAttention({emb}, {heads}, batch_first=True, dtype=torch.{dtype})",
             f"with torch.no_grad(): mha.in_proj_weight.copy_(torch.tensor({w}).reshape({3 * emb}, {emb})); "
             f"mha.in_proj_bias.copy_(torch.tensor({bias}))",
             f"kpm = torch.tensor({[[j >= n for j in range(t)] for n in lengths]}, dtype=torch.bool).reshape({b}, {t})",
             *([f"causal = torch.ones({t}, {t}, dtype=torch.bool).triu(1)"] if kind != "per-head" else
               [f"B, H, T, seed = {b}, {heads}, {t}, {seed}", *MASK_CODE["per-head"],
                "causal = ~keep.reshape(B * H, T, T)  # True = ignore"]),
             f"_, w = mha(x, x, x, key_padding_mask={'kpm' if use_kpm else None}, "
             f"attn_mask={'causal' if use_causal else None}, average_attn_weights=False)", "print(w)")
    t_x = x.build(device)
    _, weights = device_ops.for_device(device).multihead_attention(
        mha, t_x, t_x, t_x, key_padding_mask=kpm if use_kpm else None, attn_mask=causal if use_causal else None)
    # the keep table as a mask of one per-head pattern: MultiheadAttention's weights by the oracle
    mask = attention.LogicalMask(b, heads, t, t, per_head=table)
    want = attention.mha_expected(mask, xs, heads, w, bias).weights
    check_weights(case, read(weights), want, dtype, t, kind, lengths)
    if use_kpm and b:  # a key padding mask one key too long is refused, not cut or broadcast
        wrong = torch.zeros(b, t + 1, dtype=torch.bool, device=device)
        try:
            device_ops.for_device(device).multihead_attention(mha, t_x, t_x, t_x, key_padding_mask=wrong)
        except (RuntimeError, AssertionError):  # nn.MultiheadAttention checks shapes with torch._assert
            pass
        else:
            case.fail("a key_padding_mask of T + 1 keys was accepted", expected="an error", actual="weights")


# --------------------------------------------------------------------------- tril


@st.composite
def tril_inputs(draw):
    """(x, diagonal): x of 0 to 4 dims (0 or 1 dims: refused) of any dtype in any layout, a
    diagonal from below the last row to past the last column; one in sixteen a contiguous
    matrix of 257, 320 or 513 rows and columns (a causal mask at model size; one side 17 at times)
    with the diagonals an aligned causal mask uses."""
    from strategies import array_shapes, tensors
    from strategies.values import values_or_edges

    dtype = draw(dtypes(rules.DTYPES))
    if draw(_LARGE_TRIL) == 0:  # a causal mask's size: rows and columns past a tile of 256
        rows, cols = draw(sampled_from(_TRIL_SIDES)), draw(sampled_from(_TRIL_SIDES))
        shape = (rows, cols)
        x = _seeded(shape, dtype, draw(st.integers(0, 2**32 - 1)))
        return x, draw(sampled_from((0, 1, -1, cols - rows, cols - rows + 1, -rows, cols)))
    shape = draw(array_shapes(min_dims=0, max_dims=4, max_side=8, max_elements=128))
    x = draw(tensors(shape, dtype, elements=draw(values_or_edges(dtype))))
    rows, cols = (shape[-2], shape[-1]) if len(shape) >= 2 else (1, 1)
    return x, draw(st.integers(-rows - 1, cols + 1))


_LARGE_TRIL = st.integers(0, 15)
_TRIL_SIDES = (257, 320, 513, 17)


def _seeded(shape, dtype, seed) -> TensorSpec:
    """A contiguous `dtype` tensor of `shape` with small integer (or quarter) values from a seeded
    NumPy generator: its source in the reproduction instead of a quarter million literals."""
    import numpy as np

    n = rules.numel(shape)
    raw = np.random.default_rng(seed).integers(-64, 65, n)
    if dtype == "bool":
        values, src = tuple(bool(v > 0) for v in raw), f"(np.random.default_rng({seed}).integers(-64, 65, {n}) > 0)"
    elif dtype in rules.INT_DTYPES:
        values, src = tuple(int(v) for v in raw), f"np.random.default_rng({seed}).integers(-64, 65, {n})"
    else:
        values, src = tuple(float(v) / 4 for v in raw), f"(np.random.default_rng({seed}).integers(-64, 65, {n}) / 4)"
    return TensorSpec(shape, dtype, values, rules.contiguous_strides(shape), 0, values,
                      numpy_source=src)


@pytest.mark.ops("tril")
@pytest.mark.reach(*reach.layouts("tril.x"), *reach.dtypes("tril.x", rules.DTYPES), "tril.x.ndim:2", "tril.x.ndim:3",
                   *reach.of("tril", "diagonal:negative", "diagonal:0", "diagonal:positive", "outcome:raises",
                             "outcome:returns"), *reach.specials("tril.x", rules.DTYPES),
                   *reach.ranges("tril.x.numel", 128, edges=(0, 1, 16)),
                   reach.tiles_between("tril", "rows", (256, 1024), "cols", (256, 1024)),
                   reach.tiles_between("tril", "rows", (0, 16), "cols", (0, 16)))
@given(args=tril_inputs())
def test_tril_keeps_the_lower_triangle(device, args):
    """torch.tril(x, diagonal) keeps x[..., i, j] where j - i <= diagonal and puts 0 (False)
    everywhere else, for every leading batch dim; a tensor of fewer than 2 dims raises.  (How
    tutorials build causal masks; a diagonal offset aligns a causal mask when L != S.)"""
    x, diagonal = args
    case = Case("tril keeps j - i <= diagonal, zeroes the rest", device).tensor("x", x)
    case.inputs.append(f"diagonal: {diagonal}")
    case.run(f"print(torch.tril(x, {diagonal}))")
    ops = device_ops.for_device(device)
    out, err = attempt(lambda: ops.tril(x.build(device), diagonal))
    if case.check_outcome(None if len(x.shape) >= 2 else ValueError("tril needs 2+ dims"), err, kind="tril_dims"):
        return
    zero = rules.cast_scalar(0, x.dtype)
    want = [v if idx[-1] - idx[-2] <= diagonal else zero for idx, v in zip(rules.ndindex(x.shape), x.values)]
    case.check_values(read(out), want, x.shape, what=f"tril(x, {diagonal}) kept or zeroed the wrong entries")
