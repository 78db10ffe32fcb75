"""Which devices the suite runs on: the one place that knows about device names.

torch is imported where it is needed, not with this module: the pytest-xdist controller loads
this module before its workers start, and torch only after (see conftest.py)."""

from __future__ import annotations

KNOWN = ("cpu", "cuda", "mps", "xpu")


def _privateuse1() -> str | None:
    import torch

    name = torch._C._get_privateuse1_backend_name()
    return None if name == "privateuseone" else name


class UnknownDevice(ValueError):
    """A --device name that this torch does not know; the message is one line."""


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


def device_type(device: str) -> str:
    """'cuda:1' -> 'cuda'."""
    return device.split(":", 1)[0]


def is_available(device: str) -> bool:
    import torch

    device = device_type(device)
    if device == "cpu":
        return True
    if device == _privateuse1():
        module = getattr(torch, device, None)
        return bool(module is not None and module.is_available())
    module = getattr(torch, device, None) if device != "mps" else getattr(torch.backends, "mps", None)
    try:
        return bool(module is not None and module.is_available())
    except Exception:  # a half-installed backend must not break collection
        return False


def available() -> list[str]:
    names = list(KNOWN)
    if (p1 := _privateuse1()) is not None:
        names.append(p1)
    return [d for d in names if is_available(d)]


def parse(option: str | None) -> list[str]:
    """``--device cpu,cuda`` -> ['cpu', 'cuda']; None -> every available device."""
    if not option:
        return available()
    return [d.strip() for d in option.split(",") if d.strip()]


def describe(device: str) -> str:
    import torch

    if device == "cuda" and is_available("cuda"):
        return f"cuda ({torch.cuda.get_device_name()})"
    return device
