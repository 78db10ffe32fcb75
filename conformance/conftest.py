"""Suite-wide pytest wiring: devices, Hypothesis profile, known deviations, reports, header."""

from __future__ import annotations

import functools
import gc
import os

import pytest
from hypothesis.errors import FlakyFailure

from conformance import deviations as dev
from conformance import backends, devices, profiles, semantics
from conformance.failures import ConformanceFailure, bound_notes, nondeterministic
from reports import plugin as report_plugin
from strategies import hypothesis_internals

try:
    PROFILE = profiles.load_from_environment()  # --hypothesis-profile, applied later, wins
except profiles.UnknownProfile as e:
    PROFILE, _PROFILE_ERROR = None, str(e)  # said as a usage error once pytest can say it
else:
    _PROFILE_ERROR = None


def pytest_addoption(parser):
    parser.addoption(
        "--device", action="store", default=None,
        help="comma-separated devices to check (cpu,cuda,mps,xpu or a PrivateUse1 name); "
             "default: every device torch reports available",
    )
    parser.addoption(
        "--backend", action="store", default=None,
        help="the implementation of the ops to check: torch (default), torch-compile, numpy, "
             "or a module path (pkg.module or pkg.module:object) implementing the protocol of "
             "conformance/backends/__init__.py; default from CONFORMANCE_BACKEND")
    parser.addoption(
        "--differential", action="store", default="auto", choices=("auto", "on", "off"),
        help="also run every op call with torch eager on CPU and require agreement: auto (default) "
             "= on for non-CPU devices and for backends that ask for it (torch-compile)")
    report_plugin.add_options(parser)


def _check_options(config):
    """Bad options are one line and exit 4, before any plugin turns them into a traceback
    (Hypothesis's for an unknown profile, pytest-shard's for a shard id out of range)."""
    if _PROFILE_ERROR:
        raise pytest.UsageError(_PROFILE_ERROR)
    try:
        if name := config.getoption("hypothesis_profile", None):
            profiles.check(name)
    except profiles.UnknownProfile as e:
        raise pytest.UsageError(str(e)) from None
    count, shard = config.getoption("num_shards", None), config.getoption("shard_id", None)
    if count is not None and count < 1:
        raise pytest.UsageError(f"--num-shards {count}: the number of shards must be at least 1")
    if shard is not None and not 0 <= shard < (count or 1):
        raise pytest.UsageError(f"--shard-id {shard}: shard ids run from 0 to --num-shards - 1 "
                                f"({(count or 1) - 1} here)")
    for what in ("--device", "--backend"):
        value = config.getoption(what)
        if value is not None and (not value.strip() or any(not p.strip() for p in value.split(",")
                                                            if what == "--device")):
            raise pytest.UsageError(f"{what} {value!r}: empty name")


@pytest.hookimpl(tryfirst=True)  # before Hypothesis's plugin loads the profile
def pytest_configure(config):
    _check_options(config)
    config.addinivalue_line("markers", "ops(*names, param=None, rename=None): the backend ops a "
                            "property calls (or: the op named by parameter `param`); skipped "
                            "where the backend lacks one")
    config.addinivalue_line("markers", "torch_tensors: the property needs a backend whose arrays "
                            "are torch tensors")
    config.addinivalue_line("markers", "reach(*classes, property=()): the input classes the test's "
                            "examples must reach in the ci profile (conformance/reach/); property=: "
                            "those its property must reach across its parameters")
    config.addinivalue_line("markers", "default_dispatch: an SDPA property that also runs unpinned "
                            "(kernel 'default': torch chooses, as a plain call does)")
    config.addinivalue_line("markers", "storage(what): the property checks storage semantics only "
                            "(strides, stride 0, aliasing, views): not applicable on a device without "
                            "storage (conformance/semantics.py)")
    report_plugin.configure(config)
    if not _xdist_controller(config):
        _set_up(config)


def _xdist_controller(config) -> bool:
    """Whether this process is a pytest-xdist controller: it runs no test itself."""
    return (not hasattr(config, "workerinput") and not config.option.collectonly
            and getattr(config.option, "dist", "no") != "no" and bool(getattr(config.option, "tx", None)))


def _set_up(config) -> None:
    """Load the backend, check the devices (a one-line error for either), start the report."""
    _share_cores(config)
    try:
        backends.activate(backends.load(config.getoption("--backend")
                                        or os.environ.get("CONFORMANCE_BACKEND")),
                          config.getoption("--differential"))
        devices.check_known(_selected(config))
        if config.getoption("--device"):  # named explicitly: it must be there (auto-discovery skips)
            devices.check_available(_selected(config))
    except (devices.UnknownDevice, devices.UnavailableDevice, backends.BackendError) as e:
        raise pytest.UsageError(str(e)) from None
    _import_local_modules()
    try:
        config.pluginmanager.register(report_plugin.ReportPlugin(config), "conformance-report")
    except dev.DeviationFileError as e:
        raise pytest.UsageError(str(e)) from None
    _quiet_gc()  # the xdist controller never collects: torch is what it holds


