"""Claims: what a property's examples must reach (the ``reach`` marker, built with the helpers
below), how a claim is counted, and its margin: max(3, 1 %) of the examples."""

from __future__ import annotations

import fnmatch
from typing import Iterable

from conformance import rules
from conformance.reach.classes import FLOAT_SPECIALS, INT_SPECIALS, LAYOUTS, band, bands

def claimed(item) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The classes a test item claims (its ``reach`` markers): its own, and those its
    property claims across all its parameters on a device (``property=(...)``)."""
    own: list[str] = []
    shared: list[str] = []
    for mark in item.iter_markers("reach"):
        own += [c for c in mark.args if c not in own]
        shared += [c for c in mark.kwargs.get("property", ()) if c not in shared]
    return tuple(own), tuple(shared)


def claim_matches(claim: str, name: str) -> bool:
    """Whether class `name` is one that `claim` names (a class, a glob or alternatives)."""
    return any(fnmatch.fnmatchcase(name, alt) if any(ch in alt for ch in "*?[") else name == alt
               for alt in claim.split(" | "))


def claim_count(claim: str, counts: dict) -> int:
    """How many examples reached `claim`: a class name, a glob, or alternatives joined by
    " | " (the examples of every class it names; an example in two of them counts twice)."""
    total = 0
    for alt in claim.split(" | "):
        if any(ch in alt for ch in "*?["):
            total += sum(n for k, n in counts.items() if fnmatch.fnmatchcase(k, alt))
        else:
            total += counts.get(alt, 0)
    return total


# Once a test has reached every class it claims (its own and its property's) with margin, only
# one example in CLASSIFY_EVERY is classified: the counts stay a sample of the whole run, at an
# eighth of the cost (the report says how many examples were classified)
CLASSIFY_EVERY = 8

# A claim holds when at least max(MARGIN_FLOOR, MARGIN_SHARE of the examples) reached it: a class
# one example in 300 reaches is a class a re-draw loses (the `ci` examples depend on the suite's
# source text, so an edit to a message re-draws them), and such a claim would fail CI on a change
# that touched no rule.
MARGIN_FLOOR = 3
MARGIN_SHARE = 0.01


def margin(examples: int) -> int:
    """The examples a claim needs to hold in a run of `examples` checked examples: max(3, 1 %),
    or every example of a test that ran fewer than 3 (a strategy with two distinct examples,
    which Hypothesis stops at); 1 when the count is unknown (a report from before margins)."""
    import math

    return max(1, min(examples, max(MARGIN_FLOOR, math.ceil(MARGIN_SHARE * examples))))


class Pending:
    """The claims of a test that fewer than `need` classified examples have reached yet: until
    there are none, every example is classified, so a count below the margin is exact."""

    def __init__(self, claims: Iterable[str], need: int = MARGIN_FLOOR):
        self.left = list(dict.fromkeys(claims))
        self.need = need
        self.counts: dict[str, int] = {}

    @property
    def done(self) -> bool:
        return not self.left

    def reached(self, classes: set) -> None:
        if self.left:
            one = dict.fromkeys(classes, 1)
            for c in self.left:
                self.counts[c] = self.counts.get(c, 0) + claim_count(c, one)
            self.left = [c for c in self.left if self.counts[c] < self.need]


def unreached(claims: Iterable[str], counts: dict, examples: int = 0) -> list[str]:
    """The claims reached by fewer than `margin(examples)` examples (see `claim_count`)."""
    need = margin(examples)
    return [c for c in claims if claim_count(c, counts) < need]


def of(prefix: str, *classes: str) -> tuple[str, ...]:
    return tuple(f"{prefix}.{c}" for c in classes)


def layouts(arg: str, kinds: Iterable[str] = LAYOUTS) -> tuple[str, ...]:
    """`arg` reaches every layout in `kinds`."""
    return of(arg, *(f"layout:{k}" for k in kinds))


def sizes(name: str, max_n: int, min_n: int = 0) -> tuple[str, ...]:
    """`name` (e.g. ``softmax.width``) reaches every size class of min_n..max_n."""
    return tuple(f"{name}:{b}" for b in bands(max_n, min_n))


def octaves(name: str, max_n: int, min_n: int = 0) -> tuple[str, ...]:
    """`name` reaches 0 and 1 (where in range) and some size in each [2^k, 2^(k+1)) that
    min_n..max_n meets: a coarser claim than `sizes`, for fewer examples."""
    out = [f"{name}:{n}" for n in (0, 1) if min_n <= n <= max_n]
    k = 1
    while 1 << k <= max_n:
        lo, hi = max(1 << k, min_n), min((2 << k) - 1, max_n)
        if lo <= hi:
            out.append(" | ".join(dict.fromkeys(f"{name}:{band(n)}" for n in range(lo, hi + 1))))
        k += 1
    return tuple(out)


def boundaries(name: str, max_n: int, min_n: int = 0) -> tuple[str, ...]:
    """`name` reaches each power of two in min_n..max_n or a neighbour of it (one short, the
    power, one past): a block boundary and its off-by-ones.  (Exact single sizes are too thin
    a target for a few hundred examples, most of them copies of earlier ones; the report
    counts each.)"""
    out = []
    k = 0
    while 1 << k <= max_n:
        p = 1 << k
        near = [f"{name}:{band(n)}" for n in (p - 1, p, p + 1) if n >= max(min_n, 1) and n <= max_n]
        if near:
            out.append(" | ".join(dict.fromkeys(near)))
        k += 1
    return tuple(dict.fromkeys(out))


def ranges(name: str, max_n: int, min_n: int = 0, edges: tuple[int, ...] = (0, 1, 16, 256, 1024)) -> tuple[str, ...]:
    """`name` reaches some size in each of the ranges [0], [1], [2, 16], [17, 256],
    [257, 1024] and [1025, max_n] that min_n..max_n meets (`edges`: where each range ends)."""
    out = []
    lo = min_n
    for hi in (*[e for e in edges if e >= min_n], max_n):
        hi = min(hi, max_n)
        if lo <= hi:
            out.append(" | ".join(dict.fromkeys(f"{name}:{band(n)}" for n in range(lo, hi + 1))))
        lo = max(lo, hi + 1)
    return tuple(out)


def dtypes(arg: str, names: Iterable[str]) -> tuple[str, ...]:
    return of(arg, *(f"dtype:{d}" for d in names))


def specials(arg: str, dtype_names: Iterable[str], floats: Iterable[str] = FLOAT_SPECIALS,
             ints: Iterable[str] = INT_SPECIALS) -> tuple[str, ...]:
    """`arg` holds each special value its dtypes can hold."""
    names = set(dtype_names)
    out = list(floats) if names & set(rules.FLOAT_DTYPES) else []
    out += list(ints) if names & set(rules.INT_DTYPES) else []
    return of(arg, *(f"values:{v}" for v in out))



def operand(prefix: str, names: Iterable[str] = rules.DTYPES, kinds: Iterable[str] = LAYOUTS,
            max_numel: int = 128) -> tuple[str, ...]:
    """What an operand `prefix` (``add.a``) reaches: every layout in `kinds` and dtype in
    `names`, the special values of those dtypes, a 0-d tensor, and sizes 0, 1, 2-16 and
    17-`max_numel`."""
    names = tuple(names)
    return (*layouts(prefix, kinds), *dtypes(prefix, names), *specials(prefix, names),
            f"{prefix}.ndim:0", *ranges(f"{prefix}.numel", max_numel, edges=(0, 1, 16)))


def broadcasting(op: str, *names: str, errors: bool = True) -> tuple[str, ...]:
    """What the operands of a broadcasting `op` reach together: equal and mixed ranks, each
    of `names` the one of highest rank, a 1 stretched to n, and (when `errors`) incompatible
    sizes that make the op raise.  (A 1 stretched to 0 is rarer: see `stretched_to_0`.)"""
    return (*of(op, "rank:equal", "rank:mixed", "stretch:1-vs-n", "outcome:returns"),
            *of(op, *(f"rank:{n}-highest" for n in names)),
            *(of(op, "sizes:incompatible", "outcome:raises") if errors else ()))


def mask(prefix: str, kinds: Iterable[str] = LAYOUTS) -> tuple[str, ...]:
    """A bool mask `prefix` reaches every layout in `kinds`, all True, all False and mixed."""
    return (*layouts(prefix, kinds), *of(prefix, "mask:all", "mask:none", "mask:mixed"))



def stretched_to_0(op: str = "*") -> tuple[str, ...]:
    """A 1 stretched against a 0 (the result is empty) by `op`: claimed across a property's
    parameters (``op="*"``: by any of them) where one parameter's examples reach it too rarely."""
    return (f"{op}.stretch:1-vs-0",)


def params(values: Iterable, own, shared=()) -> list:
    """pytest parameters of `values`, each marked as claiming the classes ``own(value)``, and its
    property (across the parameters) claiming `shared`: a tuple, or a function of the value.
    The one way a parametrized property attaches its claims."""
    import pytest

    return [pytest.param(v, marks=pytest.mark.reach(*own(v), property=shared(v) if callable(shared) else tuple(shared)))
            for v in values]
