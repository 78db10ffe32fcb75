"""The fault zoo: mutants generated from fault templates that model real kernel bugs.

The hand-written mutants of `selftests.mutants` were written next to the properties that
catch them.  The zoo is written from the other side: each *template* is a kind of bug that
kernels really have (a tail loop that stops short, strides ignored, a reduction split into
blocks and never combined, accumulation in a narrower dtype, a mask read from the wrong
head ...), stated with the input condition that triggers it (a class of `conformance.reach`),
and applied to every op of the backend protocol it can apply to.  Each (template, op) pair
is a backend, loaded like any other::

    python -m pytest conformance --backend selftests.zoo:tail_stops_short__softmax

`selftests/test_zoo.py` runs every one against the properties that call its op and counts
the kills; the survivors, each with the reason it cannot be caught, are in
`selftests/zoo_survivors.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from conformance import reach
from conformance.backends import OPS, derive, torch_eager

ORIG = torch_eager
T = torch.Tensor

# the protocol's ops by what they do
VIEWS = ("broadcast_tensors", "expand", "broadcast_to")
ELEMENTWISE = ("add", "mul", "eq", "lt", "where", "masked_fill", "tril")
INPLACE = ("add_", "sub_", "mul_", "iadd", "masked_fill_")
ROWWISE = ("softmax", "masked_softmax", "scaled_dot_product_attention", "multihead_attention")
# the ops the generic templates fit: the encoder and FlexAttention take a module or a mask_mod
# and never an input they must refuse or an empty one; their bugs are hand mutants
# (selftests/mutants.py, the attention-API section)
GENERIC_OPS = tuple(op for op in OPS if op not in ("transformer_encoder", "flex_attention"))
TENSOR_OPS = tuple(op for op in GENERIC_OPS if op != "broadcast_shapes")
VALUE_OPS = (*ELEMENTWISE, *INPLACE, *ROWWISE)
BROADCASTING = reach.BROADCASTING
FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# the mask arguments: (op, positional index or keyword)
MASKS = {"masked_fill": (1,), "masked_fill_": (1,), "where": (0,), "masked_softmax": (2,),
         "scaled_dot_product_attention": ("attn_mask",), "multihead_attention": ("key_padding_mask", "attn_mask")}


@dataclass(frozen=True)
class Template:
    name: str
    bug: str                                   # the fault, in words
    trigger: str                               # the inputs it fires on
    ops: tuple[str, ...]                       # the ops it applies to
    make: Callable[[str, Callable], Callable]  # (op, correct implementation) -> faulty one


@dataclass(frozen=True)
class ZooMutant:
    name: str
    template: Template
    op: str

    @property
    def bug(self) -> str:
        return f"{self.op}: {self.template.bug}"

    @property
    def backend(self):
        return derive(torch_eager, NAME=f"zoo:{self.name}", **{self.op: self.template.make(self.op, getattr(ORIG, self.op))})


# --------------------------------------------------------------------------- argument plumbing


def _is_tensor(x) -> bool:
    return isinstance(x, T)


def _tensor_positions(op, args, kwargs):
    """Positions (ints) and keywords of the tensor arguments the op reads values from."""
    names = reach.ARGS.get(op, ())
    if names is None:
        pos = list(range(len(args)))
    else:
        pos = [i for i, n in enumerate(names) if n is not None and i < len(args)]
    return [i for i in pos if _is_tensor(args[i])] + [k for k, v in kwargs.items() if _is_tensor(v)]


def _get(args, kwargs, key):
    return args[key] if isinstance(key, int) else kwargs[key]


def _with(args, kwargs, key, value):
    if isinstance(key, int):
        args = list(args)
        args[key] = value
        return tuple(args), kwargs
    return args, {**kwargs, key: value}


def map_inputs(op, fn, transform, *, keys=None):
    """`fn` with each tensor argument t (of `keys`, default all) replaced by transform(t) or,
    where transform returns None, left as it is."""
    def faulty(*args, **kwargs):
        for key in (keys if keys is not None else _tensor_positions(op, args, kwargs)):
            try:
                t = _get(args, kwargs, key)
            except (IndexError, KeyError):
                continue
            if not _is_tensor(t):
                continue
            new = transform(t)
            if new is not None:
                args, kwargs = _with(args, kwargs, key, new)
        return fn(*args, **kwargs)
    return faulty


def map_outputs(op, fn, transform):
    """`fn` with its result r replaced by transform(r, args) (in place ops: self changed in place)."""
    def faulty(*args, **kwargs):
        out = fn(*args, **kwargs)
        if op in INPLACE:
            before = args[0]
            new = transform(before.detach().clone(), args)
            if new is not None:
                with torch.no_grad():
                    before.copy_(new)
            return out
        if op == "multihead_attention":
            o, w = out
            new = transform(w, args) if w is not None else None
            return (o, w if new is None else new)
        if isinstance(out, (tuple, list)):
            return out
        new = transform(out, args)
        return out if new is None else new
    return faulty


def _contiguous_strides(shape):
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


def _fits(t, strides, offset) -> bool:
    if t.numel() == 0:
        return True
    last = offset + sum((n - 1) * s for n, s in zip(t.shape, strides))
    return last < t.untyped_storage().nbytes() // t.element_size()


def _restrided(t, strides, offset):
    """A view of t's storage with other strides/offset (a kernel that reads memory wrongly), or
    None where that would read past the storage."""
    if not _fits(t, strides, offset):
        return None
    return t.as_strided(tuple(t.shape), tuple(strides), offset)


# --------------------------------------------------------------------------- templates


VECTOR = 8


def _tail_stops_short(op, fn):
    if op in INPLACE:
        return _keeping_tail(fn)

    rowwise = op in ROWWISE

    def transform(out, args):
        if not _is_tensor(out) or out.dim() == 0:
            return None
        n = out.shape[-1] if rowwise else out.numel()
        tail = n % VECTOR
        if n <= VECTOR or not tail:
            return None
        flat = out.detach().clone()
        (flat if rowwise else flat.view(-1))[..., n - tail:] = 0
        return flat
    return map_outputs(op, fn, transform)


def _keeping_tail(fn):
    """In place: the last n % VECTOR elements of self (in its logical order) are never written."""
    def faulty(self, *args, **kwargs):
        n = self.numel()
        tail = n % VECTOR
        if n <= VECTOR or not tail:
            return fn(self, *args, **kwargs)
        old = self.detach().clone()
        out = fn(self, *args, **kwargs)
        if out is self and tuple(self.shape) == tuple(old.shape):
            new = self.detach().clone().reshape(-1)
            new[n - tail:] = old.reshape(-1)[n - tail:]
            with torch.no_grad():
                self.copy_(new.reshape(old.shape))
        return out
    return faulty


def _block_boundary(block):
    def make(op, fn):
        rowwise = op in ROWWISE

        def transform(out, args):
            if not _is_tensor(out) or out.dim() == 0:
                return None
            if rowwise:
                if out.shape[-1] <= block:
                    return None
                out = out.detach().clone()
                out[..., block - 1] = out[..., block]
                return out
            if out.numel() <= block:
                return None
            flat = out.detach().reshape(-1).clone()
            flat[block - 1] = flat[block]
            return flat.reshape(out.shape)
        return map_outputs(op, fn, transform)
    return make


def _strides_ignored(op, fn):
    def transform(t):
        if t.is_contiguous() or any(s == 0 and n > 1 for s, n in zip(t.stride(), t.shape)):
            return None
        return _restrided(t, _contiguous_strides(t.shape), t.storage_offset())
    return map_inputs(op, fn, transform)


def _offset_ignored(op, fn):
    def transform(t):
        if t.storage_offset() == 0:
            return None
        return _restrided(t, t.stride(), 0)
    return map_inputs(op, fn, transform)


def _zero_stride_read_as_one(op, fn):
    def transform(t):
        strides = tuple(1 if s == 0 and n > 1 else s for s, n in zip(t.stride(), t.shape))
        if strides == tuple(t.stride()):
            return None
        view = _restrided(t, strides, t.storage_offset())
        return view if view is not None else torch.zeros_like(t)
    return map_inputs(op, fn, transform)


def _blocks_not_combined(block):
    def make(op, fn):
        if op in ("softmax", "masked_softmax"):
            def faulty(x, dim, *rest):
                if x.dim() == 0 or x.shape[dim] <= block:
                    return fn(x, dim, *rest)
                xs = x.split(block, dim)
                ms = rest[0].split(block, dim) if rest and _is_tensor(rest[0]) and rest[0].shape == x.shape \
                    else [rest[0] if rest else None] * len(xs)
                parts = [fn(a, dim, m) if rest else fn(a, dim) for a, m in zip(xs, ms)]
                return torch.cat(parts, dim)
            return faulty

        def faulty_sdpa(q, k, v, attn_mask=None, scale=None, **kw):
            S = k.shape[-2]
            if S <= block or kw.get("is_causal") or kw.get("enable_gqa"):
                return fn(q, k, v, attn_mask=attn_mask, scale=scale, **kw)
            out = 0
            for s in range(0, S, block):
                m = None
                if attn_mask is not None:
                    m = attn_mask.narrow(-1, s, min(block, S - s)) if attn_mask.shape[-1] == S else attn_mask
                out = out + fn(q, k.narrow(-2, s, min(block, S - s)), v.narrow(-2, s, min(block, S - s)),
                               attn_mask=m, scale=scale)
            return out
        return faulty_sdpa
    return make


def _narrow_accumulation(op, fn):
    wide = (torch.float32, torch.float64)
    if op in INPLACE:  # self keeps its dtype: the op runs on a bfloat16 copy, written back
        def faulty_inplace(self, *args, **kwargs):
            if self.dtype not in wide:
                return fn(self, *args, **kwargs)
            low = self.detach().to(torch.bfloat16)
            try:
                fn(low, *(a.to(torch.bfloat16) if _is_tensor(a) and a.dtype in wide else a for a in args), **kwargs)
            except Exception:
                return fn(self, *args, **kwargs)
            with torch.no_grad():
                self.copy_(low)
            return self
        return faulty_inplace

    def faulty(*args, **kwargs):
        keys = _tensor_positions(op, args, kwargs)
        dtypes = {_get(args, kwargs, k).dtype for k in keys}
        if not dtypes & set(wide):
            return fn(*args, **kwargs)
        target = next(d for d in (torch.float64, torch.float32) if d in dtypes)
        for k in keys:
            t = _get(args, kwargs, k)
            if t.dtype in wide:
                args, kwargs = _with(args, kwargs, k, t.to(torch.bfloat16))
        out = fn(*args, **kwargs)
        return out.to(target) if _is_tensor(out) and out.dtype == torch.bfloat16 else out
    return faulty


def _left_aligned(op, fn):
    def faulty(*args, **kwargs):
        keys = _tensor_positions(op, args, kwargs)
        if op in ("masked_fill", "masked_fill_"):
            keys = [0, 1]
        tensors = [_get(args, kwargs, k) for k in keys]
        nd = max((t.dim() for t in tensors), default=0)
        if all(t.dim() == nd for t in tensors):
            return fn(*args, **kwargs)
        moved = (args, kwargs)
        for k, t in zip(keys, tensors):
            if t.dim() < nd and (op not in INPLACE or k != 0):
                moved = _with(*moved, k, t.reshape(tuple(t.shape) + (1,) * (nd - t.dim())))
        try:
            return fn(*moved[0], **moved[1])
        except RuntimeError:
            return fn(*args, **kwargs)
    return faulty


def _negative_dim_off_by_one(op, fn):
    def faulty(x, dim, *rest):
        if dim < 0 and x.dim() >= 2 and dim - 1 >= -x.dim():
            dim = dim - 1
        return fn(x, dim, *rest)
    return faulty


def _empty_raises(op, fn):
    def faulty(*args, **kwargs):
        if op == "broadcast_shapes":
            if any(0 in ((s,) if isinstance(s, int) else tuple(s)) for s in args):
                raise RuntimeError("zoo: empty shape not supported")
        elif any(_get(args, kwargs, k).numel() == 0 for k in _tensor_positions(op, args, kwargs)):
            raise RuntimeError("zoo: empty input not supported")
        return fn(*args, **kwargs)
    return faulty


def _errors_swallowed(op, fn):
    def faulty(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, ValueError, TypeError, IndexError, AssertionError):
            if op == "broadcast_shapes":
                shapes = [(s,) if isinstance(s, int) else tuple(s) for s in args]
                nd = max((len(s) for s in shapes), default=0)
                padded = [(1,) * (nd - len(s)) + s for s in shapes]
                return torch.Size(max(abs(c) for c in col) for col in zip(*padded))
            if op in VIEWS:
                return args if op == "broadcast_tensors" else args[0]
            return args[0] if op in INPLACE else _first_tensor(op, args, kwargs).clone()
    return faulty


def _first_tensor(op, args, kwargs):
    return _get(args, kwargs, _tensor_positions(op, args, kwargs)[0])


def _mask_from_first(dim):
    def make(op, fn):
        if op == "multihead_attention" and dim == -4:  # its key_padding_mask is (B, S): batch is dim 0
            return map_inputs(op, fn, _first_along(0), keys=("key_padding_mask",))
        return map_inputs(op, fn, _first_along(dim), keys=MASKS[op])
    return make


def _first_along(dim):
    def transform(t):
        if t.dim() < (-dim if dim < 0 else dim + 1) or t.shape[dim] <= 1:
            return None
        return t.narrow(dim, 0, 1).expand_as(t)
    return transform


def _nan_to_zero(op, fn):
    def transform(t):
        if t.dtype not in FLOAT or not bool(t.isnan().any()):
            return None
        return torch.nan_to_num(t, nan=0.0, posinf=math.inf, neginf=-math.inf)
    if op in INPLACE:
        def faulty(self, *args, **kwargs):
            if self.dtype in FLOAT and self.numel() and bool(self.isnan().any()):
                with torch.no_grad():
                    self.copy_(torch.nan_to_num(self, nan=0.0, posinf=math.inf, neginf=-math.inf))
            return map_inputs(op, fn, transform, keys=[1])(self, *args, **kwargs)
        return faulty
    return map_inputs(op, fn, transform)


def _negative_zero_lost(op, fn):
    def transform(out, args):
        if not _is_tensor(out) or out.dtype not in FLOAT or out.numel() == 0:
            return None
        if not bool(((out == 0) & out.signbit()).any()):
            return None
        return out.detach() + 0.0  # -0.0 + 0.0 is +0.0
    return map_outputs(op, fn, transform)


def _subnormals_flushed(op, fn):
    def transform(t):
        if t.dtype not in FLOAT or t.numel() == 0:
            return None
        tiny = torch.finfo(t.dtype).tiny
        sub = (t != 0) & (t.abs() < tiny)
        if not bool(sub.any()):
            return None
        return torch.where(sub, torch.zeros_like(t), t)
    return map_inputs(op, fn, transform)


def _int_saturates(op, fn):
    def faulty(*args, **kwargs):
        keys = _tensor_positions(op, args, kwargs)
        if not keys or _get(args, kwargs, keys[0]).dtype != torch.int32:
            return fn(*args, **kwargs)
        wide = [(k, _get(args, kwargs, k)) for k in keys]
        lo, hi = torch.iinfo(torch.int32).min, torch.iinfo(torch.int32).max
        if op in INPLACE:
            self = args[0]
            moved = (args, kwargs)
            for k, t in wide:
                moved = _with(*moved, k, t.to(torch.int64))
            tmp = moved[0][0].clone()
            fn(tmp, *moved[0][1:], **moved[1])
            with torch.no_grad():
                self.copy_(tmp.clamp(lo, hi).to(torch.int32))
            return self
        moved = (args, kwargs)
        for k, t in wide:
            if t.dtype == torch.int32:
                moved = _with(*moved, k, t.to(torch.int64))
        out = fn(*moved[0], **moved[1])
        return out.clamp(lo, hi).to(torch.int32) if out.dtype == torch.int64 else out
    return faulty


def _zero_d_promoted(op, fn):
    def transform(t):
        return t.reshape(1) if t.dim() == 0 else None
    return map_inputs(op, fn, transform)


def _fully_masked_rows_flipped(op, fn):
    """SDPA returns nan for a query with no key left; torch.masked.softmax returns zeros."""
    if op == "masked_softmax":
        def faulty(x, dim, mask):
            out = fn(x, dim, mask)
            if mask is None:
                return out
            none = ~mask.expand_as(x).any(dim, keepdim=True)
            return torch.where(none.expand_as(out), torch.zeros_like(out), out)
        return faulty

    def faulty_sdpa(q, k, v, attn_mask=None, scale=None, **kw):
        out = fn(q, k, v, attn_mask=attn_mask, scale=scale, **kw)
        if attn_mask is None or attn_mask.dtype != torch.bool:
            return out
        none = ~attn_mask.expand(*out.shape[:-1], k.shape[-2]).any(-1, keepdim=True)
        return torch.where(none.expand_as(out), torch.full_like(out, math.nan), out)
    return faulty_sdpa


def _backward_blocks_not_combined(block):
    """Softmax's backward, p * (g - sum(p * g)), with the sum taken over blocks of `block`
    entries of the row and never combined: each block subtracts only its own part (a backward
    kernel that reduces across blocks and forgets the final reduction)."""
    class Faulty(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, out):
            ctx.save_for_backward(out)
            return out.clone()

        @staticmethod
        def backward(ctx, g):
            (p,) = ctx.saved_tensors
            pg = p * g
            parts = [part.sum(-1, keepdim=True).expand_as(part) for part in pg.split(block, -1)]
            return p * (g - torch.cat(parts, -1)), None

    def make(op, fn):
        def faulty(x, dim, *rest):
            out = fn(x, dim, *rest)
            if not x.requires_grad or x.dim() == 0 or x.shape[dim] <= block:
                return out
            moved = Faulty.apply(x.movedim(dim, -1), out.detach().movedim(dim, -1))
            return moved.movedim(-1, dim)
        return faulty
    return make


def _kv_grads_from_last_query_block(op, fn):
    """SDPA's backward keeps only the last query block's contribution to dk and dv (the
    accumulation over query blocks overwrites instead of adding): the CPU flash kernel's blocks
    of 32, 64 or 256 queries by L."""
    def faulty(q, k, v, *args, **kw):
        L = q.shape[-2] if not getattr(q, "is_nested", False) else 0
        block = reach.flash_q_block(L)
        if L <= block or not (q.requires_grad or k.requires_grad or v.requires_grad):
            return fn(q, k, v, *args, **kw)
        start = (L - 1) // block * block  # the last block's first query
        out = fn(q, k, v, *args, **kw)
        # the same output, whose k and v gradients flow from the last block's rows only
        cut = fn(q, k.detach(), v.detach(), *args, **kw)
        rows = torch.arange(L, device=q.device).view(*([1] * (out.dim() - 2)), L, 1) >= start
        return torch.where(rows, out, cut)
    return faulty


def _tile_local_mask_columns(tile):
    """A kernel that tiles queries and keys by `tile` reads the mask of each tile below the
    diagonal at the diagonal tile's columns (a tile-local column index never offset by the key
    tile): query block qb reads key j's mask at column qb * tile + j % tile."""
    def make(op, fn):
        def faulty(q, k, v, attn_mask=None, scale=None, is_causal=False, **kw):
            L, S = q.shape[-2], k.shape[-2]
            if getattr(q, "is_nested", False) or L <= tile or S <= tile or (attn_mask is None and not is_causal):
                return fn(q, k, v, attn_mask=attn_mask, scale=scale, is_causal=is_causal, **kw)
            if is_causal:
                attn_mask = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
            full = attn_mask.expand(*attn_mask.shape[:-2], L, S) if attn_mask.dim() >= 2 else attn_mask.expand(L, S)
            rows = torch.arange(L, device=q.device).view(L, 1)
            cols = torch.arange(S, device=q.device).view(1, S)
            src = rows // tile * tile + cols % tile
            below = (cols // tile < rows // tile) & (src < S)
            index = torch.where(below, src, cols).expand(full.shape)
            return fn(q, k, v, attn_mask=torch.gather(full.contiguous(), -1, index), scale=scale, **kw)
        return faulty
    return make


def _last_query_block_dropped(op, fn):
    """The CPU flash kernel's last, partial query block (L not a multiple of its block) is never
    computed: its output rows stay zero."""
    def faulty(q, k, v, *args, **kw):
        out = fn(q, k, v, *args, **kw)
        L = q.shape[-2] if not getattr(q, "is_nested", False) else 0
        block = reach.flash_q_block(L)
        if L <= block or L % block == 0:
            return out
        out = out.clone()
        out[..., L - L % block:, :] = 0
        return out
    return faulty


TEMPLATES = [
    Template("tail_stops_short", f"a vector loop stops before its tail: of n > {VECTOR} outputs with n % {VECTOR} "
             f"!= 0, the last n % {VECTOR} are never written (each row of a row-wise op; the whole flattened "
             "output of an elementwise one)", f"n > {VECTOR}, not a multiple of {VECTOR}", VALUE_OPS,
             _tail_stops_short),
    Template("block_off_by_one_16", "the last element of the first 16-element block takes the first of the next "
             "(rows of row-wise ops, the flattened output of elementwise ones: two 8-lane vectors)",
             "more than 16 elements (rows wider than 16)", VALUE_OPS, _block_boundary(16)),
    # rows of the multihead_attention property hold at most 8 keys (its oracle is O(T^2) Python): the
    # long-row templates are applied to the ops whose rows the suite draws past 1024
    *(Template(f"block_off_by_one_{b}", f"the last element of the first {b}-element block of a row takes the "
               "first of the next", f"rows wider than {b}", ROWWISE[:3], _block_boundary(b)) for b in (256, 1024)),
    Template("strides_ignored", "a non-contiguous input is read in storage order from its offset, as if contiguous",
             "layout permuted or strided", TENSOR_OPS, _strides_ignored),
    Template("offset_ignored", "an input's storage offset is ignored (read from the start of its storage)",
             "layout offset", TENSOR_OPS, _offset_ignored),
    Template("zero_stride_read_as_one", "an expanded (stride 0) dim is read with stride 1 (past the stored "
             "slice; zeros where that leaves the storage)", "layout expanded", TENSOR_OPS, _zero_stride_read_as_one),
    *(Template(f"blocks_not_combined_{b}", f"a row-wise reduction is split into blocks of {b} that are each "
               "normalised and never combined (the flash-attention rescale forgotten)", f"rows (keys) wider than {b}",
               ("softmax", "masked_softmax", "scaled_dot_product_attention"), _blocks_not_combined(b))
      for b in (256, 1024)),
    Template("narrow_accumulation", "float32 and float64 inputs are computed in bfloat16 and cast back",
             "dtype float32 or float64", VALUE_OPS[:-1], _narrow_accumulation),
    Template("left_aligned_broadcast", "a lower-rank operand is padded with trailing 1s (left-aligned) where "
             "that broadcasts too", "operands of mixed rank", BROADCASTING, _left_aligned),
    Template("negative_dim_off_by_one", "a negative dim is wrapped one too far (dim - 1)", "dim negative, 2+ dims",
             ("softmax", "masked_softmax"), _negative_dim_off_by_one),
    Template("empty_raises", "an input with no elements raises instead of giving an empty result",
             "an input (a shape) with a 0", GENERIC_OPS, _empty_raises),
    Template("errors_swallowed", "an invalid input is accepted: the error is swallowed and a plausible result "
             "returned", "inputs the op must refuse", GENERIC_OPS, _errors_swallowed),
    Template("mask_from_first_head", "a mask of 3+ dims is read from its first head for every head",
             "a mask that varies along dim -3", tuple(MASKS), _mask_from_first(-3)),
    Template("mask_from_first_batch", "a mask is read from its first batch entry for every batch (dim -4; a "
             "key padding mask's dim 0)", "a mask that varies along its batch dim", tuple(MASKS),
             _mask_from_first(-4)),
    Template("nan_read_as_zero", "nan inputs are read as 0 (a max/min that skips nan, an fmax)",
             "values nan", (*VALUE_OPS[:-1],), _nan_to_zero),
    # comparisons give bools and softmax outputs are never -0.0: the template fits the ops whose
    # float results can hold it
    Template("negative_zero_lost", "-0.0 results come out as +0.0", "results holding -0.0",
             tuple(op for op in VALUE_OPS if op not in ("eq", "lt", *ROWWISE)), _negative_zero_lost),
    # a subnormal logit and 0 give the same probabilities to within an ulp: flushing them is no
    # bug of a softmax, so the template fits the ops that move or combine values exactly
    Template("subnormals_flushed", "subnormal inputs are flushed to 0 (denormals-are-zero)", "values subnormal",
             tuple(op for op in VALUE_OPS if op not in ROWWISE), _subnormals_flushed),
    Template("int32_saturates", "int32 arithmetic saturates at the extremes instead of wrapping",
             "int32 results past the extremes", ("add", "mul", "add_", "sub_", "mul_", "iadd"), _int_saturates),
    # SDPA, MultiheadAttention and tril refuse 0-d inputs, and refuse them as [1] too
    Template("zero_d_promoted", "a 0-d input is treated as shape [1]", "an input with 0 dims",
             tuple(op for op in TENSOR_OPS if op not in ("scaled_dot_product_attention", "multihead_attention", "tril")),
             _zero_d_promoted),
    Template("backward_blocks_not_combined_1024", "softmax's backward sums p * g over blocks of 1024 entries of "
             "a row and never combines them: each block subtracts only its own part", "gradients of rows wider "
             "than 1024", ("softmax", "masked_softmax"), _backward_blocks_not_combined(1024)),
    Template("kv_grads_from_last_query_block", "SDPA's backward keeps only the last query block's share of dk "
             "and dv (the CPU flash kernel's blocks of 32, 64 or 256 queries): the sum over query blocks "
             "overwrites instead of adding", "gradients with L past a query block", ("scaled_dot_product_attention",),
             _kv_grads_from_last_query_block),
    Template("tile_local_mask_columns_64", "queries and keys tiled by 64: each tile below the diagonal reads the "
             "mask at the diagonal tile's columns (a tile-local column index)", "L and S both past 64, with a mask "
             "(is_causal included)", ("scaled_dot_product_attention",), _tile_local_mask_columns(64)),
    Template("last_query_block_dropped", "the last, partial query block of the CPU flash kernel's split (32, 64 "
             "or 256 queries) is never computed: its rows stay zero", "L past a query block, not a multiple of it",
             ("scaled_dot_product_attention",), _last_query_block_dropped),
    Template("fully_masked_policy_flipped", "a row with no kept entry gives nan where the policy is 0 (SDPA) "
             "or 0 where it is nan (torch.masked.softmax)", "mask rows with nothing kept",
             ("masked_softmax", "scaled_dot_product_attention"), _fully_masked_rows_flipped),
]


def _generate() -> dict[str, ZooMutant]:  # noqa: D103
    out = {}
    for template in TEMPLATES:
        for op in template.ops:
            name = f"{template.name}__{op}"
            out[name] = ZooMutant(name, template, op)
    return out


ZOO = _generate()


def __getattr__(name: str):
    """``--backend selftests.zoo:NAME`` loads the backend of mutant NAME."""
    mutant = ZOO.get(name)
    if mutant is None:
        raise AttributeError(name)
    return mutant.backend
