"""Differential testing: every op call also runs on a reference (torch eager on CPU), and the
two must agree on which inputs raise and, within `tolerances.cross_backend`, on every
result and on every tensor argument afterwards (what an in-place op wrote).

The oracle still decides what is *right*; the differential catches what the oracle's
properties do not look at (a value the property only checks loosely, a result that is
right on CPU and different on the device) and names the op that diverged.
"""

from __future__ import annotations

import copy
import math

import torch

from conformance import attention_apis, failures, semantics, tolerances
from conformance.ops import OpWrapper
from conformance.tensors import DTYPE_NAMES, read


# flex_attention takes a mask_mod, a function over the example's tensors on the device: it
# cannot be moved to the reference device, so the oracle alone checks it
UNCHECKED = ("flex_attention",)


# Why the current test gets no differential verdict (None: it does): torch eager on CPU, the
# reference, has a known deviation of its own in the CPU twin of this test (conftest sets it).
_suspended: str | None = None


def suspend(why: str | None) -> None:
    global _suspended
    _suspended = why


def _reference_kernel(op, ref_device, device):
    """The SDPA kernel the reference runs: the one pinned for the device under test where the
    reference device offers it, else math (CUDA's efficient and cuDNN kernels have no CPU twin);
    for the attention modules, the slow path where the device under test has no fast path."""
    import contextlib

    api = attention_apis.FAST_PATH_APIS.get(op)
    if api and attention_apis.fast_path(api, device) and not attention_apis.fast_path(api, ref_device, traced=False):
        return attention_apis.without_fast_path()
    kernel = attention_apis.current_kernel()
    if op != "scaled_dot_product_attention" or kernel is None:
        return contextlib.nullcontext()
    return attention_apis.pinned(kernel if kernel in attention_apis.kernels_for(ref_device) else "math")


class Differential(OpWrapper):
    """`backend` (a backend or a wrapper of one) on `device`, checked op by op against `reference`
    (a backend) on `ref_device`; what is not an op passes through to `backend`."""

    def __init__(self, backend, reference, device: str, ref_device: str = "cpu"):
        super().__init__(backend)
        self.backend, self.reference = backend, reference
        self.device, self.ref_device = device, ref_device
        self.name = f"{backend.name} vs {reference.name} on {ref_device}"

    def _wrap(self, op, fn):
        checked = self.backend.implements(op) and self.reference.implements(op) and op not in UNCHECKED
        return self._checked(op, fn) if checked else fn

    def _checked(self, op, fn):
        ref_fn = getattr(self.reference, op)

        def checked(*args, **kwargs):
            if _suspended:
                semantics.skip(f"differential: {op} against torch eager on {self.ref_device}", _suspended)
                return fn(*args, **kwargs)
            ref_args, ref_kwargs = to_reference((args, kwargs), self.ref_device)
            try:
                out, err = fn(*args, **kwargs), None
            except failures.OP_ERRORS as e:
                out, err = None, e
            if op == "scaled_dot_product_attention" and attention_apis.refusal(err):
                raise err  # the pinned kernel cannot take the input: the property counts it
            try:
                with _reference_kernel(op, self.ref_device, self.device):
                    ref, ref_err = ref_fn(*ref_args, **ref_kwargs), None
            except failures.OP_ERRORS as e:
                ref, ref_err = None, e
            if (err is None) != (ref_err is None):
                self._fail(op, "one raised and the other did not",
                           _outcome(err, out), _outcome(ref_err, ref))
            if err is not None:
                raise err
            problem = differ(out, ref) or next(
                (f"argument {i} afterwards: {p}" for i, (a, r) in enumerate(zip(args, ref_args))
                 if isinstance(a, torch.Tensor) and (p := differ(a, r))), None)
            if problem:
                self._fail(op, problem, _outcome(None, out), _outcome(None, ref))
            return out
        checked.__name__ = op
        return checked

    def _fail(self, op, problem, got, want):
        what = (f"differential: {op} on {self.device} ({self.backend.name}) and on "
                f"{self.ref_device} ({self.reference.name}) disagree: {problem}")
        extra = (f"Run the reproduction below with device={self.ref_device!r} (torch eager) to see "
                 f"the reference result; tolerance for floats: tolerances.cross_backend")
        case = failures.current_case()
        if case is None:
            raise failures.ConformanceFailure(f"{what}\nExpected: {want}\nActual:   {got}")
        case.fail(what, expected=f"as on {self.ref_device}: {want}", actual=got, extra=extra)


