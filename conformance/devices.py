"""Which devices the suite runs on: the one place that knows about device names.

Each device type has one availability probe (`PROBES`): it says whether the device can be
used here, and when not, why and how to get it.  ``--device`` names the devices to check;
a device named there that its probe finds unavailable stops the run (exit 4, one line), while
the devices found without ``--device`` are those whose probe says yes, and the report lists
every device considered with its probe's answer.

torch is imported where it is needed, not with this module: the pytest-xdist controller loads
this module before its workers start, and torch only after (see conftest.py)."""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass
from typing import Callable

KNOWN = ("cpu", "cuda", "mps", "xpu", "xla")


@dataclass(frozen=True)
class Probe:
    """A probe's answer for one device type: whether it is usable, why not, how to get it."""

    available: bool
    description: str  # what it is: "cuda (NVIDIA H200)", "xla (PJRT runtime: CPU)"
    why: str = ""  # when unavailable: what is missing
    how: str = ""  # when unavailable: what would make it available

    def words(self) -> str:
        if self.available:
            return f"{self.description}: available"
        return f"{self.description}: not available ({self.why}{'; ' + self.how if self.how else ''})"


class UnknownDevice(ValueError):
    """A --device name that this torch does not know; the message is one line."""


class UnavailableDevice(ValueError):
    """A device named with --device that cannot be used here; the message is one line."""


def _privateuse1() -> str | None:
    import torch

    name = torch._C._get_privateuse1_backend_name()
    return None if name == "privateuseone" else name


def _torch_module_probe(name: str, module: Callable, how: str) -> Probe:
    import torch

    try:
        mod = module(torch)
        ok = bool(mod is not None and mod.is_available())
    except Exception as e:  # a half-installed backend must not break collection
        return Probe(False, name, f"its availability check raised {type(e).__name__}: {e}"[:200], how)
    if ok:
        return Probe(True, name)
    return Probe(False, name, f"torch {torch.__version__} reports no {name} device on this machine", how)


def _cpu() -> Probe:
    return Probe(True, "cpu")


def _cuda() -> Probe:
    import torch

    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return Probe(False, "cuda", f"torch {torch.__version__} is a CPU-only build",
                     "install a CUDA or ROCm build of torch")
    probe = _torch_module_probe("cuda", lambda t: t.cuda, "a machine with a GPU and its driver")
    if probe.available:
        return Probe(True, f"cuda ({torch.cuda.get_device_name()})")
    return probe


def _mps() -> Probe:
    return _torch_module_probe("mps", lambda t: t.backends.mps, "Apple silicon with macOS 12.3+")


def _xpu() -> Probe:
    return _torch_module_probe("xpu", lambda t: getattr(t, "xpu", None), "an Intel GPU with an XPU build of torch")


def _xla() -> Probe:
    """torch_xla registers no ``torch.xla`` and is not a PrivateUse1 device: its runtime says
    which PJRT device it drives (PJRT_DEVICE=CPU, TPU, CUDA)."""
    how = "pip install torch-xla (the release that matches torch) and set PJRT_DEVICE, e.g. PJRT_DEVICE=CPU"
    if importlib.util.find_spec("torch_xla") is None:
        return Probe(False, "xla", "torch_xla is not installed", how)
    try:
        runtime = importlib.import_module("torch_xla.runtime")
        kind = runtime.device_type()
    except Exception as e:
        return Probe(False, "xla", f"torch_xla's runtime failed to start: {type(e).__name__}: {e}"[:300], how)
    if not kind:
        return Probe(False, "xla", "torch_xla's runtime reports no device (PJRT_DEVICE is not set)", how)
    return Probe(True, f"xla (PJRT runtime: {kind})")


def _lazy() -> Probe:
    """torch's lazy tensor device (TorchScript backend): the tensor core torch_xla is built on,
    with no storage, like XLA.  Never auto-discovered: the self-tests use it as a stand-in for a
    storage-less device (`conformance.semantics`); ``--device lazy`` names it."""
    try:
        import torch._lazy
        import torch._lazy.ts_backend

        torch._lazy.ts_backend.init()
    except Exception as e:
        return Probe(False, "lazy", f"torch's lazy TorchScript backend failed to start: {type(e).__name__}: {e}"[:300],
                     "a torch build with the lazy tensor core (the CPU and CUDA wheels have it)")
    return Probe(True, "lazy (torch lazy tensors, TorchScript backend)")


