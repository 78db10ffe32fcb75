"""Classification: the input classes of a tensor, of an op call's arguments, and the size bands
and tiles they are named by (``softmax.x.layout:permuted``, ``softmax.width:2^9+1``,
``tril.tiles:rows>256,cols>512``).  Pure functions of the arguments, but for a tensor's version
counter, read against what the current example saw (`conformance.reach.recording`)."""

from __future__ import annotations

import functools
import math

from conformance import rules
from conformance.reach import recording

# --------------------------------------------------------------------------- sizes


@functools.lru_cache(maxsize=None)
def band(n: int) -> str:
    """The size class of `n`: 0, 1, a power of two, one past or one short of a power of two,
    or (between 2^k and 2^(k+1)) odd or even: where block, vector and tail-loop code differ."""
    if n <= 1:
        return str(n)
    k = n.bit_length() - 1
    if n == 1 << k:
        return f"2^{k}"
    if n - 1 == 1 << k:
        return f"2^{k}+1"
    if n + 1 == 1 << (k + 1):
        return f"2^{k + 1}-1"
    return f"2^{k}<n<2^{k + 1} {'odd' if n % 2 else 'even'}"


def bands(max_n: int, min_n: int = 0) -> tuple[str, ...]:
    """Every size class of min_n..max_n, in size order."""
    out: list[str] = []
    for n in range(min_n, max_n + 1):
        b = band(n)
        if b not in out:
            out.append(b)
    return tuple(out)


def members(cls: str, max_n: int, min_n: int = 0) -> list[int]:
    """The sizes in min_n..max_n that fall in size class `cls`."""
    return [n for n in range(min_n, max_n + 1) if band(n) == cls]


# --------------------------------------------------------------------------- two dims

# Kernels tile rows and columns together: a class per axis misses the case where both pass a
# tile (a causal mask of 512 x 512 tokens).  A (rows, columns) pair is classed by the largest
# tile each passes.
TILES = (16, 32, 64, 128, 256, 512, 1024)


@functools.lru_cache(maxsize=None)
def tile(n: int) -> str:
    """">T" for the largest tile T in `TILES` that `n` passes, "<=16" below them all."""
    past = [t for t in TILES if n > t]
    return f">{past[-1]}" if past else f"<={TILES[0]}"


def tile_pair(rows_name: str, rows: int, cols_name: str, cols: int) -> str:
    """The class of a (rows, columns) pair, e.g. ``tiles:L>256,S>512``."""
    return f"tiles:{rows_name}{tile(rows)},{cols_name}{tile(cols)}"


def tiles_between(prefix: str, rows_name: str, rows: tuple[int, int], cols_name: str, cols: tuple[int, int]) -> str:
    """A claim: `prefix`'s (rows, columns) pair with the rows past a tile in [rows[0], rows[1]]
    and the columns past one in [cols[0], cols[1]] (0 as the low end: not past any tile)."""
    def labels(lo: int, hi: int) -> list[str]:
        return ([f"<={TILES[0]}"] if lo == 0 else []) + [f">{t}" for t in TILES if lo <= t <= hi]
    return " | ".join(f"{prefix}.tiles:{rows_name}{r},{cols_name}{c}"
                      for r in labels(*rows) for c in labels(*cols))


# The CPU flash kernel's blocks (aten/src/ATen/native/cpu/FlashAttentionKernel.cpp,
# flash_attention_kernel_impl): queries in blocks of 32 below 192 queries, 64 below 768, else
# 256; keys in blocks of 512 (cpu_flash_attention's kvSplitSize, capped at S).
def flash_q_block(L: int) -> int:
    return 256 if L >= 768 else 64 if L >= 192 else 32


FLASH_KV_BLOCK = 512


def blocks(n: int, size: int) -> str:
    """How a loop over `n` in blocks of `size` runs: "one" block, "whole" blocks, or several
    with a last "partial" one."""
    return "one" if n <= size else "partial" if n % size else "whole"


# --------------------------------------------------------------------------- one tensor

LAYOUTS = ("contiguous", "permuted", "strided", "offset", "expanded")
FLOAT_SPECIALS = ("nan", "+inf", "-inf", "-0", "subnormal", "huge")   # huge: |x| >= finfo.max / 2
INT_SPECIALS = ("min", "max")                                        # the dtype's extremes


