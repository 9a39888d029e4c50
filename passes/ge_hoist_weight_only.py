"""`ge-hoist-weight-only`: move weight-only work out of inference, into derive functions.

A read-only graph (no `ge.assign*`, e.g. `var_infer_graph`) often computes things from
weights alone: a transposed weight (ONNX `Gemm transB=1`), a reshaped or cast one, a
BatchNorm scale `gamma / sqrt(var + eps)`, a LoRA product `A @ B`. Recomputing them on every
inference is waste; they only change when a weight does. This pass (like TVM's
`LiftTransformParams` and AOTInductor's runtime constant folding):

* finds, in each read-only function, the *weight-only* values: results of compute ops whose
  operands all come, transitively, from `ge.read_variable` and `ge.const` only;
* keeps the *frontier* ones (used by an op that is not hoisted, or returned) with a static
  shape. A transpose of the last two dims that only feeds matmuls is not hoisted
  (`is_matmul_transpose`): the lowering folds it into the matmuls, BLAS reads the weight
  transposed for free, and a stored transposed copy would only cost memory and update time
  (the weight-only value under it is hoisted if it is computed);
* declares a *derived variable* per frontier value, `ge.variable @<source>.hoisted<k>`
  (`@folded<k>` for a value of constants alone), and replaces the value by a
  `ge.read_variable` of it; the ops left dead are erased;
* writes, per function and distinct set of source variables, a function `@wrc.derive.<k>`
  with the attribute `ge.derive`: it reads the sources, recomputes the values (a copy of the
  original ops) and `ge.assign`s every derived variable of that set.

The runtime (`wrc/runtime.py`) runs a derive function after any graph that changed one of its
sources (init, update, or a user's graph), before the new weights are published, so an
`infer` sees sources and derived values of the same snapshot, and an update recomputes only
what depends on the weights it changed. A derive function of constants alone runs once, at
load: constant folding, so a frozen build gains as much as a refreshable one. Derived
variables are not weights: `update` does not take them and `Bundle.variables` does not list
them. The price is memory: a derived value is stored next to the weights it comes from.

Functions with the `ge.derive` attribute and functions that write variables are left as
they are, so running the pass twice changes nothing the second time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType, UnitAttr
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from wrc.abi import DERIVE_ATTR, DERIVE_PREFIX
from wrc.dialects import ge
from wrc.passes._weight_only import WeightOnly, is_matmul_transpose, writes_variables


def _static(value: SSAValue) -> bool:
    t = value.type
    return isinstance(t, TensorType) and ge.DYNAMIC not in t.get_shape()


class _Weights(WeightOnly):
    """The weight-only values of one function, and which of them are hoisted."""

    def is_hoisted(self, op: Operation) -> bool:
        """Weight-only, and not a transpose its matmuls read for free (`is_matmul_transpose`):
        storing that one transposed would only add memory and update time."""
        return self.is_weight_only(op) and not is_matmul_transpose(op)

    def frontier(self, fn: FuncOp) -> list[SSAValue]:
        """Hoisted compute results used by work that is not hoisted (or returned)."""
        out = []
        for op in fn.body.block.ops:
            if not self.is_hoisted(op):
                continue
            for r in op.results:
                if _static(r) and any(not self.is_hoisted(u.operation) for u in r.uses):
                    out.append(r)
        return out


def _closure(values: Iterable[SSAValue]) -> set[Operation]:
    """The ops that compute `values` (all in one block, all weight-only)."""
    seen: set[Operation] = set()
    stack = [v.owner for v in values]
    while stack:
        op = stack.pop()
        if isinstance(op, Operation) and op not in seen:
            seen.add(op)
            stack.extend(v.owner for v in op.operands)
    return seen


class _Names:
    """Fresh symbol names, unique in the module."""

    def __init__(self, module: ModuleOp) -> None:
        self.taken = {op.properties["sym_name"].data for op in module.ops
                      if isinstance(op.properties.get("sym_name"), StringAttr)}

    def fresh(self, stem: str) -> str:
        k = 0
        while f"{stem}{k}" in self.taken:
            k += 1
        name = f"{stem}{k}"
        self.taken.add(name)
        return name


def _derive_function(name: str, block: Block, groups: list[tuple[SSAValue, str]]) -> FuncOp:
    """`func @name() attributes {ge.derive}`: recompute each value and assign its variable."""
    needed = _closure(v for v, _ in groups)
    body = Block()
    mapping: dict[SSAValue, SSAValue] = {}
    for op in block.ops:  # program order, so operands are cloned before their users
        if op in needed:
            body.add_op(op.clone(mapping))
    for value, var in groups:
        body.add_op(ge.AssignOp(var, mapping[value]))
    body.add_op(ReturnOp())
    fn = FuncOp(name, ((), ()), Region(body))
    fn.attributes[DERIVE_ATTR] = UnitAttr()
    return fn


def _erase_dead(block: Block, weights: _Weights) -> None:
    for op in reversed(list(block.ops)):
        if (weights.is_weight_only(op) or isinstance(op, ge.ReadVariableOp | ge.ConstOp)) \
                and not any(r.uses for r in op.results):
            Rewriter.erase_op(op)


@dataclass(frozen=True)
class GeHoistWeightOnlyPass(ModulePass):
    """Replace weight-only subexpressions of read-only graphs by derived variables."""

    name = "ge-hoist-weight-only"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        funcs = [f for f in op.ops if isinstance(f, FuncOp) and not f.is_declaration
                 and DERIVE_ATTR not in f.attributes and not writes_variables(f)]
        names = _Names(op)
        # A derived variable is named after its largest source (e.g. the weight a scale is folded into).
        size = {v.sym_name.data: math.prod(v.type.get_shape()) for v in op.ops if isinstance(v, ge.VariableOp)}
        declarations: list[Operation] = []
        derives: list[Operation] = []
        for fn in funcs:
            weights = _Weights()
            groups: dict[frozenset[str], list[tuple[SSAValue, str]]] = {}
            for value in weights.frontier(fn):
                sources = weights.sources(value)
                stem = f"{max(sorted(sources), key=lambda v: size.get(v, 0))}.hoisted" if sources else "folded"
                groups.setdefault(sources, []).append((value, names.fresh(stem)))
            # The derive functions first, while the original ops are still in place.
            for sources in sorted(groups, key=sorted):
                derives.append(_derive_function(names.fresh(DERIVE_PREFIX), fn.body.block, groups[sources]))
            for value, var in (pair for group in groups.values() for pair in group):
                t = value.type
                assert isinstance(t, TensorType)  # _static checked
                declarations.append(ge.VariableOp(var, t))
                read = ge.ReadVariableOp(var, t)
                value.replace_all_uses_with(read.output)
                Rewriter.insert_op(read, InsertPoint.after(value.owner))
            if groups:
                _erase_dead(fn.body.block, _Weights())
        if not derives:
            return
        variables = [v for v in op.ops if isinstance(v, ge.VariableOp)]
        first_func = next(f for f in op.ops if isinstance(f, FuncOp))
        Rewriter.insert_op(declarations, InsertPoint.after(variables[-1]) if variables
                           else InsertPoint.before(first_func))
        Rewriter.insert_op(derives, InsertPoint.before(first_func))
