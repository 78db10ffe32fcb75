"""The backend under test, as the modules below `conformance.backends` see it.

`conformance.backends.activate` records the backend here; the error table
(`conformance.errors`), the attention policies (`conformance.attention_apis`) and the failure's
snippet (`conformance.failures`) read it without importing `conformance.backends`, so that no
module imports one that imports it back.  None means no backend was activated: torch eager,
which declares nothing of its own.
"""

from __future__ import annotations

__all__ = ["current", "set_current"]

_current = None  # a conformance.backends.Backend, or None


def current():
    """The activated backend (a `conformance.backends.Backend`), or None: torch eager."""
    return _current


def set_current(backend) -> None:
    global _current
    _current = backend
