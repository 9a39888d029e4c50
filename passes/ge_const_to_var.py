"""`ge-const-to-var{names=...}`: turn named constants of a graph into variables.

The first half of GE's `aclgrphConvertToWeightRefreshableGraphs` (docs/spec.md §2): each
`ge.const "c" : T` whose name is listed becomes `ge.read_variable @c_var : T`, and a
module-level `ge.variable @c_var : T {init = "c"}` (plus `init_value` when the constant
was inline) records where the variable's first value comes from, for
`ge-split-weight-refreshable`. Constants that are not named stay constants.

Every check runs before the first change: on a `ConversionError` the module is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp, TensorType
from xdsl.dialects.func import FuncOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import SymbolOpInterface

from wrc.abi import variable_name
from wrc.dialects.ge import ConstOp, ReadVariableOp, VariableOp
from wrc.errors import ConversionError
from wrc.ir_read import walk
from wrc.passes._rewriter import OnePassRewriter

PASS = "ge-const-to-var"


def the_graph(module: ModuleOp, pass_name: str) -> FuncOp:
    """The module's only `func.func`; anything else is a `ConversionError`."""
    funcs = [op for op in module.ops if isinstance(op, FuncOp)]
    if len(funcs) != 1:
        names = ", ".join(f"@{f.sym_name.data}" for f in funcs) or "none"
        raise ConversionError(
            f"{pass_name}: expects a module holding exactly one func.func (the graph), "
            f"found {len(funcs)} ({names})"
        )
    return funcs[0]


@dataclass(frozen=True)
class _Weight:
    """What a named constant becomes: the variable's symbol, type and initial value."""

    var: str
    type: TensorType
    value: DenseIntOrFPElementsAttr | None


def _plan(module: ModuleOp, names: tuple[str, ...]) -> dict[str, _Weight]:
    """Validate the request against the module; returns const name -> weight, in `names` order."""
    if not names:
        raise ConversionError(f"{PASS}: no constant names given (option `names` is empty)")
    seen: set[str] = set()
    for name in names:
        if not name:
            raise ConversionError(f"{PASS}: a constant name is empty (names: {list(names)})")
        if name in seen:
            raise ConversionError(f'{PASS}: constant name "{name}" is given twice')
        seen.add(name)

    graph = the_graph(module, PASS)
    consts: dict[str, list[ConstOp]] = {}
    for op in walk(graph):
        if isinstance(op, ConstOp):
            consts.setdefault(op.const_name.data, []).append(op)

    # The module's symbols, as `SymbolTable.lookup_symbol(module, name)` finds them (which
    # would build a `SymbolRefAttr` per name and scan the module each time).
    symbols = set()
    for o in module.ops:
        trait = o.get_trait(SymbolOpInterface)
        if trait is not None and (sym := trait.get_sym_attr_name(o)) is not None:
            symbols.add(sym.data)
    plan: dict[str, _Weight] = {}
    for name in names:
        found = consts.get(name)
        if not found:
            raise ConversionError(
                f'{PASS}: "{name}" is not a ge.const of the graph @{graph.sym_name.data}'
            )
        # One name is one weight (the weight table is keyed by name): every op that
        # carries it must agree on its type and, when inline, on its value.
        first = found[0]
        for other in found[1:]:
            if other.output.type != first.output.type:
                raise ConversionError(
                    f'{PASS}: ge.const "{name}" is used with different types '
                    f"{first.output.type} and {other.output.type}"
                )
            if other.value != first.value:
                raise ConversionError(f'{PASS}: ge.const "{name}" is used with different values')
        var = variable_name(name)
        if var in symbols:
            raise ConversionError(
                f'{PASS}: symbol @{var} (the variable for "{name}") already exists'
            )
        plan[name] = _Weight(var, first.output.type, first.value)
    return plan


class ConstToReadVariable(RewritePattern):
    """`ge.const "c" : T` -> `ge.read_variable @c_var : T` for the planned constants."""

    def __init__(self, plan: dict[str, _Weight]):
        self.plan = plan

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ConstOp, rewriter: PatternRewriter) -> None:
        weight = self.plan.get(op.const_name.data)
        if weight is not None:
            rewriter.replace(op, ReadVariableOp(weight.var, weight.type))


@dataclass(frozen=True)
class GeConstToVarPass(ModulePass):
    """Replace the constants named in `names` by module-level variables `<name>_var`."""

    name = "ge-const-to-var"

    names: tuple[str, ...] = ()

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        plan = _plan(op, self.names)
        graph = the_graph(op, PASS)
        variables = [VariableOp(w.var, w.type, init=c, init_value=w.value) for c, w in plan.items()]
        Rewriter.insert_op(variables, InsertPoint.before(graph))
        # Each const once, in program order: what xDSL's one-pass `PatternRewriteWalker` did,
        # without its worklist and listeners (the read_variable made matches nothing).
        pattern, rewriter = ConstToReadVariable(plan), OnePassRewriter(InsertPoint.at_end(graph.body.block))
        for inner in walk(graph):
            if isinstance(inner, ConstOp):
                rewriter.start(inner)
                pattern.match_and_rewrite(inner, rewriter)
