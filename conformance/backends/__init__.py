"""Backends: the implementation of the ops the suite checks, chosen with ``--backend``.

A backend is a module (or any object) with some of the functions below.  The properties
call the ops only through it, so pointing the suite at another implementation never means
editing the suite::

    python -m pytest conformance --backend mypkg.my_backend          # a module
    python -m pytest conformance --backend mypkg.my_backend:BACKEND  # an object in a module

Built in: ``torch`` (eager, the default), ``torch-compile``, ``numpy``.  The mutants of the
self-test are faulty backends loaded the same way (``--backend selftests.mutants:NAME``).

**Ops** (each optional: a property that needs an op the backend lacks is *skipped*, with
the op named in the reason).  Arrays are torch tensors unless the backend says otherwise:

==================================  =====================================================
broadcast_shapes(*shapes)           torch.broadcast_shapes: a sequence of ints, or raise
broadcast_tensors(*xs)              torch.broadcast_tensors: views of the broadcast shape
expand(x, sizes)                    x.expand(sizes) (-1 keeps a size)
broadcast_to(x, shape)              torch.broadcast_to
add, mul, eq, lt (a, b)             elementwise with broadcasting (lt is ``a < b``)
where(cond, a, b)                   torch.where, three-way broadcasting
add_, sub_, mul_, iadd (x, other)   in place; return x (iadd is ``x += other``)
masked_fill(x, mask, value)         out of place; value a Python scalar or 0-d tensor
masked_fill_(x, mask, value)        in place; returns x
softmax(x, dim)                     x.softmax(dim)
masked_softmax(x, dim, mask)        torch.masked.softmax (mask True = keep)
scaled_dot_product_attention(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False)
                                    q, k, v dense or jagged nested; the kernel is pinned by the
                                    caller (torch.nn.attention.sdpa_kernel)
tril(x, diagonal=0)                 torch.tril (how tutorials build causal masks)
multihead_attention(module, q, k, v, key_padding_mask=None, attn_mask=None, need_weights=True)
                                    (output, per-head weights or None) of an nn.MultiheadAttention
transformer_encoder(module, src, mask=None, src_key_padding_mask=None, is_causal=None)
                                    the output of an nn.TransformerEncoder (fast or slow path)
flex_attention(q, k, v, mask_mod)   FlexAttention with create_block_mask(mask_mod, B, H, L, S)
==================================  =====================================================

**Arrays** (only for a backend whose arrays are not torch tensors, like ``numpy``; such a
backend can only run the properties that need nothing torch-specific, the broadcasting
ones): ``from_spec(spec, device)`` builds an array with exactly the layout of a
`conformance.tensors.TensorSpec` (shape, strides and offset in elements, over
``spec.storage``); ``to_list(a)`` its values row-major as Python scalars; ``shape(a)``;
``strides(a)`` in elements; ``shares_memory(view, x)``.

**Reset** (optional): ``reset()`` is called before each test.  A backend that keeps state
between calls which can change its results (torch.compile's caches of compiled graphs:
whether a graph was specialised to an earlier value) returns to its initial state, so that a
property's outcome does not depend on which tests ran before it in the same process.

**Settings** (optional): ``NAME`` (for reports; default the --backend value), ``DTYPES``
(dtype names it supports; default all of `conformance.rules.DTYPES`), ``MISSING`` (the
kernels it lacks, per release: `conformance.capabilities.Missing`; a refusal "not implemented
for <dtype>" outside DTYPES or inside MISSING is a capability gap, not a failure), ``DEVICES`` (device
types it runs on; default any), ``DEVIATIONS`` (known-deviation files: names under
conformance/deviations/ or paths; default none), ``DIFFERENTIAL`` (True: every op call is
also run by torch eager on CPU and the two must agree; always on for non-CPU devices),
``ERRORS`` (how the backend words each kind of error where it differs from torch: a dict
kind -> list of `conformance.errors.Form`; default torch's table in `conformance.errors`),
``REPRODUCE`` (a function of the op names a failing example called, returning code that binds
``backend`` to them without importing the suite: how a failure's snippet reaches a backend
that is not a module of its own; default ``importlib.import_module`` of the --backend module), ``COMPILES`` (a function returning how
many graphs the backend has compiled so far in the process: the report gives each test's count,
with the device's own where it compiles too, as xla does; `compiles`), ``TRACED`` (True: the ops run
under torch.compile's tracing, so torch code that asks ``torch.compiler.is_compiling()`` takes its
compiled path: the encoder's fast path, `conformance.attention_apis.fast_path`).
"""

