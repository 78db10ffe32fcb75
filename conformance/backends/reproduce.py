"""Reproductions that reproduce where the user is: the backend under test's own calls.

A failure's standalone snippet is written as torch eager code (what the rule means).  For a
backend that is not torch eager, that snippet alone shows correct output: the bug is in the
backend.  So every op call the backend receives is recorded in the example's `Case`
(`conformance.device_ops.Recorded` keeps each `call`), with its
tensors exactly as passed (dtype, device, shape, strides, offset, the storage up to its last element), and the
snippet ends with the same calls through the backend, each printed.

How the snippet gets hold of the backend: its module (``--backend pkg.module[:object]``),
imported by name, or, for a backend that is not importable as a module of its own (the built-in
torch-compile), the code its ``REPRODUCE(ops)`` returns, which binds ``backend``.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

MAX_CALLS = 8  # the last calls of an example that a snippet repeats


@dataclass
class Call:
    op: str
    args: list  # each: ("tensor", TensorSpec, device, requires_grad) or ("code", literal) or ("opaque", words)
    kwargs: dict


class _Tensor:
    """A tensor argument as it was passed: a copy of its storage up to the last element it reaches
    (a memory copy, taken before the op runs: an in-place op changes it), put into code only if the
    example fails.  Not past it: a small view of a large kept tensor (SDPA's identity is a
    corner of a 1024-wide one) must not cost a copy of the whole storage per call, nor print it."""

    def __init__(self, t):
        import torch

        t = t.detach()
        self.device, self.dtype = str(t.device), t.dtype
        try:
            flat = torch.empty(0, dtype=t.dtype, device=t.device).set_(t.untyped_storage())
            offset = t.storage_offset()
            end = offset if 0 in t.shape else offset + 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
            self.storage = flat[:end].cpu().clone()  # up to its last element: the offset stays as passed
            self.layout = (tuple(t.shape), tuple(t.stride()), offset)
        except (RuntimeError, NotImplementedError):  # no storage to read (XLA, lazy): its values
            self.storage = t.cpu().reshape(-1).clone()
            self.layout = (tuple(t.shape), None, 0)

    def spec(self):
        from conformance import tensors

        shape, strides, offset = self.layout
        storage = tuple(self.storage.tolist())
        dtype = tensors.DTYPE_NAMES[self.dtype]
        if strides is None:
            return tensors.TensorSpec.contiguous(shape, dtype, storage)
        spec = tensors.TensorSpec(shape, dtype, (), strides, offset, storage, layout="as passed")
        return dataclasses.replace(spec, values=tuple(storage[p] for p in spec.storage_positions()))


def _snapshot(value, named=None):
    import torch

    from conformance import tensors

    if named and id(value) in named and named[id(value)][1] is value:  # the snippet above makes it
        return ("code", named[id(value)][0])
    if isinstance(value, torch.Tensor) and not value.is_nested and value.layout == torch.strided:
        return ("tensor", _Tensor(value), str(value.device), value.requires_grad)
    if value is None or isinstance(value, (bool, numbers.Number, str)):
        return ("code", tensors.py_literal(value) if isinstance(value, float) else repr(value))
    if isinstance(value, (tuple, list)) and all(isinstance(v, (int, float, bool)) for v in value):
        return ("code", repr(value))
    if isinstance(value, (tuple, list)):
        return ("seq", type(value).__name__, [_snapshot(v) for v in value])
    return ("opaque", f"a {type(value).__module__}.{type(value).__qualname__}")


def call(op: str, args, kwargs, named=None) -> Call:
    """The call of `op` as passed, its tensors copied before the op runs (an in-place op changes
    them); `named`: the tensors the snippet already makes, by id."""
    return Call(op, [_snapshot(a, named) for a in args], {k: _snapshot(v, named) for k, v in kwargs.items()})


def header(backend, ops=()) -> str | None:
    """Code that binds ``backend`` to the backend under test (with `ops` at least); None for
    torch eager itself."""
    if backend.spec == "torch" or (backend.builtin and not hasattr(backend.namespace, "REPRODUCE")):
        return None
    own = getattr(backend.namespace, "REPRODUCE", None)
    if callable(own):
        return own(ops)
    module, _, attr = backend.spec.partition(":")
    line = f"backend = importlib.import_module({module!r})"
    if attr:
        line = f"backend = getattr(importlib.import_module({module!r}), {attr!r})"
    return f"import importlib\n{line}  # --backend {backend.spec}"


def code(backend, calls: list[Call]) -> str | None:
    """The lines that make `calls` through the backend under test and print what it returns."""
    head = header(backend, [c.op for c in calls])
    if head is None or not calls:
        return None
    lines = [f"# --- the same calls through the backend under test ({backend.name}); torch eager above ---", head]
    for i, call in enumerate(calls):
        names = []
        for j, arg in enumerate([*call.args, *call.kwargs.values()]):
            names.append(_arg(arg, f"b{i}_{j}", lines))
        pos = names[:len(call.args)]
        kw = [f"{k}={n}" for k, n in zip(call.kwargs, names[len(call.args):])]
        lines.append(f"got{i} = backend.{call.op}({', '.join(pos + kw)})")
        lines.append(f"print('backend under test, {call.op}:', got{i})")
    return "\n".join(lines)


def _arg(arg, name: str, lines: list[str]) -> str:
    kind = arg[0]
    if kind == "tensor":
        _, tensor, device, grad = arg
        lines.append(tensor.spec().code(name, device) + (f"\n{name}.requires_grad_()" if grad else ""))
        return name
    if kind == "code":
        return arg[1]
    if kind == "seq":
        _, typ, items = arg
        inner = [_arg(a, f"{name}_{k}", lines) for k, a in enumerate(items)]
        return ("(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")") if typ == "tuple" else "[" + ", ".join(inner) + "]"
    lines.append(f"{name} = None  # {arg[1]}: build it as the torch eager code above does")
    return name
