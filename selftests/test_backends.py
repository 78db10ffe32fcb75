"""Backends: docs/backends.md's out-of-tree example runs the whole suite, --backend errors are one
line, NumPy's missing ops are skipped by name, and the differential check catches a backend
that disagrees with torch eager (a property of its own, so it must be able to fail too)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conformance import backends
from conformance.backends import differential, torch_eager
from conformance.failures import Case, ConformanceFailure
from selftests.mutants import MUTANTS

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, tmp: Path, pythonpath: Path | None = None, timeout: float = 900):
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = f"{pythonpath}{os.pathsep}{env.get('PYTHONPATH', '')}"
    cmd = [sys.executable, "-m", "pytest", *args, "-q", "--no-header", "-p", "no:cacheprovider",
           "-o", "addopts=", "--hypothesis-profile", "selftest", "--report-dir", str(tmp / "out")]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def readme_backend() -> str:
    """The example backend module, exactly as docs/backends.md shows it."""
    text = (ROOT / "docs" / "backends.md").read_text()
    blocks = re.findall(r"```python\n(# my_backend\.py.*?)```", text, re.S)
    assert len(blocks) == 1, "docs/backends.md must hold exactly one '# my_backend.py' example"
    return blocks[0]


def test_the_readme_backend_runs_the_whole_suite(tmp_path):
    """Written from docs/backends.md alone, an out-of-tree backend module runs every property."""
    (tmp_path / "my_backend.py").write_text(readme_backend())
    proc = run("conformance", "-n", "2", "--backend", "my_backend", "--device", "cpu", tmp=tmp_path,
               pythonpath=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["run"]["backend"] == "my-backend"
    outcomes = {r["outcome"] for r in report["results"]}
    assert outcomes <= {"passed", "known_deviation"}, outcomes
    assert len(report["results"]) == report["run"]["planned"] > 80


@pytest.mark.parametrize("spec, says", [
    ("no_such_module_anywhere", "cannot import 'no_such_module_anywhere'"),
    ("conformance.backends.torch_eager:NOPE", "has no attribute 'NOPE'"),
    ("bad_backend:DTYPES_WRONG", "DTYPES names unknown dtypes ['complex32']"),
    ("bad_backend:OP_NOT_CALLABLE", "masked_fill is int, not a function"),
    ("bad_backend:RESET_NOT_CALLABLE", "reset is int, not a function"),
])
def test_an_unusable_backend_is_one_usage_error_line(tmp_path, spec, says):
    (tmp_path / "bad_backend.py").write_text(
        "import types\n"
        "DTYPES_WRONG = types.SimpleNamespace(DTYPES=('complex32',))\n"
        "OP_NOT_CALLABLE = types.SimpleNamespace(masked_fill=3)\n"
        "RESET_NOT_CALLABLE = types.SimpleNamespace(reset=3, tril=lambda x, diagonal=0: x)\n")
    proc = run("conformance/test_masked_fill.py", "--backend", spec, tmp=tmp_path, pythonpath=tmp_path)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and says in errors[0] and "Traceback" not in proc.stderr, proc.stderr


def test_reset_comes_before_every_test(tmp_path):
    """A backend's reset() runs before each test, so no test sees state an earlier one left
    (torch-compile's compiled graphs)."""
    log = tmp_path / "resets"
    (tmp_path / "counting_backend.py").write_text(
        "from conformance.backends import derive, torch_eager\n"
        f"def reset():\n    open({str(log)!r}, 'a').write('reset\\n')\n"
        "BACKEND = derive(torch_eager, NAME='counting', reset=reset)\n")
    proc = run("conformance/test_masked_fill_errors.py", "--backend", "counting_backend:BACKEND",
               tmp=tmp_path, pythonpath=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    tests = json.loads((tmp_path / "out" / "report.json").read_text())["results"]
    assert len(tests) > 1 and log.read_text().splitlines() == ["reset"] * len(tests)


def test_numpy_skips_what_it_lacks_by_name(tmp_path):
    proc = run("conformance/test_broadcasting.py", "conformance/test_masked_fill_errors.py", "--backend",
               "numpy", "-rs", tmp=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "backend 'numpy' does not implement expand" in proc.stdout
    assert "does not use torch tensors" in proc.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    passed = {r["property"] for r in report["results"] if r["outcome"] == "passed"}
    assert {"test_broadcast_shapes_agrees_with_the_rules", "test_broadcast_to_agrees_with_the_one_way_rule",
            "test_inplace_ops_never_broadcast_self", "test_broadcast_tensors_stretches_by_views"} <= passed


# --------------------------------------------------------------------------- the differential


def checked(mutant: str):
    faulty = backends.Backend(MUTANTS[mutant].backend, f"selftests.mutants:{mutant}")
    return differential.Differential(faulty, backends.load("torch"), "cpu")


def failure_of(fn) -> str:
    Case("differential self-test", "cpu")
    with pytest.raises(ConformanceFailure) as info:
        fn()
    return str(info.value)


def test_differential_catches_different_values():
    ops = checked("masked_fill_inverted")
    x, mask = torch.zeros(2, 3), torch.tensor([True, False, True])
    message = failure_of(lambda: ops.masked_fill(x, mask, 1.0))
    assert "differential: masked_fill" in message and "element 0" in message


def test_differential_catches_raising_on_one_side_only():
    ops = checked("masked_fill_accepts_non_bool_masks")
    message = failure_of(lambda: ops.masked_fill_(torch.zeros(3), torch.tensor([1, 0, 1], dtype=torch.uint8), 2.0))
    assert "one raised and the other did not" in message and "RuntimeError" in message


def test_differential_catches_a_wrong_in_place_write():
    ops = checked("masked_fill__ignores_offset")
    view = torch.arange(6.0)[2:5]
    message = failure_of(lambda: ops.masked_fill_(view, torch.tensor([False, False, True]), -1.0))
    assert "differential: masked_fill_ on cpu" in message and "element 0 (row-major): -1.0 vs 2.0" in message


def test_differential_agrees_with_itself_on_every_layout_and_error():
    ops = differential.Differential(backends.load("torch"), backends.load("torch"), "cpu")
    Case("differential self-test", "cpu")
    expanded = torch.zeros(3)[None].expand(2, 3)
    assert ops.broadcast_to(expanded, (4, 2, 3)).shape == (4, 2, 3)
    leaf = torch.ones(2, 3, requires_grad=True)
    ops.masked_fill_(leaf * 1, torch.tensor([True, False, True]), 0.0)
    with pytest.raises(RuntimeError):
        ops.add_(torch.zeros(3), torch.zeros(2, 3))  # both refuse: the error is the op's own
    with pytest.raises(RuntimeError):
        ops.masked_fill_(leaf, torch.tensor([True, False, True]), 0.0)
    assert ops.broadcast_shapes((2, 1), (3,)) == torch.Size([2, 3])


def test_differential_runs_inside_the_properties(tmp_path):
    """--differential on: the faulty op is named by the differential before any property check."""
    proc = run("conformance/test_masked_fill.py::test_masked_fill_matches_oracle", "--backend",
               "selftests.mutants:masked_fill_inverted", "--differential", "on", "--device", "cpu", tmp=tmp_path)
    assert proc.returncode == 1
    assert "differential: masked_fill on cpu (mutant:masked_fill_inverted) and on cpu (torch) disagree" \
        in proc.stdout, proc.stdout[-3000:]


def test_mutants_are_backends_of_the_protocol():
    for m in MUTANTS.values():
        backend = backends.Backend(m.backend, m.name)
        changed = [op for op in backends.OPS if getattr(m.backend, op) is not getattr(torch_eager, op)]
        assert changed, f"mutant {m.name} changes no op"
        assert backend.name == f"mutant:{m.name}" and backend.deviations == ("torch",)