# Hypothesis mixes literal constants of the project's modules into generation, from whichever
# local modules are imported when an example is drawn, and adds a module's constants when it is
# first imported (hypothesis.internal.conjecture.providers._get_local_constants).  A module the
# suite imports lazily would change the examples of every test that runs after it in the same
# process: a test's examples would depend on which tests ran before it in its xdist worker, or in
# its shard.  So every module a run may import is imported before the first example.
_OPTIONAL_BACKENDS = ("torch_compile", "numpy_arrays")  # imported only as the active backend


def _import_local_modules() -> None:
    import importlib
    import pkgutil

    import conformance
    import conformance.backends
    import strategies

    for package in (conformance, conformance.backends, strategies):
        for info in pkgutil.iter_modules(package.__path__):
            if info.ispkg or info.name.startswith("test_") or info.name in ("conftest", *_OPTIONAL_BACKENDS):
                continue
            importlib.import_module(f"{package.__name__}.{info.name}")


@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session):
    # The xdist controller sets up once its workers have started (they set up on their own):
    # loading the backend imports torch, 2-3 s that would otherwise come before theirs.
    # Nothing it loads before this imports torch (a self-test checks); the header waits too.
    result = yield
    config = session.config
    if _xdist_controller(config):
        _set_up(config)
        config.pluginmanager.get_plugin("conformance-report").pytest_sessionstart(session)
        if reporter := config.pluginmanager.get_plugin("terminalreporter"):
            for line in _header(config):
                reporter.write_line(line)
    return result


