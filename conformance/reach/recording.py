"""Recording: the classes the current example reached (`begin` ... `end`), and a tally of
reasons counted on every example (`tally`).  The report plugin drives it; `conformance.reach.observe`
fills it from every op call."""

from __future__ import annotations

from typing import Iterable

_current: set | None = None
# id(tensor) -> (the tensor, its version, its classes) within one example: the same tensor is
# often classified several times (a property's own input, then as an op's argument).  The
# tensor is kept so that its id cannot be reused by another during the example.
_seen: dict = {}


def begin() -> None:
    """Start recording the classes of one example (the report plugin calls this)."""
    global _current
    _current = set()
    _seen.clear()


def end() -> set:
    """Stop recording; the classes the example reached."""
    global _current
    got, _current = _current, None
    _seen.clear()
    return got or set()


_tallied: dict = {}


def tally(cls: str) -> None:
    """Count `cls` on every example, classified or not (`CLASSIFY_EVERY` samples the rest): what
    the report must give exactly, such as the examples a pinned SDPA kernel refused."""
    _tallied[cls] = _tallied.get(cls, 0) + 1


def take_tally() -> dict:
    """The tally since the last call (the report plugin takes it after each test)."""
    got = dict(sorted(_tallied.items()))
    _tallied.clear()
    return got


def note(*classes: str) -> None:
    """Record classes that no op argument shows (a property's own notion of its input)."""
    if _current is not None:
        _current.update(classes)


def announce(classes: Iterable[str]) -> None:
    """Hand an example's classes to Hypothesis (``event``), for its statistics."""
    from hypothesis import event

    for c in sorted(classes):
        event(c)
