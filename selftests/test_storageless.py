"""The storage-less code paths, guarded in CI without torch_xla: torch's lazy tensor device (the
tensor core torch_xla is built on) stands in for a device whose tensors have no storage.  Its
tensors behave as XLA's do where the suite cares (``data_ptr()`` is 0, storage access raises,
a transpose reports contiguous strides), so each test below fails if the suite assumed storage
again: a crash on ``untyped_storage``, a storage check counted as passed, a value check
skipped along with the storage checks, or a layout claim judged as unreached.

torch._lazy is a private module; it is used here only, through `conformance.devices`' probe
(one place), because it is the one storage-less device every CPU wheel of torch carries: a
tensor subclass of our own would show only what we thought to make it show.
"""

from __future__ import annotations

import json

import pytest

from conformance import devices
from selftests.test_gate import error_lines, run

pytestmark = pytest.mark.skipif(not devices.is_available("lazy"), reason=devices.probe("lazy").why)

MF = "conformance/test_masked_fill.py::"
STORAGE_ONLY = (f"{MF}test_masked_fill_inplace_through_view_reaches_base",
                f"{MF}test_masked_fill_inplace_refuses_expanded_self",
                "conformance/test_broadcasting.py::test_broadcast_tensors_stretches_by_views")
MIXED = (f"{MF}test_masked_fill_inplace_returns_self", f"{MF}test_masked_fill_inplace_advances_version_counter",
         f"{MF}test_masked_fill_inplace_requires_one_way_broadcast",
         "conformance/test_broadcasting.py::test_expand_agrees_with_the_one_way_rule")


def _report(tmp_path, *tests, backend=None, extra=()):
    out = tmp_path / "out"
    proc = run(*tests, "--device", "lazy", *(("--backend", backend) if backend else ()), *extra,
               out=out, timeout=900)
    return proc, json.loads((out / "report.json").read_text())


def _by_property(doc):
    return {r["property"]: r for r in doc["results"]}


@pytest.fixture(scope="module")
def lazy_run(tmp_path_factory):
    return _report(tmp_path_factory.mktemp("lazy"), *STORAGE_ONLY, *MIXED)


def test_a_storage_less_device_runs_the_value_checks_and_counts_storage_checks_apart(lazy_run):
    proc, doc = lazy_run
    assert proc.returncode == 0, proc.stdout[-3000:] + "\n".join(error_lines(proc))
    got = _by_property(doc)
    for test in STORAGE_ONLY:
        r = got[test.rsplit("::", 1)[1]]
        assert r["outcome"] == "not_applicable" and r["skip_reason"].startswith("not applicable on lazy")
    for test in MIXED:
        r = got[test.rsplit("::", 1)[1]]
        assert r["outcome"] == "passed" and r["examples"] > 0, r  # its value checks ran
    skipped = {c["check"] for c in got["test_masked_fill_inplace_returns_self"]["not_applicable"]}
    assert skipped == {"self keeps its storage (data_ptr) and strides"}
    assert "not_applicable" not in got["test_masked_fill_inplace_advances_version_counter"]  # lazy keeps one
    assert doc["counts"]["not_applicable"] == len(STORAGE_ONLY)
    assert "not applicable" in proc.stdout.splitlines()[-1] or "not applicable" in proc.stdout


def test_layout_claims_a_storage_less_device_cannot_receive_are_listed_with_the_reason(lazy_run):
    _, doc = lazy_run
    r = _by_property(doc)["test_expand_agrees_with_the_one_way_rule"]
    dropped, = r["reach"]["not_receivable"]
    assert "expand.x.layout:permuted" in dropped["claims"] and "moved with .to()" in dropped["why"]
    assert "expand.x.layout:contiguous" in r["reach"]["claimed"]
    assert not any(c in r["reach"]["claimed"] for c in dropped["claims"])
    assert not any(".layout:" in c for c in r["reach"]["unreached"]), r["reach"]["unreached"]


def test_the_report_renders_what_did_not_apply(lazy_run, tmp_path):
    from reports import render

    _, doc = lazy_run
    text = render.markdown(doc)
    assert "## Not applicable on this device" in text
    assert "views writing through to their base" in text and "self keeps its storage" in text


@pytest.mark.parametrize(("mutant", "test"), [
    ("masked_fill__returns_copy", "test_masked_fill_inplace_returns_self"),
    ("masked_fill__skips_version_bump", "test_masked_fill_inplace_advances_version_counter"),
    ("masked_fill_writes_into_self", "test_masked_fill_leaves_input_untouched"),
])
def test_value_checks_still_catch_bugs_on_a_storage_less_device(tmp_path, mutant, test):
    """The storage checks are skipped there, the value checks are not: each mutant is caught by
    what remains (leaves_input_untouched by self's values, not its storage bytes)."""
    proc, doc = _report(tmp_path, MF + test, backend=f"selftests.mutants:{mutant}", extra=("--differential", "off"))
    r = _by_property(doc)[test]
    assert proc.returncode == 1 and r["outcome"] == "failed", (r["outcome"], proc.stdout[-2000:])
    assert r["failure"]["kind"] == "violation"


def test_a_failure_on_a_storage_less_device_reproduces_as_printed(tmp_path):
    """The snippet starts the device and moves each input built in its layout on CPU."""
    import subprocess
    import sys

    proc, doc = _report(tmp_path, MF + "test_masked_fill_leaves_input_untouched",
                        backend="selftests.mutants:masked_fill_writes_into_self", extra=("--differential", "off"))
    snippet = _by_property(doc)["test_masked_fill_leaves_input_untouched"]["failure"]["snippet"]
    assert "torch._lazy.ts_backend.init()" in snippet and "device='lazy'" in snippet or ".to('lazy')" in snippet
    script = tmp_path / "repro.py"
    script.write_text(snippet)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
