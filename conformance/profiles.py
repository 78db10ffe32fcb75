"""Hypothesis profiles, the one place that sets how many examples run and how.

* ``ci`` (default): derandomized and without an example database, so every run of the
  gate checks the same examples; no deadline (a shared CI runner has noisy timing).
* ``dev``: quick and random, with the local example database, for editing the suite.
* ``thorough``: ten times ``ci``'s examples, random, for nightly runs.
* ``compile``: derandomized like ``ci``, 25 examples (each new graph costs a compilation).
* ``graph``: for backends that compile per shape (torch_xla, torch.compile): derandomized,
  ``ci``'s examples, and each shape strategy draws from `GRAPH_BUCKETS` fixed shapes chosen to
  cover its size classes (`strategies.buckets`), so a property compiles a bounded number of
  graphs while values, masks, dtypes and layouts vary as in ``ci``.
* ``selftest``: what the mutant self-test runs each mutant under: derandomized, fewer
  examples, no shrinking (a mutant only has to be caught, not minimised).
* ``zoo``: what the fault zoo runs each mutant under: ``ci`` without shrinking.
* ``reseed``: ``ci``'s examples drawn at random, without shrinking: with ``--hypothesis-seed N``,
  the re-draws on which the reach self-test shows that every claim holds with margin whatever
  the seed (a claim is a property of the strategy, not of one draw).

Pick one with ``--hypothesis-profile NAME`` or ``HYPOTHESIS_PROFILE=NAME``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

CI_EXAMPLES = 300  # 25,000+ checked examples in the gate (87 tests; known deviations stop early)
_quiet = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.large_base_example]

settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True, database=None,
                          deadline=None, suppress_health_check=_quiet, print_blob=True)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=_quiet,
                          print_blob=True)
settings.register_profile("thorough", max_examples=10 * CI_EXAMPLES, deadline=None,
                          suppress_health_check=_quiet, print_blob=True)
# torch.compile: every new rank, dtype, layout or size-0/1 pattern is a new graph (about a
# second of inductor + C++ compilation each), so the compiled backend runs fewer examples.
settings.register_profile("compile", max_examples=25, derandomize=True, database=None,
                          deadline=None, suppress_health_check=_quiet, print_blob=True)
# graph: the examples of ci over a bounded set of shapes per strategy (strategies.buckets)
GRAPH_EXAMPLES = 100
GRAPH_BUCKETS = 8
settings.register_profile("graph", max_examples=GRAPH_EXAMPLES, derandomize=True, database=None,
                          deadline=None, suppress_health_check=_quiet, print_blob=True)
# the mutant self-test's examples; `fraction(..., at_least=SELFTEST_EXAMPLES)` keeps them whole
SELFTEST_EXAMPLES = 50
settings.register_profile("selftest", max_examples=SELFTEST_EXAMPLES, derandomize=True, database=None,
                          deadline=None, suppress_health_check=_quiet, print_blob=True,
                          phases=[Phase.explicit, Phase.generate])

# the fault zoo: the ci profile (as many examples, derandomized) without shrinking: a mutant
# only has to be caught, with the effort the gate spends
settings.register_profile("zoo", settings.get_profile("ci"), phases=[Phase.explicit, Phase.generate])

settings.register_profile("reseed", settings.get_profile("ci"), derandomize=False,
                          phases=[Phase.explicit, Phase.generate])

DEFAULT = "ci"


class UnknownProfile(ValueError):
    """A profile name that is not registered; the message is one line."""


NAMES = ("ci", "dev", "thorough", "compile", "graph", "selftest", "zoo", "reseed")


def check(name: str, where: str = "--hypothesis-profile") -> None:
    """Raise UnknownProfile unless `name` is a registered profile."""
    from hypothesis.errors import InvalidArgument

    try:
        settings.get_profile(name)
    except InvalidArgument:
        raise UnknownProfile(f"{where} {name}: no such Hypothesis profile; the suite's profiles are "
                             f"{', '.join(NAMES)} (conformance/profiles.py)") from None


def load_from_environment() -> str:
    """Load HYPOTHESIS_PROFILE (default ``ci``); CONFORMANCE_MAX_EXAMPLES=N scales it to N
    examples per property, everything else kept (the benchmark's linearity check).  An unknown
    name raises UnknownProfile (one line)."""
    name = os.environ.get("HYPOTHESIS_PROFILE", DEFAULT)
    check(name, "HYPOTHESIS_PROFILE")
    if n := os.environ.get("CONFORMANCE_MAX_EXAMPLES"):
        if not n.isdigit() or int(n) < 1:
            raise UnknownProfile(f"CONFORMANCE_MAX_EXAMPLES={n}: not a positive number of examples")
        settings.register_profile(f"{name}-{n}", settings.get_profile(name), max_examples=int(n))
        name = f"{name}-{n}"
    settings.load_profile(name)
    return name


def fraction(part: float, *, at_least: int = 10):
    """A property that runs `part` of the loaded profile's examples, but no fewer than
    `at_least` (nor more than the profile's), said next to the decorator.  Two kinds use it: the
    few properties whose every example costs tens of milliseconds in the backend itself, and
    those whose every claim is reached within a few examples of each run (the report's
    ``reach.classified``), whose examples the gate spends where the classes are thin instead;
    these pass ``at_least=SELFTEST_EXAMPLES`` so the mutant self-test still runs its full 50.
    Applied above @given; the profile still sets everything else."""
    import math

    if not 0 < part <= 1 or at_least < 1:
        raise ValueError(f"fraction({part!r}, at_least={at_least!r}): part must be in (0, 1] and at_least >= 1")
    most = settings.default.max_examples
    return settings(max_examples=max(min(at_least, most), math.ceil(most * part)))


def shape_buckets() -> int | None:
    """GRAPH_BUCKETS while the graph profile (or a CONFORMANCE_MAX_EXAMPLES variant of it) is
    loaded, else None (the profile's name: `strategies.hypothesis_internals.current_profile`)."""
    from strategies.hypothesis_internals import current_profile

    name = current_profile()
    return GRAPH_BUCKETS if name == "graph" or name.startswith("graph-") else None