from __future__ import annotations

import importlib
import types
from typing import Callable

from conformance import session
from conformance.devices import device_type
from conformance.ops import ARRAY_FUNCTIONS, HOOKS, OPS, SETTINGS

BUILTIN = {
    "torch": "conformance.backends.torch_eager",
    "torch-compile": "conformance.backends.torch_compile",
    "numpy": "conformance.backends.numpy_arrays",
}
DEFAULT = "torch"


class BackendError(ValueError):
    """A --backend that cannot be used; the message is one line."""


class TorchArrays:
    """The array functions for torch tensors (the default)."""

    @staticmethod
    def from_spec(spec, device):
        return spec.build(device)

    @staticmethod
    def to_list(a):
        from conformance.tensors import read
        return read(a)

    @staticmethod
    def shape(a):
        return tuple(a.shape)

    @staticmethod
    def strides(a):
        return tuple(a.stride())

    @staticmethod
    def shares_memory(view, x):
        return view.data_ptr() == x.data_ptr()


class Backend:
    """A loaded backend: its ops as attributes, plus what it declares about itself."""

    def __init__(self, namespace, spec: str):
        from conformance import rules

        self.namespace = namespace
        self.spec = spec
        self.builtin = spec in BUILTIN
        self.name = str(getattr(namespace, "NAME", spec))
        self.dtypes = tuple(getattr(namespace, "DTYPES", rules.DTYPES))
        self.device_types = getattr(namespace, "DEVICES", None)
        self.deviations = tuple(getattr(namespace, "DEVIATIONS", ()))
        self.missing = tuple(getattr(namespace, "MISSING", ()))
        self.differential = bool(getattr(namespace, "DIFFERENTIAL", False))
        self.errors = dict(getattr(namespace, "ERRORS", None) or {})
        from conformance.errors import KINDS, Form
        for kind, forms in self.errors.items():
            if kind not in KINDS or not forms or not all(isinstance(f, Form) for f in forms):
                raise BackendError(f"--backend {spec}: ERRORS[{kind!r}] must be a known error kind "
                                   f"({', '.join(KINDS)}) with a list of conformance.errors.Form")
        self.torch_arrays = not any(hasattr(namespace, f) for f in ARRAY_FUNCTIONS)
        if bad := set(self.dtypes) - set(rules.DTYPES):
            raise BackendError(f"--backend {spec}: DTYPES names unknown dtypes {sorted(bad)}; "
                               f"choose from {list(rules.DTYPES)}")
        from conformance.capabilities import Missing
        if bad := [m for m in self.missing if not isinstance(m, Missing)]:
            raise BackendError(f"--backend {spec}: MISSING holds {bad[0]!r}, not a "
                               "conformance.capabilities.Missing")
        if not self.torch_arrays and (missing := [f for f in ARRAY_FUNCTIONS if not hasattr(namespace, f)]):
            raise BackendError(f"--backend {spec}: defines some array functions but not {missing}")
        for op in OPS:
            fn = getattr(namespace, op, None)
            if fn is not None and not callable(fn):
                raise BackendError(f"--backend {spec}: {op} is {type(fn).__name__}, not a function")
            setattr(self, op, fn if fn is not None else _missing(self.name, op))
        if not any(self.implements(op) for op in OPS):
            raise BackendError(f"--backend {spec}: provides none of the protocol's ops ({', '.join(OPS[:4])}, "
                               "...: conformance/backends/__init__.py); there is nothing to check")
        reset = getattr(namespace, "reset", None)
        if reset is not None and not callable(reset):
            raise BackendError(f"--backend {spec}: reset is {type(reset).__name__}, not a function")
        self.reset = reset or _nothing
        arrays = namespace if not self.torch_arrays else TorchArrays
        for f in ARRAY_FUNCTIONS:
            setattr(self, f, getattr(arrays, f))

    def implements(self, op: str) -> bool:
        return callable(getattr(self.namespace, op, None))

    def runs_on(self, device: str) -> bool:
        return self.device_types is None or device_type(device) in self.device_types

    def __repr__(self) -> str:
        return f"<backend {self.name} ({self.spec})>"


