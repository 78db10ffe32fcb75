"""The op protocol every backend speaks, and the one way of wrapping it.

`OPS` names the ops a backend may provide (conformance/backends/__init__.py says what each
does); `OpWrapper` is the base of every layer the properties call through: each op wrapped on
first use, everything else passed through.  The layers (`conformance.device_ops` stacks them):
`conformance.device_ops.Recorded` (each call kept for the failure's snippet),
`conformance.backends.differential.Differential` (each call checked against torch eager on CPU),
`conformance.capabilities.Capable` (undeclared dtype gaps) and `conformance.reach.Observed`
(each call's input classes).  This module imports nothing of the suite: every layer builds on it.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["ARRAY_FUNCTIONS", "HOOKS", "OPS", "SETTINGS", "OpWrapper"]

OPS = ("broadcast_shapes", "broadcast_tensors", "expand", "broadcast_to", "add", "mul", "eq", "lt",
       "where", "add_", "sub_", "mul_", "iadd", "masked_fill", "masked_fill_", "softmax",
       "masked_softmax", "scaled_dot_product_attention", "tril", "multihead_attention",
       "transformer_encoder", "flex_attention")
ARRAY_FUNCTIONS = ("from_spec", "to_list", "shape", "strides", "shares_memory")
SETTINGS = ("NAME", "DTYPES", "MISSING", "DEVICES", "DEVIATIONS", "DIFFERENTIAL", "ERRORS", "REPRODUCE", "COMPILES",
            "TRACED")
HOOKS = ("reset",)


class OpWrapper:
    """The ops of `ops` (a backend, or another wrapper), each wrapped on first use by the
    subclass's ``_wrap(name, target)`` and kept; attributes that are not ops pass through."""

    def __init__(self, ops):
        self._ops = ops
        self._wrapped: dict = {}

    def __getattr__(self, name):
        if name.startswith("_"):  # the wrapper's own state, before __init__ has set it (copy, pickle)
            raise AttributeError(name)
        target = getattr(self._ops, name)
        if name not in OPS or not callable(target):
            return target
        fn = self._wrapped.get(name)
        if fn is None:
            fn = self._wrapped[name] = self._wrap(name, target)
        return fn

    def _wrap(self, name: str, target: Callable) -> Callable:
        raise NotImplementedError
