"""The attention APIs the suite checks, and what each does with a mask: one table.

Every API here expresses a `conformance.attention.LogicalMask` its own way (True = keep for
SDPA's bool masks and FlexAttention's mask_mod, True = ignore for MultiheadAttention and the
encoder, an additive float bias, a causal flag or bias object, ragged lengths).  Where they
differ is the row of a query with no key left: each API's policy for it, the release it
holds from, and where it is stated, are in `POLICIES`; `policy(name)` gives the one of the
running torch.  SDPA's kernels are in `KERNELS`: a property over SDPA runs once per kernel
the device offers, pinned with ``torch.nn.attention.sdpa_kernel`` (a kernel that refuses an
input raises, and the property counts the refusal: nothing is rerouted to another kernel).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from conformance.devices import device_type
from conformance.releases import holds, torch_version  # noqa: F401 (torch_version: re-exported)


@dataclass(frozen=True)
class Policy:
    """What an API returns for a query with no kept key, from a torch release on."""

    api: str
    rows: str        # "zeros", "nan", "mean-of-v" (uniform average of v's rows), "zeros-at-padding"
    torch: str       # PEP 440 specifier of the releases it holds for
    source: str      # where it is stated (docs, release notes, the PR, or "observed")
    example: str = ""  # a standalone snippet that shows it (the release matrix quotes it)


_SDPA_EXAMPLE = """import torch
import torch.nn.functional as F
q = k = v = torch.ones(1, 1, 2, 2)
keep = torch.tensor([[True, True], [False, False]])  # query 1 keeps no key
print(F.scaled_dot_product_attention(q, k, v, attn_mask=keep)[0, 0, 1])  # nan before 2.5, zeros from 2.5"""
_MHA_EXAMPLE = """import torch
mha = torch.nn.MultiheadAttention(2, 1, batch_first=True)
with torch.no_grad():
    mha.out_proj.bias.fill_(0.5)  # 0 at initialisation, which hides what the module returns
x = torch.ones(1, 2, 2)
ignore = torch.tensor([[False, False], [True, True]])  # query 1 ignores every key
out, _ = mha(x, x, x, attn_mask=ignore, need_weights=False)
print(out[0, 1])  # nan before 2.5; from 2.5 SDPA gives 0, so out_proj(0): the bias, [0.5, 0.5]"""

POLICIES = (
    Policy("sdpa", "nan", "<2.5", "softmax of a row of -inf (the documented behaviour before 2.5)",
           _SDPA_EXAMPLE),
    Policy("sdpa", "zeros", ">=2.5", "PyTorch 2.5 release notes; _safe_softmax in the math kernel and the "
                                     "fused kernels (pytorch/pytorch#131060, #133882)", _SDPA_EXAMPLE),
    Policy("sdpa-finfo-min", "mean-of-v", ">=2.0",
           "not masked at all: x + finfo.min rounds every score of the row to the same value when |x| is "
           "below half an ulp of finfo.min (float32, bfloat16, float64), so softmax is uniform and the "
           "output is the mean of v's rows; in float16 (ulp 32) a convex combination of v's rows"),
    Policy("mha-need-weights", "nan", ">=2.0", "observed; undocumented: softmax of -inf rows in "
                                               "F.multi_head_attention_forward"),
    Policy("mha-no-weights", "nan", "<2.5", "goes through SDPA (F.multi_head_attention_forward, need_weights=False)",
           _MHA_EXAMPLE),
    Policy("mha-no-weights", "zeros", ">=2.5", "goes through SDPA, whose policy changed in 2.5: the attention "
           "part of the row is 0 (for every head that keeps no key), and the module returns out_proj of it, "
           "out_proj.bias plus the other heads' part (0 only while the bias is 0, as initialised)", _MHA_EXAMPLE),
    Policy("mha-fast-path", "nan", ">=2.0", "observed; undocumented: torch._native_multi_head_attention "
                                            "(eval, no grad, need_weights=False)"),
    Policy("encoder-fast-path", "zeros-at-padding", ">=2.0",
           "nn.TransformerEncoder converts to a nested tensor and back with to_padded_tensor(0.0): "
           "padded positions come back as 0 (torch/nn/modules/transformer.py)"),
    Policy("flex", "zeros", ">=2.5", "torch/_higher_order_ops/flex_attention.py: 'Set fully masked rows' "
                                     "sumexp to 0.0' (FlexAttention first released in 2.5)"),
)

def policy(api: str) -> Policy:
    """The policy of `api` for the running torch (a LookupError names the gap in the table)."""
    v = torch_version()
    for p in POLICIES:
        if p.api == api and holds(p.torch, v):
            return p
    raise LookupError(f"no fully-masked policy of {api!r} for torch {v} in conformance/attention_apis.py")


# --------------------------------------------------------------------------- SDPA kernels


@dataclass(frozen=True)
class Kernel:
    name: str          # the test-id part
    backend: str       # torch.nn.attention.SDPBackend member
    devices: tuple     # device types that offer it


KERNELS = (
    Kernel("math", "MATH", ("cpu", "cuda", "mps", "xpu")),
    Kernel("flash", "FLASH_ATTENTION", ("cpu", "cuda", "xpu")),
    Kernel("efficient", "EFFICIENT_ATTENTION", ("cuda",)),
    Kernel("cudnn", "CUDNN_ATTENTION", ("cuda",)),
)
KERNEL_NAMES = tuple(k.name for k in KERNELS)
# not a kernel: SDPA unpinned, as a plain call runs it (torch chooses; on CPU the flash kernel
# for the inputs it takes, so its deviations are every plain call's).  Properties marked
# ``default_dispatch`` run with it too.
DEFAULT_KERNEL = "default"


