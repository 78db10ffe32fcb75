"""The oracle: broadcasting, masked fill, scalar casts and masked softmax in pure Python.

Nothing here imports torch or numpy, so a fault injected into the backend under test
can never also corrupt an expected value.  Tensors are described by a shape (a tuple
of ints) and a flat list of Python values in row-major order.

Dtypes are named by strings ("float16", "bfloat16", "float32", "float64", "int32",
"int64", "bool"); `cast_scalar` and `round_to` give the exact value a Python scalar
takes when stored in such a tensor, the way c10 converts it.
"""

from __future__ import annotations

import functools
import math
import struct
from itertools import product
from typing import Iterable, Iterator, Sequence

__all__ = [
    "BroadcastError",
    "ConversionError",
    "DTYPES",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "broadcast_shapes",
    "broadcast_values",
    "can_broadcast_to",
    "cast_scalar",
    "check_broadcast_to",
    "contiguous_strides",
    "expand_target",
    "explain",
    "finfo_eps",
    "finfo_max",
    "iinfo",
    "is_subnormal",
    "masked_fill",
    "ndindex",
    "numel",
    "round_to",
    "row_values",
    "rows_along",
    "same_value",
    "same_values",
    "significand_bits",
    "softmax",
    "softmax_defined",
    "source_index",
]

Shape = tuple[int, ...]


class BroadcastError(ValueError):
    """Shapes that the broadcasting rules cannot reconcile."""


class ConversionError(ValueError):
    """A scalar that cannot be stored in the target dtype (c10's checked_convert raises)."""


# --------------------------------------------------------------------------- shapes


def _as_shape(shape: int | Sequence[int]) -> Shape:
    """Accept an int or a sequence of ints, as ``np.broadcast_shapes`` does."""
    if isinstance(shape, bool):
        raise TypeError(f"a shape cannot be a bool: {shape!r}")
    if isinstance(shape, int):
        shape = (shape,)
    out = []
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"shape sizes must be ints, got {size!r} in {tuple(shape)!r}")
        if size < 0:
            raise ValueError(f"negative size {size} in shape {tuple(shape)!r}")
        out.append(size)
    return tuple(out)


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def contiguous_strides(shape: Sequence[int]) -> Shape:
    strides, acc = [], 1
    for size in reversed(shape):
        strides.append(acc)
        acc *= max(size, 1)
    return tuple(reversed(strides))


def ndindex(shape: Sequence[int]) -> Iterator[Shape]:
    """Every index of `shape` in row-major order (one empty index for a 0-d shape)."""
    return product(*(range(s) for s in shape))


def _aligned(shapes: Sequence[Shape]) -> list[tuple[int | None, ...]]:
    """Columns of right-aligned sizes, rightmost first; None where a shape has no such dim."""
    ndim = max((len(s) for s in shapes), default=0)
    return [tuple(s[len(s) - 1 - k] if k < len(s) else None for s in shapes) for k in range(ndim)]


def _combine(sizes: Iterable[int | None]) -> tuple[int | None, str]:
    """Result size of one aligned column and the verdict, or (None, 'incompatible')."""
    sizes = list(sizes)
    present = [s for s in sizes if s is not None]
    if any(s < 0 for s in present):
        return None, "negative size"
    distinct = set(present) - {1}
    if len(distinct) > 1:
        return None, "incompatible"
    # an operand with fewer dims has none here: it counts as a 1 (a dim added on the left)
    missing = [f"#{i}" for i, s in enumerate(sizes) if s is None]
    added = f" (missing in {', '.join(missing)}: a 1)" if missing else ""
    size = next(iter(distinct), 1)
    if size == 1 or (not missing and all(s == size for s in present)):
        return size, "equal" + added
    return size, f"stretched from 1 to {size}" + added


