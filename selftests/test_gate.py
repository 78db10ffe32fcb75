"""The gate vouches only for what it checked: each way a run, a compare, a replay or a merge could
go green having checked nothing, or say something untrue, tried against a toy backend or a
doctored report.  Each test fails without the behaviour it names."""

from __future__ import annotations

import copy
import math
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance import errors, rules
from reports import compare, schema
from reports.compare import BASELINE

ROOT = Path(__file__).resolve().parent.parent
MASKED_FILL = "conformance/test_masked_fill.py::test_masked_fill_matches_oracle"

# toy backends, each a module of its own written into a temporary folder; none imports the suite,
# so a failure's snippet runs as printed with that folder on the path
TOYS = {
    "negating": '''
        """masked_fill writes the value negated: one injected bug."""
        NAME = "negating"
        def masked_fill(x, mask, value):
            return x.masked_fill(mask, -value if isinstance(value, float) and value else value)
        def masked_fill_(x, mask, value):
            return x.masked_fill_(mask, value)
        ''',
    "first_call_wrong": '''
        """masked_fill is wrong the first time it sees an input, right on every repeat."""
        NAME = "first_call_wrong"
        DEVIATIONS = ()
        _seen = set()
        def masked_fill(x, mask, value):
            out = x.masked_fill(mask, value)
            key = (tuple(x.shape), str(x.dtype), tuple(x.flatten().tolist()), tuple(mask.flatten().tolist()), repr(value))
            if key not in _seen and out.numel():
                _seen.add(key)
                out = out.clone()
                out.view(-1)[0] = 7
            return out
        def masked_fill_(x, mask, value):
            return x.masked_fill_(mask, value)
        ''',
    "refusing": '''
        """add refuses what does not broadcast as a kernel would, not with the broadcast error."""
        import torch
        NAME = "refusing"
        def add(a, b):
            try:
                torch.broadcast_shapes(a.shape, b.shape)
            except RuntimeError:
                raise RuntimeError("No available kernel.  Aborting execution.") from None
            return torch.add(a, b)
        ''',
    "tril_only": '''
        import torch
        NAME = "tril_only"
        def tril(x, diagonal=0):
            return torch.tril(x, diagonal)
        ''',
}


@pytest.fixture(scope="module")
def toys(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toys")
    for name, text in TOYS.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(text))
    return folder


def run(*args: str, out: Path | None = None, toys: Path | None = None, profile: str = "selftest",
        timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "--hypothesis-profile", profile, *args, "-q", "--no-header",
           "-p", "no:cacheprovider", "-o", "addopts=--tb=short"]
    cmd += ["--report-dir", str(out)] if out else ["--no-report"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(toys or ""), str(ROOT)]))}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def reports_cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reports", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, **kw)


def error_lines(proc) -> list[str]:
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln or "Traceback" in ln
            or "INTERNALERROR" in ln]


# --------------------------------------------------------------------------- a run is green only when it checked


def test_a_run_that_selects_nothing_is_not_green():
    proc = run("conformance", "-k", "nosuchthing")
    assert proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, proc.stdout[-2000:]
    assert error_lines(proc) == ["ERROR: conformance: no example was checked: no test was selected "
                                 "(check the paths, -k and -m expressions, and the shard)"], proc.stdout[-2000:]


def test_a_run_whose_every_test_skips_for_the_backend_is_a_usage_error(toys):
    """A backend that implements none of the selected tests' ops: exit 4, with the reason."""
    proc = run("conformance/test_masked_fill.py", "--backend", "tril_only", toys=toys)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:]
    (line,) = error_lines(proc)
    assert "no example was checked: all" in line and "does not implement masked_fill" in line, line


def test_a_backend_without_any_op_is_one_line():
    proc = run("conformance", "--backend", "os")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert error_lines(proc) == [next(ln for ln in proc.stdout.splitlines() + proc.stderr.splitlines()
                                      if ln.startswith("ERROR: --backend os: provides none of the protocol's ops"))]


@pytest.mark.parametrize("args,words", [
    (("--hypothesis-profile", "nope"), "--hypothesis-profile nope: no such Hypothesis profile"),
    (("--num-shards", "2", "--shard-id", "5"), "--shard-id 5: shard ids run from 0 to --num-shards - 1"),
    (("--num-shards", "0", "--shard-id", "0"), "--num-shards 0: the number of shards must be at least 1"),
    (("--device", "cpu,,cuda"), "--device 'cpu,,cuda': empty name"),
    (("--backend", "pkg..module"), "--backend pkg..module: not a backend name"),
    (("--backend", ":object"), "--backend :object: not a backend name"),
])
def test_bad_options_are_one_line_and_exit_4(args, words):
    proc = run("conformance/test_masked_fill_errors.py", *args)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("ERROR: " + words), lines


