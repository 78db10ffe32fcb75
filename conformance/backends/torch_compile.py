"""torch.compile: every op of torch eager, compiled with inductor and dynamic shapes.

Each op is compiled once (``dynamic=True``, so a new size does not recompile; a new rank,
dtype or layout does).  DIFFERENTIAL is on: each call is also run by torch eager on CPU,
so compiled code must raise where eager raises and agree with it within
`tolerances.cross_backend`, besides obeying every property.  Recompilation limits are
lifted: hitting one would make dynamo silently fall back to eager and test eager instead.
`reset` drops every compiled graph before each test: what dynamo compiles depends on what it
compiled before, and without the reset a property's result depended on which tests its xdist
worker had run before it (a -0.0 deviation showed in one property in a full run, not when that
property ran alone).
"""

from __future__ import annotations

import torch
import torch._dynamo

from conformance.backends import OPS, torch_eager

NAME = "torch-compile"
DEVIATIONS = ("torch", "torch-compile")
DIFFERENTIAL = True
COMPILE = {"backend": "inductor", "dynamic": True}
TRACED = True  # ops run under dynamo: torch.compiler.is_compiling() is True inside them

torch._dynamo.config.recompile_limit = 1_000_000
torch._dynamo.config.accumulated_recompile_limit = 1_000_000

for _op in OPS:
    globals()[_op] = torch.compile(getattr(torch_eager, _op), **COMPILE)


def REPRODUCE(ops) -> str:
    """Code that binds ``backend`` to these ops compiled as this backend compiles them (the
    failure's snippet: no suite import, torch only)."""
    import inspect
    import textwrap

    lines = ["import types", "import torch.nn.functional as F", "torch._dynamo.config.recompile_limit = 1_000_000"]
    for op in sorted(set(ops)):
        lines.append(textwrap.dedent(inspect.getsource(getattr(torch_eager, op))).strip())
    lines.append("backend = types.SimpleNamespace(" + ", ".join(
        f"{op}=torch.compile({op}, backend={COMPILE['backend']!r}, dynamic={COMPILE['dynamic']})"
        for op in sorted(set(ops))) + ")  # --backend torch-compile")
    return "\n".join(lines)


def COMPILES() -> int:
    """Graphs dynamo has compiled in this process (the report's compiles per test)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def reset() -> None:
    torch._dynamo.reset()
