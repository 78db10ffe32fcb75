"""Capability gaps: an op × dtype × device the backend refuses as unimplemented.

A wrong result is a failure whatever the dtype.  A refusal of the form torch's dispatch macros
raise (``"softmax_lastdim_kernel_impl" not implemented for 'Half'``) is not a wrong result: the
backend has no kernel for that dtype.  Like OpInfo's supported-dtypes check, what counts is
what the backend *declares*:

* a backend declares the dtypes it supports (``DTYPES``, default all of them) and may list the
  kernels it lacks (``MISSING``: a sequence of `Missing`, each for the releases it holds for);
* a refusal of a declared op × dtype × device fails the property (the backend claimed it);
* a refusal of an undeclared one is a **capability gap**: the example is not checked, the
  property goes on with the other dtypes, and the report lists the gap in an outcome of its own
  (``capability_gap``), which does not fail the run (compare lists a new gap as a coverage
  change).

torch eager's `TORCH_MISSING` is the table for torch: which kernels a release lacks, read off
the release matrix (``docs/releases.md``) and the PRs that added them.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from conformance.devices import device_type
from conformance.ops import OpWrapper
from conformance.releases import holds

# c10's ScalarType names, as the dispatch macros print them
SCALAR_TYPES = {"Half": "float16", "BFloat16": "bfloat16", "Float": "float32", "Double": "float64",
                "Int": "int32", "Long": "int64", "Bool": "bool"}
_NOT_IMPLEMENTED = re.compile(r"\"(\w+)\" not implemented for '(\w+)'")


class CapabilityGap(BaseException):
    """An op × dtype × device the backend refused as unimplemented, and did not declare.

    A BaseException, like pytest's own outcomes: the properties catch an op's errors to compare
    them with the rule's (``failures.attempt``), and a gap must pass through those untouched to
    the report plugin, which records it and counts the example as not checked."""

    def __init__(self, op: str, dtype: str, device: str, kernel: str, message: str):
        super().__init__(f"{op} has no {dtype} kernel on {device} ({kernel}): {message}")
        self.op, self.dtype, self.device, self.kernel, self.message = op, dtype, device, kernel, message

    def key(self) -> tuple[str, str, str]:
        return self.op, self.dtype, device_type(self.device)


@dataclass(frozen=True)
class Missing:
    """Kernels a backend lacks: `ops` × `dtypes` on `devices`, for the torch releases `torch`."""

    ops: tuple[str, ...]
    dtypes: tuple[str, ...]
    devices: tuple[str, ...]
    torch: str       # PEP 440 specifier of the releases that lack them
    source: str      # how it was found, and where it was added

    def covers(self, op: str, dtype: str, device: str, version) -> bool:
        return (op in self.ops and dtype in self.dtypes and device_type(device) in self.devices
                and holds(self.torch, version))


# Read off the release matrix (docs/releases.md): on torch 2.1.2 CPU, softmax (softmax_kernel_impl,
# softmax_lastdim_kernel_impl), bmm and baddbmm (inside SDPA and the attention modules) raise
# "not implemented for 'Half'"; torch 2.4.1, the next release the matrix ran, computes them all.
# 2.2 and 2.3 were not run, so the table says "<2.4": a release in between that computes them is
# simply never refused, while one that refuses is not failed for it.
_SOFTMAX_OPS = ("softmax", "masked_softmax", "scaled_dot_product_attention", "multihead_attention",
                "transformer_encoder")
TORCH_MISSING = (
    Missing(_SOFTMAX_OPS, ("float16",), ("cpu",), "<2.4",
            "observed on torch 2.1.2 CPU (softmax, bmm, baddbmm: \"not implemented for 'Half'\"); "
            "computed by 2.4.1"),
)


def gap_of(err: BaseException) -> tuple[str, str] | None:
    """(kernel, dtype) when `err` is a dispatch macro's "not implemented for" refusal."""
    if not isinstance(err, (RuntimeError, NotImplementedError)):
        return None
    m = _NOT_IMPLEMENTED.search(str(err))
    if m is None or m.group(2) not in SCALAR_TYPES:
        return None
    return m.group(1), SCALAR_TYPES[m.group(2)]