def layouts_of(t) -> set[str]:
    """The layout kinds of torch tensor `t` (several at once: a permuted view at an offset)."""
    out = set()
    shape, strides = tuple(t.shape), t.stride()
    if t.storage_offset() > 0:
        out.add("offset")
    if any(s == 0 and n > 1 for s, n in zip(strides, shape)):
        out.add("expanded")
    moving = _order(strides, shape)
    if moving != sorted(moving, reverse=True):
        out.add("permuted")
    dims = sorted((s, n) for s, n in zip(strides, shape) if n > 1 and s > 0)
    acc = 1
    for s, n in dims:
        if s != acc:
            out.add("strided")
            break
        acc *= n
    if not out:
        out.add("contiguous")
    return out


def _order(strides, shape) -> list[int]:
    """The strides of the dims that move (size > 1, stride > 0), in dim order."""
    return [s for s, n in zip(strides, shape) if n > 1 and s > 0]


def _torch():
    import torch
    return torch


# Past this many elements a tensor's values are not classified (six reductions over a 1536 x
# 1536 identity cost more than the op under test); the suite's value-carrying inputs are smaller.
MAX_VALUES_SCAN = 1 << 16


def _array(t):
    """`t`'s values as a NumPy array (a view where torch allows: no copy on the CPU; bfloat16,
    which NumPy lacks, as float32).  NumPy's reductions on small arrays cost a microsecond
    where a torch op costs several: this runs on every tensor of every example."""
    torch = _torch()
    a = t.detach()
    if a.device.type != "cpu":
        a = a.cpu()
    if a.dtype == torch.bfloat16:
        a = a.float()
    return a.numpy()


@functools.lru_cache(maxsize=None)
def _limits(dtype) -> tuple:
    torch = _torch()
    if dtype.is_floating_point:
        fi = torch.finfo(dtype)
        return fi.max, fi.tiny
    ii = torch.iinfo(dtype)
    return ii.min, ii.max


def values_of(t) -> set[str]:
    """The special values `t` holds (see FLOAT_SPECIALS, INT_SPECIALS)."""
    import numpy as np

    torch = _torch()
    if t.numel() == 0 or t.numel() > MAX_VALUES_SCAN or t.dtype == torch.bool:
        return set()
    if t.dtype.is_floating_point:
        big, tiny = _limits(t.dtype)
        a = _array(t)
        out = set()
        finite = np.isfinite(a)
        if finite.all():
            mag = np.abs(a)
        else:
            out |= {n for n, on in (("nan", np.isnan(a).any()), ("+inf", np.isposinf(a).any()),
                                    ("-inf", np.isneginf(a).any())) if on}
            mag = np.abs(a[finite])
        if mag.size and mag.max() >= big / 2:
            out.add("huge")
        small = mag < tiny
        if small.any():
            if (mag[small] != 0).any():
                out.add("subnormal")
            if np.signbit(a[np.asarray(a == 0)]).any():
                out.add("-0")
        return out
    if t.dtype in (torch.int32, torch.int64):
        lo, hi = _limits(t.dtype)
        a = _array(t)
        return {n for n, on in (("min", (a == lo).any()), ("max", (a == hi).any())) if on}
    return set()


MASK_ROWS = ("none", "one", "prefix", "all", "other")


def mask_rows_of(t) -> set[str]:
    """The patterns of a bool mask's rows along its last dim: none set, exactly one, a
    prefix (padding), all, or something else."""
    import numpy as np

    if t.dim() == 0 or t.numel() == 0:
        return set()
    width = t.shape[-1]
    rows = _array(t).reshape(-1, width)
    count = rows.sum(-1)
    prefix = (rows == (np.arange(width) < count[:, None])).all(-1)
    none, full = count == 0, count == width
    found = {"none": none, "all": full, "one": (count == 1) & ~prefix,
             "prefix": prefix & ~none & ~full, "other": ~prefix & (count != 1) & ~none & ~full}
    return {name for name, rows_of in found.items() if rows_of.any()}


def mask_varies(t) -> set[str]:
    """Which of the leading dims of a mask of 3+ dims the mask differs along: "dim-3"
    (the head dim of an attention mask) and "dim-4" (its batch dim)."""
    out = set()
    if t.dim() < 3:
        return out
    a = _array(t)
    for d, name in ((-3, "dim-3"), (-4, "dim-4")):
        if a.ndim >= -d and a.shape[d] > 1:
            first = a.take([0], axis=d)
            if (a != first).any():
                out.add(name)
    return out


