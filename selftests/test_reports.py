"""The reports: runs that survive a broken backend, the compare gate, replay, and escaping.

The crash and hang mutants (selftests/mutants.py, effect "crash"/"hang") kill the process
that runs them, as a faulty native kernel does.  Their runs use pytest-xdist, like the CI
gate: the report must still list every other test, the dead one as crashed or timed out
with the input it was running, and be complete and valid.
"""

from __future__ import annotations

import contextlib
import copy
import html
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from conformance import deviations as dev
from reports import __main__ as cli
from reports import compare, inflight, render, schema
from reports.compare import BASELINE

ROOT = Path(__file__).resolve().parent.parent
HANG_TIMEOUT_S = 20


def pytest_run(*args: str, out: Path, timeout: float = 600, profile: str = "selftest") -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", *args, "-q", "--no-header", "-p", "no:cacheprovider",
           "-o", "addopts=", "--device", "cpu", "--hypothesis-profile", profile,
           "--report-dir", str(out)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def gate(baseline: Path, candidate: Path, *extra: str) -> tuple[int, str, str]:
    """``python -m reports compare`` in a fresh interpreter: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "reports", "compare", str(baseline), str(candidate),
                           *extra], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


# --------------------------------------------------------------------------- broken processes


@pytest.fixture(scope="module")
def broken_runs(tmp_path_factory):
    """The abort and the hang mutant, each on the module of its target, with two workers."""
    tmp = tmp_path_factory.mktemp("broken")
    runs = {
        "crash": ("masked_fill_aborts_on_all_true_masks", "conformance/test_masked_fill.py", ()),
        "hang": ("broadcast_to_hangs_on_empty_shapes", "conformance/test_broadcasting.py",
                 ("--timeout", str(HANG_TIMEOUT_S))),
    }

    def go(kind):
        name, module, extra = runs[kind]
        out = tmp / kind
        proc = pytest_run(module, "-n", "2", "--backend", f"selftests.mutants:{name}", *extra, out=out)
        collected = subprocess.run([sys.executable, "-m", "pytest", module, "--collect-only", "-q",
                                    "-p", "no:cacheprovider", "--device", "cpu", "--no-report"],
                                   cwd=ROOT, capture_output=True, text=True).stdout
        ids = {dev.relative_id(line) for line in collected.splitlines() if "::" in line}
        return {"proc": proc, "out": out, "report": schema.load(out / "report.json"), "ids": ids}

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(runs, pool.map(go, runs)))


@pytest.mark.parametrize("kind,outcome", [("crash", "crashed"), ("hang", "timed_out")])
def test_a_dead_worker_loses_only_its_own_test(broken_runs, kind, outcome):
    """After an abort or a hang, the report is complete and valid: every collected test has a
    result, the dead one says crashed / timed out with the input it was running, and every
    other test ran normally."""
    run = broken_runs[kind]
    report, proc = run["report"], run["proc"]
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report["run"]["complete"], report["run"]
    assert {r["id"] for r in report["results"]} == run["ids"], "tests missing from the report"
    dead = [r for r in report["results"] if r["outcome"] == outcome]
    assert dead, f"no test {outcome}: {report['counts']}"
    for r in dead:
        f = r["failure"]
        assert f["kind"] == {"crashed": "crash", "timed_out": "timeout"}[outcome]
        assert f["inputs"], f"the {outcome} test's input was lost: {f}"
        assert f["snippet"] and f["snippet"].startswith("import torch"), f
        assert "died while running" in f["message"]
    if kind == "crash":  # the abort fires on all-True masks of 2+ dims: the record shows one
        assert all("True" in "\n".join(r["failure"]["inputs"]) for r in dead)
    else:  # the hang fires on a target shape with a 0; it is in the reproduction
        assert all(", 0" in r["failure"]["snippet"] or "(0" in r["failure"]["snippet"] for r in dead)
        assert all(r["time_s"] >= 0.98 * HANG_TIMEOUT_S for r in dead)
    others = [r for r in report["results"] if r["outcome"] != outcome]
    assert others and all(r["outcome"] in schema.GOOD for r in others), \
        [(r["id"], r["outcome"]) for r in others if r["outcome"] not in schema.GOOD]
    assert not (run["out"] / ".inflight").exists(), "the flight recorder files were left behind"


@pytest.mark.parametrize("kind", ["crash", "hang"])
def test_baseline_compare_flags_the_dead_tests(broken_runs, kind):
    """The CI gate exits 1 on a run with a crash or a hang and names the test."""
    rc, out, err = gate(BASELINE, broken_runs[kind]["out"] / "report.json", "--across", "--allow-subset")
    assert rc == 1, out + err
    dead = [r["id"] for r in broken_runs[kind]["report"]["results"] if r["outcome"] in ("crashed", "timed_out")]
    assert all(d in out for d in dead), out


def test_an_interrupted_run_leaves_a_valid_partial_report(tmp_path):
    """The report is rewritten as each result arrives: killing the run mid-way (SIGKILL, no
    cleanup) leaves a valid report of what finished, marked incomplete."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pytest", "conformance/test_broadcasting.py", "-q", "-p", "no:cacheprovider",
           "-o", "addopts=", "--device", "cpu", "--hypothesis-profile", "selftest", "--report-dir", str(out),
           "--backend", "selftests.mutants:broadcast_to_hangs_on_empty_shapes", "--timeout", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # wait until it is stuck in the hanging test
            left = inflight.read(out / ".inflight" / "main.rec")
            if left and "broadcast_to" in left.get("nodeid", "") and left.get("example"):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the run never reached the hanging test")
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    report = schema.load(out / "report.json")
    assert not report["run"]["complete"] and report["run"]["finished"] is None
    assert report["results"], "nothing that finished before the kill is in the report"
    assert all(r["outcome"] in schema.GOOD for r in report["results"])
    assert any("broadcast_to" in t for t in report["run"]["not_run"]), report["run"]["not_run"]
    # what the killed process was running is still on disk, for a human or a later tool
    left = inflight.read(out / ".inflight" / "main.rec")
    assert "broadcast_to" in left["nodeid"] and left["example"]["inputs"]


