"""What a report records of the machine and software it ran on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def suite_revision(root: Path) -> dict:
    """The suite's version (pyproject.toml), its git commit, and whether the checkout has
    uncommitted changes."""
    import tomllib
    try:
        version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, ValueError):
        version = "unknown"
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"version": version, "commit": commit, "dirty": None if status is None else bool(status)}


def torch_build() -> dict:
    import torch
    return {
        "version": torch.__version__,
        "git_version": getattr(torch.version, "git_version", None),
        "debug": bool(getattr(torch.version, "debug", False)),
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "num_threads": torch.get_num_threads(),
    }


def capture(devices: list[dict], profile: dict, workers: int) -> dict:
    import hypothesis
    import numpy
    import pytest
    return {
        "torch": torch_build(),
        "python": {"version": platform.python_version(), "implementation": sys.implementation.name},
        "platform": {"system": platform.system(), "release": platform.release(),
                     "machine": platform.machine(), "cpu_count": os.cpu_count()},
        "packages": {"numpy": numpy.__version__, "hypothesis": hypothesis.__version__,
                     "pytest": pytest.__version__},
        "devices": devices,
        "hypothesis": profile,
        "workers": workers,
    }