def test_an_unknown_profile_in_the_environment_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "pytest", "conformance/test_masked_fill_errors.py", "-q",
                           "--no-report", "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HYPOTHESIS_PROFILE": "nope"}, timeout=300)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert error_lines(proc) == ["ERROR: HYPOTHESIS_PROFILE nope: no such Hypothesis profile; the suite's profiles "
                                 "are ci, dev, thorough, compile, graph, selftest, zoo, reseed (conformance/profiles.py)"]


# --------------------------------------------------------------------------- expected errors by kind


def test_a_kernel_refusal_is_not_the_validation_error_the_rule_expects():
    refusal = RuntimeError("No available kernel.  Aborting execution.")
    assert errors.matching("broadcast", refusal) is None
    assert errors.matching("gqa_heads", refusal) is None  # a refusal for some other reason
    why = ["The number of heads in key/value must divide number of heads in query.Got input Key sizes(): 2"]
    assert errors.matching("gqa_heads", refusal, why) is not None  # the same check, said by the dispatcher
    assert errors.matching("gqa_heads", RuntimeError(
        "Number of heads in key and value must divide the number of heads in query")) is not None


def test_a_backend_that_refuses_instead_of_raising_the_broadcast_error_fails(toys, tmp_path):
    proc = run("conformance/test_broadcasting.py::test_binary_ops_broadcast_by_the_rules", "-k", "add",
               "--backend", "refusing", out=tmp_path, toys=toys)
    assert proc.returncode == 1, proc.stdout[-3000:]
    (record,) = schema.load(tmp_path / "report.json")["results"]
    failure = record["failure"]
    assert failure["what"] == "the backend raised another kind of error than the rule expects", failure
    assert "must match the size of tensor b" in failure["expected"] and "No available kernel" in failure["actual"]


# --------------------------------------------------------------------------- failures that teach


def test_a_failure_prints_under_120_lines(toys):
    """The suite's message comes first and whole; Hypothesis's account of the draws is bounded."""
    proc = run(MASKED_FILL, "--backend", "negating", toys=toys, profile="ci")
    assert proc.returncode == 1
    head = proc.stdout.index("Rule violated")
    tail = proc.stdout.index("short test summary")
    section = proc.stdout[proc.stdout.rindex("\n__", 0, head):tail].splitlines()
    assert len(section) < 120, "\n".join(section)
    assert section.index(next(ln for ln in section if "Reproduce" in ln)) < 40


def test_the_snippet_reproduces_the_backends_bug_when_run_as_printed(toys, tmp_path):
    """The failure's snippet, taken from the report and run in a fresh interpreter exactly as
    printed (torch, numpy and the backend under test), prints the backend's wrong value."""
    proc = run(MASKED_FILL, "--backend", "negating", out=tmp_path, toys=toys)
    assert proc.returncode == 1, proc.stdout[-2000:]
    (record,) = schema.load(tmp_path / "report.json")["results"]
    failure = record["failure"]
    snippet = failure["snippet"]
    assert "import conformance" not in snippet and "from conformance" not in snippet
    for page in ("report.md", "report.html"):  # the headers name the backend and every device considered
        text = (tmp_path / page).read_text()
        assert "backend negating" in text and "devices considered: cpu: used" in text, page
    script = tmp_path / "repro.py"
    script.write_text(snippet)
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(toys)})
    assert out.returncode == 0, out.stderr
    # each printed tensor whole, up to the next section: a large one spans several lines
    got = re.search(r"backend under test, masked_fill: (.*?)(?:\n---|\Z)", out.stdout, re.S).group(1)
    eager = re.search(r"--- torch eager \(the reference\)\n(.*?)(?:\n---|\Z)", out.stdout, re.S).group(1)
    expected, wrong = (float(v.rstrip(",")) for v in
                       re.search(r"expected (\S+), got (\S+)", failure["what"]).groups())

    def shows(printed: str, value: float) -> bool:  # torch prints 4-5 significant digits, and -0.
        numbers = [float(n) for n in re.findall(r"-?\d+\.?\d*(?:e[+-]?\d+)?", printed.split("(", 1)[-1])]
        if value == 0:  # the minimal example may be a sign of zero: -0.0 against 0.0
            return any(n == 0 and math.copysign(1, n) == math.copysign(1, value) for n in numbers)
        return any(abs(n - value) <= 1e-3 * abs(value) for n in numbers)

    assert not rules.same_value(expected, wrong), failure["what"]
    # the wrong value may also sit, rightly, elsewhere in a large tensor: the two prints differ,
    # the backend's holds the wrong value and eager's the expected one
    assert got.strip() != eager.strip() and shows(got, wrong) and shows(eager, expected), (
        out.stdout, failure["what"])