# --------------------------------------------------------------------------- compare


def _baseline() -> dict:
    return schema.load(BASELINE)


def _write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_the_baseline_is_a_clean_complete_run():
    """The committed baseline is a complete, valid ci-profile CPU run with nothing broken."""
    doc = _baseline()
    assert doc["run"]["complete"] and doc["environment"]["hypothesis"]["profile"] == "ci"
    assert not set(doc["counts"]) & (schema.BROKEN | {"fixed"}), doc["counts"]
    assert doc["environment"]["torch"]["version"].startswith("2.13.0")


def test_compare_of_a_report_with_itself_is_quiet(tmp_path):
    rc, out, _ = gate(BASELINE, BASELINE)
    assert rc == 0 and "no regression" in out and "Regressions" not in out


def test_compare_classifies_each_change(tmp_path):
    """passed->failed is a regression; failed->passed a fix; a passing test now skipped or absent
    is lost coverage; a passing test now excused is a deviation change; an added id is new; a
    passing test the candidate planned but never finished is a regression."""
    base = _baseline()
    cand = copy.deepcopy(base)
    res = {r["id"]: r for r in cand["results"]}
    ids = sorted(i for i, r in res.items() if r["outcome"] == "passed")
    failing, skipped, excused, dropped, unfinished = ids[:5]
    res[failing].update(outcome="failed", failure={"kind": "violation", "error_type": "ConformanceFailure",
                                                   "message": "m", "what": "wrong values", "inputs": [],
                                                   "snippet": None})
    res[skipped].update(outcome="skipped", skip_reason="no device")
    res[excused].update(outcome="known_deviation",
                        deviation={"id": excused, "reason": "r", "link": "l", "file": "f"})
    cand["results"] = [r for r in cand["results"] if r["id"] not in (dropped, unfinished)]
    cand["results"].append({**res[ids[5]], "id": "test_new.py::test_new[cpu]"})
    cand["run"]["not_run"] = [unfinished]
    cand["run"]["complete"] = False
    cand["environment"]["torch"]["version"] = "2.14.0"
    diff = compare.compare(base, cand)
    assert [c.id for c in diff.regressions] == sorted([failing, unfinished])
    assert [c.id for c in diff.lost] == sorted([skipped, dropped]) and not diff.coverage
    assert [c.id for c in diff.deviation_changes] == [excused]
    assert not diff.removed
    assert [c.id for c in diff.new] == ["test_new.py::test_new[cpu]"]
    assert ("environment.torch.version", base["environment"]["torch"]["version"], "2.14.0") in diff.environment
    assert diff.warnings
    rc, out, _ = gate(_write(tmp_path / "b.json", base), _write(tmp_path / "c.json", cand),
                      "--markdown", str(tmp_path / "d.md"), "--html", str(tmp_path / "d.html"))
    assert rc == 1 and failing in out and unfinished in out
    assert failing in (tmp_path / "d.md").read_text() and failing in (tmp_path / "d.html").read_text()
    # and backwards: the same change seen from the candidate is a fix, exit 0 (what the candidate
    # skipped comes back as coverage, and its new test is gone, which is lost coverage unless intended)
    rc, out, _ = gate(tmp_path / "c.json", tmp_path / "b.json", "--allow-subset")
    assert rc == 0 and "Fixes" in out and failing in out


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


