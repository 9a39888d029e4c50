"""`ge-add-delta-graph{deltas=...}`: add `@var_delta_graph`, the graph adapters are applied with.

Runs after `ge-split-weight-refreshable` (issue 16; docs/passes.md). GE's three graphs are
left exactly as they are; the new graph sets each *adapted* weight's variable to its base
value plus a delta, computed from its inputs alone — never from the variable's live value, so
applying adapter X, then Y, then X again gives X's weights bit for bit (the runtime keeps the
base values and passes them in; wrc/runtime.py).

`deltas` holds one `NAME=KIND` entry per weight (NAME may be a glob over the weight names,
e.g. `*=lora:16`; a glob picks only the weights a KIND fits):

* `dense`: inputs `<v>_base` and `<v>_delta` of the weight's type; `v = base + delta`.
* `lora:R` (2-D float weights): inputs `<v>_base`, `<v>_lora_a` [R, in], `<v>_lora_b`
  [out, R] and the scalar `<v>_lora_scale`; `v = base + B @ (scale · A)` in PEFT's layout
  (the scale on the small factor saves a pass over the weight). A weight stored [out, in]
  (PyTorch `Linear`, ONNX `Gemm transB=1`) takes `B @ sA`; one stored [in, out] (read as
  the right operand of matmuls, as ONNX `MatMul` exports do) takes `(sA)ᵀ @ Bᵀ`
  (transposes the matmul lowering reads for free). The layout is found from the
  infer graph's uses of the weight; `lora:R:out_in` / `lora:R:in_out` choose it.

Inputs come weight after weight, in declaration order. Every check runs before the first
change: on a `ConversionError` (naming the weight and the entry) the module is untouched.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from xdsl.builder import Builder
from xdsl.context import Context
from xdsl.dialects.builtin import AnyFloat, ModuleOp, TensorType
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Block, Region
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import SymbolTable

from wrc.abi import DELTA_GRAPH, DELTA_INPUTS, INFER_GRAPH, UPDATE_GRAPH, weight_name
from wrc.dialects import ge
from wrc.errors import ConversionError

PASS = "ge-add-delta-graph"
LAYOUTS = ("out_in", "in_out")


@dataclass(frozen=True)
class Delta:
    """The delta of one weight: `dense`, or `lora` of `rank` with the weight's `layout`."""

    kind: str
    rank: int = 0
    layout: str | None = None  # lora: "out_in", "in_out", or None (found from the uses)


def parse_kind(text: str, where: str) -> Delta:
    """`dense`, `lora:R` or `lora:R:LAYOUT`; anything else is a `ConversionError`."""
    parts = text.split(":")
    if parts == ["dense"]:
        return Delta("dense")
    if parts[0] == "lora" and len(parts) in (2, 3):
        layout = parts[2] if len(parts) == 3 else None
        if parts[1].isdigit() and int(parts[1]) > 0 and layout in (None, *LAYOUTS):
            return Delta("lora", int(parts[1]), layout)
    raise ConversionError(f"{PASS}: {where}: kind {text!r} is not dense, lora:R (R > 0) "
                          f"or lora:R:{'|'.join(LAYOUTS)}")


def _fits(delta: Delta, t: TensorType) -> str | None:
    """Why `delta` cannot apply to a weight of type `t` (None: it can)."""
    if not isinstance(t.element_type, AnyFloat):
        return f"is {t.element_type}: deltas apply to float weights"
    if delta.kind == "lora":
        shape = t.get_shape()
        if len(shape) != 2:
            return f"has shape {list(shape)}: a low-rank delta needs a 2-D weight (use dense)"
        if delta.rank > min(shape):
            return (f"has shape {list(shape)}: rank {delta.rank} is above min(out, in) = {min(shape)} "
                    "(use dense)")
    return None


