"""Failure messages that teach: the rule, the inputs in words, expected vs actual, the
broadcast alignment where shapes matter, and a standalone torch snippet to reproduce."""

from __future__ import annotations

import math
import pickle
import textwrap
from typing import NoReturn, Sequence

from conformance import rules
from conformance.tensors import SHOW_VALUES, TensorSpec, nested_words, py_literal


class ConformanceFailure(AssertionError):
    """The backend broke a rule of the suite (as opposed to the suite crashing).

    Besides the message, it carries its parts (``details``: rule, device, inputs, what went
    wrong, expected, actual, alignment table, reproduction snippet) for the reports.
    """

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.details = details or {}


# The example being run, for the reports: a crash or a hang leaves nothing else behind, so
# the report plugin installs a recorder that Case calls whenever it learns more of its inputs.
_recorder = None
_current = None  # the Case of the example being run (the differential backend fails through it)


def current_case() -> "Case | None":
    return _current


def set_recorder(fn) -> None:
    """Call ``fn(case)`` each time a Case gains an input or a line of code (None: stop)."""
    global _recorder
    _recorder = fn


def _short(values: Sequence, limit: int = 24) -> str:
    vals = [py_literal(v) for v in values[:limit]]
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return "[" + ", ".join(vals) + more + "]"


def first_differences(actual: Sequence, expected: Sequence, shape: Sequence[int], *,
                      close=None, limit: int = 5, labels: tuple[str, str] = ("expected", "got")) -> list[str]:
    """'index: expected E, got A' for the first few positions that differ."""
    close = close or rules.same_value
    if len(actual) >= 32 and (_all_same(actual, expected) if close is rules.same_value else
                              _all_within(actual, expected, getattr(close, "tolerance", None))):
        return []
    out = []
    for idx, a, e in zip(rules.ndindex(shape), actual, expected):
        if not close(a, e):
            out.append(f"at {idx}: {labels[0]} {py_literal(e)}, {labels[1]} {py_literal(a)}")
            if len(out) == limit:
                break
    return out


def _all_same(actual: Sequence, expected: Sequence) -> bool:
    """True when every pair is `rules.same_value` (the same type; floats bit for bit but for
    nan, which equals any nan), vectorised for sequences all of one type, float, int or bool:
    a shortcut for long exact comparisons (a tril of 513 x 513, a gradient of 4097 entries).
    False means "look one by one": the per-element loop stays the judge and writes the message."""
    if len(actual) != len(expected) or not actual:
        return len(actual) == len(expected)
    kinds = set(map(type, actual))
    if len(kinds) != 1 or set(map(type, expected)) != kinds:
        return False
    import numpy as np

    kind = kinds.pop()
    if kind is float:
        a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
        return bool(((a.view(np.int64) == e.view(np.int64)) | (np.isnan(a) & np.isnan(e))).all())
    if kind is bool or kind is int:
        try:
            return bool(np.array_equal(np.asarray(actual, dtype=np.int64), np.asarray(expected, dtype=np.int64)))
        except OverflowError:
            return False
    return False


def _all_within(actual: Sequence, expected: Sequence, tol) -> bool:
    """True when every float pair is close under `tol` (``close_with``'s rule, vectorised):
    a shortcut for the long rows of softmax (4096 wide).  False means "look one by one":
    the per-element loop stays the judge and writes the message."""
    if tol is None or len(actual) != len(expected):
        return False
    import numpy as np

    a, e = np.asarray(actual), np.asarray(expected)
    if a.dtype != np.float64 or e.dtype != np.float64:
        return False
    return bool(_within(a, e, tol).all())


def rows_within(actual, expected, tol):
    """A bool per row of two 2-d float64 arrays: whether every entry is close under `tol`
    (``close_with``'s rule, vectorised): where a property judges many rows at once, the rows
    that are not go to `Case.check_values`, which stays the judge and writes the message."""
    return _within(actual, expected, tol).all(axis=-1)


