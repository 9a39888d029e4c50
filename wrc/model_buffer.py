"""The in-memory bundle (GE's `ModelBufferData`) and the facts every reader of it derives.

A bundle is a level-3 module (docs/internals.md) plus the bytes of the constants whose
values are not inline: `memref.global ... constant, initial_value` (a `UnitAttr`) takes its
value from `weights[sym_name]`. Non-constant globals are the variables; the runtime holds
their storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, UnitAttr
from xdsl.dialects.memref import GlobalOp
from xdsl.ir import Attribute

from wrc.dtypes import UnsupportedDtypeError, to_numpy_dtype

Spec = tuple[tuple[int, ...], np.dtype]
"""(shape, dtype) of a tensor."""


def element_dtype(t: Attribute) -> np.dtype | None:
    """The NumPy dtype of an xDSL element type, or None when wrc does not support it."""
    try:
        return to_numpy_dtype(t)
    except UnsupportedDtypeError:
        return None


def c_array(a: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
    """`a` as a C-contiguous array of `dtype`, copied only if needed.

    Unlike `np.ascontiguousarray`, keeps 0-d arrays 0-d (scalar weights are shape `()`).
    """
    dtype = a.dtype if dtype is None else dtype
    if a.flags.c_contiguous and a.dtype == dtype:
        return a
    return np.array(a, dtype=dtype, order="C")


def global_spec(op: GlobalOp) -> Spec | None:
    """(shape, dtype) of a global, or None if its type has dynamic dims or an unsupported dtype."""
    t = op.type
    shape = tuple(t.get_shape())
    dtype = element_dtype(t.element_type)
    if dtype is None or any(d < 0 for d in shape):
        return None
    return shape, dtype


def module_globals(module: ModuleOp) -> dict[str, GlobalOp]:
    """The module's `memref.global` ops by symbol name, in order."""
    return {op.sym_name.data: op for op in module.ops if isinstance(op, GlobalOp)}


def module_funcs(module: ModuleOp) -> dict[str, func.FuncOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}


DERIVE_ATTR = "ge.derive"
"""Marks a function of `ge-hoist-weight-only` that computes derived variables from weights;
the runtime runs it when one of the variables it reads changed (not a graph of the bundle)."""


GATHER_CALL, GATHER_AXIS = "wrc_gather", "wrc.gather_axis"
"""`library_call` and axis attribute of the `linalg.generic` a `ge.gather` becomes: the
generic's body is a one-hot reduction (what the interpreter runs), the NumPy JIT takes rows."""


def derive_funcs(module: ModuleOp, graphs: tuple[str, ...]) -> list[func.FuncOp]:
    """The module's derive functions, in module order (a graph is never one)."""
    return [f for name, f in module_funcs(module).items() if DERIVE_ATTR in f.attributes and name not in graphs]


def is_variable(op: GlobalOp) -> bool:
    """Non-constant globals are variables: storage the runtime owns (docs/spec.md §2 `<const>_var`)."""
    return op.constant is None


def stored_weight_names(module: ModuleOp) -> list[str]:
    """Constants whose value is not inline: their bytes live in the weight table."""
    return [
        name
        for name, op in module_globals(module).items()
        if not is_variable(op) and isinstance(op.initial_value, UnitAttr)
    ]


@dataclass(frozen=True)
class ModelBuffer:
    """A built bundle in memory: what `bundle_build_model` returns and a bundle file holds.

    * `module`: the level-3 IR of every graph (and the globals they share),
    * `graphs`: names of the bundle's graphs (its `func.func`s) in build order,
    * `weights`: the values of the stored constants, by global symbol name.
    """

    module: ModuleOp
    graphs: tuple[str, ...]
    weights: Mapping[str, np.ndarray]

    def to_bytes(self) -> bytes:
        """The bundle file's bytes (see docs/bundle-format.md)."""
        from wrc.bundle_format import bundle_bytes

        return bundle_bytes(self)