def broadcast_shapes(*shapes: int | Sequence[int]) -> Shape:
    """The shape that `shapes` broadcast to.

    Right-align the shapes; in each column the sizes must be equal or 1; a 1 stretches to
    the other size (so 1 against 0 gives 0); anything else raises `BroadcastError`.
    """
    norm = [_as_shape(s) for s in shapes]
    result = []
    for k, column in enumerate(_aligned(norm)):
        size, verdict = _combine(column)
        if size is None:
            dim = -1 - k
            sizes = ", ".join(f"{s}" for s in column if s is not None)
            raise BroadcastError(
                f"shapes {', '.join(map(str, norm))} are not broadcastable: dimension {dim} "
                f"has sizes {sizes}; sizes in one dimension must be equal or 1\n"
                + explain(*norm)
            )
        result.append(size)
    return tuple(reversed(result))


def explain(*shapes: int | Sequence[int], names: Sequence[str] | None = None) -> str:
    """The step-by-step alignment table, rightmost dimension first.

    Each row shows one aligned dimension: every operand's size ('-' where it has no
    such dimension), the verdict and the result size.  `names` label the operands' columns
    (default ``#0``, ``#1``, ...).
    """
    norm = [(s,) if isinstance(s, int) else tuple(s) for s in shapes]  # negative sizes shown, not raised
    names = [f"{n} {s}" for n, s in zip(names or [f"#{i}" for i in range(len(norm))], norm)]
    header = ["dim", *names, "verdict", "result"]
    rows = []
    for k, column in enumerate(_aligned(norm)):
        size, verdict = _combine(column)
        rows.append([
            str(-1 - k),
            *("-" if s is None else str(s) for s in column),
            verdict,
            "ERROR" if size is None else str(size),
        ])
    if not rows:
        rows.append(["(0-d)", *("-" for _ in norm), "all 0-d", "()"])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    lines = ["broadcast alignment (right-aligned, rightmost dimension first):", fmt(header)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def can_broadcast_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    """The one-way rule: `shape` stretches to `target` without changing `target`.

    This is the rule for `expand`, `broadcast_to` and for the other operand of an
    in-place op: self is never broadcast.
    """
    try:
        check_broadcast_to(shape, target)
    except BroadcastError:
        return False
    return True


def check_broadcast_to(shape: Sequence[int], target: Sequence[int]) -> None:
    shape, target = _as_shape(shape), _as_shape(target)
    if len(shape) > len(target):
        raise BroadcastError(
            f"shape {shape} has more dimensions than target {target}; "
            "broadcasting never removes dimensions"
        )
    for k in range(1, len(shape) + 1):
        s, t = shape[-k], target[-k]
        if s != t and s != 1:
            raise BroadcastError(
                f"shape {shape} cannot be broadcast to {target}: dimension {-k} has size {s}, "
                f"which is neither {t} nor 1\n" + explain(shape, target)
            )


def expand_target(shape: Sequence[int], sizes: Sequence[int]) -> Shape:
    """Resolve ``Tensor.expand(*sizes)``: -1 keeps the existing size; new dims lead and can't be -1.

    Raises BroadcastError when the tensor cannot be expanded to the sizes.
    """
    shape = _as_shape(shape)
    sizes = tuple(sizes)
    if len(sizes) < len(shape):
        raise BroadcastError(
            f"expand got {len(sizes)} sizes for a tensor with {len(shape)} dimensions: {sizes}"
        )
    lead = len(sizes) - len(shape)
    resolved = []
    for i, size in enumerate(sizes):
        if size == -1:
            if i < lead:
                raise BroadcastError(f"expand: -1 is not allowed in a new leading dimension {i}")
            size = shape[i - lead]
        elif size < 0:
            raise BroadcastError(f"expand: size {size} is negative")
        resolved.append(size)
    target = tuple(resolved)
    check_broadcast_to(shape, target)
    return target


def source_index(out_index: Sequence[int], in_shape: Sequence[int]) -> Shape:
    """The element mapping: which index of an input of `in_shape` feeds `out_index`."""
    lead = len(out_index) - len(in_shape)
    return tuple(0 if size == 1 else out_index[lead + k] for k, size in enumerate(in_shape))


def _flat(index: Sequence[int], shape: Sequence[int]) -> int:
    pos = 0
    for i, size in zip(index, shape):
        pos = pos * size + i
    return pos


def broadcast_values(values: Sequence, shape: Sequence[int], out_shape: Sequence[int]) -> list:
    """Row-major values of a tensor of `shape` stretched to `out_shape` (one-way rule)."""
    check_broadcast_to(shape, out_shape)
    if tuple(shape) == tuple(out_shape):
        return list(values)
    return [values[_flat(source_index(idx, shape), shape)] for idx in ndindex(out_shape)]


# --------------------------------------------------------------------------- dtypes

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("int32", "int64")
DTYPES = (*FLOAT_DTYPES, *INT_DTYPES, "bool")

_FLOAT_MAX = {
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38,
    "float64": 1.7976931348623157e308,
}
# Significand bits including the implicit one; the machine epsilon is 2 ** (1 - bits).
_FLOAT_BITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


def finfo_max(dtype: str) -> float:
    return _FLOAT_MAX[dtype]


def finfo_eps(dtype: str) -> float:
    return 2.0 ** (1 - _FLOAT_BITS[dtype])


# The smallest normal value is 2 ** _FLOAT_MIN_EXP; nonzero values below it are subnormal.
_FLOAT_MIN_EXP = {"float16": -14, "bfloat16": -126, "float32": -126, "float64": -1022}


def is_subnormal(x, dtype: str) -> bool:
    """Whether `x`, stored in float `dtype`, is a nonzero value below the smallest normal."""
    return isinstance(x, float) and x != 0 and abs(x) < 2.0 ** _FLOAT_MIN_EXP[dtype]


def significand_bits(dtype: str) -> int:
    return _FLOAT_BITS[dtype]


def iinfo(dtype: str) -> tuple[int, int]:
    bits = {"int32": 32, "int64": 64}[dtype]
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _to_float32(x: float) -> float:
    """Round a double to the nearest float32 (ties to even); overflow gives inf."""
    if math.isnan(x) or math.isinf(x):
        return x
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:  # struct refuses exactly the values that round to inf
        return math.copysign(math.inf, x)


def _f32_to_bf16(x: float) -> float:
    """Round a float32 value to bfloat16 (round to nearest even on the upper 16 bits)."""
    if math.isnan(x):
        return x
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    bits += 0x7FFF + ((bits >> 16) & 1)
    return struct.unpack("<f", struct.pack("<I", (bits >> 16) << 16 & 0xFFFFFFFF))[0]


def round_to(dtype: str, x: float | int | bool):
    """The value `x` takes when stored in a tensor of `dtype`, without the overflow check.

    float16 and bfloat16 are reached through float32, as c10 converts a double:
    double -> float -> half, so values near a half-way point round twice.
    """
    if dtype == "bool":
        return bool(x)
    if dtype in INT_DTYPES:
        return int(x)
    x = float(x)
    if dtype == "float64":
        return x
    f = _to_float32(x)
    if dtype == "float32":
        return f
    if dtype == "float16":
        if math.isnan(f) or math.isinf(f):
            return f
        try:
            return struct.unpack("<e", struct.pack("<e", f))[0]
        except OverflowError:
            return math.copysign(math.inf, f)
    return _f32_to_bf16(f)


def cast_scalar(value: float | int | bool, dtype: str):
    """The value a Python scalar takes when filled into a tensor of `dtype`.

    Follows c10's checked conversion, as `masked_fill` applies it:
    * bool targets take the truth value of anything (nan and inf are True);
    * integer targets truncate floats toward zero; nan, +-inf and values outside the
      range raise `ConversionError`;
    * float targets accept +-inf and nan; finite values beyond the largest finite value
      raise `ConversionError` (checked before rounding: 65504.5 does not fit float16);
    * Python ints outside [-2**63, 2**64) cannot even become a scalar and raise.
    """
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        raise ConversionError(f"Python int {value} is too big to convert to a scalar")
    if dtype == "bool":
        return bool(value)
    if dtype in INT_DTYPES:
        lo, hi = iinfo(dtype)
        if isinstance(value, float):
            if math.isnan(value) or value < lo or value > float(hi):
                raise ConversionError(f"value {value!r} cannot be converted to {dtype} without overflow")
            if int(value) > hi:
                # float(2**63) passes c10's check (it compares in double) and the cast is UB
                raise ConversionError(f"value {value!r} converts to {dtype} with undefined behaviour")
            return int(value)
        if not lo <= value <= hi:
            raise ConversionError(f"value {value!r} cannot be converted to {dtype} without overflow")
        return value
    # float targets
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return value
    if abs(value) > _FLOAT_MAX[dtype]:
        raise ConversionError(f"value {value!r} cannot be converted to {dtype} without overflow")
    return round_to(dtype, value)


def same_value(a, b) -> bool:
    """Equality that treats nan as equal to nan and tells 0.0 from -0.0."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b and type(a) is type(b)


def same_values(a: Sequence, b: Sequence) -> bool:
    """`same_value` for two whole sequences of the same length."""
    return len(a) == len(b) and all(same_value(p, q) for p, q in zip(a, b))


# --------------------------------------------------------------------------- masked fill


def masked_fill(values: Sequence, shape: Sequence[int], mask: Sequence[bool],
                mask_shape: Sequence[int], fill) -> tuple[Shape, list]:
    """Out-of-place masked fill: shape ``broadcast(shape, mask_shape)``; `fill` where the mask is True.

    `fill` must already be the value as stored in the dtype (see `cast_scalar`).
    """
    out_shape = broadcast_shapes(shape, mask_shape)
    self_b = broadcast_values(values, shape, out_shape)
    mask_b = broadcast_values(mask, mask_shape, out_shape)
    return out_shape, [fill if m else v for v, m in zip(self_b, mask_b)]


# --------------------------------------------------------------------------- softmax


def _kept_max(row: Sequence[float], keep: Sequence[bool]) -> float | None:
    kept = [x for x, k in zip(row, keep) if k]
    top = max(kept) if kept else -math.inf
    return None if top == -math.inf else top


def softmax_defined(row: Sequence[float], keep: Sequence[bool]) -> bool:
    """Whether `softmax` gives probabilities for this row (it has a kept entry above -inf)."""
    return _kept_max(row, keep) is not None


def softmax(row: Sequence[float], keep: Sequence[bool]) -> list[float] | None:
    """Softmax over the kept entries of one row, computed with Python floats.

    Masked entries are 0.  Returns None for a row with no kept entry: what such a row
    becomes is each implementation's own policy, not a rule of softmax.  Kept entries
    must be finite or -inf; an all -inf kept set is also None.
    """
    top = _kept_max(row, keep)
    if top is None:
        return None
    exps = [math.exp(x - top) if k else 0.0 for x, k in zip(row, keep)]
    total = math.fsum(exps)
    return [e / total for e in exps]


@functools.lru_cache(maxsize=4096)
def rows_along(shape: tuple[int, ...], dim: int) -> tuple[range, ...]:
    """Flat positions of every 1-d slice along `dim` of a contiguous `shape` (the rows softmax
    normalises), as ranges (`row_values` reads one).  Cached: inputs and oracle ask for the
    same few shapes over and over."""
    ndim = len(shape)
    dim = dim % ndim
    strides = contiguous_strides(shape)
    other = [range(s) if d != dim else range(1) for d, s in enumerate(shape)]
    step, width = strides[dim], shape[dim]
    return tuple(range(start, start + step * width, step)
                 for start in (sum(i * st for i, st in zip(idx, strides)) for idx in product(*other)))


def row_values(values: Sequence, row: range) -> Sequence:
    """The elements of flat row-major `values` at the positions of `row` (a slice: no loop)."""
    return values[row.start:row.stop:row.step]
