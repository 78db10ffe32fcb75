"""The masking idioms people use for attention, as masked-softmax implementations.

Each takes the backend's ops, logits, a bool *keep* mask (True = may be attended, the suite's one
convention) and a dim, and returns probabilities.  Each states its documented policy for
fully masked rows and the domain it is correct on; the properties assert both.

Conventions differ between the APIs, which is why the adapters exist:
``masked_fill(~keep, -inf)`` fills where its mask is True; ``torch.masked.softmax`` and
``scaled_dot_product_attention`` take True = keep; ``nn.MultiheadAttention`` takes
True = ignore (see test_attention_scenarios.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class MaskedSoftmax:
    name: str
    idiom: str                     # the user code, for messages and the README
    call: Callable                 # (ops, logits, keep, dim) -> probabilities
    ops: tuple[str, ...]           # the backend ops it calls
    rows: str                      # fully masked rows: "nan", "zeros" or "biased" (softmax of x + finfo.min)
    rows_source: str               # where that policy is stated
    any_dim: bool = True           # normalises along any dim (else the last)
    masked_values: str = "any"     # "any": masked logits may be +-inf/nan; "finite": must be finite
    extreme: bool = True           # correct for logits near the dtype's largest finite value
    max_width: int = 4096          # widest row drawn (SDPA's identity trick costs width**2)
    min_width: int = 0             # narrowest row drawn (0: empty rows, a tensor of no elements)
    mask_stretches: bool = True    # a keep mask larger where the logits have a 1 stretches the result
                                   # (out-of-place masking broadcasts both ways); False: the mask must
                                   # broadcast *to* the logits, so such a mask is refused too
    policy: str | None = None      # an API of attention_apis.POLICIES whose policy changed between
                                   # releases: rows and source are that of the running torch

    @property
    def fully_masked(self) -> str:
        return self._policy().rows if self.policy else self.rows

    @property
    def policy_source(self) -> str:
        if not self.policy:
            return self.rows_source
        p = self._policy()
        return f"{p.source} (torch {p.torch})"

    def _policy(self):
        from conformance.attention_apis import policy
        return policy(self.policy)

    def __call__(self, ops, logits, keep, dim=-1):
        return self.call(ops, logits, keep, dim)

    def code(self, dim: int, x: str = "x", keep: str = "keep") -> str:
        """The idiom as user code; SDPA's needs ``F`` and ``I = torch.eye(width)`` (see `setup`)."""
        return self.idiom.format(dim=dim, x=x, keep=keep)

    def setup(self, width: int) -> list[str]:
        if self.name != "sdpa":
            return []
        return ["import torch.nn.functional as F",
                f"I = torch.eye({width}, dtype=x.dtype, device=x.device)"]


def _fill(ops, x, keep, dim):
    return ops.softmax(ops.masked_fill(x, ~keep, float("-inf")), dim)


def _masked(ops, x, keep, dim):
    return ops.masked_softmax(x, dim, keep)


def _additive_inf(ops, x, keep, dim):
    bias = ops.masked_fill(torch.zeros_like(x), ~keep, float("-inf"))
    return ops.softmax(ops.add(x, bias), dim)


def _additive_min(ops, x, keep, dim):
    return ops.softmax(ops.add(x, ops.mul((~keep).to(x.dtype), torch.finfo(x.dtype).min)), dim)


IDENTITY_WIDTH = 1536  # the sdpa idiom's widest row (its max_width)


@functools.lru_cache(maxsize=8)
def _fullidentity(dtype, device):
    # built in float32 and converted (exact for 0 and 1): torch 2.1.2 has no bfloat16 eye on CPU,
    # and that gap is torch's scaffolding, not the idiom under test
    return torch.eye(IDENTITY_WIDTH, device=device).to(dtype)


def identity(width, dtype, device):
    """torch.eye(width) as the top-left corner of one kept identity per dtype and device: a
    1536-wide one is 19 MB to allocate and fill, rows are drawn in hundreds of widths, and
    SDPA only reads it.  (So k and v are strided views past the widest row; the identity is
    the same.)"""
    return _fullidentity(dtype, device)[:width, :width]


def _sdpa(ops, x, keep, dim):
    """Attention weights from SDPA with q = logits, k = v = I and scale 1: scores = q @ I = q
    exactly, and weights @ I = weights, so the output *is* the masked softmax."""
    s = x.shape[-1]
    eye = identity(s, x.dtype, x.device)
    q = x.reshape(1, -1, s)
    out = ops.scaled_dot_product_attention(q, eye[None], eye[None], attn_mask=keep.reshape(1, -1, s),
                                           scale=1.0)
    # rows back to x's leading dims, the width left to SDPA's output: a backend whose SDPA grows the
    # output to a larger mask's rows (broadcasting the mask both ways) gives a result, not a
    # reshape error that would pass for SDPA's refusal
    return out.reshape(*x.shape[:-1], -1)


IMPLEMENTATIONS = {
    impl.name: impl for impl in [
        MaskedSoftmax(
            "fill_neg_inf", "{x}.masked_fill(~{keep}, float('-inf')).softmax(dim={dim})", _fill, ("masked_fill", "softmax"),
            rows="nan", rows_source="IEEE: exp(-inf - (-inf)) is nan; softmax docs"),
        MaskedSoftmax(
            "torch_masked", "torch.masked.softmax({x}, {dim}, mask={keep})", _masked, ("masked_softmax",),
            rows="nan", rows_source="torch.masked docs: fully masked-out rows are undefined (nan)"),
        MaskedSoftmax(
            "additive_neg_inf",
            "({x} + torch.zeros_like({x}).masked_fill(~{keep}, float('-inf'))).softmax(dim={dim})",
            _additive_inf, ("masked_fill", "add", "softmax"), rows="nan", rows_source="as fill_neg_inf",
            masked_values="finite"),  # +inf or nan under a -inf bias gives nan
        MaskedSoftmax(
            "additive_finfo_min",
            "({x} + (~{keep}).to({x}.dtype) * torch.finfo({x}.dtype).min).softmax(dim={dim})",
            _additive_min, ("add", "mul", "softmax"), rows="biased",
            rows_source="softmax of the biased logits round(x + finfo.min): finite, except that "
                          "in float16 x + finfo.min rounds to -inf for x <= -16, and a row of "
                          "-inf is nan",
            masked_values="finite", extreme=False),  # logits near finfo.max outweigh the bias
        MaskedSoftmax(
            "sdpa", "F.scaled_dot_product_attention({x}.reshape(1, -1, I.shape[0]), I[None], I[None], "
                    "attn_mask={keep}.reshape(1, -1, I.shape[0]), scale=1.0).reshape(*{x}.shape[:-1], -1)",
            _sdpa, ("scaled_dot_product_attention",), rows="", rows_source="", policy="sdpa",
            any_dim=False, masked_values="finite",  # 0 * inf in q @ I poisons the row
            max_width=IDENTITY_WIDTH,  # past 1024 (several kernel blocks); 2049 would cost 30 ms a call, 4096 150 ms
            min_width=1,  # the identity trick cannot reshape 0 values to (1, -1, 0); empty inputs: test_attention_*
            mask_stretches=False),  # "attn_mask must be broadcastable to the shape of attention weights"
    ]
}