# --------------------------------------------------------------------------- nondeterminism


def _deviation_file(tmp_path: Path) -> Path:
    path = tmp_path / "toy.toml"
    path.write_text('[[deviation]]\nid = "test_masked_fill.py::test_masked_fill_matches_oracle"\n'
                    'reason = "the toy answers differently the second time"\nlink = "selftests/test_gate.py"\n')
    return path


def test_a_backend_that_answers_differently_gets_one_stable_outcome(toys, tmp_path):
    """The same suite commit on a nondeterministic backend: the same outcome on every run (serial
    or under xdist), reported as nondeterministic, and matched by a deviation entry like any failure."""
    outcomes = []
    for i, extra in enumerate([(), (), ("-n", "2")]):
        out = tmp_path / f"run{i}"
        run(MASKED_FILL, "--backend", "first_call_wrong", *extra, out=out, toys=toys)
        (record,) = schema.load(out / "report.json")["results"]
        outcomes.append((record["outcome"], record["failure"]["kind"]))
    assert outcomes == [("failed", "nondeterministic")] * 3, outcomes
    for i in range(2):
        out = tmp_path / f"excused{i}"
        proc = run(MASKED_FILL, "--backend", "first_call_wrong", "--deviations", str(_deviation_file(tmp_path)),
                   out=out, toys=toys)
        assert proc.returncode == 0, proc.stdout[-2000:]
        (record,) = schema.load(out / "report.json")["results"]
        assert record["outcome"] == "known_deviation" and record["failure"]["kind"] == "nondeterministic"


# --------------------------------------------------------------------------- compare refuses lost coverage


def _doctored(tmp_path: Path, name: str, change) -> Path:
    doc = copy.deepcopy(schema.load(BASELINE))
    change(doc)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def _all_skipped(doc):
    for r in doc["results"]:
        r.update(outcome="skipped", skip_reason="device 'cpu' is not available", examples=None, failure=None)
    doc["counts"] = {"skipped": len(doc["results"])}


def _subset(doc):
    doc["results"] = doc["results"][::2]


def _zero_examples(doc):
    r = next(r for r in doc["results"] if r["outcome"] == "passed" and r["examples"])
    r["examples"] = 0


def _other_backend(doc):
    doc["run"]["backend"] = doc["run"]["backend_spec"] = "mybackend"
    if "selection" in doc["run"]:  # what compare reads, in reports that record it
        doc["run"]["selection"]["backend"] = doc["run"]["selection"]["backend_spec"] = "mybackend"


def _dropped_by_subset() -> int:
    """How many of the baseline's tests that checked examples `_subset` leaves out."""
    results = schema.load(BASELINE)["results"]
    kept = {r["id"] for r in results[::2]}
    return sum(1 for r in results if r["id"] not in kept and r["outcome"] in ("passed", "known_deviation"))


@pytest.mark.parametrize("change,words", [
    (_all_skipped, "REGRESSION: the candidate checked no example at all"),
    (_subset, "{dropped} tests checked in the baseline were not checked in the candidate"),
    (_zero_examples, "1 tests checked in the baseline were not checked in the candidate"),
])
def test_compare_refuses_lost_coverage(tmp_path, change, words):
    cand = _doctored(tmp_path, change.__name__, change)
    proc = reports_cli("compare", BASELINE, cand)
    words = words.format(dropped=_dropped_by_subset())
    assert proc.returncode == 1 and words in proc.stdout, proc.stdout[-3000:]
    _, examples = compare.checked(schema.load(BASELINE))
    assert f"examples checked: baseline {examples:,}, candidate" in proc.stdout


def test_compare_accepts_an_intended_subset_and_says_so(tmp_path):
    cand = _doctored(tmp_path, "subset", _subset)
    proc = reports_cli("compare", BASELINE, cand, "--allow-subset")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (f"--allow-subset: {_dropped_by_subset()} baseline tests the candidate did not select are accepted"
            in proc.stdout)


