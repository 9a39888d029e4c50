"""The conversion passes applied from Python (docs/spec.md §2): structure of the result, and errors.

Every error must be a `ConversionError` (a `WrcError`) naming the culprit, raised before
anything is modified: the printed module is compared before and after.
"""

from __future__ import annotations

import pytest
from xdsl.dialects.builtin import ModuleOp, TensorType, UnrankedTensorType, f32, i32
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.parser import Parser
from xdsl.passes import ModulePass, PassPipeline

from wrc.context import make_context
from wrc.dialects.ge import (
    AddOp,
    AssignIfNonEmptyOp,
    AssignOp,
    ConstOp,
    DataOp,
    MatMulOp,
    ReadVariableOp,
    VariableOp,
)
from wrc.errors import ConversionError, WrcError
from wrc.passes import PASSES
from wrc.passes.ge_const_to_var import GeConstToVarPass
from wrc.passes.ge_split_weight_refreshable import GeSplitWeightRefreshablePass

GRAPH = """
builtin.module {
  func.func @main() -> tensor<2x3xf32> {
    %x = ge.data "x" index 0 : tensor<2x4xf32>
    %w = ge.const "const_1" : tensor<4x3xf32>
    %b = ge.const "const_2" = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
    %k = ge.const "keep" = dense<0.5> : tensor<f32>
    %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
    %z = ge.add %y, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %r = ge.mul %z, %k : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    func.return %r : tensor<2x3xf32>
  }
}
"""

# docs/spec.md §2: a scalar weight is a variable like any other (and is updated even to 0).
SCALAR = """
builtin.module {
  func.func @main() -> tensor<2xf32> {
    %x = ge.data "x" index 0 : tensor<2xf32>
    %s = ge.const "scale" = dense<3.0> : tensor<f32>
    %y = ge.mul %x, %s : (tensor<2xf32>, tensor<f32>) -> tensor<2xf32>
    func.return %y : tensor<2xf32>
  }
}
"""


def parse(text: str) -> ModuleOp:
    module = Parser(make_context(), text).parse_module()
    module.verify()
    return module


def run(pass_: ModulePass, module: ModuleOp) -> ModuleOp:
    pass_.apply(make_context(), module)
    module.verify()
    return module


def convert(text: str, names: tuple[str, ...]) -> ModuleOp:
    module = run(GeConstToVarPass(names=names), parse(text))
    return run(GeSplitWeightRefreshablePass(), module)


def variables(module: ModuleOp) -> list[VariableOp]:
    return [op for op in module.ops if isinstance(op, VariableOp)]


def funcs(module: ModuleOp) -> dict[str, FuncOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, FuncOp)}


def body_ops(func: FuncOp) -> list:
    return list(func.body.block.ops)


# --------------------------------------------------------------------------- ge-const-to-var


def test_const_to_var_replaces_named_constants() -> None:
    module = run(GeConstToVarPass(names=("const_1", "const_2")), parse(GRAPH))

    # Variables first, in `names` order, then the graph.
    top = list(module.ops)
    assert [type(op) for op in top] == [VariableOp, VariableOp, FuncOp]
    w, b = variables(module)
    assert w.sym_name.data == "const_1_var"
    assert w.type == TensorType(f32, [4, 3])
    assert w.init is not None and w.init.data == "const_1"
    assert w.init_value is None  # bytes live in the weight table, under "const_1"
    assert b.sym_name.data == "const_2_var"
    assert b.type == TensorType(f32, [3])
    assert b.init is not None and b.init.data == "const_2"
    assert b.init_value is not None and b.init_value.get_values() == (1.0, 2.0, 3.0)

    graph = funcs(module)["main"]
    reads = [op for op in graph.walk() if isinstance(op, ReadVariableOp)]
    assert [(r.variable.string_value(), r.output.type) for r in reads] == [
        ("const_1_var", TensorType(f32, [4, 3])),
        ("const_2_var", TensorType(f32, [3])),
    ]
    # The reads feed what the constants fed.
    matmul = next(op for op in graph.walk() if isinstance(op, MatMulOp))
    add = next(op for op in graph.walk() if isinstance(op, AddOp))
    assert matmul.rhs.owner is reads[0] and add.rhs.owner is reads[1]
    # Constants that were not named stay constants.
    consts = [op.const_name.data for op in graph.walk() if isinstance(op, ConstOp)]
    assert consts == ["keep"]


