"""Observation: each op call through the backend (`Observed`) and each input a property builds
itself (`note_tensor`, `note_result`, `note_softmax`) classified into the current example's
classes."""

from __future__ import annotations

from conformance import rules
from conformance.ops import OpWrapper
from conformance.reach import recording
from conformance.reach.classes import _softmax_classes, classify, tensor_classes


def note_tensor(prefix: str, t) -> None:
    """Record the classes of a property's own input `t` (see `tensor_classes`)."""
    if recording._current is not None:
        recording._current.update(tensor_classes(prefix, t))


def note_result(prefix: str, values, dtype: str) -> None:
    """Record that the oracle's result (`values` of `dtype`) holds a subnormal: a backend that
    flushes subnormals deviates on such an example even when no input is subnormal."""
    if recording._current is not None and dtype in rules.FLOAT_DTYPES and any(
            rules.is_subnormal(v, dtype) for v in values):
        recording._current.add(f"{prefix}.result.values:subnormal")


def note_softmax(prefix: str, x, dim: int) -> None:
    """Record the row width and the kind of dim of a softmax over `x` along `dim`."""
    if recording._current is not None:
        recording._current.update(f"{prefix}.{c}" for c in _softmax_classes((x, dim), {}))


class Observed(OpWrapper):
    """The ops of a backend (or of a differential pair), each call classified while an
    example is being recorded; attributes that are not ops pass through.  A backend whose
    arrays are not torch tensors (`torch_arrays` False) has only its shape-only op classified."""

    def __init__(self, ops, torch_arrays: bool = True):
        super().__init__(ops)
        self._torch_arrays = torch_arrays

    def _wrap(self, name, target):
        if not self._torch_arrays and name != "broadcast_shapes":
            return target

        def fn(*args, **kwargs):
            if recording._current is None:
                return target(*args, **kwargs)
            recording._current.update(classify(name, args, kwargs))
            try:
                out = target(*args, **kwargs)
            except Exception:
                recording._current.add(f"{name}.outcome:raises")
                raise
            recording._current.add(f"{name}.outcome:returns")
            return out
        return fn
