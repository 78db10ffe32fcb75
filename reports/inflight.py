"""The flight recorder: what each process is running right now, kept where a crash can't erase it.

A backend that aborts or hangs takes the test process with it, and with it every Python
object that knew the input.  So each process maps a small file into memory and overwrites it
with the running property and the example's inputs whenever they change; a ``memcpy`` into a
shared mapping survives the process (the kernel owns the page), costs no system call, and is
cheap enough to do for every example.  When pytest-xdist reports a dead worker, the report
plugin reads that worker's file to say what it was running.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import time
from pathlib import Path

SIZE = 1 << 20               # 1 MiB per process; a longer record is cut (and marked so)
_HEAD = struct.Struct("<Q")  # the length of the JSON text that follows


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
        self._head = ""

    def begin(self, nodeid: str, timeout: float | None) -> None:
        """A test item starts: remember which, when, and its time limit."""
        self._head = json.dumps({"nodeid": nodeid, "started": time.time(), "timeout": timeout})
        self._write(self._head)

    def example(self, state: dict) -> None:
        """The running example gained an input: record all we know of it."""
        self._write(self._head[:-1] + ', "example": ' + json.dumps(state) + "}")

    def end(self) -> None:
        self._head = ""
        self._write("")

    def close(self) -> None:
        self._map.close()
        self.path.unlink(missing_ok=True)

    def _write(self, text: str) -> None:
        data = text.encode()
        if len(data) > SIZE - _HEAD.size:
            data = json.dumps({**json.loads(self._head or "{}"), "truncated": True}).encode()
        self._map[_HEAD.size:_HEAD.size + len(data)] = data
        self._map[:_HEAD.size] = _HEAD.pack(len(data))


def read(path: Path) -> dict | None:
    """The last record a (possibly dead) process left in ``path``; None if there is none."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if len(raw) < _HEAD.size:
        return None
    (n,) = _HEAD.unpack_from(raw)
    if not 0 < n <= len(raw) - _HEAD.size:
        return None
    try:
        record = json.loads(raw[_HEAD.size:_HEAD.size + n])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
