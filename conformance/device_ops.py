"""The per-device op stack: what the properties call on a device.

``for_device(device)`` stacks the layers of `conformance.ops` over the active backend
(`conformance.backends.active`): each call recorded for the failure's snippet (for a backend
that is not torch eager), checked op by op against torch eager on CPU where the differential
is on (`conformance.backends.differential_on`), an undeclared "not implemented for <dtype>"
raised as a `conformance.capabilities.CapabilityGap`, and each call's input classes recorded
(`conformance.reach`).
"""

from __future__ import annotations

from typing import Callable

from conformance import backends, failures
from conformance.backends import reproduce
from conformance.backends.differential import Differential
from conformance.capabilities import Capable
from conformance.ops import OpWrapper
from conformance.reach import Observed

__all__ = ["Recorded", "for_device"]

_stacks: dict[str, tuple] = {}  # device -> (backend, differential on, the stack)


class Recorded(OpWrapper):
    """The backend's ops, each call recorded in the current example's Case (for its snippet)."""

    def _wrap(self, name: str, target: Callable) -> Callable:
        def fn(*args, **kwargs):
            case = failures.current_case()
            if case is not None:
                calls = case.backend_calls
                calls.append(reproduce.call(name, args, kwargs, case.named))
                del calls[:-reproduce.MAX_CALLS]
            return target(*args, **kwargs)
        return fn


def for_device(device: str):
    """The ops the properties call on `device` (see the module docstring); built once per device
    and backend."""
    backend, differential = backends.active(), backends.differential_on(device)
    built = _stacks.get(device)
    if built is not None and built[0] is backend and built[1] == differential:
        return built[2]
    ops = backend
    if backend.torch_arrays and reproduce.header(backend) is not None:
        ops = Recorded(ops)  # each call's arguments, for the failure's snippet
    if differential:
        ops = Differential(ops, backends.load(backends.DEFAULT), device)
    ops = Observed(Capable(ops, backend, device), backend.torch_arrays)  # input classes: conformance.reach
    _stacks[device] = (backend, differential, ops)
    return ops
