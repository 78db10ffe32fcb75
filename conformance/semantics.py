"""What a device's tensors can show: value semantics everywhere, storage semantics where it has storage.

**Value semantics** hold on every device: results and their shapes and dtypes, which inputs
raise, whether an op changed self's values, whether an in-place op returns self (the same
object), and the version counter where the device keeps one.

**Storage semantics** are what torch's strided tensors add: strides and storage offsets,
stride 0 (broadcast views, self-overlapping tensors), storage identity (``data_ptr``, aliasing,
"keeps its storage") and views that write through to a base.  A device whose tensors have no
storage (torch_xla: ``XLATensorImpl`` reports contiguous strides and offset 0, ``data_ptr()`` is 0
and storage access raises; torch's lazy tensor device, the core XLA is built on, does the same)
cannot show them, so there a storage check is *not applicable*: the property runs every value
check, and each storage check it skips is recorded with the reason (`skip`), counted apart in
the report, never as passed.  A property that is about storage only is marked
``@pytest.mark.storage("what it checks")`` and reported as not applicable as a whole.

Inputs reach such a device by value: each is built in its layout on CPU (`TensorSpec.build`)
and moved with ``.to(device)``, so the device receives a dense tensor with the same values; the
layout classes other than contiguous are listed in the report as not receivable, with the
reason, instead of as unreached claims.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from conformance.devices import device_type


@dataclass(frozen=True)
class Semantics:
    """What one device type's tensors show."""

    storage: bool = True  # strides, offsets, stride 0, storage identity, views
    version_counter: bool = True  # in-place ops advance t._version (autograd's check)
    why: str = ""  # when storage is False: why, in words, for the report


_NO_STORAGE = ("its tensors have no strided storage: they report contiguous strides and storage offset 0, "
               "data_ptr() is 0 and storage access raises, so strides, stride 0, aliasing and views "
               "cannot be observed")

SEMANTICS: dict[str, Semantics] = {
    # torch_xla: XLATensorImpl (torch_xla/csrc/tensor_impl.cpp) has no storage; views are
    # functionalized graph ops, not memory (torch_xla 2.x docs: "XLA tensors ... are lazy")
    "xla": Semantics(storage=False, why=f"xla: {_NO_STORAGE}"),
    # torch's lazy tensor core (torch/csrc/lazy/core/tensor_impl.cpp): the same LTCTensorImpl
    # design XLA grew from; the suite's stand-in for a storage-less device in CI
    "lazy": Semantics(storage=False, why=f"lazy: {_NO_STORAGE}"),
}
STRIDED = Semantics()

# Reports say a skipped storage check or test with these words first.
NOT_APPLICABLE = "not applicable on "


def of(device) -> Semantics:
    return SEMANTICS.get(device_type(str(device)), STRIDED)


def has_storage(device) -> bool:
    return of(device).storage


def reason(device, what: str) -> str:
    """The skip reason of a storage-only property on a storage-less device."""
    return f"{NOT_APPLICABLE}{device_type(str(device))}: {what}; {of(device).why}"


# --------------------------------------------------------------------------- per check

# (check, why) -> examples that skipped it, in the current test (the report plugin takes it)
_skipped: collections.Counter = collections.Counter()


def applies(device, check: str, *, needs: str = "storage") -> bool:
    """Whether storage check `check` (words: "self keeps its storage") can be made on `device`;
    when not, it is counted as not applicable for the current example.  `needs`: "storage" or
    "version_counter"."""
    sem = of(device)
    if getattr(sem, needs):
        return True
    skip(check, sem.why if needs == "storage" else f"{device_type(str(device))} keeps no version counter")
    return False


def skip(check: str, why: str) -> None:
    """Count `check` as not applicable in the current example, for a reason other than storage
    (the differential where torch eager on CPU has a known deviation itself)."""
    _skipped[(check, why)] += 1


def take() -> list[dict]:
    """The checks the current test skipped as not applicable, and how often; resets the count."""
    out = [{"check": c, "why": w, "examples": n} for (c, w), n in sorted(_skipped.items())]
    _skipped.clear()
    return out


# --------------------------------------------------------------------------- layouts and reach


# the memory layouts of conformance.reach.LAYOUTS a dense tensor cannot show (not the nested
# "jagged" layout: that is a feature a device has or lacks, conformance.capabilities)
_STRIDED_LAYOUTS = ("permuted", "strided", "offset", "expanded")


def receivable(claims, device) -> tuple[list[str], list[tuple[str, str]]]:
    """(the claims `device` can reach, [(claim, why) for those it cannot]): on a storage-less
    device every input arrives dense, so of the layout classes only ``.layout:contiguous`` can be
    observed; where the native fast path of MHA or the encoder does not run, ``path:fast`` cannot
    be reached (`conformance.attention_apis.fast_path`)."""
    from conformance import attention_apis

    kept, dropped = [], []
    for c in claims:
        why = None
        if not has_storage(device) and any(c.endswith(f".layout:{k}") for k in _STRIDED_LAYOUTS):
            why = not_receivable_reason(device)
        elif c.endswith(".path:fast") and (api := attention_apis.FAST_PATH_APIS.get(c.split(".", 1)[0])):
            why = attention_apis.fast_path(api, device)
        (dropped.append((c, why)) if why else kept.append(c))
    return kept, dropped


def not_receivable_reason(device) -> str:
    return (f"inputs reach {device_type(str(device))} by value: each is built in its layout on CPU and "
            f"moved with .to(), arriving dense ({of(device).why})")