def _version_of(t) -> int | None:
    """t's version counter, or None for a tensor subclass that refuses it (torch 2.4's CausalBias
    raises NotImplementedError for any torch function but SDPA, ``_version`` included)."""
    try:
        return t._version
    except NotImplementedError:
        return None


def tensor_classes(prefix: str, t) -> set[str]:
    """The classes of one tensor argument, each name prefixed with `prefix`."""
    seen = recording._seen.get(id(t))
    version = _version_of(t)
    if seen is not None and seen[0] is t and version is not None and seen[1] == version:
        cls = seen[2]
    else:
        cls = _classes_of(t)
        if recording._current is not None and version is not None:
            recording._seen[id(t)] = (t, version, cls)
    return {f"{prefix}.{c}" for c in cls}


def _classes_of(t) -> set[str]:
    if type(t).__name__ == "CausalBias":  # torch.nn.attention.bias: a tensor subclass with no storage
        return {f"causal-bias:{t.variant.name.lower().replace('_', '-')}"}
    if getattr(t, "is_nested", False):  # jagged: no strides or NumPy view to read
        return {"layout:jagged", f"ndim:{t.dim()}", f"dtype:{str(t.dtype).removeprefix('torch.')}"}
    cls = {f"layout:{k}" for k in layouts_of(t)}
    cls.add(f"ndim:{t.dim()}")
    cls.add(f"numel:{band(t.numel())}")
    dtype = str(t.dtype).removeprefix("torch.")
    cls.add(f"dtype:{dtype}")
    cls.update(f"values:{v}" for v in values_of(t))
    if dtype == "bool":
        n = int(_array(t).sum()) if t.numel() else 0
        cls.add("mask:all" if n == t.numel() else "mask:none" if n == 0 else "mask:mixed")
        cls.update(f"rows:{r}" for r in mask_rows_of(t))
        if t.dim() >= 2:
            cls.add(tile_pair("rows", t.shape[-2], "cols", t.shape[-1]))
        cls.update(f"varies:{v}" for v in mask_varies(t))
    return cls


def _is_tensor(x) -> bool:
    return hasattr(x, "dim") and hasattr(x, "stride")


# --------------------------------------------------------------------------- one op call

# the names of each op's positional arguments (None: not an array), in protocol order
ARGS = {
    "broadcast_tensors": None,  # *xs: x0, x1, ...
    "expand": ("x", None), "broadcast_to": ("x", None),
    "add": ("a", "b"), "mul": ("a", "b"), "eq": ("a", "b"), "lt": ("a", "b"),
    "where": ("cond", "a", "b"),
    "add_": ("self", "other"), "sub_": ("self", "other"), "mul_": ("self", "other"),
    "iadd": ("self", "other"),
    "masked_fill": ("self", "mask", "value"), "masked_fill_": ("self", "mask", "value"),
    "softmax": ("x", None), "masked_softmax": ("x", None, "mask"),
    "scaled_dot_product_attention": ("q", "k", "v"),
    "tril": ("x", None),
    "multihead_attention": (None, "query", "key", "value"),
    "transformer_encoder": (None, "src"),
    "flex_attention": ("q", "k", "v", None),
}
# ops whose tensor arguments broadcast together
BROADCASTING = ("broadcast_tensors", "add", "mul", "eq", "lt", "where", "add_", "sub_", "mul_", "iadd",
                "masked_fill", "masked_fill_")


def _arrays(op, args, kwargs) -> list[tuple[str, object]]:
    names = ARGS.get(op, ())
    if names is None:
        named = [(f"x{i}", a) for i, a in enumerate(args)]
    else:
        named = [(n, a) for n, a in zip(names, args) if n is not None]
    named += [(k, v) for k, v in kwargs.items() if v is not None]
    return [(n, a) for n, a in named if _is_tensor(a)]


def classify(op: str, args: tuple, kwargs: dict) -> set[str]:
    """The classes of one call of `op` (before it runs)."""
    if op == "broadcast_shapes":
        return {f"broadcast_shapes.{c}" for c in _shape_classes(args)}
    arrays = _arrays(op, args, kwargs)
    out: set[str] = set()
    for name, t in arrays:
        out |= tensor_classes(f"{op}.{name}", t)
    if op in BROADCASTING and len(arrays) > 1:
        out |= {f"{op}.{c}" for c in _pair_classes(arrays)}
    extra = _OP_CLASSES.get(op)
    if extra is not None:
        out |= {f"{op}.{c}" for c in extra(args, kwargs)}
    return out


