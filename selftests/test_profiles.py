"""The profiles' example counts (conformance/profiles.py): `fraction` scales a property's
examples within the loaded profile and keeps the mutant self-test's where asked."""

from __future__ import annotations

import pytest
from hypothesis import settings

from conformance import profiles
from strategies.hypothesis_internals import current_profile


def examples_under(name, *args, **kwargs):
    before = current_profile() or "default"
    settings.load_profile(name)
    try:
        return profiles.fraction(*args, **kwargs).max_examples
    finally:
        settings.load_profile(before)


@pytest.mark.parametrize("name,part,at_least,want", [
    ("ci", 1 / 4, 10, 75),
    ("ci", 0.1, 10, 30),
    ("selftest", 0.1, 10, 10),  # the expensive properties: fewer examples in the self-test too
    ("selftest", 1 / 4, profiles.SELFTEST_EXAMPLES, profiles.SELFTEST_EXAMPLES),  # kept whole
    ("ci", 1 / 4, profiles.SELFTEST_EXAMPLES, 75),
    ("compile", 1 / 4, profiles.SELFTEST_EXAMPLES, 25),  # never more than the profile's own
    ("graph", 1 / 4, profiles.SELFTEST_EXAMPLES, profiles.SELFTEST_EXAMPLES),
])
def test_fraction_scales_the_profile_within_its_floor(name, part, at_least, want):
    assert examples_under(name, part, at_least=at_least) == want


@pytest.mark.parametrize("part,at_least", [(0, 10), (1.5, 10), (-0.5, 10), (0.5, 0)])
def test_fraction_refuses_a_part_outside_one_or_no_floor(part, at_least):
    with pytest.raises(ValueError, match=r"fraction\(.*\): part must be in \(0, 1\] and at_least >= 1"):
        profiles.fraction(part, at_least=at_least)
