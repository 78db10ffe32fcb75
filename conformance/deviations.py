"""Known deviations: where a backend departs from the documented rules, on purpose and on record.

One TOML file per backend (``conformance/deviations/<backend>.toml``, like array-api-tests'
xfails files), chosen with ``--deviations FILE[,FILE...]``.  Each ``[[deviation]]`` entry has

* ``id``: a test id relative to ``conformance/`` (``test_module.py::test_name[params]``); it
  matches every test whose id starts with it, so ``test_x.py::test_y`` covers all its
  parameters and ``test_x.py::test_y[cuda`` only the CUDA ones;
* ``reason``: what the backend does instead of what the rule says;
* ``link``: where the rule is documented (or the upstream bug);
* ``torch`` (optional): a PEP 440 specifier of the torch releases the deviation holds for
  (``"<2.5"``); on a release it excludes, the entry applies to no test and the report lists it
  as ``not_applicable`` (not ``unmatched``: it is right, for other releases);
* ``inputs`` (optional): reach classes (names or globs, see `conformance.reach`) of the inputs
  that deviate, such as ``"masked_fill*.value:overflows"``.

A matched test without ``inputs`` still runs, as a strict xfail that accepts only a
ConformanceFailure: the run stays green on the deviation, turns red on any other failure, and
turns red once the backend is fixed (the report says "fixed: remove the entry").

An entry with ``inputs`` narrows the deviation to the examples in those classes: the test runs
as usual and every other example is checked (its failure fails the run); an example in the
classes that fails with a ConformanceFailure is counted as deviated, not as checked.  The
test's outcome is ``known_deviation`` when some example deviated, and ``passed`` (the entry
``not_shown``) when none did: the classes contain the trigger, so an example in them need not
hit it, and an entry is not called fixed on that evidence.

An entry that matches no collected test is reported too, so the lists do not rot.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from conformance import releases

DIRECTORY = Path(__file__).with_name("deviations")
DEFAULT_BACKEND = "torch"


class DeviationFileError(ValueError):
    """A deviation file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Deviation:
    id: str
    reason: str
    link: str
    file: str
    torch: str | None = None  # PEP 440 specifier of the releases it holds for (None: all)
    inputs: tuple[str, ...] = ()  # reach classes of the deviating examples (empty: all of them)

    def matches(self, test_id: str) -> bool:
        return test_id.startswith(self.id)

    def covers(self, classes) -> bool:
        """Whether an example of these reach classes is one the entry expects to deviate."""
        from conformance import reach

        counts = dict.fromkeys(classes, 1)
        return not self.inputs or any(reach.claim_count(c, counts) for c in self.inputs)

    def applies(self, version=None) -> bool:
        """Whether the entry holds for torch `version` (default: the running torch)."""
        return releases.holds(self.torch, version)


def default_files(names=(DEFAULT_BACKEND,)) -> list[Path]:
    """A backend's DEVIATIONS: names of files in conformance/deviations/, or paths."""
    return [Path(n) if n.endswith(".toml") else DIRECTORY / f"{n}.toml" for n in names]


def load(paths: list[Path]) -> list[Deviation]:
    """Every entry of the given files, validated."""
    found: list[Deviation] = []
    for path in paths:
        try:
            with Path(path).open("rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise DeviationFileError(f"deviation file {path}: cannot read it ({e.strerror})") from None
        except tomllib.TOMLDecodeError as e:
            raise DeviationFileError(f"deviation file {path}: not valid TOML ({e})") from None
        unknown = set(data) - {"deviation"}
        if unknown:
            raise DeviationFileError(f"deviation file {path}: unknown tables {sorted(unknown)}; "
                                     "entries go in [[deviation]]")
        for n, entry in enumerate(data.get("deviation", []), 1):
            where = f"deviation file {path}, entry {n}"
            if not isinstance(entry, dict):
                raise DeviationFileError(f"{where}: expected a table")
            missing = [k for k in ("id", "reason", "link") if not isinstance(entry.get(k), str)
                       or not entry[k].strip()]
            if missing:
                raise DeviationFileError(f"{where}: needs a non-empty string for {missing}")
            extra = set(entry) - {"id", "reason", "link", "torch", "inputs"}
            if extra:
                raise DeviationFileError(f"{where}: unknown keys {sorted(extra)}")
            if "::" not in entry["id"]:
                raise DeviationFileError(f"{where}: id {entry['id']!r} is not a test id "
                                         "(test_module.py::test_name[params])")
            spec = entry.get("torch")
            if spec is not None:
                if not isinstance(spec, str):
                    raise DeviationFileError(f"{where}: torch must be a string such as '<2.5'")
                try:
                    releases.specifier(spec)
                except releases.BadSpecifier as e:
                    raise DeviationFileError(f"{where}: {e}") from None
            inputs = entry.get("inputs", [])
            if not isinstance(inputs, list) or not all(isinstance(c, str) and c.strip() for c in inputs):
                raise DeviationFileError(f"{where}: inputs must be a list of reach classes such as "
                                         "['masked_fill*.value:overflows']")
            if "inputs" in entry and not inputs:
                raise DeviationFileError(f"{where}: inputs is empty; leave it out to cover every example")
            found.append(Deviation(entry["id"], entry["reason"].strip(), entry["link"], str(path), spec,
                                   tuple(inputs)))
    return found


def matching(deviations: list[Deviation], test_id: str, version=None) -> Deviation | None:
    """The longest (most specific) entry whose id is a prefix of ``test_id``, among those that
    hold for torch `version` (default: the running torch)."""
    hits = [d for d in deviations if d.matches(test_id) and d.applies(version)]
    return max(hits, key=lambda d: len(d.id)) if hits else None


def relative_id(nodeid: str) -> str:
    """A pytest node id relative to the conformance directory."""
    return nodeid.split("conformance/", 1)[1] if nodeid.startswith("conformance/") else nodeid
