"""Expected errors by kind: which exception, with which message, each rule's refusal must be.

Where a rule forbids an operation, the oracle raises, and the backend must raise **the same
kind** of error: not just any exception.  A pinned SDPA kernel's "No available kernel" is not
the validation error for heads that do not divide; a crash in argument parsing is not the
broadcast error.  Like OpInfo's ``ErrorInput(error_type, error_regex)``, each kind names the
exception types and a message pattern, with the torch releases a wording holds for where it
changed and the source that raises it.  A wording that says the same thing differently (the
decomposed form torch.compile raises) is listed as its own form with its reason; a pattern is
never loosened to ``.*``.

A backend whose errors are worded otherwise (NumPy) declares its own forms in ``ERRORS``
(kind -> list of `Form`); they replace torch's for that kind.
"""

from __future__ import annotations

import re
import warnings as _warnings
from dataclasses import dataclass

from conformance import rules


@dataclass(frozen=True)
class Form:
    """One way a backend words an error of a kind."""

    types: tuple[type, ...]
    pattern: str  # searched in str(error)
    torch: str | None = None  # PEP 440 specifier of the torch releases it holds for (None: all)
    source: str = ""
    warning: str | None = None  # a warning that must come with it (a pinned kernel's refusal)

    def matches(self, error: BaseException, warned: list[str]) -> bool:
        if not isinstance(error, self.types) or not re.search(self.pattern, str(error)):
            return False
        return self.warning is None or any(re.search(self.warning, w) for w in warned)

    def words(self) -> str:
        names = "/".join(t.__name__ for t in self.types)
        extra = f" with a warning matching /{self.warning}/" if self.warning else ""
        return f"{names} matching /{self.pattern}/{extra}"


R = (RuntimeError,)
_COMPILED = ("torch/_refs/__init__.py _broadcast_shapes: the decomposed form torch.compile and "
             "fake tensors raise for the same incompatibility")

