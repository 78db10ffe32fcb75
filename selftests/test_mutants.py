"""The mutant self-test: every deliberately faulty backend makes the conformance run fail.

Each mutant (selftests/mutants.py) is a faulty backend, run with ``--backend
selftests.mutants:NAME`` (the mechanism any backend uses) in a fresh pytest process that
runs the conformance modules holding the properties designed to catch it (set
``MUTANTS_FULL=1`` to run the whole suite per mutant instead), under the ``selftest``
Hypothesis profile.  We then check that the run failed, that every target property was
among the failures in its report, that comparing the committed baseline with that report
flags the targets as regressions (the CI gate), and that every property of the suite
catches at least one mutant.  Mutants that crash or hang the process are exercised by
test_reports.py instead: their runs need pytest-xdist to survive them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from selftests.mutant_runs import FAULTY, KILL_TABLE, properties, run_mutant
from selftests.mutants import MUTANTS


@pytest.fixture(scope="session")
def kill_results(tmp_path_factory):  # noqa: D103 - runs every mutant once per session
    tmp = tmp_path_factory.mktemp("mutants")
    properties()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {name: pool.submit(run_mutant, name, tmp) for name in FAULTY}
        results = {name: f.result() for name, f in futures.items()}
    KILL_TABLE.append(f"{'mutant':42} caught  by")
    for name, r in results.items():
        KILL_TABLE.append(f"{name:42} {'yes' if r['rc'] == 1 and r['caught'] else 'NO ':6}  "
                          f"{', '.join(sorted(r['caught'])) or '-'}")
    killed = sum(1 for r in results.values() if r["rc"] == 1 and r["caught"])
    KILL_TABLE.append(f"kill rate: {killed}/{len(results)}")
    return results


@pytest.mark.timeout(3600)  # the first test pays for every mutant run
@pytest.mark.parametrize("name", FAULTY)
def test_mutant_is_caught_by_its_target_properties(kill_results, name):
    """The conformance run fails (exit 1) under the mutant, and every target property fails."""
    r = kill_results[name]
    assert r["rc"] == 1, f"mutant {name} ({MUTANTS[name].bug}) survived: exit {r['rc']}\n{r['tail']}"
    missed = set(MUTANTS[name].targets) - r["caught"]
    assert not missed, (f"mutant {name} ({MUTANTS[name].bug}) was not caught by {sorted(missed)}; "
                        f"caught by {sorted(r['caught'])}\n{r['tail']}")


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", FAULTY)
def test_baseline_compare_flags_the_mutant(kill_results, name):
    """The CI gate: comparing the committed baseline with the mutant's report exits 1 and names
    every target as a regression (or, for a mutant that fixes a known deviation, as a fix)."""
    r = kill_results[name]
    targets = set(MUTANTS[name].targets)
    assert r["gate_rc"] == (1 if r["regressed"] else 0), r["gate_output"]
    if targets <= r["fixed"]:  # a torch that fixes a known deviation: a fix, not a regression
        entries = {e["status"] for e in r["report"]["deviations"]["entries"]}
        assert "fixed" in entries, r["report"]["deviations"]
        return
    assert r["gate_rc"] == 1, f"compare did not flag mutant {name}:\n{r['gate_output']}"
    missed = targets - r["regressed"]
    assert not missed, f"compare missed {sorted(missed)} under mutant {name}:\n{r['gate_output']}"
    for target in targets:
        assert target in r["gate_output"]


@pytest.mark.timeout(3600)
def test_every_property_catches_a_mutant(kill_results):
    """Each property of the suite is shown able to fail: some mutant makes it fail."""
    caught = set().union(*(r["caught"] for r in kill_results.values()))
    idle = sorted(set(properties()) - caught)
    assert not idle, f"properties that no mutant makes fail (they may be unable to fail): {idle}"