def _within(a, e, tol):
    import numpy as np

    with np.errstate(invalid="ignore", over="ignore"):
        return (a == e) | (np.isnan(a) & np.isnan(e)) | (np.abs(a - e) <= tol.atol + tol.rtol * np.abs(e))


class _Tensor:
    """A tensor input of a Case, put into words and code only when a message or a report asks
    (about 80 us a tensor: most examples pass and never need them).  Pickles as its spec, or,
    for a large tensor generated from a NumPy expression, as its words and code (shorter than
    its values).  The flight recorder pickles the
    whole Case each time it gains an input, so a tensor keeps its own pickle once made."""

    __slots__ = ("name", "spec", "device", "_words", "_code", "_pickled")

    def __init__(self, name: str, spec: TensorSpec | None, device: str,
                 words: str | None = None, code: str | None = None):
        self.name, self.spec, self.device = name, spec, device
        self._words, self._code = words, code
        self._pickled = None

    def words(self) -> str:
        if self._words is None:
            self._words = f"{self.name}: {self.spec.describe()}\n    values: {self.spec.show_values()}"
        return self._words

    def code(self) -> str:
        if self._code is None:
            self._code = self.spec.code(self.name, self.device)
        return self._code

    def __reduce__(self):
        if self._pickled is None:
            # the spec pickles its values in C; its code would be a Python-built literal of every
            # value (24 s of a serial gate for the attention problems' 8,000-value k and v); only
            # a large generated tensor's code (a NumPy expression) is shorter than its values
            args = ((self.name, self.spec, self.device)
                    if self.spec is not None and (len(self.spec.storage) <= SHOW_VALUES or not self.spec.numpy_source)
                    else (self.name, None, self.device, self.words(), self.code()))
            self._pickled = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
        return _unpickled_tensor, (self._pickled,)


def _unpickled_tensor(pickled: bytes) -> _Tensor:
    return _Tensor(*pickle.loads(pickled))


def _words(item) -> str:
    return item if type(item) is str else item.words()


def _code(item) -> str:
    return item if type(item) is str else item.code()


