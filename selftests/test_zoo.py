"""The fault zoo's kill rate: every generated mutant (selftests/zoo.py) against the properties
that call its op, each in a fresh pytest process under the ``zoo`` profile (as many
examples as the gate's ``ci`` profile, derandomized, without shrinking; not the gate's very
examples, since Hypothesis mixes the literals of the loaded modules, the mutant's among
them, into generation).

Which properties call an op is read from the committed baseline report: a test whose
examples reached a class of the op (``softmax.x.layout:...``) calls it.  A mutant is
killed when its run fails (a property fails, or the process dies); it survives when every
property passes.  Every survivor must be listed, with the reason it cannot be caught, in
`selftests/zoo_survivors.py`, and every listed survivor must still survive (a kill means
the entry is stale).  The kill table goes to ``reports/out/zoo.md``.

``ZOO=GLOB[,GLOB...]`` runs the mutants whose names match one (``tox -e zoo``: all); ``ZOO_SHARD=I/N`` runs
one of N shards; with neither, a quarter of the zoo runs (shard 0/4: what ``tox -e selftest``
and CI run).
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reports import schema
from reports.compare import BASELINE
from selftests.zoo import ZOO
from selftests.zoo_survivors import SURVIVORS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "out"


DEFAULT_SHARD = "0/4"  # what `tox -e selftest` (and so CI) runs: every fourth mutant, all templates


def selected() -> list[str]:
    """The mutants to run: those matching ZOO (a glob; ``tox -e zoo`` sets ``*``), one shard of
    ZOO_SHARD=I/N, and by default (neither set) the shard DEFAULT_SHARD."""
    names = sorted(ZOO)
    pattern, shard = os.environ.get("ZOO"), os.environ.get("ZOO_SHARD")
    if pattern:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in pattern.split(","))]
    if shard or not pattern:
        i, n = (int(x) for x in (shard or DEFAULT_SHARD).split("/"))
        names = names[i::n]
    return names


def callers(op: str) -> list[str]:
    """The baseline's test ids (as pytest node ids) whose examples called `op`."""
    report = schema.load(BASELINE)
    prefix = f"{op}."
    return [f"conformance/{r['id']}" for r in report["results"]
            if r["outcome"] != "skipped" and any(k.startswith(prefix) for k in (r.get("reach") or {}).get("counts", {}))]


def run(name: str, tmp: Path) -> dict:
    mutant = ZOO[name]
    tests = callers(mutant.op)
    if not tests:
        return {"name": name, "killed": False, "by": None, "tests": 0, "rc": None, "seconds": 0.0,
                "tail": "no property calls the op"}
    out = tmp / name
    cmd = [sys.executable, "-m", "pytest", *tests, "--backend", f"selftests.zoo:{name}",
           "--hypothesis-profile", "zoo", "-q", "--no-header", "-x", "-p", "no:cacheprovider",
           "--report-dir", str(out), "--device", "cpu", "-o", "addopts=", "--timeout", "300"]
    t = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    seconds = time.monotonic() - t
    by = None
    try:
        report = json.loads((out / "report.json").read_text())
        broken = [r["id"] for r in report["results"] if r["outcome"] in schema.BROKEN | {"fixed"}]
        by = broken[0] if broken else None
    except (OSError, ValueError):
        pass
    killed = proc.returncode == 1 or proc.returncode < 0
    return {"name": name, "killed": killed, "by": by, "tests": len(tests), "rc": proc.returncode,
            "seconds": round(seconds, 1), "tail": (proc.stdout[-1500:] + proc.stderr[-1500:]) if not killed else ""}


@pytest.fixture(scope="session")
def zoo_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zoo")
    names = selected()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = dict(zip(names, pool.map(lambda n: run(n, tmp), names)))
    write_table(results)
    return results


def write_table(results: dict) -> None:
    killed = sum(r["killed"] for r in results.values())
    lines = ["# Fault zoo", "", f"Kill rate: **{killed}/{len(results)}** (`tox -e zoo`, the ci profile's examples).", "",
             "| mutant | killed | first property to fail | properties run | seconds |", "| --- | --- | --- | --- | --- |"]
    for name, r in sorted(results.items()):
        lines.append(f"| `{name}` | {'yes' if r['killed'] else '**no**'} | {r['by'] or '-'} | {r['tests']} | {r['seconds']} |")
    survivors = [n for n, r in sorted(results.items()) if not r["killed"]]
    if survivors:
        lines += ["", "## Survivors", ""]
        lines += [f"- `{n}`: {SURVIVORS.get(n, 'NOT LISTED')}" for n in survivors]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "zoo.md").write_text("\n".join(lines) + "\n")
    (OUT / "zoo.json").write_text(json.dumps(results, indent=1) + "\n")


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("name", selected())
def test_zoo_mutant_is_killed_or_a_listed_survivor(zoo_results, name):
    """A zoo mutant makes some property fail, unless it is a listed survivor (which must survive)."""
    r = zoo_results[name]
    if name in SURVIVORS:
        assert not r["killed"], (f"{name} is listed as a survivor ({SURVIVORS[name]}) but was killed by "
                                 f"{r['by']}: remove it from selftests/zoo_survivors.py")
        return
    assert r["rc"] not in (2, 3, 4), f"the run of {name} broke (exit {r['rc']}):\n{r['tail']}"
    assert r["killed"], (f"{ZOO[name].bug} (fires on: {ZOO[name].template.trigger}) survived "
                         f"{r['tests']} properties:\n{r['tail']}")


def test_every_listed_survivor_is_a_zoo_mutant():
    """The survivors list names only mutants the zoo generates."""
    assert not set(SURVIVORS) - set(ZOO), sorted(set(SURVIVORS) - set(ZOO))
