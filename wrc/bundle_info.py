"""`wrc inspect`: what a bundle file holds, as a JSON-able dict and as text.

Everything is derived from the validated file (`read_bundle` checks every byte first) and
the plan of its level-3 IR (`wrc.abi.plan`, which `load_bundle` checks too): no backend is
compiled and no graph is run.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, MemRefType

from wrc.abi import (
    INIT_GRAPH,
    FunctionPlan,
    element_dtype,
    is_variable,
    module_funcs,
    module_globals,
    plan,
)
from wrc.adapters import adapted_weights
from wrc.bundle_format import PRELUDE_SIZE, read_bundle
from wrc.model_buffer import ModelBuffer
from wrc.terminal import printable


def _tensor(t: Any) -> dict[str, Any]:
    if isinstance(t, MemRefType):
        dtype = element_dtype(t.element_type)
        return {"shape": list(t.get_shape()), "dtype": dtype.name if dtype is not None else str(t.element_type)}
    return {"shape": None, "dtype": str(t)}


def _graph_signature(fn: func.FuncOp, info: FunctionPlan) -> dict[str, Any]:
    inputs = [{"name": x.name, "shape": list(x.shape), "dtype": x.dtype.name, "optional": x.optional}
              for x in info.inputs]
    outputs = [_tensor(t) for t in fn.function_type.outputs.data]
    return {"name": info.name, "inputs": inputs, "outputs": outputs}


def initial_value_sources(model: ModelBuffer) -> dict[str, str]:
    """variable → the constant global whose value `var_init_graph` copies into it."""
    return {var: src for var, src in plan(model.module, model.graphs).initial.items() if src is not None}


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A summary of the bundle file at `path` (raises `BundleFormatError` for a bad file)."""
    model = read_bundle(path)  # validates the whole file before we look at anything
    with open(path, "rb") as f:
        prelude = f.read(PRELUDE_SIZE)
        version, header_len = struct.unpack_from("<I", prelude, 8)[0], struct.unpack_from("<Q", prelude, 16)[0]
        header = json.loads(f.read(header_len))
    module = model.module
    p = plan(module, model.graphs)  # the checks load_bundle makes (e.g. each optional input's flag)
    funcs = module_funcs(module)
    weight_of = {w.variable: w.name for w in p.weights}
    derived = {w.var: d.name for d in p.derives for w in d.writes}
    variables = []
    for name, op in module_globals(module).items():
        if not is_variable(op):
            continue
        spec = p.specs[name]
        src = p.initial.get(name)
        if name in derived:
            initial = f"derived by @{derived[name]}"
        elif isinstance(op.initial_value, DenseIntOrFPElementsAttr):
            initial = "inline"
        elif src is not None:
            initial = f"stored ({src})" if src in model.weights else f"inline ({src})"
        elif name in p.initial:
            initial = "computed by the init graph"
        else:
            initial = "stripped"
        nbytes = spec[1].itemsize * math.prod(spec[0])
        variables.append({"name": name, "weight": weight_of.get(name),
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
        "producer": _producer(header.get("producer")),
        "graphs": [_graph_signature(funcs[g], p.graphs[g]) for g in model.graphs],
        "variables": variables, "stored_weights": weights, "adapted_weights": adapted_weights(p),
        "weight_stripped": INIT_GRAPH not in model.graphs,
    }


def _producer(value: Any) -> dict[str, str]:
    """The header's informational `producer` (no reader depends on it): its string entries,
    whatever else a tampered file put there left out."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _t(d: dict[str, Any]) -> str:
    return f"{d['dtype']}{d['shape']}"


def _table(rows: list[list[str]]) -> list[str]:
    rows = [[printable(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_text(info: dict[str, Any]) -> str:
    """`describe`'s summary as the text `wrc inspect` prints (non-printable characters of
    names escaped)."""
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
    adapted = info["adapted_weights"]
    if adapted:
        lines.append(f"adapted weights ({len(adapted)}, through var_delta_graph): "
                     + ", ".join(f"{n} {k}" for n, k in adapted.items()))
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
    return "\n".join(printable(line) for line in lines)  # names may hold terminal escapes
