"""Torch releases: the specifier logic of the version-aware tables, known deviations that hold
for some releases only (``not_applicable``), capability gaps, the release matrix renderer
(unknown releases, corrupt reports) and that the committed matrix is the one the committed
reports render to."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.version import Version

from conformance import attention_apis as apis
from conformance import deviations as dev
from conformance import releases
from conformance.capabilities import CapabilityGap, Missing, gap_of
from reports import compare, environment, matrix, schema

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ROOT / "reports" / "baselines"
MATRIX_MD = ROOT / "docs" / "releases.md"
MATRIX_HTML = ROOT / "docs" / "releases.html"
RENDER = "python -m reports matrix reports/baselines/torch-*.json --markdown docs/releases.md --html docs/releases.html"
# every release from the oldest supported to one the suite has never seen
RELEASES = [Version(v) for v in ("2.1.0", "2.1.2", "2.2.2", "2.3.1", "2.4.1", "2.5.0", "2.9.1", "2.13.0",
                                 "2.14.1", "2.15.0", "2.99.0")]


# --------------------------------------------------------------------------- specifiers


def test_a_local_or_pre_release_build_counts_as_its_release():
    assert releases.parse("2.5.0a0+git1234") == Version("2.5.0")
    assert releases.parse("2.13.0+cpu") == Version("2.13.0")
    assert releases.holds(">=2.5", releases.parse("2.5.0.dev20240801"))
    assert not releases.holds("<2.5", releases.parse("2.5.0rc1"))
    assert releases.holds(None, Version("1.0"))


def test_a_bad_specifier_is_one_line_naming_where_it_came_from():
    with pytest.raises(releases.BadSpecifier, match=r"^entry 3: torch = 'two point five' is not a PEP 440"):
        releases.specifier("two point five", "entry 3")
    with pytest.raises(ValueError, match="not a PEP 440 version"):
        releases.parse("nightly")


@pytest.mark.parametrize("api", sorted({p.api for p in apis.POLICIES}))
def test_every_release_has_exactly_one_policy_per_api(api):
    """The policy table partitions the releases: no release without a policy, none with two."""
    for v in RELEASES:
        held = [p for p in apis.POLICIES if p.api == api and releases.holds(p.torch, v)]
        oldest_feature = {"flex": "flex_attention"}.get(api)
        if oldest_feature and not releases.holds(apis.FEATURES[oldest_feature][0], v):
            assert not held, f"{api} has a policy for {v}, which lacks the API"
            continue
        assert len(held) == 1, f"{api} on torch {v}: {len(held)} policies ({[p.torch for p in held]})"


def test_the_sdpa_policy_changed_in_2_5():
    def at(v):
        return next(p.rows for p in apis.POLICIES if p.api == "sdpa" and releases.holds(p.torch, Version(v)))
    assert (at("2.4.1"), at("2.5.0"), at("2.13.0")) == ("nan", "zeros", "zeros")


# --------------------------------------------------------------------------- deviations


def _entries(tmp_path, body: str) -> list:
    path = tmp_path / "d.toml"
    path.write_text(textwrap.dedent(body))
    return dev.load([path])


def test_a_deviation_with_a_torch_specifier_matches_only_its_releases(tmp_path):
    entries = _entries(tmp_path, '''
        [[deviation]]
        id = "test_m.py::test_p"
        torch = "<2.5"
        reason = "old"
        link = "https://example.org"
    ''')
    assert dev.matching(entries, "test_m.py::test_p[cpu]", Version("2.4.1")) is entries[0]
    assert dev.matching(entries, "test_m.py::test_p[cpu]", Version("2.5.0")) is None


@pytest.mark.parametrize("spec, message", [('"2.5"', "not a PEP 440 specifier"), ("25", "must be a string")])
def test_a_bad_torch_specifier_in_a_deviation_file_is_one_line(tmp_path, spec, message):
    with pytest.raises(dev.DeviationFileError, match=f"entry 1: .*{message}"):
        _entries(tmp_path, f'''
            [[deviation]]
            id = "test_m.py::test_p"
            torch = {spec}
            reason = "r"
            link = "l"
        ''')


def _run(*args, tmp: Path, pythonpath: Path | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    env = None
    if pythonpath is not None:
        import os
        env = {**os.environ, "PYTHONPATH": f"{pythonpath}:{ROOT}"}
    proc = subprocess.run([sys.executable, "-m", "pytest", *args, "-q", "--no-header", "-p", "no:cacheprovider",
                           "-o", "addopts=", "--device", "cpu", "--hypothesis-profile", "selftest",
                           "--report-dir", str(tmp)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=env)
    return proc, json.loads((tmp / "report.json").read_text())


def test_a_deviation_for_other_releases_is_not_applicable_not_unmatched(tmp_path):
    """On a release the entry's specifier excludes, the test runs as a plain property (it passes)
    and the report says the entry is not for this release."""
    path = tmp_path / "old.toml"
    path.write_text(textwrap.dedent('''
        [[deviation]]
        id = "test_broadcasting.py::test_broadcast_shapes_agrees_with_the_rules"
        torch = "<2.0"
        reason = "a deviation of torch 1.x"
        link = "https://example.org"
    '''))
    proc, doc = _run("conformance/test_broadcasting.py::test_broadcast_shapes_agrees_with_the_rules",
                     "--deviations", str(path), tmp=tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-2000:]
    [entry] = doc["deviations"]["entries"]
    assert (entry["status"], entry["torch"], entry["tests"]) == ("not_applicable", "<2.0", [])
    assert {r["outcome"] for r in doc["results"]} == {"passed"}
    assert doc["expectations"]["torch"] == str(releases.torch_version())
    assert {p["api"] for p in doc["expectations"]["policies"]} >= {"sdpa", "mha-no-weights"}


# --------------------------------------------------------------------------- capability gaps

_NO_HALF_SOFTMAX = '''
import torch
from conformance.backends import derive, torch_eager
from conformance.capabilities import Missing

def softmax(x, dim):
    if x.dtype == torch.float16:
        raise RuntimeError('"softmax_lastdim_kernel_impl" not implemented for \\'Half\\'')
    return x.softmax(dim)

LACKS = derive(torch_eager, NAME="lacks-half-softmax", softmax=softmax,
               MISSING=(Missing(("softmax",), ("float16",), ("cpu",), ">=0", "a self-test"),))
CLAIMS = derive(torch_eager, NAME="claims-half-softmax", softmax=softmax, MISSING=())
'''


def test_gap_of_reads_the_dispatch_macros_refusal():
    assert gap_of(RuntimeError('"bmm" not implemented for \'Half\'')) == ("bmm", "float16")
    assert gap_of(RuntimeError('"eye" not implemented for \'BFloat16\'')) == ("eye", "bfloat16")
    assert gap_of(RuntimeError("shape '[2]' is invalid")) is None
    assert gap_of(ValueError('"bmm" not implemented for \'Half\'')) is None
    assert not issubclass(CapabilityGap, Exception)  # passes through the properties' except clauses
    assert Missing(("softmax",), ("float16",), ("cpu",), "<2.4", "").covers("softmax", "float16", "cpu:0",
                                                                          Version("2.1.2"))


@pytest.mark.parametrize("backend, outcome", [("LACKS", "capability_gap"), ("CLAIMS", "failed")])
def test_an_undeclared_missing_kernel_is_a_gap_and_a_declared_one_fails(tmp_path, backend, outcome):
    """A backend that lists its float16 softmax as missing gets a capability gap and every other
    dtype checked; one that declares float16 and refuses it fails."""
    (tmp_path / "half_backend.py").write_text(_NO_HALF_SOFTMAX)
    proc, doc = _run("conformance/test_masked_softmax.py::test_masked_softmax_rows_sum_to_one[cpu-fill_neg_inf]",
                     "--backend", f"half_backend:{backend}", tmp=tmp_path / "out", pythonpath=tmp_path)
    [r] = doc["results"]
    assert r["outcome"] == outcome, proc.stdout[-3000:]
    if outcome == "capability_gap":
        assert proc.returncode == 0
        [g] = r["gaps"]
        assert (g["op"], g["dtype"], g["device"], g["kernel"]) == ("softmax", "float16", "cpu",
                                                                   "softmax_lastdim_kernel_impl")
        assert 0 < g["examples"] < r["examples"]  # the other dtypes were checked
        assert "## Capability gaps" in (tmp_path / "out" / "report.md").read_text()
    else:
        assert "not implemented for 'Half'" in r["failure"]["message"]


# --------------------------------------------------------------------------- the matrix


def _baseline() -> dict:
    from conformance import backends

    doc = copy.deepcopy(schema.load(compare.BASELINE))
    doc.setdefault("expectations", environment.expectations(backends.load("torch")))
    return doc


def _as_release(doc: dict, version: str) -> dict:
    doc = copy.deepcopy(doc)
    doc["environment"]["torch"]["version"] = version
    return doc


def test_the_matrix_orders_releases_and_places_an_unknown_one():
    base = _baseline()
    future = _as_release(base, "2.99.0a0+gitabc")
    old = _as_release(base, "2.4.1")
    r = next(r for r in old["results"] if r["outcome"] == "passed")
    r["outcome"], r["skip_reason"] = "skipped", "torch 2.4.1 lacks torch.nn.attention.flex_attention (torch >=2.5)"
    old["expectations"]["features"]["flex_attention"] = False
    old["expectations"]["policies"] = [{**p, "rows": "nan", "torch": "<2.5"} if p["api"] == "sdpa" else p
                                       for p in old["expectations"]["policies"]]
    m = matrix.build([("future.json", future), ("base.json", base), ("old.json", old)])
    assert m.releases == ["2.4.1", "2.13.0", "2.99.0"]
    first = {c.kind: c for c in m.steps[0][2]}
    assert first["policy"].before == "nan" and first["policy"].after == "zeros" and first["policy"].snippet
    assert first["feature"].subject == "flex_attention" and first["feature"].explained
    changed = [c for c in m.steps[0][2] if c.kind == "test"]
    assert [c.subject for c in changed] == [r["id"]] and changed[0].explained
    assert m.steps[1][2] == []  # the same results under an unknown release: nothing changed
    text = matrix.markdown(m)
    assert "### torch 2.13.0 → 2.99.0: 0 changes" in text and "2.99.0" in matrix.html(m)


def test_a_change_no_expectation_explains_is_a_finding():
    base = _baseline()
    newer = _as_release(base, "2.14.0")
    r = next(r for r in newer["results"] if r["outcome"] == "passed")
    r["outcome"] = "failed"
    r["failure"] = {"kind": "violation", "message": "m", "what": "rows do not sum to 1", "inputs": ["x: [2, 3]"],
                    "snippet": "import torch\nprint(1)", "error_type": "ConformanceFailure"}
    m = matrix.build([("a", base), ("b", newer)])
    [c] = m.steps[0][2]
    assert c.explained is None and c.example == ["x: [2, 3]"] and c.snippet
    assert "**finding**" in matrix.markdown(m)


def _matrix_cli(*paths) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reports", "matrix", *map(str, paths)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("what", ["corrupt", "not a version", "same release twice"])
def test_the_matrix_refuses_unusable_reports_with_one_line(tmp_path, what):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(_baseline()))
    other = tmp_path / "other.json"
    if what == "corrupt":
        other.write_text('{"schema": "mask-broadcast-conformance/report", "results": [')
    elif what == "not a version":
        other.write_text(json.dumps(_as_release(_baseline(), "my-build")))
    else:
        other.write_text(json.dumps(_baseline()))
    proc = _matrix_cli(base, other)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("python -m reports matrix: ")
    assert "Traceback" not in proc.stderr


def test_the_committed_matrix_is_what_the_committed_reports_render_to():
    """docs/releases.md and .html are generated: re-rendered from reports/baselines, byte for byte."""
    named = [(str(p.relative_to(ROOT)), schema.load(p)) for p in sorted(BASELINES.glob("torch-*.json"))]
    m = matrix.build(named)
    assert len(m.releases) >= 4
    assert MATRIX_MD.read_text(encoding="utf-8") == matrix.markdown(m), f"stale: run `{RENDER}`"
    assert MATRIX_HTML.read_text(encoding="utf-8") == matrix.html(m), f"stale: run `{RENDER}`"


def test_compare_across_releases_lists_explained_changes_apart_from_regressions():
    base = _baseline()
    old = _as_release(base, "2.4.1")
    skipped, gapped, broken = [r for r in old["results"] if r["outcome"] == "passed"][:3]
    skipped["outcome"], skipped["skip_reason"] = "skipped", "torch 2.4.1 lacks torch.nn.attention.flex_attention"
    gapped["outcome"], gapped["gaps"] = "capability_gap", [
        {"op": "softmax", "dtype": "float16", "device": "cpu", "message": "m", "examples": 3}]
    broken["outcome"], broken["failure"] = "failed", {"kind": "violation", "message": "wrong", "inputs": [],
                                                      "snippet": None, "error_type": "ConformanceFailure"}
    diff = compare.compare(base, old)
    assert [c.id for c in diff.regressions] == [broken["id"]]
    assert {skipped["id"], gapped["id"]} <= {c.id for c in diff.explained}
    assert any("different torch releases" in w for w in diff.warnings)


def test_the_matrix_runner_keeps_reports_in_into_and_the_matrix_beside_the_runs(tmp_path, monkeypatch):
    """`tox -e matrix -- --into DIR RELEASE...`: each release's report is kept in DIR as
    torch-RELEASE-cpu.json once all have run; the rendered matrix goes to reports/out/releases,
    not into DIR; a release that gives no report is named and the exit status is 2."""
    from reports import releases as runner

    made = {}

    def fake_run(release, extra):
        if release == "9.9.9":
            return None
        path = tmp_path / "runs" / release / "report.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_as_release(_baseline(), release)))
        made[release] = path
        return path

    monkeypatch.setattr(runner, "run_release", fake_run)
    monkeypatch.setattr(runner, "DEFAULT_INTO", tmp_path / "out")
    into = tmp_path / "baselines"
    assert runner.main(["--into", str(into), "2.4.1", "2.13.0"]) == 0
    assert sorted(p.name for p in into.iterdir()) == ["torch-2.13.0-cpu.json", "torch-2.4.1-cpu.json"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["matrix.html", "matrix.md"]
    assert runner.main(["--into", str(tmp_path / "b2"), "2.5.0", "9.9.9"]) == 2
    assert [p.name for p in (tmp_path / "b2").iterdir()] == ["torch-2.5.0-cpu.json"]


def test_a_failure_under_an_entry_of_other_releases_is_not_excused():
    """known_deviation -> passed under an entry that is not_applicable on one release is
    explained; known_deviation -> failed is not: the test broke in another way."""
    base = _baseline()
    entry = next(e for e in base["deviations"]["entries"] if e["status"] == "matched")
    test = next(r for r in base["results"] if r["id"].startswith(entry["id"]))
    for outcome, explained in (("passed", True), ("failed", False)):
        newer = _as_release(base, "2.99.0")
        next(e for e in newer["deviations"]["entries"] if e["id"] == entry["id"])["status"] = "not_applicable"
        r = next(r for r in newer["results"] if r["id"] == test["id"])
        r["outcome"] = outcome
        assert (compare.release_explanation(test, r, base, newer) is not None) is explained
        change = next(c for c in matrix.build([("a", base), ("b", newer)]).steps[0][2] if c.subject == test["id"])
        assert (change.explained is not None) is explained