UNUSABLE = {
    "missing file": (None, "no such file"),
    "directory": ("<dir>", "is a directory"),
    "empty file": ("", "not JSON"),
    "not JSON": ("{'schema': 1}", "not JSON"),
    "truncated JSON": ('{"schema": "mask-broadcast-conformance/report", "results": [', "not JSON"),
    "not UTF-8": (b"\xff\xfe\x00{", "not UTF-8"),
    "a JSON list": ("[1, 2, 3]", "top level is a JSON list"),
    "a foreign JSON": ('{"tests": [], "summary": {"passed": 1}}', "not a conformance report"),
    "another suite's report": ("<foreign>", "not a conformance report"),
    "a newer schema": ("<v2>", "unsupported schema version 2"),
    "a bad outcome": ("<bad-outcome>", "results[0].outcome"),
    "a duplicate test": ("<dup>", "twice"),
    "deep nesting": (_nested(100_000), "not"),
}


@pytest.mark.parametrize("what", sorted(UNUSABLE))
@pytest.mark.parametrize("side", ["baseline", "candidate"])
def test_compare_refuses_unusable_input_with_one_line(tmp_path, what, side):
    """Unusable input exits 2 with one line naming the file and the problem, never a traceback."""
    content, words = UNUSABLE[what]
    bad = tmp_path / "bad.json"
    good = _baseline()
    if content == "<dir>":
        bad.mkdir()
    elif content == "<foreign>":
        _write(bad, {**good, "schema": "array-api-tests/report"})
    elif content == "<v2>":
        _write(bad, {**good, "schema_version": 2})
    elif content == "<bad-outcome>":
        _write(bad, {**good, "results": [{**good["results"][0], "outcome": "<b>bogus</b>"}]})
    elif content == "<dup>":
        _write(bad, {**good, "results": good["results"][:1] * 2})
    elif isinstance(content, bytes):
        bad.write_bytes(content)
    elif content is not None:
        bad.write_text(content)
    args = (bad, BASELINE) if side == "baseline" else (BASELINE, bad)
    rc, out, err = gate(*args)
    assert rc == 2, (rc, out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out, err
    assert str(bad) in err and words in err, err


# --------------------------------------------------------------------------- replay


def test_replay_reruns_a_recorded_failure_from_the_report(tmp_path):
    """`python -m reports replay` re-runs a failure from report.json alone: under the faulty
    backend (recorded in the report) it reproduces (exit 0), against real torch it does not (exit 1)."""
    out = tmp_path / "run"
    proc = pytest_run("conformance/test_masked_fill.py::test_masked_fill_matches_oracle", "--backend",
                      "selftests.mutants:masked_fill_inverted", out=out)
    assert proc.returncode == 1, proc.stdout[-2000:]
    report = schema.load(out / "report.json")
    (record,) = report["results"]
    assert record["failure"]["hypothesis_blob"], record["failure"]
    test_id = record["id"]

    def replay(*extra):
        return subprocess.run([sys.executable, "-m", "reports", "replay", str(out / "report.json"), test_id,
                               *extra], cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert report["run"]["backend_spec"] == "selftests.mutants:masked_fill_inverted"
    again = replay()
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert "replaying the recorded minimal example" in again.stdout and "reproduced" in again.stdout
    assert textwrap.indent(record["failure"]["snippet"], "    ") in again.stdout  # shown first
    clean = replay("--", "--backend", "torch")
    assert clean.returncode == 1 and "did NOT reproduce" in clean.stdout, clean.stdout[-3000:]
    missing = subprocess.run([sys.executable, "-m", "reports", "replay", str(out / "report.json"), "nope"],
                             cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2 and "no test 'nope'" in missing.stderr


# --------------------------------------------------------------------------- deviations


def test_deviation_entries_are_reported_matched_unmatched_or_not_run(tmp_path):
    """An entry whose module ran but whose id matches nothing is 'unmatched'; one whose
    module was not collected is 'not_run'; a matching one 'matched'."""
    entries = tmp_path / "dev.toml"
    entries.write_text(
        '[[deviation]]\nid = "test_masked_fill_errors.py::test_no_such_property"\nreason = "r"\nlink = "l"\n'
        '[[deviation]]\nid = "test_masked_fill_errors.py::test_masked_fill_rejects_non_bool"\nreason = "r"\n'
        'link = "l"\n'
        '[[deviation]]\nid = "test_autograd.py::test_masked_fill_grad"\nreason = "r"\nlink = "l"\n')
    out = tmp_path / "out"
    proc = pytest_run("conformance/test_masked_fill_errors.py", "--deviations", str(entries), out=out)
    status = {e["id"].split("::")[1]: e["status"] for e in schema.load(out / "report.json")["deviations"]["entries"]}
    assert status == {"test_no_such_property": "unmatched", "test_masked_fill_rejects_non_bool": "fixed",
                      "test_masked_fill_grad": "not_run"}, (status, proc.stdout[-2000:])
    assert proc.returncode == 1  # the 'fixed' entry is a strict xpass: remove the entry
    assert "known deviation fixed: remove" in proc.stdout and "matches no collected test" in proc.stdout


_CONVERSION = "test_masked_fill_errors.py::test_masked_fill_value_conversion_follows_cast_rules"


@pytest.mark.parametrize("mutant,inputs,outcome", [
    # deviates exactly on the entry's inputs: those examples are counted, every other one checked
    ("masked_fill_saturates", "masked_fill*.value:overflows", "known_deviation"),
    # deviates on inputs the entry does not name: the run fails, as with no entry at all
    ("masked_fill_rounds_into_ints", "masked_fill*.value:overflows", "failed"),
    ("masked_fill_saturates", "masked_fill*.self.dtype:bool", "failed"),
])
def test_a_narrowed_deviation_covers_only_its_inputs(tmp_path, mutant, inputs, outcome):
    """An entry with `inputs` excuses the failing examples in those reach classes and no other."""
    entries = tmp_path / "dev.toml"
    entries.write_text(f'[[deviation]]\nid = "{_CONVERSION}[cpu-masked_fill]"\nreason = "r"\nlink = "l"\n'
                       f'inputs = ["{inputs}"]\n')
    out = tmp_path / "out"
    # the ci profile's 300 examples: a mutant that deviates only for a fractional float into an int
    # tensor (one example in forty) is seen by some of them, not always by the selftest profile's 50
    proc = pytest_run(f"conformance/{_CONVERSION}[cpu-masked_fill]", "--backend", f"selftests.mutants:{mutant}",
                      "--deviations", str(entries), out=out, profile="ci")
    report = schema.load(out / "report.json")
    (rec,) = report["results"]
    assert rec["outcome"] == outcome, (rec, proc.stdout[-3000:])
    assert proc.returncode == (0 if outcome == "known_deviation" else 1)
    got = rec["deviated"]
    assert got["inputs"] == [inputs]
    # the entry still deviates exactly when some example in its inputs did, whatever else failed
    assert report["deviations"]["entries"][0]["status"] == ("matched" if got["examples"] else "not_shown")
    if outcome == "known_deviation":
        assert 0 < got["examples"] <= got["in_scope"] < rec["examples"], got
        assert report["deviations"]["entries"][0]["status"] == "matched"
        assert got["first"].startswith("Rule violated: fill values convert"), got["first"]
        md = (out / "report.md").read_text()
        assert render.md(f"only inputs in {inputs}: {got['examples']} of {got['in_scope']} such examples "
                         "deviated") in md


def test_a_narrowed_deviation_that_does_not_show_is_reported_not_shown(tmp_path):
    entries = tmp_path / "dev.toml"
    entries.write_text(f'[[deviation]]\nid = "{_CONVERSION}[cpu-masked_fill]"\nreason = "r"\nlink = "l"\n'
                       'inputs = ["masked_fill*.value:overflows"]\n')
    out = tmp_path / "out"
    proc = pytest_run(f"conformance/{_CONVERSION}[cpu-masked_fill]", "--deviations", str(entries), out=out)
    report = schema.load(out / "report.json")
    (rec,) = report["results"]
    assert proc.returncode == 0 and rec["outcome"] == "passed", proc.stdout[-3000:]
    assert rec["deviated"]["examples"] == 0 < rec["deviated"]["in_scope"]
    assert report["deviations"]["entries"][0]["status"] == "not_shown"
    assert "no example in its inputs deviated" in proc.stdout


@pytest.mark.parametrize("text,words", [
    ("[[deviation]]\nid = 'x'\n", "needs a non-empty string for ['reason', 'link']"),
    ("[[deviation]]\nid = 'a.py::b'\nreason = 'r'\nlink = 'l'\ninputs = 'x'\n", "inputs must be a list"),
    ("[[deviation]]\nid = 'a.py::b'\nreason = 'r'\nlink = 'l'\ninputs = []\n", "inputs is empty"),
    ("[[deviation]]\nid = 'no_separator'\nreason = 'r'\nlink = 'l'\n", "is not a test id"),
    ("[[deviation]]\nid = 'a.py::b'\nreason = 'r'\nlink = 'l'\nwhy = 1\n", "unknown keys ['why']"),
    ("[[deviations]]\n", "unknown tables"),
    ("id = [", "not valid TOML"),
])
def test_a_bad_deviation_file_is_one_clear_error(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(dev.DeviationFileError, match=None) as e:
        dev.load([path])
    assert words in str(e.value) and str(path) in str(e.value)


def test_the_most_specific_deviation_entry_wins():
    entries = [dev.Deviation("m.py::t", "all", "l", "f"), dev.Deviation("m.py::t[cuda", "cuda", "l", "f")]
    assert dev.matching(entries, "m.py::t[cuda-float16]").reason == "cuda"
    assert dev.matching(entries, "m.py::t[cpu-float16]").reason == "all"
    assert dev.matching(entries, "m.py::u[cpu]") is None


# --------------------------------------------------------------------------- escaping

ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "b", "br", "small",
                "span", "div", "label", "input", "table", "thead", "tbody", "tr", "th", "td", "code",
                "a", "details", "summary", "pre", "ul", "li", "script"}


class TagCollector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]

    def handle_data(self, data):
        self.text.append(data)


def hostile_report(s: str) -> dict:
    doc = copy.deepcopy(_baseline())
    r = doc["results"][0]
    r.update(id=f"test_x.py::test_y[{s}]", rule=s, params={"device": s, "p": s}, device=s, outcome="failed",
             failure={"kind": "error", "error_type": s, "message": s, "rule": s, "what": s, "inputs": [s, s],
                      "expected": s, "actual": s, "explanation": s, "snippet": s, "hypothesis_blob": None})
    doc["environment"]["torch"]["version"] = s
    doc["deviations"]["entries"] = [{"id": s, "reason": s, "link": s, "file": s, "status": "matched", "tests": [s]}]
    doc["run"]["not_run"] = [s]
    doc["counts"] = {"failed": 1, **{k: v for k, v in doc["counts"].items()}}
    doc["counts"]["passed"] -= 1
    return doc


HOSTILE = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</pre><h1>x</h1>",
                     "`` ``` | --- | <!--", "&lt;&amp;", "</details></td></tr></table><b>", "' onmouseover='x",
                     "[link](javascript:alert(1))", "<style>*{display:none}</style>"]),
).map(lambda s: s + "<i>")