def _pair_classes(arrays) -> set[str]:
    shapes = [tuple(t.shape) for _, t in arrays]
    out = set()
    ranks = [len(s) for s in shapes]
    if len(set(ranks)) > 1:
        out.add("rank:mixed")
        top = max(ranks)
        if ranks.count(top) == 1:
            out.add(f"rank:{arrays[ranks.index(top)][0]}-highest")
    else:
        out.add("rank:equal")
    return out | _column_classes(shapes)


def _column_classes(shapes) -> set[str]:
    """What the right-aligned columns of `shapes` hold: a 1 against n > 1, a 1 against 0,
    two sizes that clash."""
    out = set()
    for k in range(1, max((len(s) for s in shapes), default=0) + 1):
        col = [s[-k] for s in shapes if len(s) >= k]
        if 1 in col and any(c > 1 for c in col):
            out.add("stretch:1-vs-n")
        if 1 in col and 0 in col:
            out.add("stretch:1-vs-0")
        if len(set(col) - {1}) > 1:
            out.add("sizes:incompatible")
    return out


def _shape_classes(shapes) -> set[str]:
    out = {f"operands:{len(shapes)}"}
    norm = []
    for s in shapes:
        if isinstance(s, int):
            out.add("arg:int")
            s = (s,)
        s = tuple(s)
        norm.append(s)
        if not s:
            out.add("shape:0-d")
        if any(x < 0 for x in s):
            out.add("size:negative")
        if 0 in s:
            out.add("size:0")
    out.add("rank:mixed" if len({len(s) for s in norm}) > 1 else "rank:equal")
    return out | _column_classes(norm)


def _softmax_classes(args, kwargs) -> set[str]:
    x, dim = args[0], args[1]
    out = {"dim:negative" if dim < 0 else "dim:nonnegative"}
    if x.dim():
        d = dim % x.dim()
        out.add("dim:last" if d == x.dim() - 1 else "dim:inner")
        out.add(f"width:{band(x.shape[d])}")
    return out


def _sdpa_classes(args, kwargs) -> set[str]:
    q, k = args[0], args[1]
    out = {f"kernel:{_kernel()}"}
    if kwargs.get("is_causal"):
        out.add("is_causal")
    if kwargs.get("enable_gqa"):
        out.add("enable_gqa")
        out.add("gqa:" + ("divides" if q.dim() >= 3 and k.shape[-3] and q.shape[-3] % k.shape[-3] == 0
                          else "does-not-divide"))
    if getattr(q, "is_nested", False):
        return out | {"nested:jagged", f"E:{band(q.shape[-1])}"}
    L, S, E = q.shape[-2], k.shape[-2], q.shape[-1]
    out |= {f"L:{band(L)}", f"S:{band(S)}", f"E:{band(E)}", "L<S" if L < S else "L=S" if L == S else "L>S",
            tile_pair("L", L, "S", S), f"q-blocks:{blocks(L, flash_q_block(L))}",
            f"kv-blocks:{blocks(S, FLASH_KV_BLOCK)}"}
    mask = kwargs.get("attn_mask")
    if mask is not None:
        if type(mask).__name__ == "CausalBias":
            out.add("attn_mask.kind:causal-bias")
        else:
            out.add(f"attn_mask.kind:{'bool' if str(mask.dtype) == 'torch.bool' else 'float'}")
            out.add(f"attn_mask.form:{_mask_form(mask, q, S)}")
    return out


def _kernel() -> str:
    """The SDPA kernel the call is pinned to ("any" when none is): conformance.attention_apis.pinned."""
    from conformance import attention_apis

    return attention_apis.current_kernel() or "any"


def _flex_classes(args, kwargs) -> set[str]:
    q, k = args[0], args[1]
    L, S = q.shape[-2], k.shape[-2]
    return {f"L:{band(L)}", f"S:{band(S)}", f"E:{band(q.shape[-1])}", "L<S" if L < S else "L=S" if L == S else "L>S"}