def test_const_to_var_declares_in_names_order() -> None:
    module = run(GeConstToVarPass(names=("const_2", "const_1")), parse(GRAPH))
    assert [v.sym_name.data for v in variables(module)] == ["const_2_var", "const_1_var"]


def test_const_to_var_merges_ops_of_one_constant() -> None:
    module = run(
        GeConstToVarPass(names=("w",)),
        parse("""
builtin.module {
  func.func @main() -> tensor<2xf32> {
    %a = ge.const "w" : tensor<2xf32>
    %b = ge.const "w" : tensor<2xf32>
    %c = ge.add %a, %b : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
    func.return %c : tensor<2xf32>
  }
}
"""),
    )
    assert [v.sym_name.data for v in variables(module)] == ["w_var"]
    reads = [op for op in module.walk() if isinstance(op, ReadVariableOp)]
    assert len(reads) == 2 and not any(isinstance(op, ConstOp) for op in module.walk())


def test_const_to_var_scalar() -> None:
    module = run(GeConstToVarPass(names=("scale",)), parse(SCALAR))
    (var,) = variables(module)
    assert var.sym_name.data == "scale_var"
    assert var.type == TensorType(f32, [])
    assert var.init_value is not None and var.init_value.get_values() == (3.0,)


def test_const_to_var_names_option_from_pipeline_text() -> None:
    """`wrc-opt -p 'ge-const-to-var{names=...}'` builds the same pass as Python does."""
    (one,) = PassPipeline.parse_spec(PASSES, "ge-const-to-var{names=const_1}").passes
    assert one == GeConstToVarPass(names=("const_1",))
    (two,) = PassPipeline.parse_spec(PASSES, "ge-const-to-var{names=const_1,const_2}").passes
    assert two == GeConstToVarPass(names=("const_1", "const_2"))
    assert GeConstToVarPass.name == "ge-const-to-var"


# --------------------------------------------------------------------------- ge-split-weight-refreshable


def test_split_builds_the_three_graphs() -> None:
    original = parse(GRAPH)
    original_body = str(original.ops.first).split("\n", 1)[1]  # the graph minus its header
    module = convert(GRAPH, ("const_1", "const_2"))

    top = list(module.ops)
    assert [type(op) for op in top] == [VariableOp, VariableOp, FuncOp, FuncOp, FuncOp]
    assert list(funcs(module)) == ["var_init_graph", "var_update_graph", "var_infer_graph"]
    # The variables are plain declarations now: the init graph holds their values.
    for var in variables(module):
        assert var.init is None and var.init_value is None
    assert [(v.sym_name.data, v.type) for v in variables(module)] == [
        ("const_1_var", TensorType(f32, [4, 3])),
        ("const_2_var", TensorType(f32, [3])),
    ]

    init = funcs(module)["var_init_graph"]
    assert init.function_type.inputs.data == () and init.function_type.outputs.data == ()
    ops = body_ops(init)
    assert [type(op) for op in ops] == [ConstOp, AssignOp, ConstOp, AssignOp, ReturnOp]
    c1, a1, c2, a2, _ = ops
    assert isinstance(c1, ConstOp) and isinstance(c2, ConstOp)
    assert isinstance(a1, AssignOp) and isinstance(a2, AssignOp)
    assert (c1.const_name.data, c1.output.type, c1.value) == (
        "const_1",
        TensorType(f32, [4, 3]),
        None,
    )
    assert c2.const_name.data == "const_2" and c2.value is not None
    assert c2.value.get_values() == (1.0, 2.0, 3.0)
    assert a1.variable.string_value() == "const_1_var" and a1.value.owner is c1
    assert a1.assign_name is not None and a1.assign_name.data == "const_1_assign"
    assert a2.variable.string_value() == "const_2_var" and a2.value.owner is c2
    assert a2.assign_name is not None and a2.assign_name.data == "const_2_assign"

    update = funcs(module)["var_update_graph"]
    assert update.function_type.inputs.data == () and update.function_type.outputs.data == ()
    ops = body_ops(update)
    assert [type(op) for op in ops] == [
        DataOp,
        AssignIfNonEmptyOp,
        DataOp,
        AssignIfNonEmptyOp,
        ReturnOp,
    ]
    d1, u1, d2, u2, _ = ops
    assert isinstance(d1, DataOp) and isinstance(d2, DataOp)
    assert isinstance(u1, AssignIfNonEmptyOp) and isinstance(u2, AssignIfNonEmptyOp)
    # One input per variable, in const_names order, named `<const>_var_data`, unranked so
    # that an empty tensor ("keep") is accepted.
    assert [(d.data_name.data, d.index.value.data, d.output.type) for d in (d1, d2)] == [
        ("const_1_var_data", 0, UnrankedTensorType(f32)),
        ("const_2_var_data", 1, UnrankedTensorType(f32)),
    ]
    assert u1.variable.string_value() == "const_1_var" and u1.value.owner is d1
    assert u2.variable.string_value() == "const_2_var" and u2.value.owner is d2

    # The infer graph is the converted original, renamed.
    infer = funcs(module)["var_infer_graph"]
    assert infer.function_type == funcs(original)["main"].function_type
    converted = run(GeConstToVarPass(names=("const_1", "const_2")), parse(GRAPH))
    assert str(infer).split("\n", 1)[1] == str(funcs(converted)["main"]).split("\n", 1)[1]
    assert str(infer).split("\n", 1)[1] != original_body  # (the constants did change)


