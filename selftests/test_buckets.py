"""The graph profile's shape buckets (strategies/buckets.py): bounded, covering, fixed, and absent
from every other profile."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings

from conformance import profiles
from strategies import buckets
from strategies.attention import attention_size_classes, attention_sizes
from strategies.hypothesis_internals import current_profile
from strategies.shapes import array_shapes, broadcastable_shapes
from strategies.values import logit_widths


@contextlib.contextmanager
def profile(name):
    before = current_profile() or "default"
    settings.load_profile(name)
    try:
        yield
    finally:
        settings.load_profile(before)


def drawn(strategy, n=300):
    seen = []

    @settings(max_examples=n, database=None, derandomize=True)
    @given(strategy)
    def collect(v):
        seen.append(v)

    collect()
    return seen


def test_other_profiles_get_the_strategy_itself():
    """ci's examples must not change: outside the graph profile the factories return their strategy."""
    with profile("ci"):
        assert buckets.active() is None
        assert array_shapes(max_dims=3) is array_shapes(max_dims=3)
        assert len(set(drawn(array_shapes(max_dims=3), 200))) > profiles.GRAPH_BUCKETS


def test_graph_profile_draws_at_most_the_buckets():
    with profile("graph"):
        for strategy in (array_shapes(max_dims=3), broadcastable_shapes(2), logit_widths()):
            assert 1 < len(set(drawn(strategy))) <= profiles.GRAPH_BUCKETS


def test_buckets_cover_every_class_their_candidates_reach():
    """Greedy cover: every class some candidate reaches (rank, element count, 1-vs-n columns, the
    width ranges, L against S and the wide S) is reached by a bucket, when the buckets suffice."""
    with profile("graph"):
        for strategy, key, classes in (
                (broadcastable_shapes(2), "cover/bs", buckets.shape_classes),
                (logit_widths(), "cover/w", buckets.size_classes),
                (attention_sizes(), "cover/att", attention_size_classes)):
            pool = buckets.buckets(strategy, key, classes, 16)
            candidates = {buckets._seeded(strategy, f"{key}/{i}") for i in range(buckets.CANDIDATES)}
            want = set().union(*(classes(c) for c in candidates if c is not buckets._INVALID))
            got = set().union(*(classes(b) for b in pool))
            assert got == want, sorted(want - got)
        widths = buckets.buckets(logit_widths(), "cover/w", buckets.size_classes, 8)
        assert {w for w in widths if w > 1024} and 0 in widths and 1 in widths


def test_buckets_are_fixed_for_the_key():
    """The same key gives the same buckets in any process (seeded by the key's text), so an
    example replays and shrinks as under any other profile."""
    with profile("graph"):
        a = buckets.buckets(broadcastable_shapes(3), "fixed", buckets.shape_classes, 8)
        buckets.buckets.cache_clear()
        assert buckets.buckets(broadcastable_shapes(3), "fixed", buckets.shape_classes, 8) == a
        assert buckets.buckets(broadcastable_shapes(3), "other key", buckets.shape_classes, 8) != a