def to_reference(obj, device):
    """A deep copy of call arguments on `device`, tensors with the same layout and autograd role."""
    if type(obj).__name__ == "CausalBias":  # lengths and a variant, no storage
        return obj
    if isinstance(obj, torch.Tensor) and obj.is_nested:
        return obj.detach().clone().to(device)
    if isinstance(obj, torch.Tensor):
        return _copy_tensor(obj, device)
    if isinstance(obj, torch.nn.Module):
        return copy.deepcopy(obj).to(device)
    if isinstance(obj, dict):
        return {k: to_reference(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        return type(obj)(to_reference(v, device) for v in obj)
    return obj


def _copy_tensor(t, device):
    if not semantics.has_storage(t.device):  # no storage to copy: by value, dense
        with torch.no_grad():
            flat = t.detach().to(device).clone()
        if not t.requires_grad:
            return flat
        return flat.requires_grad_() if t.is_leaf else flat.requires_grad_() * 1
    with torch.no_grad():
        n = t.untyped_storage().nbytes() // t.element_size()
        flat = t.detach().as_strided((n,), (1,), 0).clone().to(device)
    if not t.requires_grad:
        return flat.as_strided(t.shape, t.stride(), t.storage_offset())
    if t.is_leaf:
        return flat.as_strided(t.shape, t.stride(), t.storage_offset()).requires_grad_()
    return (flat.requires_grad_() * 1).as_strided(t.shape, t.stride(), t.storage_offset())


def differ(got, want) -> str | None:
    """What differs between two op results (None: they agree)."""
    if isinstance(want, torch.Tensor) and want.is_nested:
        if not (isinstance(got, torch.Tensor) and got.is_nested):
            return "not a nested tensor"
        return differ(list(got.unbind()), list(want.unbind()))
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"a {type(got).__name__} instead of a tensor"
        if tuple(got.shape) != tuple(want.shape):
            return f"shape {tuple(got.shape)} vs {tuple(want.shape)}"
        if got.dtype != want.dtype:
            return f"dtype {got.dtype} vs {want.dtype}"
        tol = tolerances.cross_backend(DTYPE_NAMES.get(got.dtype, ""))
        for i, (a, b) in enumerate(zip(read(got), read(want))):
            if not _close(a, b, tol):
                return f"element {i} (row-major): {a!r} vs {b!r} (tolerance {tol or 'exact'})"
        return None
    if isinstance(want, (list, tuple)) and not isinstance(want, torch.Size):
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            return f"{_outcome(None, got)} vs {_outcome(None, want)}"
        return next((f"item {i}: {p}" for i, (g, w) in enumerate(zip(got, want)) if (p := differ(g, w))), None)
    if want is None or got is None:
        return None if got is want else f"{got!r} vs {want!r}"
    same = tuple(got) == tuple(want) if isinstance(want, torch.Size) else got == want
    return None if same else f"{got!r} vs {want!r}"


def _close(a, b, tol):
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if a == b:
            return True
        return tol is not None and not math.isinf(a) and not math.isinf(b) and tol.allows(a, b)
    return a == b


def _outcome(err, out) -> str:
    if err is not None:
        return f"raised {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    if isinstance(out, torch.Tensor):
        return f"a {str(out.dtype).replace('torch.', '')} tensor of shape {tuple(out.shape)}"
    if isinstance(out, (list, tuple)) and not isinstance(out, torch.Size):
        return f"{len(out)} results: " + ", ".join(_outcome(None, o) for o in out)
    return repr(out)
