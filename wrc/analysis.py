"""What a loaded bundle derives from its IR, in one value (`Analysis`): the runtime builds a
`Bundle` from it, and the load cache (`wrc.load_cache`) keeps it, so that a bundle whose IR
it knows loads without the IR."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import memref
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr

from wrc.abi import Plan, Spec, constant_copies, module_funcs, module_globals, plan
from wrc.errors import BundleFormatError
from wrc.model_buffer import ModelBuffer, c_array


def constant_value(op: memref.GlobalOp, spec: Spec) -> np.ndarray:
    """The value of an inline `dense<...>` global (stored little-endian by xDSL)."""
    attr = op.initial_value
    assert isinstance(attr, DenseIntOrFPElementsAttr)
    raw = attr.data.data
    dtype = spec[1].newbyteorder("<")
    count = int(np.prod(spec[0], dtype=np.int64))
    if spec[1] == np.bool_:  # xDSL packs i1 as one byte per value
        values = np.frombuffer(raw, np.uint8).astype(np.bool_)
    else:
        values = np.frombuffer(raw, dtype)
    if values.size == 1 and count != 1:
        values = np.full(count, values[0], dtype)
    if values.size != count:
        raise BundleFormatError(f"bundle: constant @{op.sym_name.data} has {values.size} values, "
                                f"its type {op.type} needs {count}")
    out = c_array(values.reshape(spec[0]), spec[1])
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Analysis:
    """What a `Bundle` derives from its model's IR."""

    plan: Plan
    shared: Mapping[str, Mapping[str, str]]  # graph → {variable: constant} (`constant_copies`)
    inline: Mapping[str, np.ndarray]  # the read-only value of each global with an inline value


def analyse(model: ModelBuffer) -> Analysis:
    """The `Analysis` of a checked model; a `BundleFormatError` when its IR breaks the contract."""
    from wrc.pipeline import paused_gc

    with paused_gc():  # linear time in the graph size (docs/performance.md)
        p = plan(model.module, model.graphs)
    funcs, globals_ = module_funcs(model.module), module_globals(model.module)
    shared = {g: c for g in model.graphs if (c := constant_copies(funcs[g], globals_)) is not None}
    inline = {name: constant_value(op, p.specs[name]) for name, op in globals_.items()
              if isinstance(op.initial_value, DenseIntOrFPElementsAttr)}
    return Analysis(p, shared, inline)
