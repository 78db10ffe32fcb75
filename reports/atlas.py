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
class Outcome:
    """A matrix of rows (one per query or softmax row), or the error a call raised."""

    text: str              # the rows as text, or "raises ..."
    rows: list | None      # the values, row by row (None: the call raised); a row is None where the
                           # oracle has no answer (no kept key: the API's policy decides)


@dataclass
class Cell:
    api: str               # the API or idiom, as the user writes it
    got: Outcome           # what torch returned
    oracle: Outcome        # the rule's answer for the intended mask
    policy: str            # the documented policy or convention that decides it
    checked_by: str        # module.py::property
    keep: list | None = None    # the intended mask (rows of bools): masked positions are marked
    empty: str | None = None    # what the policy gives a row with no kept key: "zeros", "nan" or None
    note: str = ""              # where the value comes from the construction, not the mask
    outside: str = ""           # why torch may differ from the oracle here: a mistake shown on purpose,
                                # or an input outside the idiom's stated domain

    def verdict(self) -> tuple[str, str]:
        """(against the oracle: "agrees", "differs" or "raises"; against the policy on rows with
        no kept key: "follows", "differs" or "" where there is none)."""
        if self.got.rows is None:
            return "raises", ""
        got, want = self.got.rows, self.oracle.rows or []
        same_shape = len(got) == len(want) and all(w is None or len(g) == len(w) for g, w in zip(got, want))
        oracle = "agrees" if same_shape and all(
            w is None or all(_close(a, b) for a, b in zip(g, w)) for g, w in zip(got, want)) else "differs"
        empties = [g for g, w in zip(got, want) if w is None] if same_shape else []
        if not empties or self.empty not in ("zeros", "nan"):
            return oracle, ""
        ok = all(all((v == 0) if self.empty == "zeros" else math.isnan(v) for v in g) for g in empties)
        return oracle, "follows" if ok else "differs"


