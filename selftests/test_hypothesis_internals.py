"""The Hypothesis internals the suite uses (`strategies.hypothesis_internals`) exist in the
pinned Hypothesis: an upgrade that renames one fails here, by name, not silently elsewhere."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from strategies import hypothesis_internals as hi


@pytest.mark.parametrize("module, path", hi.INTERNALS, ids=[f"{m}.{p}" for m, p in hi.INTERNALS])
def test_each_internal_the_suite_uses_exists(module, path):
    assert f"{module}.{path}" not in hi.missing()


def test_a_given_test_keeps_its_settings_and_body_where_the_adapter_reads_them():
    @settings(max_examples=3, database=None)
    @given(st.integers())
    def probe(x):
        pass

    assert isinstance(probe._hypothesis_internal_use_settings, settings)
    assert callable(probe.hypothesis.inner_test)


def test_wrapped_body_sees_every_example_and_restores_the_body():
    seen = []

    @settings(max_examples=5, database=None, derandomize=True)
    @given(st.integers(0, 9))
    def probe(x):
        pass

    inner = probe.hypothesis.inner_test

    def wrap(body):
        def counted(*args, **kwargs):
            seen.append(kwargs.get("x", args[-1] if args else None))
            return body(*args, **kwargs)
        return counted

    with hi.wrapped_body(probe, wrap):
        probe()
    assert seen and all(isinstance(x, int) for x in seen)
    assert probe.hypothesis.inner_test is inner


def test_draw_seeded_is_a_function_of_the_seed():
    strategy = st.lists(st.integers(0, 1000), min_size=3, max_size=3)
    assert hi.draw_seeded(strategy, "a") == hi.draw_seeded(strategy, "a")
    assert len({tuple(hi.draw_seeded(strategy, str(k))) for k in range(20)}) > 1
    assert hi.draw_seeded(st.nothing(), "a", invalid="rejected") == "rejected"


def test_draw_from_choices_replays_a_choice():
    assert hi.draw_from_choices([7], lambda data: data.draw(st.integers(0, 9))) == 7


def test_current_profile_names_the_loaded_profile():
    before = hi.current_profile() or "default"
    settings.register_profile("hypothesis-internals-probe", max_examples=1)
    try:
        settings.load_profile("hypothesis-internals-probe")
        assert hi.current_profile() == "hypothesis-internals-probe"
    finally:
        settings.load_profile(before)
