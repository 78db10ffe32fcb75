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


def expectations(backend) -> dict:
    """What the report records of the version-aware tables for the running torch: the policy of
    each API, which features the release has, and the kernels `backend` declares missing."""
    from dataclasses import asdict

    from conformance import attention_apis as apis
    from conformance.releases import holds, torch_version

    policies = []
    for api in dict.fromkeys(p.api for p in apis.POLICIES):
        try:
            policies.append(asdict(apis.policy(api)))
        except LookupError:  # the table has no policy for this release: the property says so
            pass
    return {"torch": str(torch_version()), "policies": policies,
            "features": {name: apis.has(name) is None for name in apis.FEATURES},
            "missing": [{**asdict(m), "ops": list(m.ops), "dtypes": list(m.dtypes), "devices": list(m.devices)}
                        for m in backend.missing if holds(m.torch)]}
