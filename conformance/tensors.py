"""Tensor specifications: the same logical values in any memory layout, built on any device.

A `TensorSpec` holds the logical values as Python scalars (what the oracle sees) and a
memory layout (sizes, strides, storage offset over a flat storage list).  `build` makes a
fresh torch tensor with exactly that layout using only ``torch.tensor`` (of a list, or of
a NumPy array of the same values for a large storage) and ``as_strided``, so faults in
permute/slice/expand or in dtype conversion cannot change the inputs.  `code`
writes the same construction as a standalone snippet for failure messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from conformance import rules, semantics

if TYPE_CHECKING:
    import torch


def __getattr__(name: str):
    # TORCH_DTYPES (name -> torch.dtype) and DTYPE_NAMES (the reverse), made on first use: the
    # pytest-xdist controller imports this module and must not import torch before its workers
    # start (see conftest.py).
    if name in ("TORCH_DTYPES", "DTYPE_NAMES"):
        import torch

        # the suite's dtype names are torch's attribute names; uint8 only as a (rejected) mask
        dtypes = {n: getattr(torch, n) for n in (*rules.DTYPES, "uint8")}
        globals().update(TORCH_DTYPES=dtypes, DTYPE_NAMES={v: k for k, v in dtypes.items()})
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Above this many elements, messages and snippets show a summary instead of every value.
SHOW_VALUES = 64

# torch.tensor(list) converts a Python list at about 65 ns a value here; NumPy converts the
# same list about 3x faster and torch.tensor copies its array as raw bytes (4,096 float32
# values: 267 -> 101 us; softmax rows go to 4,096).  Below this many values the list is as
# fast.  NumPy has no bfloat16, so bfloat16 keeps the list.
FROM_NUMPY_AT = 64


def py_literal(v) -> str:
    """A Python expression for a scalar that survives nan/inf (``float('nan')``)."""
    if isinstance(v, float):
        if math.isnan(v):
            return "float('nan')"
        if math.isinf(v):
            return "float('inf')" if v > 0 else "float('-inf')"
    return repr(v)


def word(v) -> str:
    """A scalar as a message shows it: ``nan``, ``-inf``, ``True``, ``0.5``."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return repr(v)


def nested_words(values: Sequence, shape: Sequence[int]) -> str:
    """Row-major flat values as nested brackets of `word`s (a bare word for a 0-d shape)."""
    if not shape:
        return word(values[0])
    if len(shape) == 1:
        return "[" + ", ".join(map(word, values)) + "]"
    step = math.prod(shape[1:])
    return "[" + ", ".join(nested_words(values[i * step:(i + 1) * step], shape[1:])
                           for i in range(shape[0])) + "]"


def literal_list(values: Sequence) -> str:
    return "[" + ", ".join(py_literal(v) for v in values) + "]"


