"""`ge-split-weight-refreshable`: split a converted graph into GE's three graphs.

The second half of `aclgrphConvertToWeightRefreshableGraphs` (docs/spec.md §2). Input: the output
of `ge-const-to-var` (one `func.func` + `ge.variable` symbols carrying `init`). Output, in
this order: the variables (`init`/`init_value` stripped: the init graph now holds them),

* `@var_init_graph()`: per variable, `ge.const "<init>"` then
  `ge.assign @v, %c {name = "<init>_assign"}`;
* `@var_update_graph()`: per variable i, `ge.data "<v>_data" index i : tensor<*xT>` then
  `ge.assign_if_nonempty @v, %d` (an empty input keeps the variable as it is);
* `@var_infer_graph`: the original graph, renamed.

Variables are taken in declaration order, which `ge-const-to-var` makes the `names` order.
Every check runs before the first change: on a `ConversionError` the module is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.builder import Builder
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr, UnrankedTensorType
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Block, Region
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import SymbolTable

from wrc.abi import ASSIGN_SUFFIX, INFER_GRAPH, INIT_GRAPH, UPDATE_GRAPH, UPDATE_INPUT_SUFFIX
from wrc.dialects.ge import AssignIfNonEmptyOp, AssignOp, ConstOp, DataOp, VariableOp
from wrc.errors import ConversionError
from wrc.passes.ge_const_to_var import the_graph

PASS = "ge-split-weight-refreshable"


def _validate(module: ModuleOp) -> tuple[FuncOp, list[VariableOp]]:
    graph = the_graph(module, PASS)
    variables = [op for op in module.ops if isinstance(op, VariableOp)]
    if not variables:
        raise ConversionError(
            f"{PASS}: the module holds no ge.variable (run ge-const-to-var first)"
        )
    for var in variables:
        if var.init is None:
            raise ConversionError(
                f"{PASS}: ge.variable @{var.sym_name.data} has no `init` (the constant it "
                "replaced); run ge-const-to-var to create variables"
            )
    for name in (INIT_GRAPH, UPDATE_GRAPH, INFER_GRAPH):
        found = SymbolTable.lookup_symbol(module, name)
        # The graph may already be called var_infer_graph: renaming it is then a no-op.
        if found is not None and found is not graph:
            raise ConversionError(f"{PASS}: symbol @{name} already exists")
    return graph, variables


def _graph(name: str, body: Block) -> FuncOp:
    """A graph with no arguments (inputs are ge.data ops) and no results."""
    body.add_op(ReturnOp())
    return FuncOp(name, ((), ()), Region(body))


@dataclass(frozen=True)
class GeSplitWeightRefreshablePass(ModulePass):
    """Build `@var_init_graph` and `@var_update_graph`; rename the graph `@var_infer_graph`."""

    name = "ge-split-weight-refreshable"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        graph, variables = _validate(op)

        init = Builder(InsertPoint.at_end(init_body := Block()))
        update = Builder(InsertPoint.at_end(update_body := Block()))
        for index, var in enumerate(variables):
            sym = var.sym_name.data
            init_name = var.init.data if var.init is not None else ""  # set: _validate checked
            const = init.insert(ConstOp(init_name, var.type, var.init_value))
            init.insert(AssignOp(sym, const.output, init_name + ASSIGN_SUFFIX))

            # Unranked: the input may be empty ("keep"); a non-empty one is checked at run time.
            data = update.insert(
                DataOp(sym + UPDATE_INPUT_SUFFIX, index, UnrankedTensorType(var.type.element_type))
            )
            update.insert(AssignIfNonEmptyOp(sym, data.output))

            # The init graph now owns the initial value; the variable is only a declaration.
            var.properties.pop("init", None)
            var.properties.pop("init_value", None)
            # Variables first, in declaration order, then the three graphs.
            var.detach()
            Rewriter.insert_op(var, InsertPoint.before(graph))

        Rewriter.insert_op(
            [_graph(INIT_GRAPH, init_body), _graph(UPDATE_GRAPH, update_body)], InsertPoint.before(graph)
        )
        graph.sym_name = StringAttr(INFER_GRAPH)
