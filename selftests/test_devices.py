"""--device: names torch knows but cannot use here skip cleanly; names it does not know stop
the run with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import devices

ROOT = Path(__file__).resolve().parent.parent


def pytest_on(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "conformance/test_masked_fill_errors.py",
                           "-q", "-p", "no:cacheprovider", "--no-report", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=None if env is None else {**os.environ, **env})


def test_an_unknown_device_is_one_error_line():
    proc = pytest_on("--device", "cpu,cdua", "--collect-only")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith("ERROR: --device 'cdua'"), lines
    assert "Traceback" not in proc.stderr


def test_an_unknown_device_is_one_error_line_under_xdist():
    """The xdist controller checks the names after its workers start (see the next test); the
    error is still one line, and the workers that fail the same check are not heard of."""
    proc = pytest_on("--device", "cpu,cdua", "-n", "2")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    out = proc.stdout + proc.stderr
    errors = [ln for ln in out.splitlines() if "ERROR" in ln or "rror:" in ln]
    assert len(errors) == 1 and errors[0].startswith("ERROR: --device 'cdua'"), out
    assert "Traceback" not in out


def test_the_xdist_controller_starts_its_workers_before_importing_torch(tmp_path):
    """Its torch import (2-3 s) runs beside the workers' instead of before them: nothing the
    conftest and the report plugin load at start-up may import torch."""
    probe = tmp_path / "probe"
    proc = pytest_on("-n", "2", "-p", "selftests.controller_probe", "-k", "rejects_value_tensors",
                     env={"CONTROLLER_PROBE": str(probe)})
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert probe.read_text() == "torch not imported"


def test_a_known_but_absent_device_is_skipped_with_its_reason():
    proc = pytest_on("--device", "mps", "-rs", "-k", "rejects_value_tensors")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "2 skipped" in proc.stdout and "device 'mps' is not available" in proc.stdout


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:1", "mps", "xpu", "meta"])
def test_device_types_torch_knows_pass_the_check(name):
    devices.check_known([name])


def test_only_cpu_is_always_available():
    assert devices.is_available("cpu")
    assert not devices.is_available("meta")
