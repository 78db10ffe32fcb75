"""Small structures drawn as one integer each.

Every Hypothesis choice costs tens of microseconds on top of the draw itself (recording,
span bookkeeping, and the generator's mutation replays), so a structure of n small parts
drawn part by part pays that n times.  Where the parts are bounded and few, one integer in
``[0, size)`` names the whole structure.  Each integer shrinks towards 0, which every
decoder here maps to the simplest structure: no member chosen, the identity permutation,
all digits 0.
"""

from __future__ import annotations

import math

from strategies._cache import cached, integers


@cached
def subsets(n: int, *, min_size: int = 0):
    """Bit masks of subsets of n members (``bits`` decodes one); non-empty if `min_size`."""
    return integers(1 if min_size else 0, 2**n - 1)


def bits(mask: int, n: int) -> list[bool]:
    """Member i of the subset `mask` names is in it (bit i is set)."""
    return [bool(mask >> i & 1) for i in range(n)]


@cached
def permutation_indices(n: int, *, identity: bool = True):
    """Indices of the n! permutations of range(n) (``permutation`` decodes one); without the
    identity (index 0) unless `identity`."""
    return integers(0 if identity else 1, math.factorial(n) - 1)


def permutation(index: int, n: int) -> list[int]:
    """The `index`-th permutation of range(n) in lexicographic order (0: the identity)."""
    pool, out = list(range(n)), []
    for k in range(n, 0, -1):
        q, index = divmod(index, math.factorial(k - 1))
        out.append(pool.pop(q))
    return out


@cached
def digit_strings(base: int, n: int):
    """Numbers of n base-`base` digits (``digits`` decodes one)."""
    return integers(0, base**n - 1)


def digits(number: int, base: int, n: int) -> list[int]:
    """The n base-`base` digits of `number`, least significant first."""
    out = []
    for _ in range(n):
        number, d = divmod(number, base)
        out.append(d)
    return out
