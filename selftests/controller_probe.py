"""A pytest plugin for test_devices (``-p selftests.controller_probe``): writes to the file named
by CONTROLLER_PROBE whether the pytest-xdist controller had imported torch when xdist started
its workers."""

import os
import sys


def pytest_xdist_setupnodes(config, specs):
    with open(os.environ["CONTROLLER_PROBE"], "w") as f:
        f.write("torch imported" if "torch" in sys.modules else "torch not imported")
