"""Running the mutants: each faulty backend of selftests/mutants.py in a fresh pytest process, on
the conformance modules that hold its target properties, and what its run caught.  The mutant
self-test (test_mutants.py) asserts on these runs; ``python -m selftests.mutant_runs`` prints
the kill table on any device and profile (how the suite's power on torch_xla under the graph
profile is measured: ``--device xla --profile graph``).
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

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
           "-p", "no:cacheprovider", "--report-dir", str(out), "--device", os.environ.get("MUTANT_DEVICE", "cpu"), "-o", "addopts="]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=int(os.environ.get("MUTANT_TIMEOUT", 900)))
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




def killed(result: dict) -> bool:
    return result["rc"] == 1 and bool(result["caught"])


def _verdict(name: str, tmp: Path) -> dict:
    """`run_mutant` for the command line: a mutant whose run outlives MUTANT_TIMEOUT is a row of
    the table (not killed, with what its report had caught so far), not the end of every run."""
    try:
        return run_mutant(name, tmp)
    except subprocess.TimeoutExpired as e:
        partial = tmp / name / "report.json"
        results = json.loads(partial.read_text())["results"] if partial.is_file() else []
        return {"rc": f"timed out after {e.timeout:.0f} s",
                "caught": {r["property"] for r in results if r["outcome"] in schema.BROKEN | {"fixed"}}}


def _row(name: str, result: dict) -> str:
    return (f"{name:42} {'yes' if killed(result) else 'NO ':5} rc={result['rc']}  "
            f"{', '.join(sorted(result['caught'])) or '-'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m selftests.mutant_runs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", default="selftest")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path, help="write {mutant: {killed, caught, rc}} here")
    parser.add_argument("--timeout", type=int, default=int(os.environ.get("MUTANT_TIMEOUT", 900)),
                        help="seconds one mutant's run may take (default: MUTANT_TIMEOUT or 900)")
    parser.add_argument("mutants", nargs="*", help="default: every faulty mutant")
    args = parser.parse_args(argv)
    unknown = [m for m in args.mutants if m not in FAULTY]
    if unknown:
        print(f"error: unknown mutants {unknown}; see selftests/mutants.py", file=sys.stderr)
        return 2
    os.environ.update(MUTANT_DEVICE=args.device, MUTANT_PROFILE=args.profile, MUTANT_TIMEOUT=str(args.timeout))
    names = args.mutants or FAULTY
    properties()
    results = {}
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = {pool.submit(_verdict, n, Path(tmp)): n for n in names}
        for f in as_completed(futures):  # each row as its run ends: a long table is not lost to one run
            results[futures[f]] = f.result()
            print(_row(futures[f], results[futures[f]]), flush=True)
    results = {n: results[n] for n in names}
    print(f"kill rate on {args.device} ({args.profile}): {sum(map(killed, results.values()))}/{len(results)}")
    if args.json:
        args.json.write_text(json.dumps({n: {"killed": killed(r), "rc": r["rc"], "caught": sorted(r["caught"])}
                                         for n, r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
