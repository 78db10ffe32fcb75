"""The release matrix runner: ``tox -e matrix -- [--into DIR] RELEASE...``.

For each torch release it runs ``tox -e release`` with ``TORCH_RELEASE`` set (an environment
of its own, ``.tox/release-RELEASE``, created once; a release other than 2.13.0 is a CUDA build
of several GB from the registry, which runs on the CPU), keeps the run's report as
``DIR/torch-RELEASE-cpu.json`` (default DIR: reports/out/releases), and renders the
property × release table of every report it ran (``reports/out/releases/matrix.md`` and
``matrix.html``, or the files ``--markdown`` and ``--html`` name; `reports.matrix`).

A release whose run fails its properties still gives a report: that is what the matrix is for.
A release that gives no report (pip cannot install it, the run crashed before writing) is
named in one line, the others go on, and the command exits 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from reports import schema
from conformance.releases import numpy_for, parse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INTO = ROOT / "reports" / "out" / "releases"


def report_name(release: str) -> str:
    return f"torch-{release}-cpu.json"


def run_release(release: str, extra: list[str]) -> Path | None:
    """Run the ci profile on `release`; the kept report's path, or None (a line says why)."""
    env = {**os.environ, "TORCH_RELEASE": release, "RELEASE_NUMPY": numpy_for(release), "HYPOTHESIS_PROFILE": "ci"}
    out = ROOT / "reports" / "out" / "releases" / f"torch-{release}-cpu" / "report.json"
    out.unlink(missing_ok=True)
    print(f"matrix: torch {release}: tox -e release (environment .tox/release-{release})", flush=True)
    done = subprocess.run([sys.executable, "-m", "tox", "-e", "release", "--", *extra], cwd=ROOT, env=env)
    if not out.is_file():
        print(f"matrix: torch {release}: no report (tox exited {done.returncode}; see its output above)",
              file=sys.stderr)
        return None
    try:
        doc = schema.load(out)
    except schema.UnusableReport as e:
        print(f"matrix: torch {release}: unusable report: {e}", file=sys.stderr)
        return None
    got = str(parse(doc["environment"]["torch"]["version"]))
    if got != str(parse(release)):
        print(f"matrix: torch {release}: the environment ran torch {got}", file=sys.stderr)
        return None
    print(f"matrix: torch {release}: {doc['counts']}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tox -e matrix --", description=__doc__.split("\n\n")[0])
    parser.add_argument("releases", nargs="+", metavar="RELEASE", help="torch releases, e.g. 2.4.1 2.13.0")
    parser.add_argument("--into", type=Path, default=DEFAULT_INTO,
                        help="where each release's report is kept (default: reports/out/releases); the matrix goes to "
                             "reports/out/releases unless --markdown / --html say where")
    parser.add_argument("--markdown", type=Path, help="write the matrix here too (e.g. docs/releases.md)")
    parser.add_argument("--html", type=Path, help="write the HTML matrix here too (e.g. docs/releases.html)")
    args, extra = parser.parse_known_args(argv)
    for r in args.releases:
        try:
            parse(r)
        except ValueError as e:
            parser.error(f"release {e}")
    ran, lost = [], []
    for release in args.releases:
        (ran if (path := run_release(release, extra)) else lost).append((release, path))
    # kept only once every release has run: a report that replaces a tracked file (a committed
    # baseline) would mark the later runs as made from a modified checkout
    kept = []
    for release, path in ran:
        args.into.mkdir(parents=True, exist_ok=True)
        kept.append(args.into / report_name(release))
        shutil.copyfile(path, kept[-1])
        print(f"kept: {kept[-1]}")
    lost = [release for release, _ in lost]
    if kept:
        from reports import matrix
        docs = [(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p), schema.load(p)) for p in kept]
        m = matrix.build(docs)
        # the matrix of this run goes beside the run's reports, never into --into (a baselines
        # folder holds reports only), unless --markdown / --html say where
        targets = [] if args.markdown or args.html else [(DEFAULT_INTO / "matrix.md", matrix.markdown(m)),
                                                         (DEFAULT_INTO / "matrix.html", matrix.html(m))]
        targets += [(p, matrix.markdown(m)) for p in [args.markdown] if p]
        targets += [(p, matrix.html(m)) for p in [args.html] if p]
        for path, text in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"written: {path}")
    if lost:
        print(f"matrix: no report for torch {', '.join(lost)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
