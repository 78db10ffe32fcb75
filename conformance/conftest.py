"""Suite-wide pytest wiring: devices, Hypothesis profile, known deviations, reports, header."""

from __future__ import annotations

import pytest
import torch

from conformance import deviations as dev
from conformance import devices, profiles
from conformance.failures import ConformanceFailure
from reports import plugin as report_plugin

PROFILE = profiles.load_from_environment()  # --hypothesis-profile, applied later, wins


def pytest_addoption(parser):
    parser.addoption(
        "--device", action="store", default=None,
        help="comma-separated devices to check (cpu,cuda,mps,xpu or a PrivateUse1 name); "
             "default: every device torch reports available",
    )
    report_plugin.add_options(parser)


def pytest_configure(config):
    try:
        devices.check_known(_selected(config))
    except devices.UnknownDevice as e:
        raise pytest.UsageError(str(e)) from None
    try:
        config.pluginmanager.register(report_plugin.ReportPlugin(config), "conformance-report")
    except dev.DeviationFileError as e:
        raise pytest.UsageError(str(e)) from None


def _selected(config) -> list[str]:
    return devices.parse(config.getoption("--device"))


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        params = []
        for d in _selected(metafunc.config):
            marks = [] if devices.is_available(d) else [
                pytest.mark.skip(reason=f"device {d!r} is not available in this torch build/machine")]
            params.append(pytest.param(d, id=d, marks=marks))
        metafunc.parametrize("device", params)


def pytest_collection_modifyitems(config, items):
    deviations = config.pluginmanager.get_plugin("conformance-report").deviations
    for item in items:
        entry = dev.matching(deviations, dev.relative_id(item.nodeid))
        if entry is not None:
            item.add_marker(pytest.mark.xfail(
                strict=True, raises=ConformanceFailure,
                reason=f"known deviation: {entry.reason} ({entry.link})"))


def pytest_report_header(config):
    sel = _selected(config)
    shown = ", ".join(devices.describe(d) + ("" if devices.is_available(d) else " (unavailable)")
                      for d in sel)
    from hypothesis import settings
    return [f"conformance: torch {torch.__version__}; devices: {shown}; "
            f"hypothesis profile: {settings._current_profile}"]