# kind -> its forms (any one of them satisfies the rule)
KINDS: dict[str, tuple[Form, ...]] = {
    # two operands whose sizes in one dimension are neither equal nor 1 (elementwise ops,
    # broadcast_tensors, where, masked_fill's mask against self)
    "broadcast": (
        Form(R, r"The size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton dimension",
             source="aten/src/ATen/ExpandUtils.cpp infer_size_impl"),
        Form(R, r"Attempting to broadcast a dimension of length", source=_COMPILED),
        # the same message traced with dynamic shapes: each size a symbol with its value as a hint
        Form(R, r"The size of tensor a \(s\d+: hint = \d+\) must match the size of tensor b \((s\d+: hint = )?\d+\)"
                r"|The size of tensor a \(\d+\) must match the size of tensor b \(s\d+: hint = \d+\)",
             source="aten/src/ATen/ExpandUtils.cpp infer_size_impl, as torch.compile's fake tensors raise it "
                    "with dynamic shapes"),
    ),
    # torch.broadcast_shapes of incompatible shapes
    "broadcast_shapes": (
        Form(R, r"Attempting to broadcast a dimension of length \d+ at -?\d+",
             source="torch/functional.py broadcast_shapes -> torch._refs._broadcast_shapes"),
        # the wording of broadcast_shapes' own loop before it delegated to torch._refs, and of
        # the compiled matmul; the release of the change is not pinned down here (the matrix's
        # reports say which releases were run with this table)
        Form(R, r"[Ss]hape mismatch: objects cannot be broadcast to a single shape",
             source="torch/functional.py broadcast_shapes (older releases); torch/_refs/__init__.py"),
    ),
    # a negative size in a shape
    "negative_size": (
        Form((ValueError, RuntimeError), r"negative (length|dimension|size)",
             source="torch._refs._broadcast_shapes; c10 'Trying to create tensor with negative dimension'"),
        # broadcast_shapes names a negative size against a positive one as a mismatch of that length
        Form(R, r"Attempting to broadcast a dimension of length -\d+", source="torch/_refs/__init__.py _broadcast_shapes"),
    ),
    # expand / broadcast_to to sizes the tensor cannot stretch to
    "expand": (
        Form(R, r"The expanded size of the tensor \(-?\d+\) must match the existing size", source="aten/src/ATen/ExpandUtils.cpp inferExpandGeometry"),
        Form(R, r"The expanded size of the tensor \(-1\) isn't allowed in a leading, non-existing dimension",
             source="aten/src/ATen/ExpandUtils.cpp inferExpandGeometry"),
        Form(R, r"the number of sizes provided \(\d+\) must be greater or equal to the number of dimensions",
             source="aten/src/ATen/native/TensorShape.cpp expand"),
        Form(R, r"Attempting to broadcast a dimension of length", source=_COMPILED),
        # the decomposed expand torch.compile traces (its checks, in its own words)
        Form(R, r"expand: attempting to expand a dimension of length \S+ -> \S+!",
             source="torch/_refs/__init__.py expand: the decomposed form torch.compile raises"),
        Form(R, r"expand: the requested shape has too few dimensions!",
             source="torch/_refs/__init__.py expand: the decomposed form torch.compile raises"),
    ),
    # an in-place op whose other operand would grow self
    "inplace_grows_self": (
        Form(R, r"output with shape \[[\d, ]*\] doesn't match the broadcast shape",
             source="aten/src/ATen/TensorIterator.cpp compute_shape (resize_outputs=false)"),
        Form(R, r"Attempting to broadcast a dimension of length", source=_COMPILED),
        Form(R, r"(shape|size).*(does not|doesn't) match|must match", source="the compiled in-place check"),
    ),
    # a fill value the dtype cannot hold (c10 checked_convert), or a Python int too big for a scalar
    "conversion": (
        Form(R, r"value cannot be converted to type \S+ without overflow", source="c10/util/TypeCast.h checked_convert"),
        Form((OverflowError, RuntimeError),
             r"(int too big to convert|Overflow when unpacking long|out of range|can't convert negative int to unsigned)",
             source="torch/csrc/utils/python_numbers.h THPUtils_unpackLong"),
    ),
    # masked_fill's mask must be bool
    "mask_dtype": (
        Form(R, r"masked_fill_? only supports boolean masks", source="aten/src/ATen/native/TensorAdvancedIndexing.cpp masked_fill"),
        Form(R, r"expected predicate to be bool, got torch\.\w+",
             source="torch/_refs/__init__.py where (masked_fill's decomposition): the form torch.compile raises"),
    ),
    # masked_fill's value tensor must be 0-d
    "value_dim": (
        Form(R, r"only supports a 0-dimensional value tensor", source="aten/src/ATen/native/TensorAdvancedIndexing.cpp masked_fill"),
    ),
    # tril/triu of a tensor with fewer than 2 dims
    "tril_dims": (
        Form(R, r"(tril|triu): input tensor must have at least 2 dimensions",
             source="aten/src/ATen/native/TriangularOps.cpp check_tril_triu_args"),
    ),
    # SDPA: attn_mask together with is_causal=True
    "sdpa_mask_with_causal": (
        Form(R, r"Explicit attn_mask should not be set when is_causal=True",
             source="aten/src/ATen/native/transformers/attention.cpp validate_sdpa_input"),
    ),
    # SDPA enable_gqa: the kv heads do not divide the query heads
    "gqa_heads": (
        Form(R, r"Number of heads in key and value must divide the number of heads in",
             source="aten/src/ATen/native/transformers/attention.cpp pre_process_group_query_attention_input"),
        # A pinned fused kernel checks its constraints first and refuses, naming this one in
        # its warning: the same validation, in the dispatcher's words (sdp_utils_cpp.h
        # check_grouped_query_attention).  A refusal for any other reason does not match.
        Form(R, r"No available kernel", warning=r"heads in key/value must divide number of heads in query",
             source="aten/src/ATen/native/transformers/sdp_utils_cpp.h check_grouped_query_attention"),
    ),
    # the oracle's shape type errors (a bool or float where a size goes)
    "shape_type": (
        Form((TypeError, RuntimeError), r"(must be|expected|got) .*(int|tuple|Size|sequence)|bool",
             source="torch/csrc/utils/python_arg_parser.cpp"),
    ),
}


