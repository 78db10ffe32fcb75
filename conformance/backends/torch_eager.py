"""torch eager: the reference backend, and the model for every other one.

Each function is one op of the protocol (see `conformance.backends`), written as the user
code it stands for.  Other torch-tensor backends import this module and replace some ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from conformance.capabilities import TORCH_MISSING

NAME = "torch"
DEVIATIONS = ("torch",)
MISSING = TORCH_MISSING  # the kernels a release lacks (capability gaps, not failures)

# --------------------------------------------------------------------------- broadcasting


def broadcast_shapes(*shapes):
    return torch.broadcast_shapes(*shapes)


def broadcast_tensors(*tensors):
    return torch.broadcast_tensors(*tensors)


def expand(x, sizes):
    return x.expand(sizes)


def broadcast_to(x, shape):
    return torch.broadcast_to(x, shape)


def add(a, b):
    return torch.add(a, b)


def mul(a, b):
    return torch.mul(a, b)


def eq(a, b):
    return torch.eq(a, b)


def lt(a, b):
    return a < b


def where(cond, a, b):
    return torch.where(cond, a, b)


def add_(x, other):
    return x.add_(other)


def sub_(x, other):
    return x.sub_(other)


def mul_(x, other):
    return x.mul_(other)


def iadd(x, other):
    x += other
    return x


# --------------------------------------------------------------------------- masked_fill


def masked_fill(x, mask, value):
    return x.masked_fill(mask, value)


def masked_fill_(x, mask, value):
    return x.masked_fill_(mask, value)


# --------------------------------------------------------------------------- softmax and attention


def softmax(x, dim):
    return x.softmax(dim)


def masked_softmax(x, dim, mask):
    return torch.masked.softmax(x, dim, mask=mask)


def scaled_dot_product_attention(q, k, v, attn_mask=None, scale=None, is_causal=False, enable_gqa=False):
    """F.scaled_dot_product_attention; q, k, v may be jagged nested tensors.  The SDPA kernel is
    the caller's choice (torch.nn.attention.sdpa_kernel around the call)."""
    extra = {"enable_gqa": True} if enable_gqa else {}  # enable_gqa: torch >= 2.5
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale, is_causal=is_causal, **extra)


def tril(x, diagonal=0):
    return torch.tril(x, diagonal)


def multihead_attention(module, query, key, value, key_padding_mask=None, attn_mask=None, need_weights=True):
    """(output, per-head weights or None) of ``nn.MultiheadAttention`` ``module``; which path it
    takes (need_weights, the fast path in eval mode without grad) is the caller's choice."""
    return module(query, key, value, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                  need_weights=need_weights, average_attn_weights=False)


def transformer_encoder(module, src, mask=None, src_key_padding_mask=None, is_causal=None):
    """``nn.TransformerEncoder`` ``module`` on src; its fast path (eval mode, no grad, nested
    tensors) or slow path is the caller's choice."""
    return module(src, mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)


def flex_attention(q, k, v, mask_mod):
    """FlexAttention (eager) with the block mask ``create_block_mask(mask_mod, B, H, L, S)``
    built on q's device."""
    from torch.nn.attention.flex_attention import create_block_mask
    from torch.nn.attention.flex_attention import flex_attention as flex

    b, h, L, S = q.shape[0], q.shape[1], q.shape[-2], k.shape[-2]
    block_mask = create_block_mask(mask_mod, b, h, L, S, device=q.device)
    return flex(q, k, v, block_mask=block_mask)