class Case:
    """What one example ran: collects inputs (in words and as code), then fails with them.

    ``inputs`` and ``code`` hold strings, and tensors to be put into words when needed; a
    property may append strings to either.  A Case pickles to what `state` needs: the flight
    recorder keeps it that way, so a crash report can still say what was running.
    """

    def __init__(self, rule: str, device: str):
        self.rule = rule
        self.device = device
        self.inputs: list = []
        self.code: list = []
        self.shapes: list[tuple] = []
        self.backend_calls: list = []  # what the backend under test received (backends.reproduce)
        self.named: dict = {}  # id(tensor) -> (the code above that makes it, the tensor): see `name`
        global _current
        _current = self
        self._note()

    def __reduce__(self):
        return _restored, (self.rule, self.device, list(self.inputs), list(self.code))

    def _note(self) -> None:
        if _recorder is not None:
            _recorder(self)

    def tensor(self, name: str, spec: TensorSpec) -> "Case":
        item = _Tensor(name, spec, self.device)
        self.inputs.append(item)
        self.code.append(item)
        self.shapes.append(spec.shape)
        self._note()
        return self

    def name(self, expr: str, tensor) -> "Case":
        """Say that the snippet's code makes `tensor` as `expr` (``q.to('cpu')``): a reproduction
        through another backend passes it by that name instead of spelling out every value (a
        model-sized input is millions of them)."""
        self.named[id(tensor)] = (expr, tensor)
        return self

    def value(self, name: str, words: str, code: str) -> "Case":
        self.inputs.append(f"{name}: {words}")
        self.code.append(f"{name} = {code}")
        self._note()
        return self

    def run(self, *lines: str) -> "Case":
        self.code.extend(lines)
        self._note()
        return self

    def state(self) -> dict:
        """The example so far, as plain data: rule, device, inputs in words, snippet."""
        return {"rule": self.rule, "device": self.device, "inputs": [_words(i) for i in self.inputs],
                "snippet": self.snippet()}

    def snippet(self) -> str:
        body = "\n".join(_code(c) for c in self.code)
        if self.backend_calls:
            from conformance import session
            from conformance.backends import reproduce
            if more := reproduce.code(session.current(), self.backend_calls):
                # both halves run whichever raises: the rule may be that one of them raises
                body = _reporting("torch eager (the reference)", body) + "\n" + _reporting("the backend under test", more)
        from conformance.devices import setup_code

        head = "import torch\n" + ("import numpy as np\n" if "np." in body else "")
        if setup := setup_code(str(self.device)):
            head += setup + "\n"
        return head + body

    def fail(self, what: str, *, expected=None, actual=None, shapes=None, extra: str = "",
             labels: tuple[str, str] = ("Expected", "Actual")) -> NoReturn:
        state = self.state()
        parts = [f"Rule violated: {self.rule}", f"Device: {self.device}", "Inputs:"]
        parts += [textwrap.indent(i, "  ") for i in state["inputs"]]
        parts.append(f"What went wrong: {what}")
        if expected is not None or actual is not None:
            width = max(map(len, labels)) + 1
            parts.append(f"{labels[0] + ':':<{width}} {expected}")
            parts.append(f"{labels[1] + ':':<{width}} {actual}")
        if extra:
            parts.append(extra)
        shapes = self.shapes if shapes is None else shapes
        explanation = rules.explain(*shapes) if shapes and len(shapes) > 1 else ""
        if explanation:
            parts.append(explanation)
        parts.append("Reproduce (torch, numpy and the backend under test only, no suite imports):"
                     if "the backend under test" in state["snippet"] else
                     "Reproduce (torch and numpy only, no suite imports):")
        parts.append(textwrap.indent(state["snippet"], "    "))
        details = {**state, "what": what, "expected": None if expected is None else str(expected),
                   "actual": None if actual is None else str(actual), "extra": extra,
                   "explanation": explanation}
        raise ConformanceFailure("\n".join(parts), details)

    # ------------------------------------------------------------------ checks

    def check_values(self, actual: Sequence, expected: Sequence, shape: Sequence[int], *,
                     what: str = "values differ from the oracle", close=None, extra: str = "",
                     labels: tuple[str, str] | None = None) -> None:
        """`labels` name the two sides when neither is the oracle (two variants of the op)."""
        diffs = first_differences(actual, expected, shape, close=close,
                                  **({"labels": labels} if labels else {}))
        if len(actual) != len(expected):
            diffs.insert(0, f"{len(actual)} values, expected {len(expected)}")
        if diffs:
            detail = "\n".join("  " + d for d in diffs)
            self.fail(f"{what}:\n{detail}", expected=_short(expected), actual=_short(actual), extra=extra,
                      **({"labels": labels} if labels else {}))

    def check_outcome(self, expected_error: Exception | None, actual_error: Exception | None, *,
                      kind: str | tuple[str, ...] | None = None, warned: Sequence[str] = ()) -> bool:
        """Fail unless both raised or neither did, and unless the backend's error is of the kind
        the rule expects (`conformance.errors`: its type and message; `kind` where the oracle's
        exception class does not say it); True when both raised."""
        if expected_error is None and actual_error is not None:
            self.fail("the backend raised where the rules allow the operation",
                      expected="no error", actual=f"{type(actual_error).__name__}: {actual_error}")
        if expected_error is not None and actual_error is None:
            self.fail("the backend accepted what the rules forbid",
                      expected=f"an error ({expected_error})".split("\n")[0], actual="no error")
        if expected_error is not None:
            from conformance import errors

            kind = kind or errors.kind_of(expected_error)
            device = str(self.device) if self.device else None
            if errors.matching(kind, actual_error, warned, device) is None:
                shown = " | ".join(str(actual_error).split("\n")[:2])[:400]
                self.fail("the backend raised another kind of error than the rule expects",
                          expected=f"{errors.describe(kind, device)} (the oracle: {str(expected_error).splitlines()[0]})",
                          actual=f"{type(actual_error).__name__}: {shown}"
                                 + (f" (warnings: {'; '.join(w[:200] for w in warned)})" if warned else ""))
        return expected_error is not None