def test_split_scalar_weight() -> None:
    module = convert(SCALAR, ("scale",))
    (var,) = variables(module)
    assert var.type == TensorType(f32, [])
    init_const = body_ops(funcs(module)["var_init_graph"])[0]
    assert isinstance(init_const, ConstOp) and init_const.output.type == TensorType(f32, [])
    assert init_const.value is not None and init_const.value.get_values() == (3.0,)
    data = body_ops(funcs(module)["var_update_graph"])[0]
    assert isinstance(data, DataOp)
    assert (data.data_name.data, data.output.type) == ("scale_var_data", UnrankedTensorType(f32))


def test_split_integer_weight_keeps_its_element_type() -> None:
    module = convert(
        """
builtin.module {
  func.func @main() -> tensor<2xi32> {
    %i = ge.const "ids" : tensor<2xi32>
    func.return %i : tensor<2xi32>
  }
}
""",
        ("ids",),
    )
    data = body_ops(funcs(module)["var_update_graph"])[0]
    assert isinstance(data, DataOp) and data.output.type == UnrankedTensorType(i32)


def test_split_result_round_trips_through_text() -> None:
    module = convert(GRAPH, ("const_1", "const_2"))
    assert str(parse(str(module))) == str(module)


# --------------------------------------------------------------------------- errors

TWO_W = """
builtin.module {
  func.func @main() -> tensor<2xf32> {
    %a = ge.const "w" : tensor<2xf32>
    %b = ge.const "w" : tensor<1x2xf32>
    func.return %a : tensor<2xf32>
  }
}
"""

TWO_VALUES = """
builtin.module {
  func.func @main() -> tensor<2xf32> {
    %a = ge.const "w" = dense<[1.0, 2.0]> : tensor<2xf32>
    %b = ge.const "w" = dense<[1.0, 5.0]> : tensor<2xf32>
    func.return %a : tensor<2xf32>
  }
}
"""

TAKEN = """
builtin.module {
  ge.variable @const_1_var : tensor<4x3xf32>
  func.func @main() -> tensor<4x3xf32> {
    %w = ge.const "const_1" : tensor<4x3xf32>
    func.return %w : tensor<4x3xf32>
  }
}
"""

NO_FUNC = """
builtin.module {
  ge.variable @w_var : tensor<2xf32> {init = "w"}
}
"""

TWO_FUNCS = """
builtin.module {
  ge.variable @w_var : tensor<2xf32> {init = "w"}
  func.func @first() -> tensor<2xf32> {
    %w = ge.const "w" : tensor<2xf32>
    func.return %w : tensor<2xf32>
  }
  func.func @second() {
    func.return
  }
}
"""

