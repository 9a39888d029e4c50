"""convert-ge-to-linalg and ge-bufferize: the shape of the IR they produce (docs/internals.md,
levels 2 and 3), that xDSL's convert-linalg-to-loops accepts it, and their errors.

Numerics are tested through the backends; here only structure is checked.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from xdsl.dialects import func, memref, scf
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    TensorType,
    UnitAttr,
    UnrankedTensorType,
    i1,
)
from xdsl.dialects.linalg.abstract_ops import LinalgStructuredOperation
from xdsl.dialects.linalg.ops import GenericOp
from xdsl.ir import Operation, SSAValue
from xdsl.ir.affine import AffineMap
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.transforms.convert_linalg_to_loops import ConvertLinalgToLoopsPass

from wrc.context import make_context
from wrc.dialects import ge
from wrc.errors import LoweringError, WrcError
from wrc.passes import PASSES
from wrc.passes.convert_ge_to_linalg import ConvertGeToLinalgPass
from wrc.passes.ge_bufferize import GeBufferizePass

# One graph using every compute op (static shapes), with a constant and a variable.
MODEL = """
builtin.module {
  ge.variable @w_var : tensor<16x10xf32>
  func.func @main() -> (tensor<2x10xf32>, tensor<1x4x3x3xf32>, tensor<1x4x1x1xf32>, tensor<5x4xf32>, tensor<1x5xf32>, tensor<2x3x4xi32>) {
    %x = ge.data "x" index 0 : tensor<2x16xf32>
    %w = ge.read_variable @w_var : tensor<16x10xf32>
    %b = ge.const "b" = dense<0.5> : tensor<10xf32>
    %mm = ge.matmul %x, %w : (tensor<2x16xf32>, tensor<16x10xf32>) -> tensor<2x10xf32>
    %a = ge.add %mm, %b : (tensor<2x10xf32>, tensor<10xf32>) -> tensor<2x10xf32>
    %s = ge.sub %a, %b : (tensor<2x10xf32>, tensor<10xf32>) -> tensor<2x10xf32>
    %m = ge.mul %s, %s : (tensor<2x10xf32>, tensor<2x10xf32>) -> tensor<2x10xf32>
    %d = ge.div %m, %b : (tensor<2x10xf32>, tensor<10xf32>) -> tensor<2x10xf32>
    %r = ge.relu %d : tensor<2x10xf32>
    %sg = ge.sigmoid %r : tensor<2x10xf32>
    %t = ge.tanh %sg : tensor<2x10xf32>
    %e = ge.exp %t : tensor<2x10xf32>
    %sm = ge.softmax %e {axis = 1 : i64} : tensor<2x10xf32>
    %img = ge.data "img" index 1 : tensor<1x4x6x6xf32>
    %k = ge.const "k" : tensor<4x2x3x3xf32>
    %cv = ge.conv2d %img, %k {strides = array<i64: 1, 1>, pads = array<i64: 1, 0, 1, 1>, dilations = array<i64: 1, 1>, groups = 2 : i64} : (tensor<1x4x6x6xf32>, tensor<4x2x3x3xf32>) -> tensor<1x4x6x5xf32>
    %mp = ge.max_pool2d %cv {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 1>} : tensor<1x4x6x5xf32> -> tensor<1x4x3x3xf32>
    %ap = ge.avg_pool2d %mp {kernel = array<i64: 2, 2>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 0, 0>, count_include_pad = 0 : i64} : tensor<1x4x3x3xf32> -> tensor<1x4x3x3xf32>
    %gp = ge.global_avg_pool %ap : tensor<1x4x3x3xf32> -> tensor<1x4x1x1xf32>
    %rs = ge.reshape %sm : tensor<2x10xf32> -> tensor<4x5xf32>
    %tr = ge.transpose %rs {perm = array<i64: 1, 0>} : tensor<4x5xf32> -> tensor<5x4xf32>
    %rm = ge.reduce_mean %rs {axes = array<i64: 0>, keepdims = 1 : i64} : tensor<4x5xf32> -> tensor<1x5xf32>
    %i = ge.data "i" index 2 : tensor<2x3x4xi32>
    %isum = ge.reduce_sum %i {axes = array<i64: 1>, keepdims = 1 : i64} : tensor<2x3x4xi32> -> tensor<2x1x4xi32>
    %imul = ge.mul %i, %isum : (tensor<2x3x4xi32>, tensor<2x1x4xi32>) -> tensor<2x3x4xi32>
    func.return %sm, %ap, %gp, %tr, %rm, %imul : tensor<2x10xf32>, tensor<1x4x3x3xf32>, tensor<1x4x1x1xf32>, tensor<5x4xf32>, tensor<1x5xf32>, tensor<2x3x4xi32>
  }
}
"""

# The three graphs of a weight-refreshable model, as ge-split-weight-refreshable makes them.
SPLIT = """
builtin.module {
  ge.variable @w_var : tensor<3x2xf32>
  ge.variable @s_var : tensor<f32>
  func.func @var_init_graph() {
    %0 = ge.const "w" : tensor<3x2xf32>
    ge.assign @w_var, %0 {name = "w_assign"} : tensor<3x2xf32>
    %1 = ge.const "s" = dense<2.0> : tensor<f32>
    ge.assign @s_var, %1 {name = "s_assign"} : tensor<f32>
    func.return
  }
  func.func @var_update_graph() {
    %0 = ge.data "w_var_data" index 0 : tensor<*xf32>
    ge.assign_if_nonempty @w_var, %0 : tensor<*xf32>
    %1 = ge.data "s_var_data" index 1 : tensor<*xf32>
    ge.assign_if_nonempty @s_var, %1 : tensor<*xf32>
    func.return
  }
  func.func @var_infer_graph() -> tensor<4x2xf32> {
    %x = ge.data "x" index 0 : tensor<4x3xf32>
    %w = ge.read_variable @w_var : tensor<3x2xf32>
    %s = ge.read_variable @s_var : tensor<f32>
    %y = ge.matmul %x, %w : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
    %z = ge.mul %y, %s : (tensor<4x2xf32>, tensor<f32>) -> tensor<4x2xf32>
    func.return %z : tensor<4x2xf32>
  }
}
"""

LEVEL2_OPS = {
    "builtin.module", "func.func", "func.return", "ge.variable", "ge.data", "ge.const", "ge.read_variable",
    "ge.assign", "ge.assign_if_nonempty", "tensor.empty", "tensor.collapse_shape",
    "tensor.expand_shape", "linalg.fill", "linalg.generic", "linalg.yield", "arith.constant",
}
BODY_OPS = {
    "arith.addf", "arith.subf", "arith.mulf", "arith.divf", "arith.maximumf", "arith.minimumf",
    "arith.negf", "arith.select", "arith.cmpf", "arith.addi", "arith.subi", "arith.muli",
    "arith.divsi", "arith.constant", "math.exp", "math.tanh", "linalg.yield",
}
LEVEL3_OPS = {
    "builtin.module", "func.func", "func.return", "memref.global", "memref.get_global", "memref.copy",
    "memref.alloc", "memref.collapse_shape", "memref.expand_shape", "scf.if", "scf.yield",
    "linalg.fill", "linalg.generic", "linalg.yield", "arith.constant",
}


def parse(text: str) -> ModuleOp:
    module = Parser(make_context(), text).parse_module()
    module.verify()
    return module


def lower(text: str, *, bufferize: bool = True, loops: bool = False) -> ModuleOp:
    ctx = make_context()
    module = Parser(ctx, text).parse_module()
    module.verify()
    ConvertGeToLinalgPass().apply(ctx, module)
    module.verify()
    if bufferize:
        GeBufferizePass().apply(ctx, module)
        module.verify()
    if loops:
        ConvertLinalgToLoopsPass().apply(ctx, module)
        module.verify()
    return module


def top_level_ops(module: ModuleOp) -> Iterator[Operation]:
    """Every op except those inside linalg bodies."""
    for op in module.walk():
        if not isinstance(op.parent_op(), LinalgStructuredOperation):
            yield op


def typed_values(op: Operation) -> list[SSAValue]:
    values: list[SSAValue] = [*op.operands, *op.results]
    for region in op.regions:
        for block in region.blocks:
            values += block.args
    return values


def function(module: ModuleOp, name: str) -> func.FuncOp:
    return next(f for f in module.ops if isinstance(f, func.FuncOp) and f.sym_name.data == name)


def is_sum_of_scaled_dims(m: AffineMap) -> bool:
    """Each result is `sum(dim * c) + offset` with c, offset >= 0 (probed: affine + monotone)."""
    n = m.num_dims
    origin = m.eval([0] * n, [])
    units = [m.eval([int(i == j) for j in range(n)], []) for i in range(n)]
    ones = m.eval([1] * n, [])
    twos = m.eval([2] * n, [])
    for r, offset in enumerate(origin):
        coeffs = [u[r] - offset for u in units]
        if offset < 0 or any(c < 0 for c in coeffs):
            return False
        if ones[r] != offset + sum(coeffs) or twos[r] != offset + 2 * sum(coeffs):
            return False
    return True


# --------------------------------------------------------------------------- level 2


def test_level2_uses_only_generic_fill_and_tensor_ops():
    module = lower(MODEL, bufferize=False)
    names = {op.name for op in top_level_ops(module)}
    assert names <= LEVEL2_OPS, names - LEVEL2_OPS
    assert not any(isinstance(op, ge.ComputeOp) for op in module.walk())
    for op in module.walk():
        if isinstance(op, GenericOp):
            assert {o.name for o in op.body.block.ops} <= BODY_OPS
            for m in op.indexing_maps:
                assert is_sum_of_scaled_dims(m.data), (op, m)
            assert len(op.results) == 1 and isinstance(op.results[0].type, TensorType)


def test_level2_keeps_graph_ops():
    module = lower(SPLIT, bufferize=False)
    names = [op.name for op in function(module, "var_update_graph").walk()]
    assert names.count("ge.data") == 2 and names.count("ge.assign_if_nonempty") == 2
    init = [op.name for op in function(module, "var_init_graph").walk()]
    assert init.count("ge.const") == 2 and init.count("ge.assign") == 2
    assert [op.name for op in module.ops][:2] == ["ge.variable", "ge.variable"]


def test_matmul_is_fill_then_multiply_accumulate():
    module = lower(SPLIT, bufferize=False)
    infer = function(module, "var_infer_graph")
    generics = [op for op in infer.walk() if isinstance(op, GenericOp)]
    mm = generics[0]
    assert [str(t.data) for t in mm.iterator_types] == ["parallel", "parallel", "reduction"]
    assert [o.name for o in mm.body.block.ops] == ["arith.mulf", "arith.addf", "linalg.yield"]
    assert mm.outputs[0].owner.name == "linalg.fill"


def test_grouped_conv_splits_channels_with_expand_shape():
    module = lower(MODEL, bufferize=False)
    expands = [op for op in module.walk() if op.name == "tensor.expand_shape"]
    shapes = {op.results[0].type.get_shape() for op in expands}
    assert (1, 2, 2, 8, 8) in shapes  # padded input (N, G, C/G, H, W); W gets 1 extra left cell
    assert (2, 2, 2, 3, 3) in shapes  # filter (G, F/G, C/G, KH, KW)


def test_lowering_is_idempotent_on_lowered_ir():
    ctx = make_context()
    module = Parser(ctx, MODEL).parse_module()
    ConvertGeToLinalgPass().apply(ctx, module)
    text = str(module)
    ConvertGeToLinalgPass().apply(ctx, module)
    assert str(module) == text


# --------------------------------------------------------------------------- level 3


def test_level3_has_no_tensors_left():
    module = lower(MODEL)
    names = {op.name for op in top_level_ops(module)}
    assert names <= LEVEL3_OPS, names - LEVEL3_OPS
    for op in module.walk():
        for value in typed_values(op):
            assert not isinstance(value.type, TensorType | UnrankedTensorType), (op.name, value.type)
        if isinstance(op, LinalgStructuredOperation):
            assert not op.results
    main = function(module, "main")
    assert all(isinstance(t, MemRefType) for t in main.function_type.inputs)
    assert all(isinstance(t, MemRefType) for t in main.function_type.outputs)


def test_level3_arguments_and_globals():
    module = lower(SPLIT)
    globals_ = {g.sym_name.data: g for g in module.ops if isinstance(g, memref.GlobalOp)}
    assert list(globals_) == ["w_var", "s_var", "w", "s"]
    for name in ("w_var", "s_var"):
        g = globals_[name]
        assert "ge.variable" in g.attributes and g.sym_visibility.data == "public"
        assert isinstance(g.initial_value, UnitAttr) and g.constant is None
    for name in ("w", "s"):
        g = globals_[name]
        assert "ge.constant" in g.attributes and g.sym_visibility.data == "private"
        assert g.constant is not None
    assert globals_["w"].type == MemRefType(globals_["w"].type.element_type, (3, 2))
    assert isinstance(globals_["w"].initial_value, UnitAttr)  # bytes live in the weight table
    assert isinstance(globals_["s"].initial_value, DenseIntOrFPElementsAttr)

    update = function(module, "var_update_graph")
    assert list(update.function_type.inputs) == [MemRefType(globals_["w"].type.element_type, (3, 2)), i1, MemRefType(globals_["w"].type.element_type, ()), i1]
    assert update.arg_attrs is not None
    attrs = [dict(d.data) for d in update.arg_attrs]
    assert attrs[0] == {"ge.name": StringAttr("w_var_data"), "ge.optional": UnitAttr()}
    assert attrs[1] == {}
    assert attrs[2] == {"ge.name": StringAttr("s_var_data"), "ge.optional": UnitAttr()}
    ifs = [op for op in update.walk() if isinstance(op, scf.IfOp)]
    assert [op.cond for op in ifs] == [update.args[1], update.args[3]]
    assert [o.name for o in ifs[0].true_region.block.ops] == ["memref.get_global", "memref.copy", "scf.yield"]

    infer = function(module, "var_infer_graph")
    assert [dict(d.data) for d in infer.arg_attrs] == [{"ge.name": StringAttr("x")}]
    gets = [op.name_.string_value() for op in infer.walk() if isinstance(op, memref.GetGlobalOp)]
    assert gets == ["w_var", "s_var"]
    init = function(module, "var_init_graph")
    copies = [op for op in init.walk() if isinstance(op, memref.CopyOp)]
    assert [(c.source.owner.name_.string_value(), c.destination.owner.name_.string_value()) for c in copies] == [
        ("w", "w_var"), ("s", "s_var")
    ]


def test_fill_and_generic_share_one_buffer():
    module = lower(SPLIT)
    infer = function(module, "var_infer_graph")
    allocs = [op for op in infer.walk() if isinstance(op, memref.AllocOp)]
    assert len(allocs) == 2  # matmul (fill + generic in place) and mul
    assert not any(isinstance(op, memref.CopyOp) for op in infer.walk())


def test_data_arguments_follow_index_order():
    text = """
    builtin.module {
      func.func @main() -> tensor<2xf32> {
        %b = ge.data "b" index 1 : tensor<2xf32>
        %a = ge.data "a" index 0 : tensor<2xf32>
        %y = ge.sub %a, %b : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
        func.return %y : tensor<2xf32>
      }
    }
    """
    main = function(lower(text), "main")
    assert [dict(d.data)["ge.name"].data for d in main.arg_attrs] == ["a", "b"]
    generic = next(op for op in main.walk() if isinstance(op, GenericOp))
    assert list(generic.inputs) == list(main.args)


def test_level3_round_trips_through_generic_syntax():
    module = lower(SPLIT)
    text = str(module)
    from io import StringIO

    out = StringIO()
    Printer(stream=out, print_generic_format=True).print_op(module)
    assert str(parse(out.getvalue())) == text


def test_convert_linalg_to_loops_accepts_every_op():
    module = lower(MODEL, loops=True)
    assert not any(op.dialect_name() == "linalg" for op in module.walk())
    assert any(op.name == "scf.for" for op in module.walk())


def test_full_pipeline_from_level1():
    ctx = make_context()
    module = Parser(ctx, """
    builtin.module {
      func.func @main() -> tensor<2x3xf32> {
        %x = ge.data "x" index 0 : tensor<2x4xf32>
        %w = ge.const "w" : tensor<4x3xf32>
        %b = ge.const "b" = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
        %y = ge.matmul %x, %w : (tensor<2x4xf32>, tensor<4x3xf32>) -> tensor<2x3xf32>
        %z = ge.add %y, %b : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
        func.return %z : tensor<2x3xf32>
      }
    }
    """).parse_module()
    PASSES["ge-const-to-var"]()(names=("w", "b")).apply(ctx, module)
    PASSES["ge-split-weight-refreshable"]()().apply(ctx, module)
    PASSES["convert-ge-to-linalg"]()().apply(ctx, module)
    PASSES["ge-bufferize"]()().apply(ctx, module)
    module.verify()
    names = [g.sym_name.data for g in module.ops if isinstance(g, memref.GlobalOp)]
    assert names == ["w_var", "b_var", "w", "b"]
    update = function(module, "var_update_graph")
    assert [str(t) for t in update.function_type.inputs] == ["memref<4x3xf32>", "i1", "memref<3xf32>", "i1"]
    ConvertLinalgToLoopsPass().apply(ctx, module)
    module.verify()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            """%x = ge.data "x" index 0 : tensor<?x3xf32>
               %w = ge.const "w" : tensor<3x2xf32>
               %y = ge.matmul %x, %w : (tensor<?x3xf32>, tensor<3x2xf32>) -> tensor<?x2xf32>""",
            r"ge\.matmul: dynamic dimension in tensor<\?x3xf32> not supported; give the graph inputs static shapes",
        ),
        (
            """%x = ge.data "x" index 0 : tensor<2x?xf32>
               %y = ge.softmax %x {axis = 0 : i64} : tensor<2x?xf32>""",
            r"ge\.softmax: dynamic dimension",
        ),
        (
            """%x = ge.data "x" index 0 : tensor<2x3xi32>
               %y = ge.reduce_mean %x {axes = array<i64: 1>, keepdims = 0 : i64} : tensor<2x3xi32> -> tensor<2xi32>""",
            r"ge\.reduce_mean: integer element type i32",
        ),
    ],
)
def test_lowering_errors(body: str, message: str):
    text = "builtin.module {\n func.func @main() {\n" + body + "\n func.return\n }\n}"
    ctx = make_context()
    module = Parser(ctx, text).parse_module()
    before = str(module)
    with pytest.raises(LoweringError, match=message) as info:
        ConvertGeToLinalgPass().apply(ctx, module)
    assert isinstance(info.value, WrcError)
    if "dynamic" in message:
        assert str(module) == before  # rejected before anything was rewritten


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            """builtin.module {
                 ge.variable @w : tensor<2xf32>
                 func.func @main() -> tensor<2xf32> {
                   %w = ge.const "w" : tensor<2xf32>
                   func.return %w : tensor<2xf32>
                 }
               }""",
            r'ge\.const "w": a ge\.variable of the same name exists',
        ),
        (
            """builtin.module {
                 func.func @a() -> tensor<2xf32> {
                   %w = ge.const "w" : tensor<2xf32>
                   func.return %w : tensor<2xf32>
                 }
                 func.func @b() -> tensor<3xf32> {
                   %w = ge.const "w" : tensor<3xf32>
                   func.return %w : tensor<3xf32>
                 }
               }""",
            r'ge\.const "w": defined with two types',
        ),
        (
            """builtin.module {
                 func.func @a() -> tensor<2xf32> {
                   %w = ge.const "w" = dense<[1.0, 2.0]> : tensor<2xf32>
                   func.return %w : tensor<2xf32>
                 }
                 func.func @b() -> tensor<2xf32> {
                   %w = ge.const "w" = dense<[1.0, 3.0]> : tensor<2xf32>
                   func.return %w : tensor<2xf32>
                 }
               }""",
            r'ge\.const "w": defined with two different inline values',
        ),
        (
            """builtin.module {
                 func.func @main() -> tensor<*xf32> {
                   %x = ge.data "x" index 0 : tensor<*xf32>
                   func.return %x : tensor<*xf32>
                 }
               }""",
            r'ge\.data "x": unranked input',
        ),
        (
            """builtin.module {
                 func.func @main() -> tensor<2xf32> {
                   %x = ge.data "x" index 0 : tensor<2xf32>
                   %y = ge.exp %x : tensor<2xf32>
                   func.return %y : tensor<2xf32>
                 }
               }""",
            r"ge\.exp: not lowered; run convert-ge-to-linalg before ge-bufferize",
        ),
        (
            """builtin.module {
                 func.func @main() -> tensor<2xf32> {
                   %a = ge.data "a" index 0 : tensor<2xf32>
                   %b = ge.data "b" index 0 : tensor<2xf32>
                   func.return %a : tensor<2xf32>
                 }
               }""",
            r"func @main: ge\.data indices \[0, 0\]",
        ),
    ],
)
def test_bufferize_errors(text: str, message: str):
    ctx = make_context()
    module = Parser(ctx, text).parse_module()
    with pytest.raises(LoweringError, match=message):
        GeBufferizePass().apply(ctx, module)


def test_passes_are_registered():
    assert PASSES["convert-ge-to-linalg"]() is ConvertGeToLinalgPass
    assert PASSES["ge-bufferize"]() is GeBufferizePass
    assert ConvertGeToLinalgPass.name == "convert-ge-to-linalg"
    assert GeBufferizePass.name == "ge-bufferize"