def _share_cores(config) -> None:
    """Under pytest-xdist, give each worker's torch its share of the cores: N workers each
    running N intra-op threads fight over the same cores (measured: 2 workers on 2 cores)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workerinput["workercount"])))


# Cyclic garbage collection is a tenth of a run's time with the default settings: every
# full collection walks torch's ~190,000 long-lived objects, and Hypothesis makes enough
# short-lived ones that collections run every few hundred microseconds.  Once collection
# is done, everything alive lives to the end: freeze it out of the collector's sight and
# collect less often (measured on the masked_fill and softmax modules: 9.4 s -> 4.3 s of
# collection pauses in an 85 s run).  Full collections still cost about 0.2 s each (they walk
# what Hypothesis keeps per test); one per 1000 young-generation ones instead of 50 took the
# softmax and broadcasting modules from 6 full collections (1.16 s) to 4 (0.15 s).
GC_THRESHOLDS = (2000, 10, 1000)


def _quiet_gc() -> None:
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def pytest_collection_finish(session):
    _quiet_gc()


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    # With full collections this rare, an xdist worker ends its run holding ~800,000
    # unreachable objects (what Hypothesis kept per test), and pytest's unconfigure runs one
    # full collection to look for unraisable exceptions: 1.1-1.5 s that the controller waits
    # for before it can finish.  A worker's results have been sent by now and nothing it
    # warns about any more reaches the terminal, so freeze instead: the process is ending.
    if hasattr(config, "workerinput"):
        gc.freeze()


def _selected(config) -> list[str]:
    option = config.getoption("--device")
    chosen = devices.parse(option)
    return chosen if option else [d for d in chosen if backends.active().runs_on(d)]


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        params = []
        backend = backends.active()
        kernels = "kernel" in metafunc.fixturenames  # SDPA properties: once per kernel of each device
        for d in _selected(metafunc.config):
            marks = [] if devices.is_available(d) else [
                pytest.mark.skip(reason=f"device {d!r} is not available in this torch build/machine")]
            if not backend.runs_on(d):
                marks = [pytest.mark.skip(reason=f"backend {backend.name!r} does not run on {d!r}")]
            if kernels:
                from conformance import attention_apis as apis
                from conformance.attention_apis import has, kernels_for

                # a release without sdpa_kernel cannot pin a kernel: its per-kernel properties skip
                pin = [pytest.mark.skip(reason=why)] if (why := has("sdpa_kernel")) else []
                params += [pytest.param(d, k, id=f"{d}-{k}", marks=marks or pin) for k in kernels_for(d)]
                if metafunc.definition.get_closest_marker("default_dispatch"):  # what a plain call gets
                    params.append(pytest.param(d, apis.DEFAULT_KERNEL, id=f"{d}-{apis.DEFAULT_KERNEL}", marks=marks))
            else:
                params.append(pytest.param(d, id=d, marks=marks))
        metafunc.parametrize(("device", "kernel") if kernels else "device", params)


def _missing_ops(backend, item) -> list[str]:
    """The ops a test calls that the backend does not implement (see the `ops` marker)."""
    missing = []
    for mark in item.iter_markers("ops"):
        names = list(mark.args)
        if "param" in mark.kwargs:
            value = item.callspec.params[mark.kwargs["param"]]
            value = (mark.kwargs.get("rename") or {}).get(value, value)
            names += [value] if isinstance(value, str) else list(value)
        missing += [n for n in names if not backend.implements(n) and n not in missing]
    return missing


def _device_of(item) -> str | None:
    return item.callspec.params.get("device") if hasattr(item, "callspec") else None


KNOWN_DEVIATION = pytest.StashKey()  # the deviation entry an item is expected to fail by


def pytest_collection_modifyitems(config, items):
    deviations = config.pluginmanager.get_plugin("conformance-report").deviations
    backend = backends.active()
    for item in items:
        if item.get_closest_marker("torch_tensors") and not backend.torch_arrays:
            item.add_marker(pytest.mark.skip(
                reason=f"backend {backend.name!r} does not use torch tensors; this property checks "
                       "torch tensor semantics"))
        elif missing := _missing_ops(backend, item):
            item.add_marker(pytest.mark.skip(
                reason=f"backend {backend.name!r} does not implement {', '.join(missing)}"))
        elif (mark := item.get_closest_marker("storage")) and (device := _device_of(item)) \
                and not semantics.has_storage(device):
            item.add_marker(pytest.mark.skip(reason=semantics.reason(device, mark.args[0])))
        entry = dev.matching(deviations, dev.relative_id(item.nodeid))
        if entry is not None and not entry.inputs:  # a narrowed entry is judged per example (plugin)
            item.stash[KNOWN_DEVIATION] = entry
            item.add_marker(pytest.mark.xfail(
                strict=True, raises=ConformanceFailure,
                reason=f"known deviation: {entry.reason} ({entry.link})"))



def pytest_runtest_setup(item):
    backends.active().reset()  # a backend's state from earlier tests must not change this one
    from conformance.backends import differential

    differential.suspend(_reference_deviates(item))


def _reference_deviates(item) -> str | None:
    """Why the differential gives no verdict in `item`: the reference (torch eager on CPU) has a
    known deviation in the same test on CPU, so agreeing with it would prove nothing."""
    device = _device_of(item)
    if not device or devices.device_type(device) == "cpu" or not backends.differential_on(device):
        return None
    twin = dev.relative_id(item.nodeid).replace(f"[{device}", "[cpu", 1)
    entry = dev.matching(_reference_deviations(), twin)
    return None if entry is None else (f"torch eager on cpu, the reference, has the known deviation "
                                       f"{entry.id} ({os.path.basename(entry.file)}): {entry.reason[:160]}")


@functools.cache
def _reference_deviations() -> list:
    return dev.load(dev.default_files(backends.load(backends.DEFAULT).deviations))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield from _call(item))
    except FlakyFailure as e:
        if (same := nondeterministic(e)) is None:
            bound_notes(e)
            raise
        bound_notes(same)
        raise same from None
    except BaseException as e:
        bound_notes(e)  # the suite's message first and whole; Hypothesis's draw dump bounded
        raise


def _call(item):
    test = getattr(item, "obj", None)
    if KNOWN_DEVIATION not in item.stash or not hasattr(test, "hypothesis"):
        return (yield)
    # A known deviation only has to show that it still fails (or that it is fixed, when all
    # its examples pass): its first failing example is reported as found, without the shrink
    # and explain phases (2-3 s of the gate's CPU time for its two entries).
    with hypothesis_internals.quick_failure(item):
        return (yield)


def pytest_report_header(config):
    return [] if _xdist_controller(config) else _header(config)


def _header(config) -> list[str]:
    import torch

    sel = _selected(config)
    shown = ", ".join(devices.describe(d) for d in sel) or "none"
    backend = backends.active()
    diff = [d for d in sel if backends.differential_on(d)]
    lines = [f"conformance: backend {backend.name} ({backend.spec}); torch {torch.__version__}; "
             f"devices: {shown}; hypothesis profile: {hypothesis_internals.current_profile() or 'default'}",
             "differential against torch eager on cpu: " + (", ".join(diff) if diff else "off")]
    if not config.getoption("--device"):  # auto-discovery: what was asked, and each answer
        lines.append("devices considered: " + "; ".join(
            devices.probe(d).words() + ("" if backend.runs_on(d) or not devices.is_available(d)
                                        else f", but backend {backend.name} does not run on it")
            for d in devices.considered()))
    return lines
