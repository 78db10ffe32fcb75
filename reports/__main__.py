"""Command line: ``python -m reports {atlas,compare,matrix,replay,render,thin,validate} ...``.

Exit codes: 0 success (compare: no regression, no lost coverage, every claimed input class
reached; replay: the failure reproduced; merge: the shards make a whole), 1 the answer is no
(compare: a regression, lost coverage or an unreached class; replay: it did not reproduce),
2 unusable input (a missing, unreadable, non-JSON or foreign file, a wrong schema version, an
unknown test id, reports of different selections without --across, shards that do not make a
whole), 3 (replay) the test could not run, always with one line on stderr saying what is wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports import schema

EXIT_OK, EXIT_NO, EXIT_UNUSABLE = 0, 1, 2


class Unusable(Exception):
    """Input the command cannot work with; the message is the one line to print."""


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise Unusable(f"cannot write {path}: {e.strerror}") from None


def cmd_compare(args) -> int:
    from reports import compare
    base, cand = schema.load(args.baseline), schema.load(args.candidate)
    try:
        diff = compare.compare(base, cand, allow_subset=args.allow_subset, across=args.across)
    except compare.Refused as e:
        raise Unusable(str(e)) from None
    names = (args.baseline, args.candidate)
    sys.stdout.write(compare.text(diff, *names))
    if args.markdown:
        _write(args.markdown, compare.markdown(diff, *names))
    if args.html:
        _write(args.html, compare.html(diff, *names))
    return EXIT_NO if compare.failing(diff) else EXIT_OK


def cmd_merge(args) -> int:
    from reports import merge
    try:
        doc = merge.merge([(path, schema.load(path)) for path in args.shards])
    except merge.MergeError as e:
        raise Unusable(str(e)) from None
    import json
    _write(args.output, json.dumps(doc, indent=1) + "\n")
    examples = sum(r.get("examples") or 0 for r in doc["results"])
    print(f"written: {args.output}: {len(args.shards)} shards, {len(doc['results'])} tests, "
          f"{examples:,} examples{'' if doc['run']['complete'] else ' (INCOMPLETE: a shard did not finish)'}")
    return EXIT_OK


def cmd_atlas(args) -> int:
    from reports import atlas
    version, situations = atlas.build()
    _write(args.markdown, atlas.markdown(version, situations))
    _write(args.html, atlas.html(version, situations))
    print(f"written: {args.markdown}, {args.html} (torch {version})")
    return EXIT_OK


def cmd_matrix(args) -> int:
    from reports import matrix
    try:
        m = matrix.build([(path, schema.load(path)) for path in args.reports])
    except matrix.MatrixError as e:
        raise Unusable(str(e)) from None
    text = matrix.markdown(m)
    if args.markdown:
        _write(args.markdown, text)
    if args.html:
        _write(args.html, matrix.html(m))
    if not (args.markdown or args.html):
        sys.stdout.write(text)
    else:
        changes = sum(len(cs) for _, _, cs in m.steps)
        findings = sum(1 for _, _, cs in m.steps for c in cs if c.explained is None)
        print(f"matrix of torch {', '.join(m.releases)}: {len(m.rows)} tests, {changes} changes between "
              f"consecutive releases, {findings} not explained by an expectation")
    return EXIT_OK


def cmd_render(args) -> int:
    from reports import render
    doc = schema.load(args.report)
    out = Path(args.out or Path(args.report).parent)
    try:
        out.mkdir(parents=True, exist_ok=True)  # --out names a folder to write into: make it
    except OSError as e:
        raise Unusable(f"cannot make {out}: {e.strerror}") from None
    _write(str(out / "report.md"), render.markdown(doc))
    _write(str(out / "report.html"), render.html(doc))
    print(f"written: {out / 'report.md'}, {out / 'report.html'}")
    return EXIT_OK


def cmd_validate(args) -> int:
    doc = schema.load(args.report)
    print(f"{args.report}: a valid report (schema version {schema.VERSION}, {len(doc['results'])} tests)")
    return EXIT_OK


def cmd_replay(args) -> int:
    from reports import replay
    return replay.replay(schema.load(args.report), args.test_id, dry_run=args.dry_run,
                         extra=args.pytest_args)


def thin_claims(doc: dict, share: float, at_least: int) -> list[tuple[str, str, int, int]]:
    """(test id, claim, classified examples that reached it, classified examples) of every claim
    a test reached in fewer than max(`at_least`, `share`) of its classified examples: the claims an
    edit that re-draws the examples may leave under their margin.  Counts are of the classified
    examples (every example until each claim has its margin, then one in eight:
    `conformance.reach.CLASSIFY_EVERY`), so the share is what is compared."""
    from conformance.reach import claim_count

    out = []
    for r in doc["results"]:
        reach = r.get("reach") or {}
        n = reach.get("classified") or reach.get("checked") or 0
        if not n:
            continue
        counts = reach.get("counts") or {}
        for claim in reach.get("claimed") or ():
            got = claim_count(claim, counts)
            if got < max(at_least * n / (reach.get("checked") or n), share * n):
                out.append((r["id"], claim, got, n))
    return sorted(out, key=lambda t: (t[2] / t[3], t[0], t[1]))


def cmd_thin(args) -> int:
    doc = schema.load(args.report)
    rows = thin_claims(doc, args.share, args.at_least)
    total = sum(len((r.get("reach") or {}).get("claimed") or ()) for r in doc["results"])
    print(f"{len(rows)} of {total} claims reached by fewer than max({args.at_least} of the checked, {args.share:.0%}) "
          f"of their test's classified examples")
    for test, claim, got, n in rows[:args.most]:
        print(f"  {got:4d}/{n:<4d} classified  {claim[:100]}  {test}")
    if len(rows) > args.most:
        print(f"  ... {len(rows) - args.most} more (--most)")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare", help="list regressions, fixes and changes from BASELINE to CANDIDATE")
    p.add_argument("baseline")
    p.add_argument("candidate")
    p.add_argument("--markdown", metavar="FILE", help="also write the comparison as Markdown")
    p.add_argument("--html", metavar="FILE", help="also write the comparison as a self-contained HTML page")
    p.add_argument("--allow-subset", action="store_true",
                   help="the candidate ran a subset on purpose: baseline tests it did not select are listed, "
                        "not counted as lost coverage")
    p.add_argument("--across", action="store_true",
                   help="compare reports of another backend, other devices or another profile (refused otherwise)")
    p.set_defaults(run=cmd_compare)
    p = sub.add_parser("merge", help="join the reports of --num-shards shards into the report of the whole run")
    p.add_argument("shards", nargs="+", metavar="SHARD_REPORT")
    p.add_argument("-o", "--output", required=True, metavar="REPORT", help="where to write the merged report.json")
    p.set_defaults(run=cmd_merge)
    p = sub.add_parser("atlas", help="what the running torch does with each way of applying a mask, in each "
                                     "situation (docs/atlas.md and .html)")
    p.add_argument("--markdown", metavar="FILE", default="docs/atlas.md", help="default: docs/atlas.md")
    p.add_argument("--html", metavar="FILE", default="docs/atlas.html", help="default: docs/atlas.html")
    p.set_defaults(run=cmd_atlas)
    p = sub.add_parser("matrix", help="the property x release table of REPORTs (one per torch release), "
                                      "with what changed between consecutive releases")
    p.add_argument("reports", nargs="+", metavar="REPORT")
    p.add_argument("--markdown", metavar="FILE", help="write the matrix as Markdown (default: to stdout)")
    p.add_argument("--html", metavar="FILE", help="write the matrix as a self-contained HTML page")
    p.set_defaults(run=cmd_matrix)
    p = sub.add_parser("replay", help="re-run a failure recorded in REPORT (its test id, or a unique prefix)")
    p.add_argument("report")
    p.add_argument("test_id")
    p.add_argument("--dry-run", action="store_true", help="print the recorded failure and the command only")
    p.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARG",
                   help="extra pytest arguments after --, e.g. the plugin of the backend under test")
    p.set_defaults(run=cmd_replay)
    p = sub.add_parser("render", help="write report.md and report.html from a report.json")
    p.add_argument("report")
    p.add_argument("--out", metavar="DIR", help="where to write them (default: beside the report)")
    p.set_defaults(run=cmd_render)
    p = sub.add_parser("thin", help="the claims REPORT reached in few of their examples: those an edit that "
                                    "re-draws the examples may leave under their margin")
    p.add_argument("report")
    p.add_argument("--share", type=float, default=0.03, help="below this share of a test's examples (default 0.03)")
    p.add_argument("--at-least", type=int, default=9, help="or below this many examples (default 9)")
    p.add_argument("--most", type=int, default=40, help="rows to print (default 40)")
    p.set_defaults(run=cmd_thin)
    p = sub.add_parser("validate", help="check a report.json against the schema")
    p.add_argument("report")
    p.set_defaults(run=cmd_validate)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (schema.UnusableReport, Unusable) as e:
        print(f"{parser.prog} {args.command}: {e}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
