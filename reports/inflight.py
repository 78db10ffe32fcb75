"""The flight recorder: what each process is running right now, kept where a crash can't erase it.

A backend that aborts or hangs takes the test process with it, and with it every Python
object that knew the input.  So each process maps a small file into memory and overwrites it
with the running property and the example's inputs whenever they change; a ``memcpy`` into a
shared mapping survives the process (the kernel owns the page), costs no system call, and is
cheap enough to do for every example.  When pytest-xdist reports a dead worker, the report
plugin reads that worker's file to say what it was running.

The example is kept pickled (a `conformance.failures.Case`: its tensors as specs, about 10 us)
rather than in words (about 100 us a tensor, for the one example in thousands that crashes);
`read` puts it into words.  The file is written by the suite's own processes, in the run's
report directory, which is what makes unpickling it fine.
"""

from __future__ import annotations

import json
import mmap
import os
import pickle
import struct
import time
from pathlib import Path

SIZE = 1 << 20                # 1 MiB per process; a longer example is left out (and marked so)
_HEAD = struct.Struct("<QQ")  # the lengths of the JSON text and of the pickled example that follow


class Recorder:
    """Writes the current record of one process into ``path``."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        self._head = b""

    def begin(self, nodeid: str, timeout: float | None) -> None:
        """A test item starts: remember which, when, and its time limit."""
        self._head = json.dumps({"nodeid": nodeid, "started": time.time(), "timeout": timeout}).encode()
        self._write(self._head)

    def example(self, case) -> None:
        """The running example gained an input: record all we know of it (`case` pickles to
        something with a ``state()`` giving plain data)."""
        self._write(self._head, pickle.dumps(case, protocol=pickle.HIGHEST_PROTOCOL))

    def end(self) -> None:
        self._head = b""
        self._write(b"")

    def close(self) -> None:
        self._map.close()
        self.path.unlink(missing_ok=True)

    def _write(self, head: bytes, example: bytes = b"") -> None:
        if _HEAD.size + len(head) + len(example) > SIZE:
            head, example = json.dumps({**json.loads(head or b"{}"), "truncated": True}).encode(), b""
        n = _HEAD.size + len(head)
        self._map[_HEAD.size:n] = head
        self._map[n:n + len(example)] = example
        self._map[:_HEAD.size] = _HEAD.pack(len(head), len(example))


def read(path: Path) -> dict | None:
    """The last record a (possibly dead) process left in ``path``, its example in words
    (``state()``); None if there is none."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if len(raw) < _HEAD.size:
        return None
    n, m = _HEAD.unpack_from(raw)
    if not (0 < n and _HEAD.size + n + m <= len(raw)):
        return None
    try:
        record = json.loads(raw[_HEAD.size:_HEAD.size + n])
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    if m:
        try:
            record["example"] = pickle.loads(raw[_HEAD.size + n:_HEAD.size + n + m]).state()
        except Exception as e:  # a record from another version of the suite, say
            record["example_error"] = f"{type(e).__name__}: {e}"
    return record