def test_compare_of_a_run_that_selected_nothing_fails(tmp_path):
    run("conformance", "-k", "nosuchthing", out=tmp_path, profile="ci")
    for extra in ((), ("--allow-subset",)):
        proc = reports_cli("compare", BASELINE, tmp_path / "report.json", *extra)
        assert proc.returncode == 1 and "the candidate checked no example at all" in proc.stdout, proc.stdout[-2000:]


def test_compare_refuses_another_backend_unless_told(tmp_path):
    cand = _doctored(tmp_path, "other", _other_backend)
    proc = reports_cli("compare", BASELINE, cand)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "backend: torch -> mybackend" in proc.stderr and "--across" in proc.stderr
    proc = reports_cli("compare", BASELINE, cand, "--across")
    assert proc.returncode == 0 and proc.stdout.splitlines()[1] == "selection changed: backend: torch -> mybackend"


# --------------------------------------------------------------------------- replay: three outcomes


def test_replay_that_cannot_run_the_test_says_so(toys, tmp_path):
    """A replay whose backend cannot be imported never executed the test: exit 3, not 'reproduced'."""
    run(MASKED_FILL, "--backend", "negating", out=tmp_path, toys=toys)
    report = tmp_path / "report.json"
    gone = reports_cli("replay", report, "test_masked_fill.py::test_masked_fill_matches_oracle")  # toys not on the path
    assert gone.returncode == 3, gone.stdout[-2000:]
    assert gone.stdout.strip().splitlines()[-1].startswith("replay: COULD NOT RUN the test"), gone.stdout[-2000:]
    back = reports_cli("replay", report, "test_masked_fill.py::test_masked_fill_matches_oracle",
                       env={**os.environ, "PYTHONPATH": os.pathsep.join([str(toys), str(ROOT)])})
    assert back.returncode == 0 and "replay: reproduced" in back.stdout, back.stdout[-2000:]


# --------------------------------------------------------------------------- shards add up to a whole


SHARDED = ("conformance/test_masked_fill_errors.py", "conformance/test_broadcasting.py")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    procs = [subprocess.Popen([sys.executable, "-m", "pytest", *SHARDED, "-q", "-p", "no:cacheprovider",
                               "--hypothesis-profile", "selftest", "--report-dir", str(tmp / name), *extra],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, extra in [("whole", ())] + [(f"s{i}", ("--num-shards", "4", "--shard-id", str(i)))
                                                   for i in range(4)]]
    for p in procs:
        p.wait(timeout=600)
    return tmp


def test_four_shards_merge_into_a_report_compare_passes(shards):
    merged = shards / "merged.json"
    proc = reports_cli("merge", *(shards / f"s{i}" / "report.json" for i in range(4)), "-o", merged)
    assert proc.returncode == 0, proc.stderr
    whole, doc = schema.load(shards / "whole" / "report.json"), schema.load(merged)
    assert sorted(r["id"] for r in doc["results"]) == sorted(r["id"] for r in whole["results"])
    assert doc["run"]["complete"] and doc["run"]["selection"]["shards"] == [0, 1, 2, 3]
    proc = reports_cli("compare", shards / "whole" / "report.json", merged)
    assert proc.returncode == 0, proc.stdout[-3000:]
    alone = reports_cli("compare", shards / "whole" / "report.json", shards / "s0" / "report.json")
    assert alone.returncode == 1 and "were not checked in the candidate" in alone.stdout  # one shard is not the whole


@pytest.mark.parametrize("which,words", [
    ((0, 1, 3), "the shards do not cover the run: shard 2 of 4 missing"),
    ((0, 1, 1, 2, 3), "are both shard 1 of 4: shards overlap"),
    (("whole", 0, 1, 2, 3), "not a shard's report"),
])
def test_merge_refuses_shards_that_are_not_a_whole(shards, tmp_path, which, words):
    paths = [shards / (w if isinstance(w, str) else f"s{w}") / "report.json" for w in which]
    proc = reports_cli("merge", *paths, "-o", tmp_path / "m.json")
    assert proc.returncode == 2 and words in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert not (tmp_path / "m.json").exists()


def test_merge_refuses_shards_of_different_runs(shards, tmp_path):
    doc = schema.load(shards / "s3" / "report.json")
    doc["environment"]["hypothesis"]["profile"] = "ci"
    other = tmp_path / "s3.json"
    other.write_text(json.dumps(doc))
    proc = reports_cli("merge", *(shards / f"s{i}" / "report.json" for i in range(3)), other, "-o", tmp_path / "m.json")
    assert proc.returncode == 2 and "Hypothesis profile differ" in proc.stderr, proc.stderr
