"""`wrc inspect`: what a bundle file holds, as a JSON-able dict and as text.

Everything is derived from the validated file (`read_bundle` checks every byte first) and
its level-3 IR (docs/internals.md): no backend is compiled and no graph is run.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

from xdsl.dialects import func, memref
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, IntegerType, MemRefType, StringAttr
from xdsl.ir import Operation

from wrc.bundle_format import PRELUDE_SIZE, read_bundle
from wrc.model_buffer import (
    ModelBuffer,
    derive_funcs,
    element_dtype,
    global_spec,
    is_variable,
    module_funcs,
    module_globals,
)

INIT_GRAPH, UPDATE_GRAPH = "var_init_graph", "var_update_graph"


def _tensor(t: Any) -> dict[str, Any]:
    if isinstance(t, MemRefType):
        dtype = element_dtype(t.element_type)
        return {"shape": list(t.get_shape()), "dtype": dtype.name if dtype is not None else str(t.element_type)}
    return {"shape": None, "dtype": str(t)}


def _graph_signature(fn: func.FuncOp) -> dict[str, Any]:
    args = fn.body.blocks[0].args if fn.body.blocks else ()
    attrs = list(fn.arg_attrs.data) if fn.arg_attrs is not None else [None] * len(args)
    inputs = []
    for arg, a in zip(args, attrs, strict=False):
        d = a.data if a is not None else {}
        if arg.type == IntegerType(1) and "ge.name" not in d:
            continue  # the "non-empty" flag of the optional input before it (the runtime sets it)
        label = d.get("ge.name")
        inputs.append({"name": label.data if isinstance(label, StringAttr) else None,
                       **_tensor(arg.type), "optional": "ge.optional" in d})
    outputs = [_tensor(t) for t in fn.function_type.outputs.data]
    return {"name": fn.sym_name.data, "inputs": inputs, "outputs": outputs}


def _copies(fn: func.FuncOp | None) -> list[tuple[Operation | None, str]]:
    """(source op, target variable) of each `memref.copy` into a global in `fn`."""
    out: list[tuple[Operation | None, str]] = []
    for op in fn.walk() if fn is not None else ():
        if isinstance(op, memref.CopyOp) and isinstance(op.destination.owner, memref.GetGlobalOp):
            src = op.source.owner
            out.append((src if isinstance(src, Operation) else None,
                        op.destination.owner.name_.root_reference.data))
    return out


def initial_value_sources(model: ModelBuffer) -> dict[str, str]:
    """variable → the constant global whose value `var_init_graph` copies into it."""
    return {var: src.name_.root_reference.data
            for src, var in _copies(module_funcs(model.module).get(INIT_GRAPH))
            if isinstance(src, memref.GetGlobalOp)}


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A summary of the bundle file at `path` (raises `BundleFormatError` for a bad file)."""
    model = read_bundle(path)  # validates the whole file before we look at anything
    with open(path, "rb") as f:
        prelude = f.read(PRELUDE_SIZE)
        version, header_len = struct.unpack_from("<I", prelude, 8)[0], struct.unpack_from("<Q", prelude, 16)[0]
        header = json.loads(f.read(header_len))
    module = model.module
    funcs, globals_ = module_funcs(module), module_globals(module)

    init_sources = {var: src for src, var in _copies(funcs.get(INIT_GRAPH))}
    updated = {var for _, var in _copies(funcs.get(UPDATE_GRAPH))}
    derived = {var: fn.sym_name.data for fn in derive_funcs(module, model.graphs) for _, var in _copies(fn)}
    variables = []
    for name, op in globals_.items():
        if not is_variable(op):
            continue
        spec = global_spec(op)
        assert spec is not None  # read_bundle checked static shapes and dtypes
        src = init_sources.get(name)
        if name in derived:
            initial = f"derived by @{derived[name]}"
        elif isinstance(op.initial_value, DenseIntOrFPElementsAttr):
            initial = "inline"
        elif isinstance(src, memref.GetGlobalOp):
            const = src.name_.root_reference.data
            initial = f"stored ({const})" if const in model.weights else f"inline ({const})"
        elif name in init_sources:
            initial = "computed by the init graph"
        else:
            initial = "stripped"
        nbytes = spec[1].itemsize * math.prod(spec[0])
        variables.append({"name": name, "weight": name.removesuffix("_var") if name in updated else None,
                          "shape": list(spec[0]), "dtype": spec[1].name, "bytes": nbytes,
                          "initial_value": initial})
    weights = [{"name": n, "shape": list(a.shape), "dtype": a.dtype.name, "bytes": int(a.nbytes)}
               for n, a in model.weights.items()]
    size = Path(path).stat().st_size
    sections = {"prelude": PRELUDE_SIZE, "header": header_len, "ir": header["ir"]["nbytes"],
                "weights": sum(w["bytes"] for w in weights)}
    sections["padding"] = size - sum(sections.values())
    return {
        "file": os.fspath(path), "format_version": version, "file_size": size, "sections": sections,
        "producer": header.get("producer", {}),
        "graphs": [_graph_signature(funcs[g]) for g in model.graphs],
        "variables": variables, "stored_weights": weights,
        "weight_stripped": INIT_GRAPH not in model.graphs,
    }


def _t(d: dict[str, Any]) -> str:
    return f"{d['dtype']}{d['shape']}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_text(info: dict[str, Any]) -> str:
    """`describe`'s summary as the text `wrc inspect` prints."""
    producer = info["producer"]
    lines = [f"bundle {info['file']}: format version {info['format_version']}, {info['file_size']:,} bytes"
             + (f" (written by {producer.get('name', '?')} {producer.get('version', '?')})" if producer else "")]
    lines.append("sections: " + ", ".join(f"{k} {v:,} B" for k, v in info["sections"].items()))
    lines.append(f"graphs ({len(info['graphs'])})" + (" (weight-stripped: no var_init_graph)"
                                                       if info["weight_stripped"] else "") + ":")
    for g in info["graphs"]:
        ins = ", ".join(f"{x['name']}: {_t(x)}" + (" optional" if x["optional"] else "") for x in g["inputs"])
        outs = ", ".join(_t(o) for o in g["outputs"])
        lines.append(f"  {g['name']}({ins}) -> ({outs})")
    lines.append(f"variables ({len(info['variables'])}):")
    if info["variables"]:
        rows = [["name", "weight", "shape", "dtype", "bytes", "initial value"]]
        rows += [[v["name"], v["weight"] or "-", str(v["shape"]), v["dtype"], f"{v['bytes']:,}", v["initial_value"]]
                 for v in info["variables"]]
        lines += _table(rows)
    lines.append(f"stored weights ({len(info['stored_weights'])}):")
    if info["stored_weights"]:
        rows = [["name", "shape", "dtype", "bytes"]]
        rows += [[w["name"], str(w["shape"]), w["dtype"], f"{w['bytes']:,}"] for w in info["stored_weights"]]
        lines += _table(rows)
    return "\n".join(lines)
