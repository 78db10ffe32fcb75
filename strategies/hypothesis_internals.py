"""Every use the suite makes of Hypothesis's private internals, in one place.

Each function says why no public API serves.  A Hypothesis upgrade that renames one of them
fails `selftests/test_hypothesis_internals.py` by name (`INTERNALS`), instead of silently
turning off what the suite builds on it (the report's counts, a known deviation's quick exit,
the graph profile's buckets).  Everything else in the suite uses Hypothesis's public API.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import random
import time
from typing import Callable, Iterator

from hypothesis import settings
from hypothesis.errors import UnsatisfiedAssumption

__all__ = ["DISCARDED", "INTERNALS", "current_profile", "draw_from_choices", "draw_seeded", "missing",
           "quick_failure", "time_draws", "wrapped_body"]

# (module, attribute path) of each internal used below: the self-test imports each
INTERNALS = (
    ("hypothesis.errors", "StopTest"),
    ("hypothesis.control", "BuildContext"),
    ("hypothesis.internal.conjecture.data", "ConjectureData"),
    ("hypothesis.internal.conjecture.data", "ConjectureData.for_choices"),
    ("hypothesis.strategies._internal.core", "DataObject.draw"),
    ("hypothesis", "settings._current_profile"),
)


def _resolve(module: str, path: str):
    obj = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def missing() -> list[str]:
    """The internals of `INTERNALS` the installed Hypothesis lacks, as ``module.attribute``."""
    gone = []
    for module, path in INTERNALS:
        try:
            _resolve(module, path)
        except (ImportError, AttributeError):
            gone.append(f"{module}.{path}")
    return gone


# How Hypothesis ends a call it throws away before the body checks anything: a filter it could
# not satisfy, an `assume`, a replayed choice sequence that ran out (StopTest).  The report counts
# such calls apart from checked examples; StopTest is not part of the public API.
DISCARDED = (_resolve("hypothesis.errors", "StopTest"), UnsatisfiedAssumption)


def draw_seeded(strategy, seed, invalid=None):
    """The value `strategy` gives for `seed` (`invalid` where the draw is rejected): Hypothesis's
    own generator driven by a seeded random source.  No public API draws from a strategy outside
    a test with a chosen seed (``example()`` is random and refused inside tests); the graph
    profile's shape buckets are chosen this way at collection."""
    from hypothesis.control import BuildContext
    from hypothesis.internal.conjecture.data import ConjectureData

    data = ConjectureData(random=random.Random(seed))
    try:
        # a build context of its own: mapped strategies record their calls in one, and the
        # buckets are chosen outside any test (at collection) or inside another test's draw
        with BuildContext(data, wrapped_test=draw_seeded):
            return data.draw(strategy)
    except DISCARDED:
        return invalid


def draw_from_choices(choices, draw: Callable):
    """What ``draw(data)`` returns when Hypothesis's next choices are `choices`: the exact
    statement of "the same choices give the same value" that a self-test checks.  Public APIs
    only draw from choices Hypothesis makes itself."""
    from hypothesis.control import BuildContext
    from hypothesis.internal.conjecture.data import ConjectureData

    data = ConjectureData.for_choices(list(choices))
    with BuildContext(data, is_final=False, wrapped_test=lambda: None):
        return draw(data)


def time_draws(total: list[float]) -> None:
    """Add the seconds each ``data.draw`` inside a test body takes to ``total[0]``, so the
    report can split a body's time into generation and work.  Hypothesis reports no timing of
    interactive draws; the one hook is its DataObject class."""
    from hypothesis.strategies._internal.core import DataObject

    if getattr(DataObject.draw, "_timed", False):
        return
    draw = DataObject.draw

    @functools.wraps(draw)
    def timed(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return draw(self, *args, **kwargs)
        finally:
            total[0] += time.perf_counter() - t
    timed._timed = True
    DataObject.draw = timed


@contextlib.contextmanager
def wrapped_body(test, wrap: Callable) -> Iterator[None]:
    """While the block runs, every call Hypothesis makes of `test`'s body goes through
    ``wrap(body)``: the report counts and classifies each example.  ``test.hypothesis.inner_test``
    is the hook Hypothesis leaves for this ("downstream users can reassign its attributes to insert
    custom logic into the execution of each case": HypothesisHandle, HypothesisWorks/hypothesis#1257),
    though not in its API reference; restoring it afterwards is the suite's part."""
    handle = test.hypothesis
    inner = handle.inner_test
    handle.inner_test = wrap(inner)
    try:
        yield
    finally:
        handle.inner_test = inner


@contextlib.contextmanager
def quick_failure(item) -> Iterator[None]:
    """While the block runs, `item`'s test does not shrink or explain a failure, and leaves no
    ``@example`` patch behind: a known deviation only has to show that it still fails.  The
    settings a test runs under are read from a private attribute set by ``@settings`` and
    ``@given``, and the patch from the item's ``_hypothesis_failing_examples``; no public API
    changes a decorated test's phases from a plugin."""
    from hypothesis import Phase

    test = item.obj
    own = test._hypothesis_internal_use_settings
    test._hypothesis_internal_use_settings = settings(
        own, phases=[p for p in own.phases if p not in (Phase.shrink, Phase.explain)])
    try:
        yield
    finally:
        test._hypothesis_internal_use_settings = own
        # Hypothesis would turn the failing example into an `@example` patch file (importing
        # libcst: a second) and tell a passing run to `git apply` it; the deviation file is
        # where a known deviation is recorded
        item.__dict__.pop("_hypothesis_failing_examples", None)


def current_profile() -> str:
    """The name of the loaded settings profile ("" when none was loaded by name).  Hypothesis
    keeps it only in ``settings._current_profile``."""
    return getattr(settings, "_current_profile", None) or ""
