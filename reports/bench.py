"""The suite's speed figures: ``python -m reports.bench`` (``tox -e bench``).

1. **Gate**: the ``ci`` profile on all cores (``-n auto``), as ``tox -e conformance`` runs
   it: wall time, tests, examples (inputs the property bodies checked; the calls Hypothesis
   discarded before checking anything are counted apart), examples/s.  Targets:
   <= 60 s for >= 25,000 examples on the 2-core development machine.
2. **Per property**: examples/s next to the *Hypothesis floor* of the same property: the
   rate it would reach if its body did nothing but draw its inputs.  The floor is measured
   on the same run, from report.json: the time outside the body (engine, ``@given``
   generation) plus the time inside it spent in ``data.draw`` (generation the body asks
   for).  Target: every property >= 50 % of its floor (the body costs no more than drawing).
3. **Linearity**: a subset of the suite at 0.5x, 1x and 2x the examples per property
   (``CONFORMANCE_MAX_EXAMPLES``): seconds per example must stay flat, so the
   ``thorough`` profile (10x) costs 10x.
4. **Sharding**: ``--num-shards N --shard-id I`` (pytest-shard, by hash of the test id)
   gives disjoint shards that cover the suite, identical on every run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINEAR_SUBSET = ["conformance/test_broadcasting.py", "conformance/test_masked_fill.py"]


def run_suite(report_dir: Path, *args: str, paths=("conformance",), env: dict | None = None
              ) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "pytest", *paths, "-q", "--report-dir", str(report_dir), *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        sys.exit(f"bench: {' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-2000:]}")
    return wall, json.loads((report_dir / "report.json").read_text())


def per_property(report: dict) -> list[dict]:
    rows = []
    for r in report["results"]:
        if r["outcome"] == "skipped" or not r.get("examples"):
            continue
        body, draws = r.get("body_time_s") or 0.0, r.get("draw_time_s") or 0.0
        generation = max(r["time_s"] - body + draws, 1e-9)
        rows.append({"id": r["id"], "examples": r["examples"], "time_s": r["time_s"],
                     "rate": r["examples"] / max(r["time_s"], 1e-9),
                     "floor": r["examples"] / generation,
                     "share": generation / max(r["time_s"], 1e-9)})
    return sorted(rows, key=lambda row: row["share"])


def collect_ids(*args: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "conformance", "--collect-only", "-q", *args],
                          cwd=ROOT, capture_output=True, text=True)
    return [line for line in proc.stdout.splitlines() if "::" in line]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="auto", help="pytest-xdist -n (default auto)")
    parser.add_argument("--skip-linearity", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wall, report = run_suite(tmp / "ci", "-n", args.workers, "--dist", "worksteal")
        examples = sum(r.get("examples") or 0 for r in report["results"])
        discarded = sum(r.get("discarded") or 0 for r in report["results"])
        counts = report["counts"]
        figures["gate"] = {"wall_s": round(wall, 1), "tests": len(report["results"]), "counts": counts,
                           "examples": examples, "discarded": discarded,
                           "examples_per_s": round(examples / wall),
                           "workers": report["environment"].get("workers")}
        print(f"gate (ci profile, -n {args.workers} --dist worksteal): {wall:.1f} s wall, {len(report['results'])} tests "
              f"({counts}), {examples:,} examples (+{discarded:,} discarded calls), "
              f"{examples / wall:,.0f} examples/s"
              f"  [target: <= 60 s for >= 25,000 examples]")
        rows = per_property(report)
        figures["properties"] = rows
        slow = [r for r in rows if r["share"] < 0.5]
        print(f"\nper property: examples/s vs the Hypothesis floor (same strategy, body doing nothing)"
              f"  [target: >= 50 % of the floor; {len(rows) - len(slow)} of {len(rows)} meet it]")
        print(f"{'property':<92} {'ex':>5} {'s':>6} {'ex/s':>7} {'floor':>7} {'%':>4}")
        for r in rows:
            print(f"{r['id'][:92]:<92} {r['examples']:>5} {r['time_s']:>6.2f} {r['rate']:>7.0f} "
                  f"{r['floor']:>7.0f} {100 * r['share']:>4.0f}")
        if not args.skip_linearity:
            print("\nlinearity (" + ", ".join(LINEAR_SUBSET) + ", one process):")
            figures["linearity"] = []
            for n in (100, 200, 400):
                wall, rep = run_suite(tmp / f"x{n}", "-p", "no:xdist", paths=LINEAR_SUBSET,
                                      env={"CONFORMANCE_MAX_EXAMPLES": str(n)})
                ex = sum(r.get("examples") or 0 for r in rep["results"])
                figures["linearity"].append({"max_examples": n, "wall_s": round(wall, 1), "examples": ex})
                print(f"  {n:>4} per property: {wall:6.1f} s, {ex:>6,} examples, {1000 * wall / ex:.2f} ms/example")
        shards = [set(collect_ids("--num-shards", "2", "--shard-id", str(i))) for i in (0, 1)]
        again = set(collect_ids("--num-shards", "2", "--shard-id", "0"))
        everything = set(collect_ids())
        ok = shards[0] | shards[1] == everything and not shards[0] & shards[1] and again == shards[0]
        figures["sharding"] = {"shards": [len(s) for s in shards], "tests": len(everything), "ok": ok}
        print(f"\nsharding (--num-shards 2): {len(shards[0])} + {len(shards[1])} of {len(everything)} tests, "
              f"disjoint, covering, same on a second collection: {'yes' if ok else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
