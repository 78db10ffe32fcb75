"""Shape buckets: under the ``graph`` profile, each shape strategy draws from a fixed set.

A backend that compiles per shape (torch_xla, torch.compile, any graph backend) pays a
compilation for every new shape, rank and dtype it meets: at the ``ci`` profile's 300 examples
of mostly distinct shapes, a property costs hundreds of compilations.  Under ``graph`` each shape
strategy wrapped here (`bucketed`) draws one of at most `conformance.profiles.shape_buckets()`
values, fixed for the run, while everything drawn after the shape (values, masks, dtypes,
layouts) varies freely: the same graphs are checked on many inputs.

The buckets are chosen, not sampled: from the strategy's own values under seeds
``key/0, key/1, ...`` they are picked greedily so that every input class the candidates reach
(`classes`: the size classes, ranks, empty and one-element sizes the properties claim, see
`conformance.reach`) is reached by some bucket, then filled up in seed order.  The buckets
depend only on the strategy's key and arguments, never on earlier examples, so an example
replays and shrinks as under any other profile (shrinking goes towards bucket 0).

In every other profile `bucketed` returns the strategy itself: the ``ci`` gate's examples do not
change.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable

from hypothesis import strategies as st

from strategies._cache import integers

CANDIDATES = 96  # seeds tried when choosing buckets that cover the candidates' classes


def active() -> int | None:
    """How many buckets each shape strategy draws from now (None: not the graph profile)."""
    from conformance import profiles

    return profiles.shape_buckets()


def bucketed(strategy: st.SearchStrategy, key: str, classes: Callable[[object], Iterable[str]] | None = None,
             n: int | None = None) -> st.SearchStrategy:
    """`strategy`, or under the graph profile one of `n` (default the profile's) fixed values of
    it, chosen to cover `classes` of the candidates (default: `shape_classes`)."""
    size = active()
    if size is None:
        return strategy
    return _pool_strategy(strategy, key, classes or shape_classes, n or size)


def bucketed_factory(factory=None, *, classes=None):
    """A strategy factory whose strategies are `bucketed` under the graph profile, keyed by the
    factory's name and arguments (used as ``@bucketed_factory`` above ``@cached``)."""
    def wrap(factory):
        @functools.wraps(factory)
        def get(*args, **kwargs):
            strategy = factory(*args, **kwargs)
            if active() is None:
                return strategy
            return bucketed(strategy, f"{factory.__name__}{args!r}{sorted(kwargs.items())!r}", classes)
        return get
    return wrap(factory) if factory is not None else wrap


@functools.lru_cache(maxsize=4096)
def _pool_strategy(strategy, key, classes, n):
    pool = buckets(strategy, key, classes, n)
    return integers(0, len(pool) - 1).map(pool.__getitem__)


@functools.lru_cache(maxsize=4096)
def buckets(strategy, key: str, classes, n: int) -> tuple:
    """The fixed values: candidates drawn with seeds key/0.., those that add a class first."""
    candidates = []
    for i in range(CANDIDATES):
        value = _seeded(strategy, f"{key}/{i}")
        if value is not _INVALID and value not in candidates:
            candidates.append(value)
    if not candidates:
        raise ValueError(f"shape buckets for {key}: the strategy gave no value under {CANDIDATES} seeds")
    chosen: list = []
    seen: set = set()
    covers = [set(classes(v)) for v in candidates]
    while len(chosen) < n:  # greedy cover: the candidate adding the most classes, the first on ties
        gain, best = max(((len(c - seen), -i) for i, c in enumerate(covers) if candidates[i] not in chosen),
                         default=(0, 0))
        if gain == 0:
            break
        chosen.append(candidates[-best])
        seen |= covers[-best]
    for value in candidates:
        if len(chosen) >= n:
            break
        if value not in chosen:
            chosen.append(value)
    return tuple(chosen)


_INVALID = object()


def _seeded(strategy, seed: str):
    """The value `strategy` gives for `seed` (`strategies.hypothesis_internals.draw_seeded`)."""
    from strategies.hypothesis_internals import draw_seeded

    return draw_seeded(strategy, seed, _INVALID)


# --------------------------------------------------------------------------- classes to cover


def _shape_classes(shape, prefix: str) -> set[str]:
    from conformance import rules

    n = rules.numel(shape)
    numel = "0" if n == 0 else "1" if n == 1 else "2-16" if n <= 16 else "17+"
    return {f"{prefix}ndim:{min(len(shape), 3)}", f"{prefix}numel:{numel}"}


def shape_classes(value) -> set[str]:
    """What the properties claim of a shape, or of a tuple of shapes: each shape's rank (0, 1,
    2, 3+) and element count (0, 1, 2-16, 17+), and for a tuple which shape has the highest
    rank and whether some column stretches 1 against n > 1 or against 0."""
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) for v in value):
        out: set[str] = set()
        for i, shape in enumerate(value):
            out |= _shape_classes(shape, f"{i}.")
        ranks = [len(v) for v in value]
        top = max(ranks)
        out.add("rank:equal" if ranks.count(top) == len(ranks) else f"rank:{ranks.index(top)}-highest")
        width = max(ranks)
        for d in range(1, width + 1):
            col = [v[-d] for v in value if len(v) >= d]
            if 1 in col and any(c > 1 for c in col):
                out.add("stretch:1-vs-n")
            if 1 in col and 0 in col:
                out.add("stretch:1-vs-0")
        return out
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return _shape_classes(value, "")
    return {repr(value)}


WIDTH_RANGES = (0, 1, 16, 256, 1024)  # where `conformance.reach.ranges` ends each range


def size_classes(value) -> set[str]:
    """Classes of one size (a softmax row width): which of the ranges 0, 1, 2-16, 17-256,
    257-1024 and past 1024 it is in (what every softmax property claims, `conformance.reach.ranges`)."""
    return {f"range:{next((e for e in WIDTH_RANGES if value <= e), 'past')}"}