def _close(a: float, b: float) -> bool:
    """Equal to the three significant digits the atlas prints (nan equals nan)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= 5e-3 * max(abs(a), abs(b), 1e-3)


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


def _oracle(keep_rows, logits_rows=None) -> Outcome:
    from conformance import rules

    out, rows = [], []
    for i, keep in enumerate(keep_rows):
        row = [0.0] * len(keep) if logits_rows is None else logits_rows[i]
        p = rules.softmax(row, keep)
        rows.append(p)
        out.append("(no kept key)" if p is None else "[" + ", ".join(fmt(x) for x in p) + "]")
    return Outcome(" ".join(out), rows)


def _run(fn) -> Outcome:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            got = fn()
        except Exception as e:  # the atlas shows what the call does, refusals included
            return Outcome(f"raises {type(e).__name__}: {' '.join(str(e).split())[:140]}", None)
    rows = [[float(v) for v in row] for row in got.tolist()]
    return Outcome(rows_text(rows), rows)


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
    # where an idiom's own stated domain excludes the example, a difference from the oracle is expected
    domains = [
        lambda impl: "",
        lambda impl: "" if impl.masked_values == "any" else "expected: masked logits must be finite for this idiom",
        lambda impl: "" if impl.extreme else "expected: logits near finfo.max are outside this idiom's domain",
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
    for (title, setup, logits, keep, dtype, prop), policy, outside in zip(examples, policies, domains):
        x = torch.tensor(logits, dtype=dtype)
        k = torch.tensor(keep)
        oracle = _oracle(keep, [[v if kk else 0.0 for v, kk in zip(r, kr)] for r, kr in zip(logits, keep)])
        cells = [Cell(f"`{impl.code(-1)}`", _run(lambda impl=impl: impl(ops, x, k, -1)), oracle,
                      policy(impl), f"{prop}[cpu-{name}]", keep=keep,
                      empty=impl.fully_masked if impl.fully_masked in ("zeros", "nan") else None,
                      note=_IDENTITY_NOTE if name == "sdpa" and not all(map(math.isfinite, sum(logits, []))) else "",
                      outside=outside(impl))
                 for name, impl in IMPLEMENTATIONS.items()]
        out.append(Situation(title, setup, cells))
    return out


_IDENTITY_NOTE = ("the construction, not the mask: this idiom computes the scores as x @ I, and an inf or nan "
                  "anywhere in a row makes every score of that row nan (inf x 0), masked position or not")


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
    sdpa_empty = apis.policy("sdpa").rows
    for L, S in ((3, 3), (2, 4), (4, 2)):
        q, k, v = _identity_attention(torch, L, S)
        ul, lr = _causal_keep(L, S, False), _causal_keep(L, S, True)
        prop = "test_attention_apis.py::test_sdpa_causal_variants_align_as_documented[cpu-math]"
        cells = [
            Cell("`F.scaled_dot_product_attention(q, k, v, is_causal=True)`",
                 _run(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)[0, 0]), _oracle(ul),
                 "upper-left: query i keeps keys j <= i (the SDPA docs)", prop, keep=ul, empty=sdpa_empty),
            Cell("`attn_mask=torch.ones(L, S, dtype=torch.bool).tril()`",
                 _run(lambda: F.scaled_dot_product_attention(
                     q, k, v, attn_mask=torch.ones(L, S, dtype=torch.bool).tril())[0, 0]), _oracle(ul),
                 "upper-left, as is_causal", prop, keep=ul, empty=sdpa_empty),
            Cell("`attn_mask=torch.ones(L, S, dtype=torch.bool).tril(S - L)`",
                 _run(lambda: F.scaled_dot_product_attention(
                     q, k, v, attn_mask=torch.ones(L, S, dtype=torch.bool).tril(S - L))[0, 0]), _oracle(lr),
                 "lower-right: the last query sees every key (a KV cache's alignment)", prop, keep=lr, empty=sdpa_empty),
        ]
        if apis.has("causal_bias") is None:
            from torch.nn.attention import bias
            cells += [
                Cell("`attn_mask=causal_upper_left(L, S)`",
                     _run(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias.causal_upper_left(L, S))[0, 0]),
                     _oracle(ul), "upper-left (torch.nn.attention.bias)", prop, keep=ul, empty=sdpa_empty),
                Cell("`attn_mask=causal_lower_right(L, S)`",
                     _run(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias.causal_lower_right(L, S))[0, 0]),
                     _oracle(lr), "lower-right; a query with no key left follows the SDPA policy: "
                                  f"{apis.policy('sdpa').rows}", prop, keep=lr, empty=sdpa_empty),
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
    oracle, kept = _oracle([keep_bt[1]] * T), [keep_bt[1]] * T
    return Situation(
        "Padding: a [B, 1, 1, T] key mask against [B, H, T, T] weights",
        f"B = 2 sequences of lengths {list(lengths)}, H = {H}, T = {T}; the rows shown are batch 1 (one real "
        "token), head 0. The mask broadcasts over heads and queries (python -m conformance.explain 2,1,1,3 2,2,3,3)",
        [
            Cell("`attn_mask=keep` (bool, True = take part)",
                 _run(lambda: F.scaled_dot_product_attention(q, eye, eye, attn_mask=keep)[1, 0]), oracle,
                 "SDPA: True keeps", prop, keep=kept),
            Cell("`attn_mask=zeros.masked_fill(~keep, -inf)` (additive)",
                 _run(lambda: F.scaled_dot_product_attention(q, eye, eye, attn_mask=bias)[1, 0]), oracle,
                 "SDPA: a float mask is added to the scores", prop, keep=kept),
            Cell("`nn.MultiheadAttention(...)(x, x, x, key_padding_mask=~keep[:, 0, 0])[1]`",
                 _run(lambda: mha(x, x, x, key_padding_mask=~keep[:, 0, 0], average_attn_weights=False)[1][1, 0]),
                 oracle, "MultiheadAttention: True *ignores* (the opposite of SDPA)",
                 "test_attention_apis.py::test_multihead_attention_paths_match_oracle[cpu]", keep=kept),
        ])


def _mistake_situations(torch) -> list[Situation]:
    """What a padding mask does when it is passed in the wrong shape or dtype, and what it does
    not do to padded queries."""
    import torch.nn.functional as F

    from conformance import attention_apis as apis

    prop = "test_attention_apis.py::test_sdpa_mask_expressions_match_oracle[cpu-math]"
    sdpa_empty = apis.policy("sdpa").rows
    out = []

    # a [B, T] mask: broadcast against [B, H, L, S] it lines up as [1, 1, B, T]
    cells = []
    for lengths in ((2, 1), (3, 1)):
        T = len(lengths) if lengths == (2, 1) else 3
        keep_bt = [[j < n for j in range(T)] for n in lengths]
        q, eye = torch.zeros(2, 2, T, T), torch.eye(T).expand(2, 2, T, T)
        flat = torch.tensor(keep_bt)
        meant = [keep_bt[1]] * T
        what = ("T = B = 2: it broadcasts, so query i gets sequence i's padding" if T == 2 else
                "T = 3, B = 2: the sizes clash (2 against L = 3)")
        cells.append(Cell(f"`attn_mask=keep` with keep of shape [B, T] ({what})",
                          _run(lambda q=q, eye=eye, flat=flat: F.scaled_dot_product_attention(
                              q, eye, eye, attn_mask=flat)[1, 0]),
                          _oracle(meant), "the mask must broadcast to [B, H, L, S]: [B, T] lines up as [1, 1, B, T] "
                          "(python -m conformance.explain 2,3 2,2,3,3); write keep[:, None, None, :]", prop,
                          keep=meant, empty=sdpa_empty, outside="expected: the mask has the wrong shape"))
    out.append(Situation(
        "A [B, T] padding mask where [B, 1, 1, T] was meant",
        "B = 2 sequences (the second of length 1), H = 2; the rows shown are the second sequence's, head 0, "
        "against the oracle of the mask that was meant", cells))

    T, lengths = 3, (3, 1)
    keep_bt = [[j < n for j in range(T)] for n in lengths]
    q, eye = torch.zeros(2, 2, T, T), torch.eye(T).expand(2, 2, T, T)
    keep = torch.tensor(keep_bt).reshape(2, 1, 1, T)
    meant = [keep_bt[1]] * T
    out.append(Situation(
        "A float 0/1 mask where a bool one was meant",
        "B = 2 sequences of lengths [3, 1], H = 2, T = 3; the rows shown are the second sequence's, head 0",
        [Cell("`attn_mask=keep.float()` (1 = keep, 0 = pad)",
              _run(lambda: F.scaled_dot_product_attention(q, eye, eye, attn_mask=keep.float())[1, 0]),
              _oracle(meant), "a float mask is added to the scores: 0 and 1 mask nothing (kept keys gain 1); "
              "a float mask hides with -inf", prop, keep=meant, empty=sdpa_empty,
              outside="expected: a float mask is a bias, and 0/1 hide nothing"),
         Cell("`attn_mask=keep` (bool)",
              _run(lambda: F.scaled_dot_product_attention(q, eye, eye, attn_mask=keep)[1, 0]),
              _oracle(meant), "SDPA: True keeps", prop, keep=meant, empty=sdpa_empty)]))

    key_only = [keep_bt[1]] * T
    both = [[j < 1 and i < 1 for j in range(T)] for i in range(T)]
    query_keep = torch.tensor([[[[j < n and i < n for j in range(T)] for i in range(T)]] for n in lengths])
    out.append(Situation(
        "Padded queries still get outputs",
        "B = 2 sequences of lengths [3, 1], H = 2, T = 3: in the second sequence queries 1 and 2 are padding; "
        "its rows are shown, head 0",
        [Cell("`attn_mask=keep` with keep [B, 1, 1, T] (keys only)",
              _run(lambda: F.scaled_dot_product_attention(q, eye, eye, attn_mask=keep)[1, 0]),
              _oracle(key_only), "a key padding mask hides keys, not queries: padded queries attend to the real "
              "keys and get ordinary outputs, which later layers and the loss must ignore", prop, keep=key_only,
              empty=sdpa_empty),
         Cell("`attn_mask=keep_q & keep_k` [B, 1, T, T] (queries too)",
              _run(lambda: F.scaled_dot_product_attention(q, eye, eye, attn_mask=query_keep)[1, 0]),
              _oracle(both), f"a padded query keeps no key: the SDPA policy, {sdpa_empty}", prop, keep=both,
              empty=sdpa_empty)]))
    return out


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

    table = keep.tolist()

    def cell(api, got, policy_api, prop_):
        rows = apis.policy(policy_api).rows
        return Cell(api, got, _oracle(table), pol(policy_api), prop_, keep=table,
                    empty=rows if rows in ("zeros", "nan") else None)

    prop = "test_attention_apis.py::test_sdpa_mask_expressions_match_oracle[cpu-math]"
    mha_prop = "test_attention_apis.py::test_multihead_attention_paths_match_oracle[cpu]"
    cells = [
        cell("`attn_mask=keep` (bool)", _run(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=keep)[0, 0]),
             "sdpa", prop),
        cell("`attn_mask=zeros.masked_fill(~keep, -inf)`",
             _run(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=infbias)[0, 0]), "sdpa", prop),
        cell("`attn_mask=(~keep) * finfo.min`",
             _run(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=minbias)[0, 0]), "sdpa-finfo-min", prop),
        cell("`nn.MultiheadAttention`, need_weights=True: the weights",
             _run(lambda: mha(x, kv, kv, attn_mask=~keep, average_attn_weights=False)[1][0, 0]),
             "mha-need-weights", mha_prop),
        cell("`nn.MultiheadAttention`, need_weights=False: the output (out_proj = I, no bias)",
             _run(lambda: mha(x, kv, kv, attn_mask=~keep, need_weights=False)[0][0]), "mha-no-weights", mha_prop),
    ]
    if apis.has("flex_attention") is None:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        def mask_mod(b, h, qi, kj):
            return torch.tensor(table)[qi, kj]

        def flex():
            block = create_block_mask(mask_mod, 1, 1, 2, 3, device="cpu")
            return flex_attention(q, k, v, block_mask=block)[0, 0]
        cells.append(cell("`flex_attention(q, k, v, block_mask=create_block_mask(mask_mod, ...))`", _run(flex),
                          "flex", "test_attention_apis.py::test_flex_attention_mask_mod_matches_oracle[cpu]"))
    return Situation("A query with no kept key",
                     "q = 0 [1, 1, 2, 3], k = v = I, keep [[T, T, F], [F, F, F]]: the second query keeps no key",
                     cells)


def build() -> tuple[str, list[Situation]]:
    """(the torch version, the situations), computed on the CPU now."""
    import torch

    torch.manual_seed(0)
    situations = [_padding_situation(torch), *_mistake_situations(torch), *_causal_situations(torch),
                  _fully_masked_situation(torch), *_idiom_situations(torch)]
    return torch.__version__, situations


# --------------------------------------------------------------------------- rendering


def _link(prop: str) -> str:
    module, _, name = prop.partition("::")
    return f"[{name}]({PROPERTIES}{module})"


_VERDICT_WORDS = {"agrees": "✓ agrees with the oracle", "differs": "✗ differs from the oracle",
                  "raises": "raises (see the text)"}
_POLICY_WORDS = {"follows": "rows with no kept key: ✓ as the policy says",
                 "differs": "rows with no kept key: ✗ not as the policy says"}


def verdict_words(cell: Cell) -> str:
    oracle, policy = cell.verdict()
    first = _VERDICT_WORDS[oracle] + (f" ({cell.outside})" if cell.outside and oracle != "agrees" else "")
    return "; ".join(w for w in (first, _POLICY_WORDS.get(policy, "")) if w)


def markdown(version: str, situations: list[Situation]) -> str:
    from reports.render import md

    out = ["# Mask atlas", "",
           f"What torch {md(version)} (CPU) returns for each way of applying a mask, next to the oracle and the "
           "documented policy. Generated by `python -m reports atlas` (regenerate after a torch upgrade; "
           "the self-test fails when this page is stale). Attention rows are the weights: q = 0 and "
           "k = v = I, so a query that keeps k keys shows 1/k at each. The verdict compares torch's rows "
           "with the oracle's where the mask keeps a key, and the rows that keep none with the policy. "
           "[atlas.html](atlas.html) shows each matrix as a heatmap.", ""]
    out += [f"- [{md(s.title)}](#{_anchor(s.title)})" for s in situations]
    for s in situations:
        out += ["", f"## {md(s.title)}", "", md(s.setup), "",
                "| API | torch returns | oracle | verdict | policy | checked by |",
                "| --- | --- | --- | --- | --- | --- |"]
        out += [f"| {_cell_code(c.api)} | {md(c.got.text)} | {md(c.oracle.text)} | {md(verdict_words(c))} | "
                f"{md(c.policy)} | {_link(c.checked_by)} |" for c in s.cells]
        notes = [c for c in s.cells if c.note]
        if notes:
            out += [""] + [f"Note on {_cell_code(c.api)}: {md(c.note)}" for c in notes]
    return "\n".join(out) + "\n"


def _cell_code(api: str) -> str:
    return api.replace("|", "\\|")


def _anchor(title: str) -> str:
    import re
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


# the heatmap: a weight in [0, 1] shades its cell in one of 11 steps; masked positions are hatched
# and their value is in parentheses, nan is named, so the page reads without colour too
_SHADES = 11
STYLE = ("".join(f".w{k}{{background:rgb({255 - 20 * k},{255 - 14 * k},{255 - 6 * k})}}" for k in range(_SHADES))
         + ".w6,.w7,.w8,.w9,.w10{color:#fff}"
         ".hm{border-collapse:collapse;margin:0}.hm td{border:1px solid #ddd;padding:.1em .35em;text-align:right;"
         "font:12px ui-monospace,monospace;min-width:2.8em}"
         ".hm td.m{background-image:repeating-linear-gradient(45deg,transparent 0 4px,rgba(0,0,0,.18) 4px 5px);"
         "font-style:italic}.hm td.nan{background:#fde68a;color:#7c2d12;font-weight:bold}"
         ".hm td.none{color:#666;font-style:italic;text-align:center}"
         ".raised{color:#92400e}.v-agrees{color:#166534}.v-differs{color:#b91c1c;font-weight:bold}"
         ".v-raises{color:#92400e}.note{font-size:.92em;color:#444}nav ul{columns:2}"
         "td.verdict{min-width:12em}td.by{max-width:16em;word-break:break-word}")


def _shade(v: float) -> str:
    return f"w{max(0, min(_SHADES - 1, round(v * (_SHADES - 1))))}"


def _heatmap(outcome: Outcome, keep) -> str:
    from reports.render import esc

    if outcome.rows is None:
        return f'<span class="raised">{esc(outcome.text)}</span>'
    width = max((len(r) for r in outcome.rows if r is not None), default=0)
    b = ['<table class="hm">']
    for i, row in enumerate(outcome.rows):
        if row is None:
            b.append(f'<tr><td class="none" colspan="{max(width, 1)}">no kept key</td></tr>')
            continue
        tds = []
        for j, v in enumerate(row):
            masked = keep is not None and i < len(keep) and j < len(keep[i]) and not keep[i][j]
            text = fmt(v)
            cls = ["nan"] if math.isnan(v) else [_shade(v)] if 0 <= v <= 1 else []
            if masked:
                cls.append("m")
                text = f"({text})"
            title = f"row {i}, column {j}: {fmt(v)}" + (" (masked position)" if masked else "")
            tds.append(f'<td class="{" ".join(cls)}" title="{esc(title)}">{esc(text)}</td>')
        b.append("<tr>" + "".join(tds) + "</tr>")
    b.append("</table>")
    return "".join(b)


def _api_html(api: str) -> str:
    """The API cell: text with `code` spans, as the Markdown writes it."""
    from reports.render import esc

    parts = api.split("`")
    return "".join(f"<code>{esc(t)}</code>" if k % 2 else esc(t) for k, t in enumerate(parts))


def html(version: str, situations: list[Situation]) -> str:
    from reports.render import esc, html_page

    b = [f"<h1>Mask atlas</h1><p>What torch {esc(version)} (CPU) returns for each way of applying a mask, next "
         "to the oracle and the documented policy. Generated by <code>python -m reports atlas</code>. Attention "
         "rows are the weights: q = 0 and k = v = I, so a query that keeps k keys shows 1/k at each.</p>",
         "<p><b>Reading a matrix:</b> one row per query (or softmax row), one column per key; the shade is the "
         'weight, from 0 (white) to 1 (dark); <span class="hm"><code>(0)</code></span> in a hatched cell is a masked '
         "position; <b>nan</b> is named; a row with no kept key says so in the oracle. The verdict compares "
         "torch's rows with the oracle's where the mask keeps a key, and the rows that keep none with the "
         "policy.</p>",
         "<nav><b>Situations</b><ul>" + "".join(f'<li><a href="#{_anchor(s.title)}">{esc(s.title)}</a></li>'
                                                for s in situations) + "</ul></nav>"]
    for s in situations:
        b.append(f'<h2 id="{_anchor(s.title)}">{esc(s.title)}</h2><p>{esc(s.setup)}</p><table><thead><tr>'
                 "<th>API</th><th>torch returns</th><th>oracle</th><th>verdict</th><th>policy</th>"
                 "<th>checked by</th></tr></thead><tbody>")
        for c in s.cells:
            module, _, name = c.checked_by.partition("::")
            oracle, policy = c.verdict()
            verdict = f'<span class="v-{oracle}">{esc(_VERDICT_WORDS[oracle])}</span>'
            if c.outside and oracle != "agrees":
                verdict += f"<br>{esc(c.outside)}"
            if policy:
                verdict += f'<br><span class="v-{"agrees" if policy == "follows" else "differs"}">' \
                           f"{esc(_POLICY_WORDS[policy])}</span>"
            note = f'<p class="note"><b>Note:</b> {esc(c.note)}</p>' if c.note else ""
            b.append(f"<tr><td>{_api_html(c.api)}{note}</td><td>{_heatmap(c.got, c.keep)}</td>"
                     f'<td>{_heatmap(c.oracle, c.keep)}</td><td class="verdict">{verdict}</td><td>{esc(c.policy)}</td>'
                     f'<td class="by"><a href="{esc(PROPERTIES + module)}">{esc(c.checked_by.partition("::")[2])}</a></td></tr>')
        b.append("</tbody></table>")
    return html_page(f"Mask atlas: torch {version}", "\n".join(b), extra_style=STYLE)
