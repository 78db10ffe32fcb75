"""--device: a name torch does not know, or a named device that is not available here, stops
the run with one line; auto-discovery skips what it cannot use and says why."""

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


@pytest.mark.parametrize("name,why", [("mps", "torch 2"), ("cuda", "CPU-only build"),
                                       ("xla", "torch_xla is not installed")])
def test_a_named_but_absent_device_stops_the_run_with_one_line(name, why):
    """--device names what must be checked: a device that is not there is an error (exit 4),
    never a green run that checked nothing on it."""
    proc = pytest_on("--device", f"cpu,{name}", "-k", "rejects_value_tensors")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:]
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: --device {name}: not available here"), lines
    assert why in lines[0] and "to use it:" in lines[0], lines


def test_auto_discovery_lists_every_device_it_considered():
    """Without --device the absent devices are skipped, and the header says why each was."""
    proc = pytest_on("-k", "rejects_value_tensors", "-v")  # -q -v: the header is shown
    assert proc.returncode == 0, proc.stdout[-2000:]
    header = next(ln for ln in proc.stdout.splitlines() if ln.startswith("devices considered:"))
    for name in devices.KNOWN:
        assert f"{name}" in header
    assert "xla: not available (torch_xla is not installed" in header


def test_the_xla_probe_asks_torch_xla_runtime(monkeypatch):
    """xla is available when torch_xla's runtime reports a device (torch_xla registers no
    torch.xla and is not a PrivateUse1 device): a stand-in runtime module shows both answers."""
    import importlib.util
    import types

    runtime = types.ModuleType("torch_xla.runtime")
    package = types.ModuleType("torch_xla")
    package.runtime = runtime
    monkeypatch.setitem(sys.modules, "torch_xla", package)
    monkeypatch.setitem(sys.modules, "torch_xla.runtime", runtime)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    runtime.device_type = lambda: "CPU"
    devices.probe.cache_clear()
    try:
        p = devices.probe("xla")
        assert p.available and p.description == "xla (PJRT runtime: CPU)"
        devices.probe.cache_clear()
        runtime.device_type = lambda: None
        p = devices.probe("xla")
        assert not p.available and "PJRT_DEVICE" in p.why
    finally:
        devices.probe.cache_clear()


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:1", "mps", "xpu", "meta"])
def test_device_types_torch_knows_pass_the_check(name):
    devices.check_known([name])


def test_only_cpu_is_always_available():
    assert devices.is_available("cpu")
    assert not devices.is_available("meta")
