"""The one mapping between NumPy dtypes and xDSL element types (used by every wrc layer).

wrc supports float16/32/64, int8/16/32/64 (signless integers in the IR, signed in NumPy)
and bool (`i1`). Anything else is an `UnsupportedDtypeError` naming the type.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import (
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    MemRefType,
    Signedness,
    TensorType,
    f16,
    f32,
    f64,
    i1,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute

from wrc.errors import UnsupportedDtypeError

_PAIRS: tuple[tuple[np.dtype[Any], Attribute], ...] = (
    (np.dtype(np.float16), f16),
    (np.dtype(np.float32), f32),
    (np.dtype(np.float64), f64),
    (np.dtype(np.int8), i8),
    (np.dtype(np.int16), i16),
    (np.dtype(np.int32), i32),
    (np.dtype(np.int64), i64),
    (np.dtype(np.bool_), i1),
)

SUPPORTED_DTYPES: tuple[np.dtype[Any], ...] = tuple(d for d, _ in _PAIRS)
"""Every NumPy dtype wrc accepts, in a stable order."""

_TO_ELEMENT: dict[np.dtype[Any], Attribute] = dict(_PAIRS)
_TO_NUMPY: dict[Attribute, np.dtype[Any]] = {t: d for d, t in _PAIRS}


def to_element_type(dtype: np.dtype[Any] | str | type) -> Attribute:
    """The xDSL element type of a NumPy dtype (anything `np.dtype()` accepts)."""
    try:
        key = np.dtype(dtype)
    except TypeError as e:
        raise UnsupportedDtypeError(f"not a dtype: {dtype!r}") from e
    # Byte order is not part of the IR type: '>f4' is rejected rather than silently swapped.
    if key.byteorder == ">" or key not in _TO_ELEMENT:
        raise UnsupportedDtypeError(
            f"unsupported dtype {key.str if key.byteorder == '>' else key.name}; wrc supports "
            + ", ".join(d.name for d in SUPPORTED_DTYPES)
        )
    return _TO_ELEMENT[key]


def to_numpy_dtype(element_type: Attribute) -> np.dtype[Any]:
    """The NumPy dtype of an xDSL element type (`f32` → float32, `i1` → bool, ...)."""
    dtype = _TO_NUMPY.get(element_type)
    if dtype is None:
        # Signed/unsigned integers (si32, ui8) are not the signless types wrc uses.
        raise UnsupportedDtypeError(f"unsupported element type {element_type}")
    return dtype


def is_float(element_type: Attribute) -> bool:
    """True for the floating-point element types wrc supports."""
    return isinstance(element_type, Float16Type | Float32Type | Float64Type)


def is_integer(element_type: Attribute) -> bool:
    """True for wrc's signless integer element types, `i1` included."""
    return (
        isinstance(element_type, IntegerType)
        and element_type.signedness.data == Signedness.SIGNLESS
        and element_type in _TO_NUMPY
    )


def shape_and_dtype(type_: Attribute) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """(static shape, dtype) of a ranked memref/tensor type, or ((), dtype) of a scalar type."""
    if isinstance(type_, MemRefType | TensorType):
        return tuple(type_.get_shape()), to_numpy_dtype(type_.get_element_type())
    return (), to_numpy_dtype(type_)
