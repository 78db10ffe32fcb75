"""The report format: its name, version, outcomes, and the one loader every tool uses.

``reports/schema.json`` is the JSON Schema of ``report.json``; ``load`` checks a file against
it and turns every way a file can be unusable into one ``UnusableReport`` line.  A report is
data: it is parsed with ``json`` and validated, never executed or unpickled.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

NAME = "mask-broadcast-conformance/report"
VERSION = 1
SUITE = "mask-broadcast-conformance"
SCHEMA_FILE = Path(__file__).with_name("schema.json")
MAX_BYTES = 256 << 20

# Outcomes, in the order reports list them.  GOOD outcomes keep a gate green.
OUTCOMES = ("passed", "failed", "crashed", "timed_out", "fixed", "known_deviation", "capability_gap",
            "not_applicable", "skipped")
GOOD = frozenset({"passed", "known_deviation", "capability_gap", "not_applicable", "skipped"})
# Outcomes of a test that checked nothing: skipped, or about what its device cannot show
UNCHECKED = frozenset({"skipped", "not_applicable"})
BROKEN = frozenset({"failed", "crashed", "timed_out"})
WORDS = {
    "passed": "passed",
    "failed": "failed",
    "crashed": "crashed",
    "timed_out": "timed out",
    "fixed": "fixed: remove the deviation entry",
    "known_deviation": "known deviation",
    "capability_gap": "capability gap",
    "not_applicable": "not applicable",
    "skipped": "skipped",
}


def count_outcomes(results: list[dict]) -> dict[str, int]:
    """outcome -> number of tests, in OUTCOMES order, outcomes no test had left out."""
    counts = {o: 0 for o in OUTCOMES}
    for r in results:
        counts[r["outcome"]] += 1
    return {o: n for o, n in counts.items() if n}


class UnusableReport(Exception):
    """A file that is not a usable report; the message is one line saying why."""


@cache
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def _where(path) -> str:
    parts = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return parts.lstrip(".") or "the top level"


def validate(doc) -> None:
    """Raise UnusableReport unless ``doc`` is a report of this suite in this schema version."""
    import jsonschema

    if not isinstance(doc, dict):
        raise UnusableReport(f"not a conformance report: the top level is a JSON {type(doc).__name__}, "
                             "not an object")
    if doc.get("schema") != NAME:
        raise UnusableReport(f"not a conformance report of this suite: schema is {doc.get('schema')!r}, "
                             f"expected {NAME!r}")
    if doc.get("schema_version") != VERSION:
        raise UnusableReport(f"unsupported schema version {doc.get('schema_version')!r}: "
                             f"this tool reads version {VERSION}")
    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        raise UnusableReport(f"does not match the report schema at {_where(error.absolute_path)}: "
                             f"{_clip(error.message)}")
    ids = [r["id"] for r in doc["results"]]
    if len(ids) != len(set(ids)):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UnusableReport(f"lists the test {_clip(dup)!r} twice")


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def load(path) -> dict:
    """The report in ``path``, validated; UnusableReport (one line) when it can't be used."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UnusableReport(f"{path}: {size} bytes, more than the {MAX_BYTES} a report may have")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UnusableReport(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnusableReport(f"{path}: is a directory, not a report file") from None
    except OSError as e:
        raise UnusableReport(f"{path}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise UnusableReport(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UnusableReport(f"{path}: not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise UnusableReport(f"{path}: not a report (JSON nested too deeply)") from None
    try:
        validate(doc)
    except UnusableReport as e:
        raise UnusableReport(f"{path}: {e}") from None
    except RecursionError:
        raise UnusableReport(f"{path}: not a report (JSON nested too deeply)") from None
    return doc
