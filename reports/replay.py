"""Re-run a failure recorded in a report, from the report alone.

The report holds, for each failed test, its id, device, the Hypothesis profile of the run
and (for failures Hypothesis saw) the ``reproduce_failure`` blob of the minimal example.
Replaying runs that one test in a fresh pytest process on exactly that example
(``--replay-blob``); without a blob (a crash, a hang, another Hypothesis version) it runs
the test under the recorded profile, which under ``ci`` draws the same examples again.
The blob is base64 data for Hypothesis's decoder, never code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import hypothesis

from reports import schema

ROOT = Path(__file__).resolve().parent.parent


def find(doc: dict, test_id: str) -> dict:
    records = {r["id"]: r for r in doc["results"]}
    if test_id in records:
        return records[test_id]
    hits = [r for i, r in records.items() if i.startswith(test_id)]
    failing = [r for r in hits if r["failure"]]
    if len(hits) == 1 or len(failing) == 1:
        return (failing or hits)[0]
    known = ", ".join(sorted(i for i, r in records.items() if r["failure"])[:8]) or "none"
    if hits:
        raise schema.UnusableReport(f"{test_id!r} matches {len(hits)} tests; name one of them "
                                    f"(failed ones: {known})")
    raise schema.UnusableReport(f"no test {test_id!r} in the report (tests with a failure: {known})")


def command(doc: dict, record: dict, report_dir: Path) -> tuple[list[str], str]:
    failure = record["failure"]
    cmd = [sys.executable, "-m", "pytest", f"conformance/{record['id']}", "-q", "--tb=short",
           "-p", "no:cacheprovider", "-o", "addopts=", "--deviations", "none",
           "--hypothesis-profile", doc["environment"]["hypothesis"]["profile"],
           "--report-dir", str(report_dir)]
    if record["device"]:
        cmd += ["--device", record["device"]]
    if doc["run"].get("backend_spec"):
        cmd += ["--backend", doc["run"]["backend_spec"]]
    blob = failure.get("hypothesis_blob")
    if not blob:
        how = "no example blob was recorded; re-running the test under the recorded profile"
    elif blob.split(":", 1)[0] != hypothesis.__version__:
        how = (f"the blob is from Hypothesis {blob.split(':', 1)[0]}, this is {hypothesis.__version__}; "
               "re-running the test under the recorded profile")
    else:
        cmd += ["--replay-blob", blob]
        how = "replaying the recorded minimal example"
    return cmd, how


REPRODUCED, NOT_REPRODUCED, COULD_NOT_RUN = 0, 1, 3


def verdict(record: dict, again: dict | None, returncode: int) -> tuple[int, str]:
    """(exit code, line) for a replay: reproduced (the test failed the same way again), not
    reproduced (it ran and passed, or failed another way), or could not run (it never executed:
    an import error, a missing device, a collection error, a skip)."""
    if again is None and returncode < 0 and record["outcome"] in ("crashed", "timed_out"):
        return REPRODUCED, f"replay: reproduced (the process died again, signal {-returncode})"
    if again is None or again["outcome"] == "skipped":
        why = (f"skipped: {again.get('skip_reason')}" if again is not None
               else f"pytest exited {returncode} without running it")
        return COULD_NOT_RUN, f"replay: COULD NOT RUN the test ({why}); nothing was reproduced or refuted"
    before, after = record["outcome"], again["outcome"]
    kind = lambda r: (r.get("failure") or {}).get("error_type")  # noqa: E731
    if after in schema.BROKEN and kind(again) == "DidNotReproduce":
        return NOT_REPRODUCED, "replay: did NOT reproduce (Hypothesis could not replay the recorded example)"
    if after in schema.BROKEN and (after == before or {after, before} <= {"crashed", "timed_out"}) \
            and (kind(again) == kind(record) or after != "failed"):
        return REPRODUCED, f"replay: reproduced (now {schema.WORDS[after]}: {kind(again)})"
    if after in schema.BROKEN:
        return NOT_REPRODUCED, (f"replay: did NOT reproduce the same failure (it was {schema.WORDS[before]}: "
                                f"{kind(record)}; now {schema.WORDS[after]}: {kind(again)})")
    return NOT_REPRODUCED, f"replay: did NOT reproduce (now {schema.WORDS.get(after, after)})"


def replay(doc: dict, test_id: str, *, dry_run: bool = False, extra: list[str] = ()) -> int:
    record = find(doc, test_id)
    failure = record["failure"]
    if failure is None:
        raise schema.UnusableReport(f"{record['id']} {schema.WORDS[record['outcome']]} in that run: "
                                    "there is no failure to replay")
    print(f"{record['id']}: {schema.WORDS[record['outcome']]} in the report")
    if failure.get("inputs"):
        print("recorded inputs:\n" + textwrap.indent("\n".join(failure["inputs"]), "  "))
    if failure.get("snippet"):
        print("standalone reproduction:\n" + textwrap.indent(failure["snippet"], "    "))
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        cmd, how = command(doc, record, Path(tmp))
        cmd += list(extra)
        print(f"{how}:\n  {subprocess.list2cmdline(cmd)}", flush=True)
        if dry_run:
            return 0
        proc = subprocess.run(cmd, cwd=ROOT)
        try:
            results = json.loads((Path(tmp) / "report.json").read_text())["results"]
        except (OSError, ValueError, KeyError):
            results = []
    again = next((r for r in results if r["id"] == record["id"]), None)
    code, line = verdict(record, again, proc.returncode)
    print(line)
    return code