@settings(max_examples=60, deadline=None)
@given(s=HOSTILE)
def test_html_report_escapes_every_string_from_a_run(s):
    """No string from a run can add markup to report.html: the page holds only the renderer's
    own tags and attributes, its single script, and the hostile text as text."""
    page = render.html(hostile_report(s))
    parser = TagCollector()
    parser.feed(page)
    assert set(parser.tags) <= ALLOWED_TAGS and "i" not in parser.tags
    assert parser.tags.count("script") == 1 and parser.tags.count("style") == 1
    assert not [a for a in parser.attrs if a.startswith("on")]
    assert s.strip() in "".join(parser.text) or not s.strip()


@settings(max_examples=60, deadline=None)
@given(s=HOSTILE)
def test_markdown_report_keeps_run_strings_inert(s):
    """report.md shows strings from a run as text or code: outside code they carry no raw HTML,
    and a code fence is longer than any backtick run inside it, so nothing closes it early."""
    text = render.markdown(hostile_report(s))
    in_fence, bar = False, ""
    for line in text.splitlines():
        if not in_fence and line.startswith("```"):
            in_fence, bar = True, line.rstrip("abcdefghijklmnopqrstuvwxyz")
            continue
        if in_fence:
            if line == bar:
                in_fence = False
            continue
        outside_code = "".join(part for i, part in enumerate(_split_code_spans(line)) if i % 2 == 0)
        assert "<i>" not in outside_code and "<script" not in outside_code, line
    assert not in_fence