# Devices whose own layers refuse before torch's check and word it their own way: forms accepted
# besides the backend's for that kind, on that device only.  XLA infers every op's output shape
# while tracing, and its shape inference refuses incompatible operands first.
DEVICE_KINDS: dict[str, dict[str, tuple[Form, ...]]] = {
    "xla": {
        "broadcast": (
            Form(R, r"Shapes are not compatible for broadcasting: \S+ vs\. \S+",
                 source="XLA's shape inference (xla/service/shape_inference.cc, reached through torch_xla's "
                        "lowering of the elementwise op); seen on torch_xla 2.9.0: torch.zeros(0, device='xla') "
                        "+ torch.zeros(2, device='xla')"),
        ),
    },
}


def expect(oracle_error: BaseException, *kinds: str) -> BaseException:
    """`oracle_error`, marked with the kinds of error that satisfy it (any one of them: where two
    rules are broken at once, an op may check either first)."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise KeyError(f"unknown error kinds {unknown}; known: {', '.join(KINDS)}")
    oracle_error.error_kinds = kinds
    return oracle_error


def kind_of(oracle_error: BaseException) -> tuple[str, ...]:
    """The kinds of error that satisfy an oracle exception: those `expect` marked it with, or
    the one its class says (`rules`)."""
    if marked := getattr(oracle_error, "error_kinds", None):
        return tuple(marked)
    return (_class_kind(oracle_error),)


def _class_kind(oracle_error: BaseException) -> str:
    if isinstance(oracle_error, rules.ConversionError):
        return "conversion"
    if isinstance(oracle_error, rules.BroadcastError):
        return "broadcast"
    if isinstance(oracle_error, TypeError):
        return "shape_type"
    if isinstance(oracle_error, ValueError) and "negative" in str(oracle_error):
        return "negative_size"
    raise KeyError(f"no error kind for the oracle's {type(oracle_error).__name__}: {oracle_error}; "
                   "pass kind= to check_outcome")


def forms(kind: str, device: str | None = None) -> tuple[Form, ...]:
    """The forms of `kind` that hold for the running torch and backend, and on `device`."""
    from conformance import releases, session
    from conformance.devices import device_type

    if kind not in KINDS:
        raise KeyError(f"unknown error kind {kind!r}; known: {', '.join(KINDS)}")
    extra = DEVICE_KINDS.get(device_type(device), {}).get(kind, ()) if device else ()
    own = session.current().errors.get(kind) if session.current() is not None else None
    if own is not None:
        return (*own, *extra)
    return (*(f for f in KINDS[kind] if f.torch is None or releases.holds(f.torch)), *extra)


def matching(kinds: str | tuple[str, ...], error: BaseException, warned: list[str] = (),
             device: str | None = None) -> Form | None:
    """The form of one of `kinds` that `error` (with the warnings raised beside it) matches on
    `device`, or None.  torch.compile wraps an op's error in its own exception whose message
    holds the original."""
    for kind in (kinds,) if isinstance(kinds, str) else kinds:
        for form in forms(kind, device):
            if form.matches(error, list(warned)):
                return form
    return None


def describe(kinds: str | tuple[str, ...], device: str | None = None) -> str:
    return " or ".join(f"{kind}: " + " or ".join(f.words() for f in forms(kind, device))
                       for kind in ((kinds,) if isinstance(kinds, str) else kinds))


class Warned:
    """Collects the warnings an op raises (a pinned kernel says why it refused in one)."""

    def __enter__(self) -> list[str]:
        self._cm = _warnings.catch_warnings(record=True)
        self._log = self._cm.__enter__()
        _warnings.simplefilter("always")
        self.messages: list[str] = []
        return self.messages

    def __exit__(self, *exc) -> None:
        self.messages.extend(str(w.message) for w in self._log)
        self._cm.__exit__(*exc)
