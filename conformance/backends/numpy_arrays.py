"""NumPy as a second, independent backend for the broadcasting properties.

np.broadcast_shapes, np.broadcast_arrays, np.broadcast_to and the ufuncs (add, multiply,
equal, less, where; in place through ``out=``) follow the same broadcasting rules as torch,
so the same properties apply.  NumPy has no bfloat16, no expand and no masked_fill: those
properties are skipped, by name, in the report.
"""

from __future__ import annotations

import numpy as np

from conformance.errors import Form

NAME = "numpy"
DTYPES = ("float16", "float32", "float64", "int32", "int64", "bool")
DEVICES = ("cpu",)
DEVIATIONS = ("numpy",)

_NP = {"float16": np.float16, "float32": np.float32, "float64": np.float64, "int32": np.int32,
       "int64": np.int64, "bool": np.bool_}


# --------------------------------------------------------------------------- arrays


def from_spec(spec, device):
    base = np.array(spec.storage, dtype=_NP[spec.dtype])
    item = base.itemsize
    return np.lib.stride_tricks.as_strided(base[spec.offset:], shape=spec.shape,
                                           strides=tuple(s * item for s in spec.strides),
                                           writeable=0 not in spec.strides or 0 in spec.shape)


def to_list(a):
    return np.asarray(a).reshape(-1).tolist()


def shape(a):
    return tuple(a.shape)


def strides(a):
    return tuple(s // a.itemsize for s in a.strides)


def shares_memory(view, x):
    return bool(np.shares_memory(view, x))


# How NumPy words each kind of error (`conformance.errors`): it raises ValueError throughout.
_NUMPY_SOURCE = "numpy/lib/_stride_tricks_impl.py and the ufunc machinery (numpy/_core/src/umath)"
ERRORS = {
    "broadcast": [Form((ValueError,), r"operands could not be broadcast together with shapes|"
                                      r"shape mismatch: objects cannot be broadcast to a single shape", source=_NUMPY_SOURCE)],
    "broadcast_shapes": [Form((ValueError,), r"shape mismatch: objects cannot be broadcast to a single shape",
                              source=_NUMPY_SOURCE)],
    "negative_size": [Form((ValueError,), r"negative dimensions are not allowed", source=_NUMPY_SOURCE)],
    "expand": [Form((ValueError,), r"operands could not be broadcast together with remapped shapes|"
                                   r"input operand has more dimensions than allowed by the axis remapping|"
                                   r"cannot broadcast a non-scalar to a scalar array", source=_NUMPY_SOURCE)],
    "inplace_grows_self": [Form((ValueError,), r"non-broadcastable output operand with shape .* doesn't match "
                                               r"the broadcast shape", source=_NUMPY_SOURCE)],
}

# --------------------------------------------------------------------------- ops


def broadcast_shapes(*shapes):
    return np.broadcast_shapes(*shapes)


def broadcast_tensors(*arrays):
    return np.broadcast_arrays(*arrays)


def broadcast_to(x, shape):
    return np.broadcast_to(x, shape)


def add(a, b):
    return np.add(a, b)


def mul(a, b):
    return np.multiply(a, b)


def eq(a, b):
    return np.equal(a, b)


def lt(a, b):
    return a < b


def where(cond, a, b):
    return np.where(cond, a, b)


def add_(x, other):
    return np.add(x, other, out=x)


def sub_(x, other):
    return np.subtract(x, other, out=x)


def mul_(x, other):
    return np.multiply(x, other, out=x)


def iadd(x, other):
    x += other
    return x
