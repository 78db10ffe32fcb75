"""Deliberately faulty backends: each mutant is torch eager with one realistic bug in one op.

A mutant is a backend like any other, loaded through the same ``--backend`` mechanism::

    python -m pytest conformance --backend selftests.mutants:masked_fill_writes_into_self

The conformance run must then fail, and `targets` names the properties designed to catch
the mutant.  The oracle is pure Python, and a mutant replaces the op only in its backend
(torch itself is untouched), so neither the expectations nor the suite's own use of torch
can be corrupted; a property that bypassed the backend would not catch its mutant.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from conformance.backends import derive, torch_eager

T = torch.Tensor
ORIG = torch_eager  # the correct ops


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str                     # the fault, in words
    targets: tuple[str, ...]     # properties designed to catch it
    backend: SimpleNamespace     # torch eager with the faulty op(s)
    effect: str = "wrong"        # "wrong" results or errors; "crash" or "hang" the process


MUTANTS: dict[str, Mutant] = {}


def mutant(bug: str, *targets: str, effect: str = "wrong"):
    """Register ``fn() -> {op: faulty implementation}`` as the backend ``selftests.mutants:NAME``."""
    def register(fn):
        backend = derive(torch_eager, NAME=f"mutant:{fn.__name__}", **fn())
        MUTANTS[fn.__name__] = Mutant(fn.__name__, bug, targets, backend, effect)
        return backend
    return register


def _shape(t):
    return tuple(t.shape)


# --------------------------------------------------------------------------- broadcasting


@mutant("broadcast_shapes treats a 0 like a 1 (1 vs 0 gives 1)", "test_broadcast_shapes_agrees_with_the_rules")
def broadcast_shapes_zero_as_one():
    def bs(*shapes):
        ORIG.broadcast_shapes(*shapes)  # keep the errors
        norm = [(s,) if isinstance(s, int) else tuple(s) for s in shapes]
        nd = max((len(s) for s in norm), default=0)
        padded = [(1,) * (nd - len(s)) + s for s in norm]
        return torch.Size(max(col) for col in zip(*padded))
    return {"broadcast_shapes": bs}


@mutant("broadcast_shapes accepts mismatched sizes and takes the larger",
        "test_broadcast_shapes_agrees_with_the_rules")
def broadcast_shapes_accepts_mismatch():
    def bs(*shapes):
        norm = [(s,) if isinstance(s, int) else tuple(s) for s in shapes]
        nd = max((len(s) for s in norm), default=0)
        padded = [(1,) * (nd - len(s)) + s for s in norm]
        if any(x < 0 for s in norm for x in s):
            raise ValueError("negative")
        return torch.Size(0 if 0 in col and max(col) <= 1 else max(col) for col in zip(*padded))
    return {"broadcast_shapes": bs}


@mutant("broadcast_tensors materialises copies instead of stride-0 views",
        "test_broadcast_tensors_stretches_by_views")
def broadcast_tensors_copies():
    return {"broadcast_tensors": lambda *ts: tuple(t.clone() for t in ORIG.broadcast_tensors(*ts))}


@mutant("broadcast_tensors left-aligns operands of lower rank when that also broadcasts",
        "test_broadcast_tensors_agrees_with_the_rules")
def broadcast_tensors_left_aligned():
    def bt(*ts):
        nd = max(t.dim() for t in ts)
        padded = [t.reshape(_shape(t) + (1,) * (nd - t.dim())) for t in ts]
        try:
            return ORIG.broadcast_tensors(*padded)
        except RuntimeError:
            return ORIG.broadcast_tensors(*ts)
    return {"broadcast_tensors": bt}


@mutant("expand returns zeros of the target shape instead of raising on a non-1 size",
        "test_expand_agrees_with_the_one_way_rule")
def expand_never_raises():
    def expand(x, sizes):
        try:
            return ORIG.expand(x, sizes)
        except RuntimeError:
            return torch.zeros([abs(s) for s in sizes], dtype=x.dtype, device=x.device)
    return {"expand": expand}


@mutant("a torch that fixes the known deviation (0-d expand checks -1 in new dims): the entry "
        "must then be removed", "test_expand_refuses_minus_one_in_new_dims_of_0d_tensors")
def expand_checks_0d():
    def expand(x, sizes):
        if x.dim() == 0 and -1 in tuple(sizes):
            raise RuntimeError("The expanded size of the tensor (-1) isn't allowed in a leading, "
                               "non-existing dimension 0")
        return ORIG.expand(x, sizes)
    return {"expand": expand}


@mutant("broadcast_to broadcasts both ways (x may grow the target)",
        "test_broadcast_to_agrees_with_the_one_way_rule")
def broadcast_to_two_way():
    def bt(x, shape):
        return ORIG.broadcast_tensors(x, torch.empty(shape, dtype=x.dtype, device=x.device))[0]
    return {"broadcast_to": bt}


@mutant("a < b left-aligns the lower-rank operand (a column where a row was meant)",
        "test_binary_ops_broadcast_by_the_rules")
def lt_left_aligned():
    def lt(a, b):
        if isinstance(b, T) and a.dim() != b.dim():
            nd = max(a.dim(), b.dim())
            a2 = a.reshape(_shape(a) + (1,) * (nd - a.dim()))
            b2 = b.reshape(_shape(b) + (1,) * (nd - b.dim()))
            try:
                return ORIG.lt(a2, b2)
            except RuntimeError:
                pass
        return ORIG.lt(a, b)
    return {"lt": lt}


@mutant("torch.add reads non-contiguous inputs in storage order, ignoring their strides",
        "test_layout_does_not_change_results")
def add_ignores_strides():
    def add(a, b, **kw):
        return ORIG.add(_in_storage_order(a), _in_storage_order(b), **kw)
    return {"add": add}


def _in_storage_order(t):
    """A non-contiguous tensor read as its storage's next numel() values from its offset (a
    kernel that ignores strides), where the storage holds that many."""
    if isinstance(t, T) and not t.is_contiguous() and t.numel():
        n = t.numel()
        if t.untyped_storage().nbytes() >= (t.storage_offset() + n) * t.element_size():
            return t.as_strided((n,), (1,), t.storage_offset()).reshape(t.shape)
    return t


@mutant("torch.where left-aligns a lower-rank condition",
        "test_where_broadcasts_all_three_operands")
def where_condition_left_aligned():
    def where(cond, *rest, **kw):
        if rest and cond.dim() < max(r.dim() for r in rest if isinstance(r, T)):
            nd = max(r.dim() for r in rest if isinstance(r, T))
            c2 = cond.reshape(_shape(cond) + (1,) * (nd - cond.dim()))
            try:
                return ORIG.where(c2, *rest, **kw)
            except RuntimeError:
                pass
        return ORIG.where(cond, *rest, **kw)
    return {"where": where}


@mutant("in-place add_/sub_/mul_/+= reallocate self to the broadcast shape instead of raising",
        "test_inplace_ops_never_broadcast_self")
def inplace_grows_self():
    def make(op, out_of_place):
        def f(self, other, *a, **kw):
            try:
                return op(self, other, *a, **kw)
            except RuntimeError:
                self.set_(out_of_place(self, other))
                return self
        return f
    return {"add_": make(ORIG.add_, ORIG.add), "sub_": make(ORIG.sub_, torch.sub),
            "mul_": make(ORIG.mul_, ORIG.mul), "iadd": make(ORIG.iadd, ORIG.add)}


# --------------------------------------------------------------------------- masked_fill


@mutant("masked_fill writes into self when the shapes allow it",
        "test_masked_fill_leaves_input_untouched", "test_masked_fill_result_does_not_share_storage")
def masked_fill_writes_into_self():
    def mf(self, mask, value):
        try:
            return ORIG.masked_fill_(self, mask, value)
        except RuntimeError:
            return ORIG.masked_fill(self, mask, value)
    return {"masked_fill": mf}


@mutant("masked_fill returns self itself when the mask selects nothing",
        "test_masked_fill_result_does_not_share_storage")
def masked_fill_aliases_when_nothing_masked():
    def mf(self, mask, value):
        if mask.dtype == torch.bool and not mask.any() and torch.broadcast_shapes(self.shape, mask.shape) == self.shape:
            return self
        return ORIG.masked_fill(self, mask, value)
    return {"masked_fill": mf}


@mutant("masked_fill fills where the mask is False", "test_masked_fill_matches_oracle")
def masked_fill_inverted():
    return {"masked_fill": lambda self, mask, value: ORIG.masked_fill(
        self, ~mask if mask.dtype == torch.bool else mask, value)}


@mutant("masked_fill refuses to broadcast self (treats it like masked_fill_)", "test_masked_fill_matches_oracle")
def masked_fill_never_broadcasts_self():
    def mf(self, mask, value):
        if torch.broadcast_shapes(self.shape, mask.shape) != self.shape:
            raise RuntimeError("output with shape doesn't match the broadcast shape")
        return ORIG.masked_fill(self, mask, value)
    return {"masked_fill": mf}


@mutant("masked_fill_ returns a filled copy and leaves self alone",
        "test_masked_fill_inplace_returns_self", "test_masked_fill_inplace_matches_oracle")
def masked_fill__returns_copy():
    def mf_(self, mask, value):
        out = ORIG.masked_fill(self, mask, value)
        if out.shape != self.shape:
            raise RuntimeError("output with shape doesn't match the broadcast shape")
        return out
    return {"masked_fill_": mf_}


@mutant("masked_fill_ writes through .data: no version bump, no autograd checks",
        "test_masked_fill_inplace_advances_version_counter",
        "test_inplace_fill_of_saved_tensor_makes_backward_raise")
def masked_fill__skips_version_bump():
    def mf_(self, mask, value):
        ORIG.masked_fill_(self.data, mask, value)
        return self
    return {"masked_fill_": mf_}


@mutant("masked_fill_ squeezes a too-large mask (any() over the extra dims) instead of raising",
        "test_masked_fill_inplace_requires_one_way_broadcast")
def masked_fill__broadcasts_self():
    def mf_(self, mask, value):
        if mask.dtype == torch.bool and mask.dim() and torch.broadcast_shapes(self.shape, mask.shape) != self.shape:
            while mask.dim() > self.dim():
                mask = mask.any(0)
            for d in range(mask.dim()):
                if mask.shape[d] != self.shape[d]:
                    mask = mask.any(d, keepdim=True)
        return ORIG.masked_fill_(self, mask, value)
    return {"masked_fill_": mf_}


@mutant("masked_fill_ ignores the storage offset of a view (writes from the base's start)",
        "test_masked_fill_inplace_through_view_reaches_base")
def masked_fill__ignores_offset():
    def mf_(self, mask, value):
        if self.storage_offset():
            ORIG.masked_fill_(self.as_strided(self.shape, self.stride(), 0), mask, value)
            return self
        return ORIG.masked_fill_(self, mask, value)
    return {"masked_fill_": mf_}


def _patch_fill_args(transform):
    """masked_fill and masked_fill_ that call the real op on transform(self, mask, value)."""
    return {name: (lambda self, mask, value, _op=getattr(ORIG, name): _op(self, *transform(self, mask, value)))
            for name in ("masked_fill", "masked_fill_")}


@mutant("masked_fill reads a 0-d tensor value through float32",
        "test_masked_fill_tensor_value_equals_python_scalar")
def masked_fill_tensor_value_via_float32():
    def transform(self, mask, value):
        if isinstance(value, T) and value.dim() == 0 and value.dtype != torch.bool:
            value = value.float().item()
        return mask, value
    return _patch_fill_args(transform)


@mutant("masked_fill accepts uint8/int/float masks by casting them to bool",
        "test_masked_fill_rejects_non_bool_masks")
def masked_fill_accepts_non_bool_masks():
    return _patch_fill_args(lambda self, mask, value: (mask.bool() if mask.dtype != torch.bool else mask, value))


@mutant("masked_fill takes the first element of a value tensor with dims",
        "test_masked_fill_rejects_value_tensors_with_dims")
def masked_fill_value_tensor_first_element():
    def transform(self, mask, value):
        if isinstance(value, T) and value.dim() > 0 and value.numel():
            value = value.reshape(-1)[0]
        return mask, value
    return _patch_fill_args(transform)


def _saturate(dtype, v):
    if dtype.is_floating_point:
        big = torch.finfo(dtype).max
        return v if not isinstance(v, (int, float)) or math.isinf(v) or math.isnan(v) else max(-big, min(big, v))
    if dtype == torch.bool:
        return v
    info = torch.iinfo(dtype)
    if isinstance(v, float) and math.isnan(v):
        return 0
    return max(info.min, min(info.max, v)) if not isinstance(v, float) or not math.isinf(v) else (
        info.max if v > 0 else info.min)


@mutant("masked_fill saturates unrepresentable values (-inf into int64 -> min) instead of raising",
        "test_masked_fill_value_conversion_follows_cast_rules")
def masked_fill_saturates():
    def transform(self, mask, value):
        if not isinstance(value, T):
            value = _saturate(self.dtype, value)
            if isinstance(value, float) and not self.dtype.is_floating_point and self.dtype != torch.bool:
                value = int(value)
        return mask, value
    return _patch_fill_args(transform)


@mutant("masked_fill rounds float values into int tensors instead of truncating",
        "test_masked_fill_value_conversion_follows_cast_rules")
def masked_fill_rounds_into_ints():
    def transform(self, mask, value):
        if isinstance(value, float) and math.isfinite(value) and self.dtype in (torch.int32, torch.int64):
            value = round(value)
        return mask, value
    return _patch_fill_args(transform)


@mutant("masked_fill as arithmetic: self * ~mask + where(mask, value, 0); right for finite self, "
        "but a masked inf/nan survives as nan (0 * inf)",
        "test_masked_softmax_ignores_values_at_masked_positions")
def masked_fill_arithmetic_blend():
    def mf(self, mask, value):
        if mask.dtype != torch.bool or not self.dtype.is_floating_point:
            return ORIG.masked_fill(self, mask, value)
        v = value if isinstance(value, T) else torch.tensor(value, dtype=self.dtype, device=self.device)
        zero = torch.zeros((), dtype=self.dtype, device=self.device)
        return self * (~mask).to(self.dtype) + ORIG.where(mask, v.to(self.dtype), zero)
    return {"masked_fill": mf}


# --------------------------------------------------------------------------- autograd


def _wants_grad(self, value):
    return torch.is_grad_enabled() and (self.requires_grad or (isinstance(value, T) and value.requires_grad))


@mutant("masked_fill's backward passes the gradient through masked positions",
        "test_masked_fill_grad_wrt_self_is_zero_where_masked")
def masked_fill_grad_leaks():
    def mf(self, mask, value):
        out = ORIG.masked_fill(self, mask, value)
        if _wants_grad(self, value) and self.requires_grad:
            out = out + (self - self.detach())
        return out
    return {"masked_fill": mf}


@mutant("masked_fill's value gradient is the mean over masked positions, not the sum",
        "test_masked_fill_grad_wrt_value_is_sum_over_masked")
def masked_fill_value_grad_mean():
    def mf(self, mask, value):
        if _wants_grad(self, value) and isinstance(value, T) and value.requires_grad:
            n = max(int(torch.broadcast_to(mask, torch.broadcast_shapes(self.shape, mask.shape)).sum()), 1)
            value = value / n + (value - value / n).detach()
        return ORIG.masked_fill(self, mask, value)
    return {"masked_fill": mf}


@mutant("masked_fill_ runs under no_grad: leaves are modified, history is lost",
        "test_masked_fill_inplace_on_leaf_requiring_grad_raises",
        "test_masked_fill_inplace_on_non_leaf_has_correct_grad")
def masked_fill__under_no_grad():
    def mf_(self, mask, value):
        with torch.no_grad():
            return ORIG.masked_fill_(self, mask, value)
    return {"masked_fill_": mf_}


# --------------------------------------------------------------------------- softmax




@mutant("softmax computes exp(x) / sum(exp(x)) without subtracting the row max",
        "test_masked_softmax_extreme_logits_do_not_overflow", "test_masked_softmax_is_shift_invariant")
def softmax_without_max_subtraction():
    def sm(x, dim):
        e = x.exp()
        return e / e.sum(dim, keepdim=True)
    return {"softmax": sm}


@mutant("softmax adds 1e-3 to the denominator (an 'epsilon for safety')",
        "test_masked_softmax_rows_sum_to_one", "test_masked_softmax_matches_oracle")
def softmax_epsilon_denominator():
    def sm(x, dim):
        e = (x - x.amax(dim, keepdim=True)).exp()
        return e / (e.sum(dim, keepdim=True) + 1e-3)
    return {"softmax": sm}


@mutant("Tensor.softmax ignores its dim and normalises the last one", "test_masked_softmax_along_any_dim")
def softmax_ignores_dim():
    return {"softmax": lambda x, dim: ORIG.softmax(x, -1)}


@mutant("torch.masked.softmax masks with -30 instead of -inf: masked entries leak",
        "test_masked_softmax_masked_entries_are_zero", "test_masked_softmax_fully_masked_rows_follow_policy")
def masked_softmax_finite_fill():
    def ms(x, dim, mask):
        return ORIG.softmax(ORIG.masked_fill(x, ~mask, -30.0), dim)
    return {"masked_softmax": ms}


@mutant("torch.masked.softmax zeroes masked entries with where() after exp: nan gradients",
        "test_masked_softmax_gradients_are_finite_and_zero_where_masked")
def masked_softmax_where_after_exp():
    def ms(x, dim, mask):
        m = ORIG.masked_fill(x, ~mask, float("-inf")).amax(dim, keepdim=True).detach()
        e = ORIG.where(mask, (x - m).exp(), torch.zeros((), dtype=x.dtype, device=x.device))
        return e / e.sum(dim, keepdim=True)
    return {"masked_softmax": ms}


@mutant("SDPA reads a bool attn_mask with MultiheadAttention's convention (True = ignore)",
        "test_sdpa_with_bool_mask_matches_oracle", "test_masked_softmax_matches_oracle")
def sdpa_inverted_bool_mask():
    def sdpa(q, k, v, attn_mask=None, *a, **kw):
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            attn_mask = ~attn_mask
        return ORIG.scaled_dot_product_attention(q, k, v, attn_mask, *a, **kw)
    return {"scaled_dot_product_attention": sdpa}


@mutant("SDPA returns nan for fully masked rows (the pre-2.5 behaviour)",
        "test_masked_softmax_fully_masked_rows_follow_policy")
def sdpa_fully_masked_nan():
    def sdpa(q, k, v, attn_mask=None, *a, **kw):
        out = ORIG.scaled_dot_product_attention(q, k, v, attn_mask, *a, **kw)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            dead = ~torch.broadcast_to(attn_mask, (*out.shape[:-1], k.shape[-2])).any(-1, keepdim=True)
            out = ORIG.masked_fill(out, dead, float("nan"))
        return out
    return {"scaled_dot_product_attention": sdpa}


@mutant("SDPA broadcasts attn_mask both ways: a mask with more query rows than q grows the output "
        "(torch_xla 2.9.0 does this)", "test_masked_softmax_refuses_what_it_cannot_apply")
def sdpa_mask_broadcasts_both_ways():
    def sdpa(q, k, v, attn_mask=None, *a, **kw):
        if attn_mask is not None:
            lead = torch.broadcast_shapes(q.shape[:-1], attn_mask.shape[:-1])
            q = q.expand(*lead, q.shape[-1])
        return ORIG.scaled_dot_product_attention(q, k, v, attn_mask, *a, **kw)
    return {"scaled_dot_product_attention": sdpa}


@mutant("the causal mask hides the diagonal (tril with diagonal=-1)",
        "test_masked_fill_softmax_attends_only_to_kept_keys", "test_tril_keeps_the_lower_triangle")
def causal_mask_hides_diagonal():
    return {"tril": lambda x, diagonal=0: ORIG.tril(x, diagonal - 1)}


@mutant("tril reads a negative diagonal as its magnitude (keeps |d| diagonals above, not below)",
        "test_tril_keeps_the_lower_triangle")
def tril_negative_diagonal_as_positive():
    return {"tril": lambda x, diagonal=0: ORIG.tril(x, abs(diagonal))}


# --------------------------------------------------------------------------- softmax kernels


@mutant("Tensor.softmax reads a non-contiguous input in storage order, ignoring its strides",
        "test_softmax_kernels_read_views_by_their_strides")
def softmax_ignores_strides():
    return {"softmax": lambda x, dim: ORIG.softmax(_in_storage_order(x), dim)}


@mutant("Tensor.softmax takes a nan-skipping max and sum (nan read as -inf): a kept nan vanishes",
        "test_masked_softmax_spreads_a_kept_nan_to_its_row")
def softmax_skips_nan():
    def sm(x, dim):
        return ORIG.softmax(torch.nan_to_num(x, nan=float("-inf"), posinf=float("inf"), neginf=float("-inf")), dim)
    return {"softmax": sm}


@mutant("torch.masked.softmax wraps a dim out of range (dim % ndim) instead of raising",
        "test_masked_softmax_refuses_what_it_cannot_apply")
def masked_softmax_wraps_dim():
    def ms(x, dim, mask):
        return ORIG.masked_softmax(x, dim % x.dim() if x.dim() else dim, mask)
    return {"masked_softmax": ms}


@mutant("MultiheadAttention drops key_padding_mask", "test_multihead_attention_weights_match_oracle")
def mha_ignores_key_padding_mask():
    def mha(module, query, key, value, key_padding_mask=None, attn_mask=None, **kw):
        return ORIG.multihead_attention(module, query, key, value, None, attn_mask, **kw)
    return {"multihead_attention": mha}


@mutant("a torch that fixes the known deviation (masked_fill_ refuses expanded self): the "
        "deviation entry must then be removed", "test_masked_fill_inplace_refuses_expanded_self")
def masked_fill__refuses_expanded_self():
    def mf_(self, mask, value):
        if any(s == 0 and n > 1 for s, n in zip(self.stride(), self.shape)):
            raise RuntimeError("unsupported operation: more than one element of the written-to "
                               "tensor refers to a single memory location")
        return ORIG.masked_fill_(self, mask, value)
    return {"masked_fill_": mf_}


# --------------------------------------------------------------------------- broken processes
# These take the process down, as a faulty native kernel does: the conformance run must
# survive them (pytest-xdist replaces the worker, pytest-timeout ends the hang) and its
# report must still hold every other test, and the input that brought the process down.


@mutant("masked_fill aborts the process (SIGABRT) when every element of a 2-d or larger mask "
        "is True", "test_masked_fill_matches_oracle", effect="crash")
def masked_fill_aborts_on_all_true_masks():
    def mf(self, mask, value):
        if mask.dim() >= 2 and mask.numel() > 1 and bool(mask.all()):
            os.abort()
        return ORIG.masked_fill(self, mask, value)
    return {"masked_fill": mf}


@mutant("broadcast_to never returns when the target shape has a zero-size dimension",
        "test_broadcast_to_agrees_with_the_one_way_rule", effect="hang")
def broadcast_to_hangs_on_empty_shapes():
    def bt(x, shape):
        if 0 in tuple(shape):
            while True:
                time.sleep(3600)
        return ORIG.broadcast_to(x, shape)
    return {"broadcast_to": bt}


# --------------------------------------------------------------------------- attention APIs
# (conformance/test_attention_apis.py): each a bug attention code has met in the wild


@mutant("is_causal=True aligns the causal mask lower-right (j <= i + S - L) when L != S",
        "test_sdpa_causal_variants_align_as_documented")
def sdpa_is_causal_lower_right():
    def sdpa(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False):
        if is_causal and attn_mask is None and q.shape[-2] != k.shape[-2]:
            from torch.nn.attention.bias import causal_lower_right
            attn_mask, is_causal = causal_lower_right(q.shape[-2], k.shape[-2]), False
        return ORIG.scaled_dot_product_attention(q, k, v, attn_mask, scale, is_causal, enable_gqa)
    return {"scaled_dot_product_attention": sdpa}


@mutant("enable_gqa maps query head h to kv head h % Hkv (k.repeat) instead of h // group (repeat_interleave)",
        "test_sdpa_gqa_matches_repeated_kv_heads")
def sdpa_gqa_heads_tiled():
    def sdpa(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False):
        if enable_gqa and not q.is_nested and q.shape[-3] % k.shape[-3] == 0:
            g = q.shape[-3] // k.shape[-3]
            k, v, enable_gqa = k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1), False
        return ORIG.scaled_dot_product_attention(q, k, v, attn_mask, scale, is_causal, enable_gqa)
    return {"scaled_dot_product_attention": sdpa}


@mutant("an SDPA kernel returns nan for a query whose float mask is -inf everywhere (softmax of -inf rows)",
        "test_sdpa_mask_expressions_match_oracle")
def sdpa_float_mask_fully_masked_nan():
    def sdpa(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False):
        out = ORIG.scaled_dot_product_attention(q, k, v, attn_mask, scale, is_causal, enable_gqa)
        if attn_mask is not None and attn_mask.dtype.is_floating_point and not q.is_nested:
            dead = torch.broadcast_to(attn_mask == float("-inf"), (*out.shape[:-1], k.shape[-2])).all(-1, keepdim=True)
            out = out.masked_fill(dead, float("nan"))
        return out
    return {"scaled_dot_product_attention": sdpa}


@mutant("SDPA's key-block loop applies attn_mask to the first block of 512 keys only (the mask pointer is "
        "never advanced: later key blocks attend unmasked)", "test_sdpa_at_model_sizes_matches_oracle")
def sdpa_mask_first_key_block_only():
    def sdpa(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False):
        S = k.shape[-2]
        if attn_mask is not None and not q.is_nested and S > 512:
            full = torch.broadcast_to(attn_mask, (*attn_mask.shape[:-2], q.shape[-2], S)) if attn_mask.dim() >= 2 \
                else attn_mask.expand(q.shape[-2], S)
            free = torch.ones_like(full) if full.dtype == torch.bool else torch.zeros_like(full)
            attn_mask = torch.cat([full[..., :512], free[..., 512:]], -1)
        return ORIG.scaled_dot_product_attention(q, k, v, attn_mask, scale, is_causal, enable_gqa)
    return {"scaled_dot_product_attention": sdpa}


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the gradient multiplied by `factor` on the way back."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.factor, None


@mutant("SDPA's backward applies the softmax scale to dq twice", "test_sdpa_backward_at_model_sizes_matches_oracle")
def sdpa_backward_scales_dq_twice():
    def sdpa(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False):
        if q.requires_grad and not q.is_nested:
            s = scale if scale is not None else 1 / math.sqrt(q.shape[-1])
            q = _ScaleGrad.apply(q, s)
        return ORIG.scaled_dot_product_attention(q, k, v, attn_mask, scale, is_causal, enable_gqa)
    return {"scaled_dot_product_attention": sdpa}


@mutant("SDPA drops attn_mask when is_causal=True is also given, instead of raising",
        "test_sdpa_refuses_attn_mask_with_is_causal")
def sdpa_causal_drops_mask():
    def sdpa(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False):
        if is_causal:
            attn_mask = None
        return ORIG.scaled_dot_product_attention(q, k, v, attn_mask, scale, is_causal, enable_gqa)
    return {"scaled_dot_product_attention": sdpa}


@mutant("SDPA reads a 1-d attn_mask [S] as a column [S, 1]",
        "test_sdpa_accepts_a_one_dimensional_mask")
def sdpa_1d_mask_as_queries():
    def sdpa(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False):
        if attn_mask is not None and attn_mask.dim() == 1:
            attn_mask = attn_mask[:, None]  # broadcasts only where S == L, and then wrongly
        return ORIG.scaled_dot_product_attention(q, k, v, attn_mask, scale, is_causal, enable_gqa)
    return {"scaled_dot_product_attention": sdpa}


@mutant("SDPA on jagged nested tensors pads the batch and attends over the padding too",
        "test_sdpa_on_jagged_nested_tensors_matches_oracle")
def jagged_sdpa_attends_to_padding():
    def sdpa(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False):
        if getattr(q, "is_nested", False):
            lengths = [t.shape[1] for t in q.unbind()]
            dense = [t.to_padded_tensor(0.0) for t in (q, k, v)]
            out = ORIG.scaled_dot_product_attention(*dense, None, scale)
            parts = [out[i, :, :n].transpose(0, 1) for i, n in enumerate(lengths)]
            return torch.nested.nested_tensor(parts, layout=torch.jagged).transpose(1, 2)
        return ORIG.scaled_dot_product_attention(q, k, v, attn_mask, scale, is_causal, enable_gqa)
    return {"scaled_dot_product_attention": sdpa}


@mutant("MultiheadAttention's fast path (eval, no grad) drops key_padding_mask",
        "test_multihead_attention_paths_match_oracle")
def mha_fast_path_drops_key_padding_mask():
    def mha(module, query, key, value, key_padding_mask=None, attn_mask=None, need_weights=True):
        if not module.training and not torch.is_grad_enabled():
            key_padding_mask = None
        return ORIG.multihead_attention(module, query, key, value, key_padding_mask, attn_mask, need_weights)
    return {"multihead_attention": mha}


@mutant("MultiheadAttention drops key_padding_mask once the sequence passes 256 keys (a size-dependent "
        "fault: every small-size MHA property passes)", "test_multihead_attention_at_model_sizes_matches_oracle")
def mha_drops_key_padding_mask_past_256_keys():
    def mha(module, query, key, value, key_padding_mask=None, attn_mask=None, need_weights=True):
        seq = key.shape[1] if key.dim() == 3 and module.batch_first else key.shape[0]
        if seq > 256:
            key_padding_mask = None
        return ORIG.multihead_attention(module, query, key, value, key_padding_mask, attn_mask, need_weights)
    return {"multihead_attention": mha}


@mutant("TransformerEncoder's fast path (eval, no grad) drops src_key_padding_mask",
        "test_transformer_encoder_fast_path_matches_slow_path")
def encoder_fast_path_drops_padding_mask():
    def enc(module, src, mask=None, src_key_padding_mask=None, is_causal=None):
        if not module.training and not torch.is_grad_enabled() and mask is None:
            src_key_padding_mask = None
        return ORIG.transformer_encoder(module, src, mask, src_key_padding_mask, is_causal)
    return {"transformer_encoder": enc}


@mutant("FlexAttention returns nan for a query whose mask_mod keeps no key (0 / 0 in the kernel)",
        "test_flex_attention_mask_mod_matches_oracle")
def flex_fully_masked_nan():
    def flex(q, k, v, mask_mod):
        from torch.nn.attention.flex_attention import create_mask
        out = ORIG.flex_attention(q, k, v, mask_mod)
        keep = create_mask(mask_mod, q.shape[0], q.shape[1], q.shape[-2], k.shape[-2], device=q.device)
        return out.masked_fill(~keep.any(-1, keepdim=True), float("nan"))
    return {"flex_attention": flex}


@mutant("a torch whose CPU flash kernel raises for attn_mask with is_causal=True, as documented: the "
        "deviation entry must then be removed", "test_sdpa_refuses_attn_mask_with_is_causal")
def sdpa_flash_refuses_mask_with_causal():
    def sdpa(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False):
        if attn_mask is not None and is_causal:
            raise RuntimeError("Explicit attn_mask should not be set when is_causal=True")
        return ORIG.scaled_dot_product_attention(q, k, v, attn_mask, scale, is_causal, enable_gqa)
    return {"scaled_dot_product_attention": sdpa}


@mutant("a torch whose flash kernel takes 1-d masks and whose nested paths take a batch of empty sequences: "
        "both deviation entries must then be removed", "test_sdpa_accepts_a_one_dimensional_mask",
        "test_fast_paths_accept_a_batch_of_empty_sequences")
def attention_edge_cases_fixed():
    def sdpa(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False):
        if attn_mask is not None and attn_mask.dim() == 1:
            attn_mask = attn_mask[None]
        if getattr(q, "is_nested", False) and all(t.shape[1] == 0 for t in q.unbind()):
            return q.clone()
        return ORIG.scaled_dot_product_attention(q, k, v, attn_mask, scale, is_causal, enable_gqa)

    def enc(module, src, mask=None, src_key_padding_mask=None, is_causal=None):
        if src_key_padding_mask is not None and bool(src_key_padding_mask.all()) and not module.training:
            return torch.zeros_like(src)
        return ORIG.transformer_encoder(module, src, mask, src_key_padding_mask, is_causal)
    return {"scaled_dot_product_attention": sdpa, "transformer_encoder": enc}
