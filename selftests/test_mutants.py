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

import ast
import functools
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reports import compare, schema
from reports.compare import BASELINE
from reports.plugin import split_id
from selftests.mutants import MUTANTS

FAULTY = sorted(name for name, m in MUTANTS.items() if m.effect == "wrong")

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT / "conformance"
KILL_TABLE: list[str] = []


@functools.cache
def properties() -> dict[str, Path]:
    """Every conformance property (test function) and the module that holds it.  Cached, and
    first called before the mutant threads start: CPython 3.11's ast.parse is not
    thread-safe ("AST constructor recursion depth mismatch")."""
    found = {}
    for path in sorted(CONFORMANCE.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found[node.name] = path
    return found


def run_mutant(name: str, tmp: Path) -> dict:
    props = properties()
    missing = [t for t in MUTANTS[name].targets if t not in props]
    assert not missing, f"mutant {name} targets unknown properties {missing}"
    paths = ["conformance"] if os.environ.get("MUTANTS_FULL") else sorted(
        {str(props[t].relative_to(ROOT)) for t in MUTANTS[name].targets})
    out = tmp / name
    cmd = [sys.executable, "-m", "pytest", *paths, "--backend", f"selftests.mutants:{name}",
           "--hypothesis-profile", os.environ.get("MUTANT_PROFILE", "selftest"), "-q", "--no-header",
           *(["--hypothesis-seed", os.environ["MUTANT_SEED"]] if os.environ.get("MUTANT_SEED") else []),
           "-p", "no:cacheprovider", "--report-dir", str(out), "--device", "cpu", "-o", "addopts="]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    report = schema.load(out / "report.json")  # the run's own report, validated
    caught = {r["property"] for r in report["results"] if r["outcome"] in schema.BROKEN | {"fixed"}}
    # another backend (the mutant), a subset of the modules and the selftest profile, on purpose
    diff = compare.compare(schema.load(BASELINE), report, across=True, allow_subset=True)
    gate = subprocess.run([sys.executable, "-m", "reports", "compare", str(BASELINE), str(out / "report.json"),
                           "--across", "--allow-subset"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    return {"rc": proc.returncode, "caught": caught, "tail": tail, "report": report,
            "regressed": {split_id(c.id)[1] for c in diff.regressions},
            "fixed": {split_id(c.id)[1] for c in diff.fixes},
            "gate_rc": gate.returncode, "gate_output": gate.stdout + gate.stderr}


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