def _plan(module: ModuleOp, entries: tuple[str, ...]) -> dict[ge.VariableOp, Delta]:
    """Variable → its delta, in declaration order, after checking every entry."""
    if not entries:
        raise ConversionError(f"{PASS}: no deltas given (option `deltas` is empty)")
    for name in (UPDATE_GRAPH, INFER_GRAPH):
        if not isinstance(SymbolTable.lookup_symbol(module, name), FuncOp):
            raise ConversionError(f"{PASS}: the module has no @{name} (run ge-split-weight-refreshable first)")
    if SymbolTable.lookup_symbol(module, DELTA_GRAPH) is not None:
        raise ConversionError(f"{PASS}: symbol @{DELTA_GRAPH} already exists")
    variables = {weight_name(v.sym_name.data): v for v in module.ops if isinstance(v, ge.VariableOp)}
    chosen: dict[str, tuple[Delta, str]] = {}
    for entry in entries:
        pattern, sep, kind = entry.rpartition("=")
        if not sep or not pattern:
            raise ConversionError(f"{PASS}: delta {entry!r} is not NAME=KIND (e.g. w=lora:16, w=dense)")
        delta = parse_kind(kind, f"delta {entry!r}")
        glob = any(c in pattern for c in "*?[")
        names = fnmatch.filter(variables, pattern) if glob else [pattern]
        if not glob and pattern not in variables:
            raise ConversionError(f"{PASS}: delta {entry!r}: {pattern!r} is not a refreshable weight "
                                  f"(weights: {', '.join(variables)})")
        picked = 0
        for name in names:
            why = _fits(delta, variables[name].type)
            if why is not None:
                if glob:
                    continue
                raise ConversionError(f"{PASS}: delta {entry!r}: weight {name!r} {why}")
            if name in chosen:
                raise ConversionError(f"{PASS}: weight {name!r} is given a delta twice "
                                      f"({chosen[name][1]!r} and {entry!r})")
            chosen[name] = (delta, entry)
            picked += 1
        if not picked:
            raise ConversionError(f"{PASS}: delta {entry!r}: no refreshable weight matches "
                                  f"(weights: {', '.join(variables)})")
    return {v: chosen[n][0] for n, v in variables.items() if n in chosen}


def _layouts(infer: FuncOp) -> dict[str, str]:
    """Variable → `in_out` when every read of it in the infer graph is a matmul's right
    operand (x @ W: W is [in, out]), else `out_in` (variables never read are absent)."""
    uses: dict[str, list] = {}
    for op in infer.walk():
        if isinstance(op, ge.ReadVariableOp):
            uses.setdefault(op.variable.string_value(), []).extend(op.output.uses)
    return {v: "in_out" if us and all(isinstance(u.operation, ge.MatMulOp) and u.index == 1 for u in us)
            else "out_in" for v, us in uses.items()}


def _input_type(suffix: str, t: TensorType, delta: Delta, transposed: bool) -> TensorType:
    """The type of the delta graph's input `<v><suffix>` for a weight of type `t`."""
    if suffix == "_lora_scale":
        return TensorType(t.element_type, ())
    if suffix not in ("_lora_a", "_lora_b"):
        return t
    out_dim, in_dim = reversed(t.get_shape()) if transposed else t.get_shape()
    shape = (delta.rank, in_dim) if suffix == "_lora_a" else (out_dim, delta.rank)
    return TensorType(t.element_type, shape)


@dataclass(frozen=True)
class GeAddDeltaGraphPass(ModulePass):
    """Add `@var_delta_graph` for the weights named in `deltas` (`NAME=KIND` entries)."""

    name = "ge-add-delta-graph"

    deltas: tuple[str, ...] = ()

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        plan = _plan(op, self.deltas)
        infer = SymbolTable.lookup_symbol(op, INFER_GRAPH)
        assert isinstance(infer, FuncOp)  # _plan checked
        layouts = _layouts(infer)
        b = Builder(InsertPoint.at_end(body := Block()))
        index = 0
        for var, delta in plan.items():
            sym, t = var.sym_name.data, var.type
            transposed = delta.kind == "lora" and (delta.layout or layouts.get(sym)) == "in_out"
            inputs = {}
            for suffix in DELTA_INPUTS[delta.kind]:
                inputs[suffix] = b.insert(ge.DataOp(sym + suffix, index, _input_type(suffix, t, delta, transposed))).output
                index += 1
            if delta.kind == "dense":
                change = inputs["_delta"]
            else:
                # The scale multiplies A ([r, in]: small), not the product: one pass over the
                # weight fewer.
                a = b.insert(ge.MulOp(inputs["_lora_a"], inputs["_lora_scale"])).output
                bf = inputs["_lora_b"]
                if transposed:  # W is [in, out]: (sA)ᵀ @ Bᵀ = (B @ sA)ᵀ
                    change = b.insert(ge.MatMulOp(b.insert(ge.TransposeOp(a, (1, 0))).output,
                                                  b.insert(ge.TransposeOp(bf, (1, 0))).output)).output
                else:
                    change = b.insert(ge.MatMulOp(bf, a)).output
            b.insert(ge.AssignOp(sym, b.insert(ge.AddOp(inputs["_base"], change)).output))
        body.add_op(ReturnOp())
        Rewriter.insert_op(FuncOp(DELTA_GRAPH, ((), ()), Region(body)), InsertPoint.after(infer))
