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

sampled_from = cached(st.sampled_from)  # pass a tuple (a list bypasses the cache)
booleans = st.booleans

# Hypothesis 6.170's generator leans towards the first of a few options (it draws the simplest
# choice often, to find simple failures early): over 300 examples of a test that draws a few
# values first, sampled_from("ABCDEFG") gave A 149 times and D 14.  A strategy whose every
# option is claimed, and whose examples are few and large, draws them with `evenly`: a wide
# integer, its bits scrambled, modulo the number of options (a plain modulo was not enough:
# Hypothesis also favours small and power-of-two integers, and the second of five scenarios
# got 2 of 90 examples).
_WIDE = st.integers(0, 2**16 - 1)


def _scrambled(k: int) -> int:
    """k's bits mixed (Fibonacci hashing): the integers Hypothesis favours (0, 1, 2, powers of
    two, 2**16 - 1) land on different options instead of on the same few; 0 stays 0."""
    return ((k * 0x9E3779B1) & 0xFFFFFFFF) >> 8


@cached
def evenly(options):
    """One of `options` (a tuple), each drawn about equally often; shrinks towards the first.

    The option is the sum of three scrambled wide integers modulo their number: Hypothesis
    draws some integers (0, 1, 2**16 - 1 ...) far more often than the rest, so any function of
    one draw gives the options those integers land on a share of their own (one option got
    a fifth of 300 examples, another 3), while a sum of three independent draws spreads those
    atoms over every option."""
    if len(options) < 2:
        return st.sampled_from(options)
    n = len(options)
    return st.tuples(_WIDE, _WIDE, _WIDE).map(lambda ks: options[sum(map(_scrambled, ks)) % n])


# a fair coin for a branch whose both sides are claimed (booleans() leans to False)
HALF = evenly((False, True))