def declared(backend, op: str, dtype: str, device: str) -> bool:
    """Whether `backend` declares that `op` computes `dtype` on `device`."""
    if dtype not in backend.dtypes:
        return False
    return not any(m.covers(op, dtype, device, None) for m in backend.missing)


class Capable(OpWrapper):
    """The ops of a backend, each refusal "not implemented for <dtype>" of an op × dtype ×
    device the backend does not declare turned into a CapabilityGap; others pass through."""

    def __init__(self, ops, backend, device: str):
        super().__init__(ops)
        self._backend, self._device = backend, device

    def _wrap(self, name, target):
        def fn(*args, **kwargs):
            try:
                return target(*args, **kwargs)
            except (RuntimeError, NotImplementedError) as e:
                found = gap_of(e)
                if found is None or declared(self._backend, name, found[1], self._device):
                    raise
                raise CapabilityGap(name, found[1], self._device, found[0], str(e).split("\n")[0]) from e
        return fn


# --------------------------------------------------------------------------- whole features a device lacks


@dataclass(frozen=True)
class Lacks:
    """A feature `device` lacks on the releases `torch`: it refuses every input with an error of
    `error` type matching `pattern` (searched in the message).  A refusal of that form is a
    capability gap; any other error, or a wrong result, still fails; and a device that starts to
    compute the feature is checked like any other."""

    feature: str      # a feature of `FEATURES`
    device: str
    error: type
    pattern: str
    torch: str        # PEP 440 specifier of the torch releases it was seen on
    source: str       # how it was found, with the standalone script

    def refuses(self, err: BaseException) -> bool:
        return isinstance(err, self.error) and re.search(self.pattern, str(err)) is not None


FEATURES = ("flex_attention", "jagged")

DEVICE_LACKS = (
    Lacks("flex_attention", "xla", RuntimeError, r"Cannot concatenate arrays with different element types: S64 vs S32",
          "==2.9.*",
          "torch_xla 2.9.0, PJRT_DEVICE=CPU: create_block_mask's vmap over the mask_mod lowers to an XLA "
          "concatenate of int64 and int32 indices (torch/nn/attention/flex_attention.py); standalone: "
          "import torch, torch_xla; from torch.nn.attention.flex_attention import create_block_mask; "
          "create_block_mask(lambda b, h, q, k: q >= k, 1, 1, 4, 4, device=torch_xla.device())"),
    Lacks("jagged", "xla", AttributeError, r"'NestedIntNode' object has no attribute 'expect_size'", "==2.9.*",
          "torch_xla 2.9.0, PJRT_DEVICE=CPU: building a jagged nested tensor on xla fails in torch/nested "
          "(the symbolic ragged size has no XLA counterpart); standalone: import torch, torch_xla; "
          "torch.nested.nested_tensor([torch.zeros(2, 4, device='xla'), torch.zeros(3, 4, device='xla')], "
          "layout=torch.jagged)"),
)


def lacking(name: str, device: str, dtype: str, err: BaseException | None) -> None:
    """Raise a CapabilityGap when `err` is the refusal `DEVICE_LACKS` declares for feature `name`
    on `device`; otherwise return (the caller judges `err` as usual)."""
    if name not in FEATURES:
        raise KeyError(f"unknown feature {name!r}; known: {', '.join(FEATURES)}")
    if not isinstance(err, Exception):
        return
    for lack in DEVICE_LACKS:
        if lack.feature == name and lack.device == device_type(device) and holds(lack.torch, None) \
                and lack.refuses(err):
            raise CapabilityGap(name, dtype, device, f"{name} on {lack.device}",
                                f"{type(err).__name__}: {str(err).splitlines()[0][:200]} ({lack.source})") from err


@contextlib.contextmanager
def feature(name: str, device: str, dtype: str = "all"):
    """``with feature("jagged", device, dtype): ...``: the block builds and runs feature `name` on
    `device`; a refusal `DEVICE_LACKS` declares for that device becomes a CapabilityGap."""
    try:
        yield
    except Exception as err:
        lacking(name, device, dtype, err)
        raise