@dataclass(frozen=True)
class TensorSpec:
    """A tensor described without torch: logical values plus a memory layout.

    `storage` is the flat backing store; element ``idx`` lives at
    ``offset + sum(i * s for i, s in zip(idx, strides))``.  Positions of the storage that
    no element maps to hold other values, so writes outside the view are visible.
    """

    shape: tuple[int, ...]
    dtype: str
    values: tuple  # logical values, row-major
    strides: tuple[int, ...]
    offset: int
    storage: tuple
    layout: str = "contiguous"  # words for messages: "permuted (1, 0)", "expanded dims (0,)", ...
    numpy_source: str | None = field(default=None, compare=False)  # for large generated values

    def __repr__(self) -> str:
        # Hypothesis prints each drawn value with repr under a failure: the suite's own message
        # already shows the values in words, so a spec stays one short line (the whole storage,
        # twice, was 2,000 lines for one 512-wide row)
        shown = ", ".join(map(repr, self.values[:6])) + (f", ... ({len(self.values)} values)"
                                                         if len(self.values) > 6 else "")
        return f"TensorSpec({self.dtype}, shape={self.shape}, {self.layout}, values=[{shown}])"

    def _repr_pretty_(self, printer, cycle) -> None:  # Hypothesis's printer lists a dataclass's fields otherwise
        printer.text(repr(self))

    @classmethod
    def contiguous(cls, shape, dtype: str, values: Sequence) -> "TensorSpec":
        shape = tuple(shape)
        values = tuple(values)
        assert len(values) == rules.numel(shape), (shape, len(values))
        return cls(shape, dtype, values, rules.contiguous_strides(shape), 0, values)

    @property
    def is_contiguous_layout(self) -> bool:
        return self.offset == 0 and self.strides == rules.contiguous_strides(self.shape) and \
            len(self.storage) == len(self.values)

    def storage_positions(self) -> list[int]:
        """Storage position of every logical element, row-major."""
        return [self.offset + sum(i * s for i, s in zip(idx, self.strides))
                for idx in rules.ndindex(self.shape)]

    def build(self, device: str = "cpu", requires_grad: bool = False) -> torch.Tensor:
        if not semantics.has_storage(device):  # no layouts there: built on CPU, moved by value
            t = self.build("cpu").to(device)
            return t.requires_grad_(True) if requires_grad else t
        base = self._storage_tensor(device)
        if self.is_contiguous_layout:
            t = base.reshape(self.shape)
        else:
            t = base.as_strided(self.shape, self.strides, self.offset)
        if requires_grad:
            t.requires_grad_(True)
        return t

    def build_with_base(self, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor | None]:
        """The tensor and the 1-d tensor over its whole storage (None on a storage-less
        device: `conformance.semantics`)."""
        if not semantics.has_storage(device):
            return self.build(device), None
        base = self._storage_tensor(device)
        return base.as_strided(self.shape, self.strides, self.offset), base

    def _storage_tensor(self, device: str) -> torch.Tensor:
        """A fresh 1-d tensor holding `storage`: every value is exact in the dtype (the
        strategies round them to it), so NumPy's conversion and torch's agree bit for bit."""
        import torch

        if len(self.storage) >= FROM_NUMPY_AT and self.dtype != "bfloat16":
            import numpy

            return torch.tensor(numpy.array(self.storage, dtype=self.dtype), device=device)
        return torch.tensor(list(self.storage), dtype=getattr(torch, self.dtype), device=device)

    # ------------------------------------------------------------------ words and code

    def describe(self) -> str:
        where = "contiguous" if self.is_contiguous_layout else (
            f"{self.layout}; strides {self.strides}, storage offset {self.offset}, "
            f"storage of {len(self.storage)}")
        return f"{self.dtype} tensor of shape {self.shape} ({where})"

    def show_values(self) -> str:
        if len(self.values) <= SHOW_VALUES:
            return nested_words(self.values, self.shape)
        if self.numpy_source:
            return f"{len(self.values)} values from {self.numpy_source}"
        head = ", ".join(map(word, self.values[:8]))
        return f"{len(self.values)} values, starting [{head}, ...]"

    def code(self, name: str, device: str = "cpu") -> str:
        """Python lines that build this tensor with torch (and numpy for large values)."""
        dt = f"torch.{self.dtype}"
        dev = "" if device == "cpu" else f", device={device!r}"
        if self.numpy_source and self.is_contiguous_layout:
            return (f"{name} = torch.from_numpy({self.numpy_source}).to({dt}{dev})"
                    f".reshape({self.shape})")
        store = literal_list(self.storage)
        if self.is_contiguous_layout:
            return f"{name} = torch.tensor({store}, dtype={dt}{dev}).reshape({self.shape})"
        if not semantics.has_storage(device):  # built in its layout on CPU, moved by value
            return (f"{name} = torch.tensor({store}, dtype={dt})"
                    f".as_strided({self.shape}, {self.strides}, {self.offset}).to({device!r})  # {self.layout}, moved")
        return (f"{name} = torch.tensor({store}, dtype={dt}{dev})"
                f".as_strided({self.shape}, {self.strides}, {self.offset})  # {self.layout}")


def read(t: torch.Tensor) -> list:
    """A tensor's logical values as Python scalars, row-major."""
    return t.detach().cpu().reshape(-1).tolist() if t.dim() else [t.detach().cpu().item()]


def layout_of(t: torch.Tensor) -> tuple:
    """Everything that says where a tensor's values live."""
    return (tuple(t.shape), tuple(t.stride()), t.storage_offset(), t.dtype, t.device)
