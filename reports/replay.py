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
            again = json.loads((Path(tmp) / "report.json").read_text())["results"]
        except (OSError, ValueError, KeyError):
            again = []
    outcome = next((r["outcome"] for r in again if r["id"] == record["id"]), None)
    error = next((r["failure"] or {} for r in again if r["id"] == record["id"]), {}).get("error_type")
    if outcome is None and proc.returncode != 0:
        outcome = "crashed" if proc.returncode < 0 else "timed_out or crashed"
    reproduced = outcome is not None and outcome not in ("passed", "skipped") and error != "DidNotReproduce"
    print(f"replay: {'reproduced' if reproduced else 'did NOT reproduce'} "
          f"(now {outcome or 'no result'}; exit {proc.returncode})")
    return 0 if reproduced else 1
