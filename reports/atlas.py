"""The mask atlas: what the running torch does with each way of applying a mask, in each situation
attention code meets (``python -m reports atlas``).

Every cell is computed now, by running torch on a small concrete example, and shown beside the
oracle (`conformance.rules.softmax` over the kept keys, pure Python) and the API's documented
policy (`conformance.implementations`, `conformance.attention_apis`), with the property that
checks it.  Attention cells read the attention *weights* through the identity trick: q = 0
(so every kept key scores the same) and v = I (so the output is the weights), hence a row
that keeps k keys shows 1/k at each of them.

The committed copy (docs/atlas.md, docs/atlas.html) is the one for the CI torch (the ``test``
group's); a self-test regenerates it and fails when it is stale.  Values are printed with three
significant digits, so the page does not depend on the last bit of a CPU's kernels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

PROPERTIES = "../conformance/"  # property links are relative to docs/


@dataclass
class Cell:
    api: str               # the API or idiom, as the user writes it
    got: str               # what torch returned (rows), or the error it raised
    oracle: str            # the rule's answer (rows), "-" where none applies
    policy: str            # the documented policy or convention that decides it
    checked_by: str        # module.py::property


@dataclass
class Situation:
    title: str
    setup: str             # the example in words
    cells: list[Cell]


def fmt(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return "0" if v == 0 else f"{v:.3g}"


def rows_text(rows) -> str:
    return " ".join("[" + ", ".join(fmt(float(v)) for v in row) + "]" for row in rows)


def _oracle(keep_rows, logits_rows=None) -> str:
    from conformance import rules

    out = []
    for i, keep in enumerate(keep_rows):
        row = [0.0] * len(keep) if logits_rows is None else logits_rows[i]
        p = rules.softmax(row, keep)
        out.append("(no kept key)" if p is None else "[" + ", ".join(fmt(x) for x in p) + "]")
    return " ".join(out)


def _run(fn) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return rows_text(fn())
        except Exception as e:  # the atlas shows what the call does, refusals included
            return f"raises {type(e).__name__}: {' '.join(str(e).split())[:140]}"


# --------------------------------------------------------------------------- the masked-softmax idioms


def _idiom_situations(torch) -> list[Situation]:
    from conformance import backends
    from conformance.implementations import IMPLEMENTATIONS

    ops = backends.load("torch")
    examples = [
        ("A fully masked row", "logits [[1, 2, 3], [1, 2, 3]] (float32), keep [[T, T, F], [F, F, F]]: the "
         "second row keeps nothing",
         [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], [[True, True, False], [False, False, False]], torch.float32,
         "test_masked_softmax.py::test_masked_softmax_fully_masked_rows_follow_policy"),
        ("Masked logits holding +inf, nan or -inf", "logits [[0, 0, inf], [0, 0, nan], [0, 0, -inf]] (float32), "
         "keep [T, T, F] in every row: the odd value sits at the masked position",
         [[0.0, 0.0, math.inf], [0.0, 0.0, math.nan], [0.0, 0.0, -math.inf]], [[True, True, False]] * 3,
         torch.float32, "test_masked_softmax.py::test_masked_softmax_ignores_values_at_masked_positions"),
        ("float16 extremes", "logits [[60000, -60000, 0], [-20, -20, -20]] (float16), keep [[T, T, F], "
         "[F, F, F]]: logits near finfo.max, and a fully masked row of logits <= -16, where x + finfo.min "
         "rounds to -inf",
         [[60000.0, -60000.0, 0.0], [-20.0, -20.0, -20.0]], [[True, True, False], [False, False, False]],
         torch.float16, "test_masked_softmax.py::test_masked_softmax_extreme_logits_do_not_overflow"),
    ]
    policies = [
        lambda impl: f"no kept entry: {impl.fully_masked} ({impl.policy_source})",
        lambda impl: ("masked logits may hold anything" if impl.masked_values == "any" else
                      "masked logits must be finite: +inf or nan there poisons the row (the idiom's domain)"),
        lambda impl: (("correct up to finfo.max" if impl.extreme else
                       "logits near finfo.max cancel the bias (the idiom's domain)")
                      + f"; no kept entry: {impl.fully_masked}"),
    ]
    out = []
    for (title, setup, logits, keep, dtype, prop), policy in zip(examples, policies):
        x = torch.tensor(logits, dtype=dtype)
        k = torch.tensor(keep)
        oracle = _oracle(keep, [[v if kk else 0.0 for v, kk in zip(r, kr)] for r, kr in zip(logits, keep)])
        cells = [Cell(f"`{impl.code(-1)}`", _run(lambda impl=impl: impl(ops, x, k, -1)), oracle,
                      policy(impl), f"{prop}[cpu-{name}]")
                 for name, impl in IMPLEMENTATIONS.items()]
        out.append(Situation(title, setup, cells))
    return out


# --------------------------------------------------------------------------- attention APIs


def _identity_attention(torch, L, S):
    """q = 0 (every kept key scores alike) and k = v = I (the output is the weights)."""
    q = torch.zeros(1, 1, L, S)
    eye = torch.eye(S).reshape(1, 1, S, S)
    return q, eye, eye


def _causal_keep(L, S, lower_right):
    return [[j <= i + (S - L if lower_right else 0) for j in range(S)] for i in range(L)]


def _causal_situations(torch) -> list[Situation]:
    import torch.nn.functional as F

    from conformance import attention_apis as apis

    out = []
    for L, S in ((3, 3), (2, 4), (4, 2)):
        q, k, v = _identity_attention(torch, L, S)
        ul, lr = _causal_keep(L, S, False), _causal_keep(L, S, True)
        prop = "test_attention_apis.py::test_sdpa_causal_variants_align_as_documented[cpu-math]"
        cells = [
            Cell("`F.scaled_dot_product_attention(q, k, v, is_causal=True)`",
                 _run(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)[0, 0]), _oracle(ul),
                 "upper-left: query i keeps keys j <= i (the SDPA docs)", prop),
            Cell("`attn_mask=torch.ones(L, S, dtype=torch.bool).tril()`",
                 _run(lambda: F.scaled_dot_product_attention(
                     q, k, v, attn_mask=torch.ones(L, S, dtype=torch.bool).tril())[0, 0]), _oracle(ul),
                 "upper-left, as is_causal", prop),
            Cell("`attn_mask=torch.ones(L, S, dtype=torch.bool).tril(S - L)`",
                 _run(lambda: F.scaled_dot_product_attention(
                     q, k, v, attn_mask=torch.ones(L, S, dtype=torch.bool).tril(S - L))[0, 0]), _oracle(lr),
                 "lower-right: the last query sees every key (a KV cache's alignment)", prop),
        ]
        if apis.has("causal_bias") is None:
            from torch.nn.attention import bias
            cells += [
                Cell("`attn_mask=causal_upper_left(L, S)`",
                     _run(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias.causal_upper_left(L, S))[0, 0]),
                     _oracle(ul), "upper-left (torch.nn.attention.bias)", prop),
                Cell("`attn_mask=causal_lower_right(L, S)`",
                     _run(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias.causal_lower_right(L, S))[0, 0]),
                     _oracle(lr), "lower-right; a query with no key left follows the SDPA policy: "
                                  f"{apis.policy('sdpa').rows}", prop),
            ]
        shape = "square" if L == S else "fewer queries than keys (L < S)" if L < S else "more queries than keys (L > S)"
        out.append(Situation(f"Causal, {shape}: L = {L}, S = {S}",
                             f"q = 0 [1, 1, {L}, {S}], k = v = I: each row is one query's weights over {S} keys",
                             cells))
    return out


def _identity_mha(torch, e):
    """nn.MultiheadAttention (one head) whose q projection is 0 and k, v, out projections are I:
    every kept key scores alike, and the output is the weights."""
    mha = torch.nn.MultiheadAttention(e, 1, batch_first=True, bias=False)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([torch.zeros(e, e), torch.eye(e), torch.eye(e)]))
        mha.out_proj.weight.copy_(torch.eye(e))
    return mha


def _padding_situation(torch) -> Situation:
    import torch.nn.functional as F

    T, H, lengths = 3, 2, (3, 1)
    keep_bt = [[j < n for j in range(T)] for n in lengths]
    q = torch.zeros(2, H, T, T)
    eye = torch.eye(T).expand(2, H, T, T)
    keep = torch.tensor(keep_bt).reshape(2, 1, 1, T)
    bias = torch.zeros(2, 1, 1, T).masked_fill(~keep, float("-inf"))
    mha = _identity_mha(torch, T)
    x = torch.eye(T).expand(2, T, T)
    prop = "test_attention_apis.py::test_sdpa_mask_expressions_match_oracle[cpu-math]"
    oracle = _oracle([keep_bt[1]] * T)
    return Situation(
        "Padding: a [B, 1, 1, T] key mask against [B, H, T, T] weights",
        f"B = 2 sequences of lengths {list(lengths)}, H = {H}, T = {T}; the rows shown are batch 1 (one real "
        "token), head 0. The mask broadcasts over heads and queries (python -m conformance.explain 2,1,1,3 2,2,3,3)",
        [
            Cell("`attn_mask=keep` (bool, True = take part)",
                 _run(lambda: F.scaled_dot_product_attention(q, eye, eye, attn_mask=keep)[1, 0]), oracle,
                 "SDPA: True keeps", prop),
            Cell("`attn_mask=zeros.masked_fill(~keep, -inf)` (additive)",
                 _run(lambda: F.scaled_dot_product_attention(q, eye, eye, attn_mask=bias)[1, 0]), oracle,
                 "SDPA: a float mask is added to the scores", prop),
            Cell("`nn.MultiheadAttention(...)(x, x, x, key_padding_mask=~keep[:, 0, 0])[1]`",
                 _run(lambda: mha(x, x, x, key_padding_mask=~keep[:, 0, 0], average_attn_weights=False)[1][1, 0]),
                 oracle, "MultiheadAttention: True *ignores* (the opposite of SDPA)",
                 "test_attention_apis.py::test_multihead_attention_paths_match_oracle[cpu]"),
        ])


def _fully_masked_situation(torch) -> Situation:
    import torch.nn.functional as F

    from conformance import attention_apis as apis

    q, k, v = _identity_attention(torch, 2, 3)
    keep = torch.tensor([[True, True, False], [False, False, False]])
    minbias = (~keep).float() * torch.finfo(torch.float32).min
    infbias = torch.zeros(2, 3).masked_fill(~keep, float("-inf"))
    mha = _identity_mha(torch, 3)
    x = torch.eye(3)[:2].unsqueeze(0)
    kv = torch.eye(3).unsqueeze(0)

    def pol(api):
        p = apis.policy(api)
        return f"{p.rows} (torch {p.torch}: {p.source})"

    prop = "test_attention_apis.py::test_sdpa_mask_expressions_match_oracle[cpu-math]"
    cells = [
        Cell("`attn_mask=keep` (bool)", _run(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=keep)[0, 0]),
             _oracle(keep.tolist()), pol("sdpa"), prop),
        Cell("`attn_mask=zeros.masked_fill(~keep, -inf)`",
             _run(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=infbias)[0, 0]),
             _oracle(keep.tolist()), pol("sdpa"), prop),
        Cell("`attn_mask=(~keep) * finfo.min`",
             _run(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=minbias)[0, 0]),
             _oracle(keep.tolist()), pol("sdpa-finfo-min"), prop),
        Cell("`nn.MultiheadAttention`, need_weights=True: the weights",
             _run(lambda: mha(x, kv, kv, attn_mask=~keep, average_attn_weights=False)[1][0, 0]),
             _oracle(keep.tolist()), pol("mha-need-weights"),
             "test_attention_apis.py::test_multihead_attention_paths_match_oracle[cpu]"),
        Cell("`nn.MultiheadAttention`, need_weights=False: the output",
             _run(lambda: mha(x, kv, kv, attn_mask=~keep, need_weights=False)[0][0]),
             _oracle(keep.tolist()), pol("mha-no-weights"),
             "test_attention_apis.py::test_multihead_attention_paths_match_oracle[cpu]"),
    ]
    if apis.has("flex_attention") is None:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        table = keep.tolist()

        def mask_mod(b, h, qi, kj):
            return torch.tensor(table)[qi, kj]

        def flex():
            block = create_block_mask(mask_mod, 1, 1, 2, 3, device="cpu")
            return flex_attention(q, k, v, block_mask=block)[0, 0]
        cells.append(Cell("`flex_attention(q, k, v, block_mask=create_block_mask(mask_mod, ...))`", _run(flex),
                          _oracle(table), pol("flex"),
                          "test_attention_apis.py::test_flex_attention_mask_mod_matches_oracle[cpu]"))
    return Situation("A query with no kept key",
                     "q = 0 [1, 1, 2, 3], k = v = I, keep [[T, T, F], [F, F, F]]: the second query keeps no key",
                     cells)


def build() -> tuple[str, list[Situation]]:
    """(the torch version, the situations), computed on the CPU now."""
    import torch

    torch.manual_seed(0)
    situations = [_padding_situation(torch), *_causal_situations(torch), _fully_masked_situation(torch),
                  *_idiom_situations(torch)]
    return torch.__version__, situations


# --------------------------------------------------------------------------- rendering


def _link(prop: str) -> str:
    module, _, name = prop.partition("::")
    return f"[{name}]({PROPERTIES}{module})"


def markdown(version: str, situations: list[Situation]) -> str:
    from reports.render import md

    out = ["# Mask atlas", "",
           f"What torch {md(version)} (CPU) returns for each way of applying a mask, next to the oracle and the "
           "documented policy. Generated by `python -m reports atlas` (regenerate after a torch upgrade; "
           "the self-test fails when this page is stale). Attention rows are the weights: q = 0 and "
           "k = v = I, so a query that keeps k keys shows 1/k at each.", ""]
    out += [f"- [{md(s.title)}](#{_anchor(s.title)})" for s in situations]
    for s in situations:
        out += ["", f"## {md(s.title)}", "", md(s.setup), "",
                "| API | torch returns | oracle | policy | checked by |", "| --- | --- | --- | --- | --- |"]
        out += [f"| {_cell_code(c.api)} | {md(c.got)} | {md(c.oracle)} | {md(c.policy)} | {_link(c.checked_by)} |"
                for c in s.cells]
    return "\n".join(out) + "\n"


def _cell_code(api: str) -> str:
    return api.replace("|", "\\|")


def _anchor(title: str) -> str:
    import re
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def html(version: str, situations: list[Situation]) -> str:
    from reports.render import esc, html_page

    b = [f"<h1>Mask atlas</h1><p>What torch {esc(version)} (CPU) returns for each way of applying a mask, next "
         "to the oracle and the documented policy. Generated by <code>python -m reports atlas</code>. Attention "
         "rows are the weights: q = 0 and k = v = I.</p>"]
    for s in situations:
        b.append(f"<h2>{esc(s.title)}</h2><p>{esc(s.setup)}</p><table><thead><tr><th>API</th><th>torch returns</th>"
                 "<th>oracle</th><th>policy</th><th>checked by</th></tr></thead><tbody>")
        for c in s.cells:
            module, _, name = c.checked_by.partition("::")
            b.append(f"<tr><td><code>{esc(c.api.strip('`'))}</code></td><td>{esc(c.got)}</td><td>{esc(c.oracle)}</td>"
                     f"<td>{esc(c.policy)}</td><td><a href=\"{esc(PROPERTIES + module)}\">{esc(name)}</a></td></tr>")
        b.append("</tbody></table>")
    return html_page(f"Mask atlas: torch {version}", "\n".join(b))