def _path(module, api: str, x) -> str:
    """fast: eval mode without grad on a device and backend where the native fused path of MHA
    or the encoder runs (`attention_apis.fast_path`), else slow."""
    import torch

    from conformance import attention_apis

    if module.training or torch.is_grad_enabled() or attention_apis.fast_path(api, str(x.device)):
        return "path:slow"
    return "path:fast"


def _encoder_classes(args, kwargs) -> set[str]:
    out = {_path(args[0], "encoder", args[1])}
    if kwargs.get("is_causal"):
        out.add("is_causal")
    return out


def _mask_form(mask, q, S) -> str:
    """(B,H,L,S) with 1 where the mask broadcasts a dim of the attention (B, H, L, S)."""
    full = (*tuple(q.shape[:-1]), S)
    names = ("B", "H", "L", "S")[-len(full):] if len(full) <= 4 else ("N",) * (len(full) - 4) + ("B", "H", "L", "S")
    parts = []
    for k in range(1, mask.dim() + 1):
        size, target = mask.shape[-k], full[-k] if k <= len(full) else None
        parts.append("1" if size == 1 and target != 1 else names[-k] if k <= len(names) else str(size))
    return "(" + ",".join(reversed(parts)) + ")"  # not [...]: a claim with [ is a glob


def _expand_classes(args, kwargs) -> set[str]:
    x, sizes = args[0], tuple(args[1])
    out = set()
    if -1 in sizes:
        out.add("sizes:minus-one")
    if len(sizes) > x.dim():
        out.add("sizes:new-dims")
    if len(sizes) < x.dim():
        out.add("sizes:too-few")
    if any(s < -1 for s in sizes):
        out.add("sizes:negative")
    return out


def _broadcast_to_classes(args, kwargs) -> set[str]:
    x, shape = args[0], tuple(args[1])
    return {"shape:new-dims" if len(shape) > x.dim() else "shape:same-rank" if len(shape) == x.dim()
            else "shape:fewer-dims"}


def _fill_classes(args, kwargs) -> set[str]:
    self, value = args[0], args[2]
    if _is_tensor(value):
        if value.dim():
            return {"value:with dims"}
        form, scalar = f"value:0-d {str(value.dtype).removeprefix('torch.')}", value.item()
    else:
        form, scalar = f"value:python {type(value).__name__}", value
    out = {form}
    if isinstance(scalar, float) and scalar == 0 and math.copysign(1.0, scalar) < 0:
        out.add("value:-0")  # a signed zero: compiled code has stored +0 (torch-compile.toml)
    if not _is_tensor(self):
        return out
    return out | {_converts(scalar, str(self.dtype).removeprefix("torch."))}


def _converts(scalar, dtype: str) -> str:
    """Whether the fill value converts to self's dtype by c10's checked conversion."""
    if dtype not in rules.DTYPES or not isinstance(scalar, (bool, int, float)):
        return "value:converts"
    try:
        rules.cast_scalar(scalar, dtype)
    except rules.ConversionError:
        return "value:overflows"
    return "value:converts"


def _tril_classes(args, kwargs) -> set[str]:
    x, d = args[0], args[1] if len(args) > 1 else kwargs.get("diagonal", 0)
    out = {"diagonal:0" if d == 0 else "diagonal:negative" if d < 0 else "diagonal:positive"}
    if x.dim() >= 2:
        out.add(tile_pair("rows", x.shape[-2], "cols", x.shape[-1]))
    return out


def _mha_classes(args, kwargs) -> set[str]:
    """Key length S: key is (S, E) unbatched, (B, S, E) batch first, else (S, B, E)."""
    module, key = args[0], args[2]
    if key.dim() not in (2, 3):
        return set()
    S = key.shape[1] if key.dim() == 3 and getattr(module, "batch_first", False) else key.shape[0]
    weights = kwargs.get("need_weights", args[6] if len(args) > 6 else True)
    return {f"S:{band(S)}", f"heads:{getattr(module, 'num_heads', 0)}", f"need_weights:{bool(weights)}",
            _path(module, "mha", key)}


_OP_CLASSES = {
    "multihead_attention": _mha_classes,
    "softmax": _softmax_classes, "masked_softmax": _softmax_classes,
    "scaled_dot_product_attention": _sdpa_classes, "expand": _expand_classes,
    "broadcast_to": _broadcast_to_classes, "masked_fill": _fill_classes, "masked_fill_": _fill_classes,
    "tril": _tril_classes, "transformer_encoder": _encoder_classes, "flex_attention": _flex_classes,
}
