"""Torch releases: the one place that reads the running torch's version and matches it against
the PEP 440 specifiers of the suite's version-aware tables.

Every expectation that changed between torch releases says from which release each behaviour
holds, as a specifier (``"<2.5"``, ``">=2.5"``): the fully-masked-row policies and the
features of `conformance.attention_apis`, the kernels a release lacks
(`conformance.capabilities`), and known-deviation entries (``torch = "<2.5"``,
`conformance.deviations`).  A local or pre-release build counts as its base release
(``2.16.0a0+git1234`` is 2.16.0), so a nightly is judged by the rules of the release it leads to.
"""

from __future__ import annotations

from functools import cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version


# The NumPy each torch release needs (the release matrix installs it): wheels built against NumPy 1
# cannot use NumPy 2 ("Numpy is not available", "Could not infer dtype of numpy.float16", seen on
# torch 2.1.2); torch 2.4 is the first release built against NumPy 2 (its release notes).
NUMPY = (("<2.4", "<2"), (">=2.4", ">=1.26"))


def numpy_for(release: str) -> str:
    """The NumPy specifier to install beside torch `release`."""
    return next(spec for torch, spec in NUMPY if holds(torch, parse(release)))


class BadSpecifier(ValueError):
    """A specifier that packaging cannot read; the message is one line."""


def specifier(text: str, where: str = "") -> SpecifierSet:
    """`text` as a SpecifierSet, or BadSpecifier naming `where` it came from."""
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise BadSpecifier(f"{where + ': ' if where else ''}torch = {text!r} is not a PEP 440 "
                           "specifier (e.g. '<2.5', '>=2.3,<2.9')") from None


def parse(text: str) -> Version:
    """A torch version string as the release it counts as (its base version)."""
    try:
        return Version(Version(str(text)).base_version)
    except InvalidVersion:
        raise ValueError(f"{text!r} is not a PEP 440 version") from None


@cache
def torch_version() -> Version:
    """The running torch's release (imports torch)."""
    import torch

    return parse(torch.__version__)


def holds(spec: str | None, version: Version | None = None) -> bool:
    """Whether an expectation for the releases `spec` (None: every release) holds for `version`
    (default: the running torch)."""
    if spec is None:
        return True
    return (version or torch_version()) in specifier(spec)