def _split_code_spans(line: str) -> list[str]:
    """Alternating text / code-span parts of one Markdown line (CommonMark backtick strings)."""
    parts, i, start = [], 0, 0
    while i < len(line):
        if line[i] == "`":
            j = i
            while j < len(line) and line[j] == "`":
                j += 1
            run = line[i:j]
            end = _find_run(line, run, j)
            if end >= 0:
                parts += [line[start:i], line[j:end]]
                i = start = end + len(run)
                continue
            i = j
        else:
            i += 1
    return parts + [line[start:]]


def _find_run(line: str, run: str, pos: int) -> int:
    while (k := line.find(run, pos)) >= 0:
        if (k + len(run) >= len(line) or line[k + len(run)] != "`") and (k == 0 or line[k - 1] != "`"):
            return k
        pos = k + 1
    return -1


def test_html_report_loads_nothing_from_the_network():
    page = render.html(_baseline())
    assert "Content-Security-Policy" in page and "default-src 'none'" in html.unescape(page)
    for needle in ("http://", "https://", "//cdn", "@import", "url("):
        assert needle not in page.replace("https://pytorch.org", ""), needle


def test_render_and_validate_commands(tmp_path):
    target = tmp_path / "r.json"
    target.write_bytes(BASELINE.read_bytes())
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["render", str(target)]) == 0
        assert cli.main(["validate", str(target)]) == 0
    assert (tmp_path / "report.md").read_text().startswith("# Conformance report")
    assert os.path.getsize(tmp_path / "report.html") > 1000