# Known-deviation files (conformance/deviations/) loaded whenever the device is selected: what
# the device itself does differently, whichever backend drives it.
DEVIATION_FILES = {"xla": "torch-xla"}


def _xla_compiles() -> int | None:
    import torch_xla.debug.metrics as metrics

    data = metrics.metric_data("CompileTime")  # (count, total ns, samples); None before the first
    return int(data[0]) if data else 0


# Graphs a device has compiled so far in the process, for the device types that compile per graph.
COMPILE_COUNTERS: dict[str, Callable[[], int | None]] = {"xla": _xla_compiles}


def compiles(device: str) -> int | None:
    counter = COMPILE_COUNTERS.get(device_type(device))
    return counter() if counter is not None and is_available(device) else None


# What a standalone reproduction must run before it can name the device.
SETUP_CODE = {
    "xla": "import torch_xla  # registers the xla device (PJRT_DEVICE=CPU, TPU or CUDA)",
    "lazy": "import torch._lazy, torch._lazy.ts_backend; torch._lazy.ts_backend.init()",
}


def setup_code(device: str) -> str:
    return SETUP_CODE.get(device_type(device), "")


def _privateuse1_probe(name: str) -> Probe:
    return _torch_module_probe(name, lambda t: getattr(t, name, None),
                               f"the {name} backend module must register torch.{name} with is_available()")


PROBES: dict[str, Callable[[], Probe]] = {"cpu": _cpu, "cuda": _cuda, "mps": _mps, "xpu": _xpu, "xla": _xla,
                                          "lazy": _lazy}


def check_known(devices: list[str]) -> None:
    """Raise UnknownDevice for a name torch has no device type for (a typo, or an out-of-tree
    backend whose module was not imported), as opposed to one it knows but cannot use here."""
    import torch

    for name in devices:
        try:
            torch.device(name)
        except (RuntimeError, ValueError) as e:
            known = str(e).split("Expected one of ", 1)[-1].split(" device type")[0]
            raise UnknownDevice(
                f"--device {name!r}: torch {torch.__version__} has no such device type (it knows "
                f"{known}; an out-of-tree device must be registered, e.g. by importing its "
                "backend module, before the suite starts)") from None


def check_available(devices: list[str]) -> None:
    """Raise UnavailableDevice for the first device (named with --device) that its probe finds
    unusable: a gate asked to check a device must not go green having checked nothing on it."""
    for name in devices:
        p = probe(name)
        if not p.available:
            raise UnavailableDevice(f"--device {name}: not available here: {p.why}"
                                    + (f" (to use it: {p.how})" if p.how else ""))


def device_type(device: str) -> str:
    """'cuda:1' -> 'cuda'."""
    return device.split(":", 1)[0]


@functools.cache
def probe(device: str) -> Probe:
    """The availability probe's answer for the type of `device` (asked once per process)."""
    kind = device_type(device)
    if kind in PROBES:
        return PROBES[kind]()
    if kind == _privateuse1():
        return _privateuse1_probe(kind)
    return Probe(False, kind, "the suite has no availability probe for this device type",
                 "register it as torch's PrivateUse1 backend")


def is_available(device: str) -> bool:
    return probe(device).available


def considered() -> list[str]:
    """Every device type auto-discovery asks about."""
    names = list(KNOWN)
    if (p1 := _privateuse1()) is not None and p1 not in names:
        names.append(p1)
    return names


def available() -> list[str]:
    return [d for d in considered() if is_available(d)]


def parse(option: str | None) -> list[str]:
    """``--device cpu,cuda`` -> ['cpu', 'cuda']; None -> every available device."""
    if not option:
        return available()
    return [d.strip() for d in option.split(",") if d.strip()]


def describe(device: str) -> str:
    return probe(device).description if is_available(device) else device
