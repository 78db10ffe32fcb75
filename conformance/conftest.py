"""Suite-wide pytest wiring: devices, Hypothesis profile, known deviations, run header."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch

from conformance import devices, profiles
from conformance.failures import ConformanceFailure

DEVIATIONS_FILE = Path(__file__).with_name("known_deviations.toml")
PROFILE = profiles.load_from_environment()  # --hypothesis-profile, applied later, wins


def pytest_addoption(parser):
    parser.addoption(
        "--device", action="store", default=None,
        help="comma-separated devices to check (cpu,cuda,mps,xpu or a PrivateUse1 name); "
             "default: every device torch reports available",
    )


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


def load_deviations() -> list[dict]:
    with DEVIATIONS_FILE.open("rb") as f:
        return tomllib.load(f).get("deviation", [])


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    deviations = load_deviations()
    for item in items:
        try:
            rel = Path(item.path).relative_to(here).as_posix()
        except ValueError:
            continue
        node = rel + "::" + item.name
        for dev in deviations:
            if node.startswith(dev["id"]):
                item.add_marker(pytest.mark.xfail(
                    strict=True, raises=ConformanceFailure,
                    reason=f"known deviation: {dev['reason']} ({dev['link']})"))
                item.user_properties.append(("known_deviation", dev["id"]))


def pytest_report_header(config):
    sel = _selected(config)
    shown = ", ".join(devices.describe(d) + ("" if devices.is_available(d) else " (unavailable)")
                      for d in sel)
    from hypothesis import settings
    return [f"conformance: torch {torch.__version__}; devices: {shown}; "
            f"hypothesis profile: {settings._current_profile}"]