def _nothing() -> None:
    pass


def _missing(name: str, op: str) -> Callable:
    def missing(*args, **kwargs):
        raise NotImplementedError(f"backend {name!r} does not implement {op}")
    return missing


def load(spec: str | None) -> Backend:
    """The backend named by ``--backend``: a built-in name, ``pkg.module`` or ``pkg.module:attr``."""
    spec = spec or DEFAULT
    target = BUILTIN.get(spec, spec)
    module_name, _, attr = target.partition(":")
    if not all(part.isidentifier() for part in module_name.split(".")) or (attr and not attr.isidentifier()):
        raise BackendError(f"--backend {spec}: not a backend name; give a built-in backend "
                           f"({', '.join(BUILTIN)}), pkg.module or pkg.module:object")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendError(f"--backend {spec}: cannot import {module_name!r} ({e}); built-in "
                           f"backends: {', '.join(BUILTIN)}") from None
    if attr:
        try:
            namespace = getattr(module, attr)
        except AttributeError:
            raise BackendError(f"--backend {spec}: module {module_name!r} has no attribute "
                               f"{attr!r}") from None
    else:
        namespace = module
    return Backend(namespace, spec)


def derive(base, **changes) -> types.SimpleNamespace:
    """A backend namespace that is `base` (a module or object) with some ops or settings
    replaced: how a backend that differs from torch eager in a few ops is written."""
    names = [n for n in (*OPS, *ARRAY_FUNCTIONS, *SETTINGS, *HOOKS) if hasattr(base, n)]
    unknown = set(changes) - set(OPS) - set(ARRAY_FUNCTIONS) - set(SETTINGS) - set(HOOKS)
    if unknown:
        raise BackendError(f"derive: {sorted(unknown)} are not ops or settings of the protocol")
    return types.SimpleNamespace(**{**{n: getattr(base, n) for n in names}, **changes})


def compiles(devices) -> int | None:
    """Graphs compiled so far in this process by the active backend (its COMPILES) and by the
    devices in `devices` that compile (`conformance.devices.compiles`); None when nothing counts."""
    from conformance import devices as devmod

    own = getattr(active().namespace, "COMPILES", None)
    counts = [n for d in dict.fromkeys(map(device_type, devices)) if (n := devmod.compiles(d)) is not None]
    if callable(own):
        counts.append(own())
    return sum(counts) if counts else None


# --------------------------------------------------------------------------- the active backend

_active: Backend | None = None
_differential = "auto"


def activate(backend: Backend, differential: str = "auto") -> None:
    """Make `backend` the one the properties call (conftest does this from --backend)."""
    global _active, _differential
    if differential not in ("auto", "on", "off"):
        raise BackendError(f"--differential {differential}: choose auto, on or off")
    _active, _differential = backend, differential
    session.set_current(backend)


def active() -> Backend:
    """The backend the properties call (torch eager until `activate` names another)."""
    if _active is None:
        activate(load(DEFAULT))
    return _active


def differential_on(device: str) -> bool:
    """auto: for every non-CPU device, and for backends that ask for it (DIFFERENTIAL)."""
    backend = active()
    if _differential == "off" or not backend.torch_arrays:
        return False
    return _differential == "on" or device_type(device) != "cpu" or backend.differential