NO_INIT = """
builtin.module {
  ge.variable @w_var : tensor<2xf32> {init = "w"}
  ge.variable @state : tensor<2xf32>
  func.func @main() -> tensor<2xf32> {
    %w = ge.read_variable @w_var : tensor<2xf32>
    func.return %w : tensor<2xf32>
  }
}
"""


def _taken(symbol: str) -> str:
    return f"""
builtin.module {{
  ge.variable @{symbol} : tensor<2xf32> {{init = "w"}}
  func.func @main() -> tensor<2xf32> {{
    %w = ge.read_variable @{symbol} : tensor<2xf32>
    func.return %w : tensor<2xf32>
  }}
}}
"""


CONST_TO_VAR_ERRORS = [
    pytest.param(GRAPH, (), "names", id="empty-names"),
    pytest.param(GRAPH, ("const_1", ""), "empty", id="empty-name"),
    pytest.param(GRAPH, ("const_1", "const_2", "const_1"), '"const_1"', id="duplicate"),
    pytest.param(GRAPH, ("const_1", "nope"), '"nope"', id="not-a-constant"),
    pytest.param(GRAPH, ("x",), '"x"', id="data-is-not-a-constant"),
    pytest.param(GRAPH, ("const",), '"const"', id="prefix-is-not-a-constant"),
    pytest.param(TWO_W, ("w",), '"w"', id="two-types"),
    pytest.param(TWO_VALUES, ("w",), '"w"', id="two-values"),
    pytest.param(TAKEN, ("const_1",), "@const_1_var", id="symbol-taken"),
    pytest.param(NO_FUNC, ("w",), "found 0", id="no-func"),
    pytest.param(TWO_FUNCS, ("w",), "@second", id="two-funcs"),
]


@pytest.mark.parametrize(("text", "names", "culprit"), CONST_TO_VAR_ERRORS)
def test_const_to_var_errors_change_nothing(
    text: str, names: tuple[str, ...], culprit: str
) -> None:
    module = parse(text)
    before = str(module)
    with pytest.raises(ConversionError) as info:
        GeConstToVarPass(names=names).apply(make_context(), module)
    assert isinstance(info.value, WrcError)
    assert culprit in str(info.value)
    assert str(info.value).startswith("ge-const-to-var: ")
    assert str(module) == before


SPLIT_ERRORS = [
    pytest.param(GRAPH, "run ge-const-to-var first", id="no-variable"),
    pytest.param(NO_INIT, "@state", id="variable-without-init"),
    pytest.param(NO_FUNC, "found 0", id="no-func"),
    pytest.param(TWO_FUNCS, "@second", id="two-funcs"),
    pytest.param(_taken("var_init_graph"), "@var_init_graph", id="init-taken"),
    pytest.param(_taken("var_update_graph"), "@var_update_graph", id="update-taken"),
    pytest.param(_taken("var_infer_graph"), "@var_infer_graph", id="infer-taken"),
]


@pytest.mark.parametrize(("text", "culprit"), SPLIT_ERRORS)
def test_split_errors_change_nothing(text: str, culprit: str) -> None:
    module = parse(text)
    before = str(module)
    with pytest.raises(ConversionError) as info:
        GeSplitWeightRefreshablePass().apply(make_context(), module)
    assert culprit in str(info.value)
    assert str(info.value).startswith("ge-split-weight-refreshable: ")
    assert str(module) == before


def test_split_twice_is_an_error_and_changes_nothing() -> None:
    module = convert(GRAPH, ("const_1",))
    before = str(module)
    with pytest.raises(ConversionError, match="exactly one func.func"):
        GeSplitWeightRefreshablePass().apply(make_context(), module)
    assert str(module) == before


def test_split_keeps_a_graph_already_named_var_infer_graph() -> None:
    module = convert(GRAPH.replace("@main", "@var_infer_graph"), ("const_1",))
    assert list(funcs(module)) == ["var_init_graph", "var_update_graph", "var_infer_graph"]
