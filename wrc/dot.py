"""`wrc graph`: render graphs (ge IR or a bundle's level-3 IR) as Graphviz DOT, SVG or PNG.

The DOT text is written here by hand (no graphviz Python package needed); SVG and PNG are
made by Graphviz's `dot` program when it is installed. Each function of a module is a
cluster; each variable is one node shared by the clusters of its module, so the picture
shows the init graph writing it, the update graph writing it and the infer graph reading it.
Variables are orange cylinders, writes to them (assign / update paths) red edges, reads blue
edges, inputs green, constants grey.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Collection, Sequence
from pathlib import Path

from xdsl.dialects import func, memref
from xdsl.dialects.builtin import ModuleOp, StringAttr, SymbolRefAttr
from xdsl.ir import BlockArgument, Operation, OpResult, SSAValue

from wrc.abi import arguments, copy_into_global, writes_operand
from wrc.errors import RenderError
from wrc.terminal import printable

FORMATS = ("dot", "svg", "png")

_STYLE = {
    "input": 'shape=ellipse, style=filled, fillcolor="#c8e6c9"',
    "output": 'shape=ellipse, style=filled, fillcolor="#e0e0e0"',
    "const": 'shape=box, style="filled,rounded", fillcolor="#eeeeee"',
    "variable": 'shape=cylinder, style=filled, fillcolor="#ffb74d", penwidth=2',
    "read": 'shape=box, style=filled, fillcolor="#bbdefb"',
    "write": 'shape=box, style=filled, fillcolor="#ef9a9a", penwidth=2',
    "op": "shape=box",
    "region": "shape=diamond",
}
_WRITE_EDGE = 'color="#d32f2f", penwidth=2'
_READ_EDGE = 'color="#1976d2"'


def quote(text: str) -> str:
    """`text` as a DOT double-quoted string (backslashes, quotes and newlines escaped; other
    non-printable characters, e.g. terminal escapes, shown as Python escapes)."""
    text = printable(text, keep="\r\n").replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n") + '"'


def _symbol(op: Operation) -> str | None:
    """The variable / global an op refers to, if any."""
    ref = op.properties.get("variable") or op.properties.get("name")
    return ref.root_reference.data if isinstance(ref, SymbolRefAttr) else None


def _writes_target(value: SSAValue) -> bool:
    """Whether a `memref.get_global` result is written (copied into, or a linalg `outs`)."""
    return any(writes_operand(use.operation, use.index) for use in value.uses)


class _Writer:
    def __init__(self, highlight: Collection[str]) -> None:
        self.highlight = highlight  # constant names to mark as "becomes a variable"
        self.lines: list[str] = []
        self.edges: list[str] = []  # emitted after every cluster: an edge inside a cluster
        self.ids: dict[object, str] = {}  # would pull both of its nodes into it
        self.writer: dict[SSAValue, str] = {}  # buffer → node of the op that last wrote it

    def node(self, key: object, label: str, style: str, indent: str) -> str:
        nid = f"n{len(self.ids)}"
        self.ids[key] = nid
        self.lines.append(f"{indent}{nid} [label={quote(label)}, {style}];")
        return nid

    def edge(self, a: str, b: str, style: str = "") -> None:
        self.edges.append(f"  {a} -> {b}" + (f" [{style}]" if style else "") + ";")


def _module(w: _Writer, m: int, label: str, module: ModuleOp) -> None:
    # Variables: ge.variable (level 1) and memref.global {ge.variable} (level 3).
    variables: dict[str, str] = {}
    constants: set[str] = set()
    for op in module.ops:
        name = op.properties.get("sym_name")
        if not isinstance(name, StringAttr):
            continue
        if op.name == "ge.variable" or (isinstance(op, memref.GlobalOp) and op.constant is None):
            variables[name.data] = w.node(("var", m, name.data), f"{name.data}\nvariable : {op.properties['type']}",
                                          _STYLE["variable"], "  ")
        elif isinstance(op, memref.GlobalOp):
            constants.add(name.data)
    for fn in module.ops:
        if isinstance(fn, func.FuncOp):
            _function(w, m, label, fn, variables, constants)


def _function(w: _Writer, m: int, label: str, fn: func.FuncOp, variables: dict[str, str],
              constants: set[str]) -> None:
    fname = fn.sym_name.data
    w.lines.append(f"  subgraph {quote(f'cluster_{m}_{fname}')} {{")
    w.lines.append(f"    label={quote(f'{label}: @{fname}' if label else f'@{fname}')};")
    if fn.body.blocks:
        roles = arguments(fn)  # an optional update input is followed by its i1 flag
        for i, arg in enumerate(fn.body.blocks[0].args):
            role = roles[i]
            text = role.name if role.name is not None else f"argument {i}"
            if role.flag_of is not None:
                of = roles[role.flag_of].name
                text = f"{of if of is not None else f'argument {role.flag_of}'} is non-empty"
            elif role.optional:
                text += " (empty = keep)"
            w.node(arg, f"{text}\n{arg.type}", _STYLE["input"], "    ")
        _block(w, fn.body.blocks[0].ops, variables, constants, "    ")
    w.lines.append("  }")


def _block(w: _Writer, ops, variables: dict[str, str], constants: set[str], indent: str) -> None:
    for op in ops:
        sym = _symbol(op)
        types = ", ".join(str(r.type) for r in op.results)
        if op.name == "scf.yield" and not op.operands:
            continue
        if isinstance(op, func.ReturnOp):
            if not op.operands:
                continue
            nid = w.node(op, "outputs", _STYLE["output"], indent)
        elif op.name == "ge.data" or op.name == "ge.const":
            kind, name = ("input" if op.name == "ge.data" else "const"), op.properties["name"].data
            style = _STYLE[kind]
            if kind == "const" and name in w.highlight:
                name, style = f"{name} (to refresh)", style + ', color="#ef6c00", penwidth=3'
            nid = w.node(op, f"{name}\n{op.name} : {types}", style, indent)
        elif sym in variables:
            writes = op.name.startswith("ge.assign") or (
                isinstance(op, memref.GetGlobalOp) and _writes_target(op.memref))
            nid = w.node(op, f"{op.name} @{sym}" + (f"\n{types}" if types else ""),
                         _STYLE["write" if writes else "read"], indent)
            if writes:
                w.edge(nid, variables[sym], _WRITE_EDGE)
            else:
                w.edge(variables[sym], nid, _READ_EDGE)
        elif sym in constants:
            nid = w.node(op, f"const @{sym}\n{types}", _STYLE["const"], indent)
        elif op.regions and not op.name.startswith("linalg."):  # scf.if / scf.for: a sub-cluster
            nid = w.node(op, op.name, _STYLE["region"], indent)
            for r, region in enumerate(op.regions):
                for b, block in enumerate(region.blocks):
                    w.lines.append(f"{indent}subgraph {quote(f'cluster_{nid}_{r}_{b}')} {{")
                    w.lines.append(f"{indent}  label={quote(f'{op.name} region {r}')}; style=dashed;")
                    for arg in block.args:
                        w.ids[arg] = nid
                    _block(w, block.ops, variables, constants, indent + "  ")
                    w.lines.append(f"{indent}}}")
        elif copy_into_global(op) in variables:
            nid = w.node(op, op.name, _STYLE["write"], indent)
        else:  # linalg ops are one node: their bodies are scalar arithmetic
            nid = w.node(op, op.name + (f"\n{types}" if types else ""), _STYLE["op"], indent)
        for value in op.operands:
            src = value.owner if isinstance(value, OpResult) else value
            into_write = op.name.startswith("ge.assign") or copy_into_global(op) in variables
            if value in w.writer:  # level 3: the op that last wrote this buffer produced it
                w.edge(w.writer[value], nid, _WRITE_EDGE if into_write else "")
            elif src in w.ids and isinstance(src, Operation | BlockArgument):
                w.edge(w.ids[src], nid, _WRITE_EDGE if into_write else "")
        # Destination-passing style (level 3): linalg `outs` and copy targets are written here.
        written = list(getattr(op, "outputs", None) or ())
        if isinstance(op, memref.CopyOp):
            written.append(op.destination)
        for value in written:
            w.writer[value] = nid


def to_dot(modules: Sequence[tuple[str, ModuleOp]], title: str = "wrc",
           highlight: Collection[str] = ()) -> str:
    """DOT text for `(label, module)` pairs: a cluster per function, one node per variable.

    Constants named in `highlight` (those a conversion makes refreshable) get an orange frame.
    """
    w = _Writer(highlight)
    for m, (label, module) in enumerate(modules):
        _module(w, m, label, module)
    head = [f"digraph {quote(title)} {{", "  rankdir=TB;", f"  label={quote(title)}; labelloc=t;",
            '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];']
    return "\n".join(head + w.lines + w.edges + ["}"]) + "\n"


def write_graph(dot: str, path: str | os.PathLike[str], format: str | None = None) -> str:
    """Write `dot` to `path` as DOT, SVG or PNG (from the suffix, or `format`). Returns the format."""
    fmt = format or Path(path).suffix.lower().lstrip(".")
    fmt = "dot" if fmt == "gv" else fmt
    if fmt not in FORMATS:
        raise RenderError(f"{os.fspath(path)}: unknown output format {fmt!r} (formats: {', '.join(FORMATS)}; "
                          f"the file suffix chooses it, or -T/--format)")
    if fmt == "dot":
        Path(path).write_text(dot, encoding="utf-8")
        return fmt
    exe = shutil.which("dot")
    if exe is None:
        raise RenderError(f"{os.fspath(path)}: {fmt.upper()} output needs Graphviz's `dot` program, which "
                          f"is not installed (install graphviz, or write a .dot file and render it elsewhere)")
    done = subprocess.run([exe, f"-T{fmt}", "-o", os.fspath(path)], input=dot.encode("utf-8"),
                          capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RenderError(f"{os.fspath(path)}: dot -T{fmt} failed: "
                          f"{done.stderr.decode('utf-8', 'replace').strip()[:500]}")
    return fmt