NOTE_LINES = 12  # lines of each Hypothesis note kept under a failure (the drawn values)


def bound_notes(exc: BaseException, limit: int = NOTE_LINES) -> None:
    """Cut each note Hypothesis attached to `exc` (and to the exceptions of a group) to `limit`
    lines: its "Draw N" and "Failing test case" notes print every drawn value, which the suite's
    own message already shows in words.  The ``@reproduce_failure`` note is kept whole (replay
    reads it)."""
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        notes = getattr(e, "__notes__", None)
        if notes:
            e.__notes__ = [_bounded(n, limit) for n in notes]
        stack += list(getattr(e, "exceptions", ()))
        if e.__cause__ is not None:
            stack.append(e.__cause__)


def _bounded(note: str, limit: int) -> str:
    if not isinstance(note, str) or "reproduce_failure" in note:
        return note
    lines = note.split("\n")
    lines = [ln if len(ln) <= 300 else ln[:300] + " ..." for ln in lines]
    if len(lines) <= limit:
        return "\n".join(lines)
    return "\n".join(lines[:limit] + [f"    ... {len(lines) - limit} more lines of drawn values: the message "
                                        "above shows the inputs in words"])


class NondeterministicFailure(ConformanceFailure):
    """The backend answered the same example differently on repeated calls: it broke a rule once,
    and when Hypothesis ran the very same example again it did not.  A conformance failure in its
    own right (a deviation entry matches it like any other), and a stable outcome where the
    repeat is flaky: the example fails once, whichever call it is."""


def nondeterministic(flaky: BaseException) -> NondeterministicFailure | None:
    """The NondeterministicFailure for Hypothesis's FlakyFailure when the failure it saw once was
    a ConformanceFailure; None for a flaky error of another kind (the suite's own: not the backend's)."""
    first = next((e for e in getattr(flaky, "exceptions", ()) if isinstance(e, ConformanceFailure)), None)
    if first is None:
        return None
    details = {**first.details, "kind": "nondeterministic",
               "what": "nondeterministic: the same example broke the rule on one call and passed on a "
                       "repeat; the failing call: " + str(first.details.get("what", ""))}
    message = ("The backend answered the same example differently on repeated calls: Hypothesis ran it "
               "again and it passed. The call that failed:\n" + str(first))
    out = NondeterministicFailure(message, details)
    out.__notes__ = [n for e in (flaky, first) for n in getattr(e, "__notes__", [])]
    return out


def _reporting(who: str, code: str) -> str:
    return (f"print('--- {who}')\ntry:\n" + textwrap.indent(code, "    ")
            + f"\nexcept Exception as e:\n    print('{who} raised', type(e).__name__ + ':', e)")


def _restored(rule: str, device: str, inputs: list, code: list) -> Case:
    """A Case read back from a record: its inputs and code, not the current example."""
    case = Case.__new__(Case)
    case.rule, case.device, case.inputs, case.code, case.shapes = rule, device, inputs, code, []
    case.backend_calls = []
    case.named = {}
    return case


# How an op refuses its inputs: torch raises RuntimeError (c10 checks), ValueError, TypeError,
# IndexError (dims) and, for a Python int too big to become a scalar, OverflowError.
OP_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, OverflowError)


def attempt(fn):
    """(result, None) or (None, exception): run an op whose failure is part of the property."""
    try:
        return fn(), None
    except OP_ERRORS as e:
        return None, e


def show(values: Sequence, shape: Sequence[int]) -> str:
    if len(values) > 64:
        return _short(values)
    return nested_words(values, tuple(shape))


def close_with(tol):
    """A closeness predicate for `check_values` from a `tolerances.Tolerance` (nan == nan)."""
    def close(a, e):
        if isinstance(a, float) and isinstance(e, float) and (math.isnan(a) or math.isnan(e)):
            return math.isnan(a) and math.isnan(e)
        if a == e:
            return True
        return tol.allows(a, e)
    close.tolerance = tol  # lets first_differences check long rows in one vectorised pass
    return close