# --------------------------------------------------------------------------- in a browser

CHROMIUM = next((p for p in ("chromium", "chromium-browser", "google-chrome") if shutil.which(p)), None)
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-dev-shm-usage", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here (Debian: apt-get install chromium)")
def test_html_report_renders_and_filters_in_chromium(tmp_path, monkeypatch):
    """The page renders in headless Chromium, and its script runs under its own CSP: typing
    in the filter and unticking an outcome hides exactly the rows that no longer match."""
    doc = schema.load(BASELINE)
    monkeypatch.setattr(render, "SCRIPT", render.SCRIPT + (
        "var f=document.getElementById('filter');f.value='expand';f.dispatchEvent(new Event('input'));"
        "var b=document.querySelector('input[data-outcome=known_deviation]');b.checked=false;"
        "b.dispatchEvent(new Event('change'));"))
    page = tmp_path / "report.html"
    page.write_text(render.html(doc))
    shot = tmp_path / "shot.png"
    run = subprocess.run([CHROMIUM, *HEADLESS, "--window-size=1400,1000", f"--screenshot={shot}",
                          page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000, run.stderr[-2000:]
    dom = subprocess.run([CHROMIUM, *HEADLESS, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert "Refused to" not in dom.stderr, dom.stderr[-2000:]  # a CSP violation
    visible = [r for r in _matrix_rows(dom.stdout) if "hidden" not in r["class"]]
    expected = [r for r in _matrix_rows(render.html(doc)) if "expand" in r["key"].lower()
                and r["outcomes"] != "known_deviation"]
    assert [r["key"] for r in visible] == [r["key"] for r in expected] and visible


def _matrix_rows(page: str) -> list[dict]:
    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows = []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "tr" and "data-outcomes" in a:
                self.rows.append({"key": a["data-key"], "outcomes": a["data-outcomes"],
                                  "class": a.get("class") or ""})
    p = Rows()
    p.feed(page)
    return p.rows


def test_kernel_matrix_shows_each_kernel_with_its_refusals():
    """The SDPA kernel x property table: a row per property and device, kernels in KERNELS order,
    each cell with its outcome, examples and the refusals tallied on every example."""
    def result(prop, kernel, outcome, examples, tallied):
        return {"id": f"test_a.py::{prop}[cpu-{kernel}]", "property": prop, "module": "test_a.py", "device": "cpu",
                "params": {"device": "cpu", "kernel": kernel}, "outcome": outcome, "examples": examples,
                "reach": {"claimed": [], "property_claims": [], "counts": {}, "unreached": [], "tallied": tallied}}
    doc = {"results": [result("test_p", "flash", "passed", 300, {"refused:No available kernel": 300}),
                       result("test_p", "math", "passed", 300, {}),
                       result("test_q", "math", "failed", 7, {}),
                       {**result("test_r", "x", "passed", 1, {}), "params": {"device": "cpu"}}]}
    kernels, rows = render.kernel_matrix(doc)
    assert kernels == ["math", "flash"]
    assert [name for name, _ in rows] == ["test_p (cpu)", "test_q (cpu)"]
    cells = dict(rows)
    assert render.kernel_cell(cells["test_p (cpu)"]["flash"]) == "pass 300 (300 refused: 300× No available kernel)"
    assert render.kernel_cell(cells["test_p (cpu)"]["math"]) == "pass 300"
    assert "flash" not in cells["test_q (cpu)"]


def test_thin_lists_the_claims_reached_in_few_examples(capsys):
    """`python -m reports thin` lists a claim reached by fewer than max(9, 3 %) of its examples,
    thinnest first, and leaves out one reached by many."""
    doc = {"results": [
        {"id": "t.py::a", "reach": {"checked": 300, "classified": 300, "claimed": ["x:thin", "x:thick", "x:a | x:b"],
                                    "counts": {"x:thin": 4, "x:thick": 120, "x:a": 2, "x:b": 3}}},
        {"id": "t.py::b", "reach": {"checked": 300, "classified": 100, "claimed": ["y:sampled"],
                                    "counts": {"y:sampled": 6}}}]}
    rows = cli.thin_claims(doc, 0.03, 9)
    assert [(t, c, n) for t, c, n, _ in rows] == [("t.py::a", "x:thin", 4), ("t.py::a", "x:a | x:b", 5)]
    # 6 of 100 classified examples is 6 %: a sample of the run, not a thin claim
    assert "y:sampled" not in {c for _, c, _, _ in rows}
    assert cli.main(["thin", str(BASELINE), "--most", "3"]) == 0
    assert "claims reached by fewer than" in capsys.readouterr().out
