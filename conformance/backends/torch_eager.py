"""torch eager: the reference backend, and the model for every other one.

Each function is one op of the protocol (see `conformance.backends`), written as the user
code it stands for.  Other torch-tensor backends import this module and replace some ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAME = "torch"
DEVIATIONS = ("torch",)

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


def scaled_dot_product_attention(q, k, v, attn_mask=None, scale=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)


def tril(x, diagonal=0):
    return torch.tril(x, diagonal)


def multihead_attention(module, query, key, value, key_padding_mask=None, attn_mask=None):
    """(output, per-head weights) of ``nn.MultiheadAttention`` ``module``."""
    return module(query, key, value, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                  average_attn_weights=False)