def kernels_for(device: str) -> tuple[str, ...]:
    """The SDPA kernels `device` offers (each property over SDPA runs once per kernel)."""
    t = device_type(device)
    return tuple(k.name for k in KERNELS if t in k.devices) or ("math",)


_pinned: list[str] = []


@contextlib.contextmanager
def pinned(kernel: str):
    """Run SDPA with `kernel` only (torch.nn.attention.sdpa_kernel); a kernel that cannot take
    the input raises instead of falling back to another."""
    if kernel == DEFAULT_KERNEL:  # nothing pinned: torch chooses (no torch.nn.attention needed: 2.1 has none)
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, next(k.backend for k in KERNELS if k.name == kernel))
    _pinned.append(kernel)
    try:
        with sdpa_kernel([backend]):
            yield
    finally:
        _pinned.pop()


def current_kernel() -> str | None:
    """The kernel SDPA calls are pinned to now (None: torch chooses)."""
    return _pinned[-1] if _pinned else None


# What SDPA says when the pinned kernel cannot take an input: its checks warn why, then it raises
# one of these (sdp_utils_cpp.cpp, torch/nested/_internal/sdpa.py).
_REFUSALS = ("No available kernel", "No viable backend for scaled_dot_product_attention")


def refusal(err: BaseException | None) -> str | None:
    """The reason, when `err` is the pinned kernel refusing its input (not a wrong argument)."""
    if err is None or not isinstance(err, RuntimeError):
        return None
    text = str(err)
    return next((r for r in _REFUSALS if r in text), None)


# the releases that have each API the family checks (an older torch skips its property, saying why)
FEATURES = {
    "sdpa_kernel": (">=2.3", "torch.nn.attention.sdpa_kernel"),
    "causal_bias": (">=2.3", "torch.nn.attention.bias.causal_upper_left / causal_lower_right"),
    "jagged": (">=2.3", "nested tensors with layout=torch.jagged that SDPA accepts"),
    "enable_gqa": (">=2.5", "scaled_dot_product_attention(..., enable_gqa=True)"),
    "flex_attention": (">=2.5", "torch.nn.attention.flex_attention"),
}


def has(feature: str) -> str | None:
    """None when the running torch has `feature` (FEATURES); else why its property is skipped."""
    spec, what = FEATURES[feature]
    if holds(spec):
        return None
    return f"torch {torch_version()} lacks {what} (torch {spec})"


# --------------------------------------------------------------------------- the native fast paths

# The device types whose tensors may take nn.TransformerEncoder's and nn.MultiheadAttention's
# native fast path (eval, no grad): `_supported_device_type` in torch/nn/modules/transformer.py
# and activation.py, plus torch's PrivateUse1 backend; xpu is listed in 2.13.0's source and
# not in 2.9.0's.  xla, lazy and mps are not: there eval runs the slow path.
FAST_PATH_DEVICES = (("cpu", None), ("cuda", None), ("xpu", ">=2.10"))
# The suite's op for each api that has a fast path (`fast_path`'s `api`).
FAST_PATH_APIS = {"transformer_encoder": "encoder", "multihead_attention": "mha"}


def fast_path(api: str, device: str, traced: bool | None = None) -> str | None:
    """Why the native fast path of `api` ("encoder" or "mha") cannot run on `device` under the
    active backend (or, with `traced` given, eager or traced code); None where eval without grad
    takes it."""
    import torch

    from conformance import session

    kind = device_type(device)
    supported = [d for d, spec in FAST_PATH_DEVICES if spec is None or holds(spec)]
    privateuse1 = torch._C._get_privateuse1_backend_name()
    if kind not in supported and kind != privateuse1:
        return (f"{kind} is not a device type the fast path supports ({', '.join(supported)}, PrivateUse1: "
                f"_supported_device_type in torch/nn/modules/transformer.py), so eval runs the slow path")
    if traced is None:
        traced = session.current() is not None and bool(getattr(session.current().namespace, "TRACED", False))
    if api == "encoder" and traced and holds(">=2.10"):
        return ("under torch.compile the encoder skips its fast path while mask_check is on ('mask_check "
                "enabled with torch.compile or torch.export', pytorch/pytorch#163773, torch >= 2.10)")
    return None


@contextlib.contextmanager
def without_fast_path():
    """Run the block with the native fast paths off (torch.backends.mha.set_fastpath_enabled):
    how the differential's CPU reference takes the same path as a device that has none."""
    import torch

    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    was = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(was)


def mha_path(path, heads, kpm_type, attn_type, attn) -> str:
    """The path nn.MultiheadAttention takes (torch/nn/modules/activation.py, why_not_fast_path):
    the native fast path needs eval mode, no grad, an even number of heads, bool masks and
    self-attention; else F.multi_head_attention_forward, with or without the weights."""
    if path == "eval" and heads % 2 == 0 and kpm_type == "bool" and (attn == "none" or attn_type == "bool"):
        return "mha-fast-path"
    return "mha-need-weights" if path in ("need_weights", "eval") else "mha-no-weights"
