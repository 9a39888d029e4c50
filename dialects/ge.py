"""The `ge` dialect: Graph Engine graphs as tensor-typed MLIR operations.

A graph is a `func.func` whose inputs are `ge.data` ops (GE's Data nodes, numbered by
`index`) and whose outputs are the operands of `func.return` (GE's NetOutput). Weights are
`ge.const` ops that name their bytes (kept in wrc's weight table, never in the IR text) or,
for small test constants, carry an inline `dense<...>` value. Weight-refreshable graphs add
module-level `ge.variable` symbols, read with `ge.read_variable` and written with
`ge.assign` (init graph) or `ge.assign_if_nonempty` (update graph).

Each compute op owns its shape rule (`infer`): the verifier checks result types with it, and
the op's constructor uses the very same function to infer its result type when none is given
(what `wrc.Graph`'s builders and the passes rely on). The ops are grouped by family:
arithmetic, functions, layout and indexing, bool tensors, contractions and windows, reductions.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    I64,
    AnyFloat,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    SymbolNameConstraint,
    SymbolRefAttr,
    TensorType,
    UnrankedTensorType,
    i1,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    base,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import Commutative, Pure, SymbolOpInterface, SymbolTable, SymbolUserOpInterface
from xdsl.utils.exceptions import VerifyException

from wrc.errors import ShapeError
from wrc.ir_read import init_op

Shape = tuple[int, ...]
"""A tensor shape; `DYNAMIC` marks a dimension only known at run time."""

DYNAMIC = DYNAMIC_INDEX


# --------------------------------------------------------------------------- shape helpers


def fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join("?" if d == DYNAMIC else str(d) for d in shape) + "]"


def _fail(op: str, message: str) -> ShapeError:
    return ShapeError(f"{op}: {message}")


def dims_compatible(a: int, b: int) -> bool:
    return a == b or a == DYNAMIC or b == DYNAMIC


def shapes_compatible(a: Sequence[int], b: Sequence[int]) -> bool:
    return len(a) == len(b) and all(dims_compatible(x, y) for x, y in zip(a, b))


def broadcast_shapes(op: str, a: Shape, b: Shape) -> Shape:
    """NumPy broadcasting of two shapes (dynamic dims broadcast against 1 or themselves)."""
    rank = max(len(a), len(b))
    pa = (1,) * (rank - len(a)) + tuple(a)
    pb = (1,) * (rank - len(b)) + tuple(b)
    out: list[int] = []
    for x, y in zip(pa, pb):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif x == DYNAMIC or y == DYNAMIC:
            out.append(y if x == DYNAMIC else x)
        else:
            raise _fail(op, f"shapes {fmt_shape(a)} and {fmt_shape(b)} do not broadcast")
    return tuple(out)


def normalize_axis(op: str, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise _fail(op, f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def _window_out(op: str, size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    if size == DYNAMIC:
        return DYNAMIC
    span = dilation * (kernel - 1) + 1
    if size + pad < span:
        raise _fail(op, f"window of extent {span} does not fit input size {size} with padding {pad}")
    return (size + pad - span) // stride + 1


def _check_window_params(
    op: str, kernel: Sequence[int], strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int]
) -> None:
    if len(kernel) != 2 or len(strides) != 2 or len(dilations) != 2 or len(pads) != 4:
        raise _fail(op, "expects 2 kernel sizes, 2 strides, 2 dilations and 4 pads (top, left, bottom, right)")
    if any(k <= 0 for k in kernel) or any(s <= 0 for s in strides) or any(d <= 0 for d in dilations):
        raise _fail(op, "kernel sizes, strides and dilations must be positive")
    if any(p < 0 for p in pads):
        raise _fail(op, "pads must be non-negative")


def window_output_hw(
    op: str, hw: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
    pads: Sequence[int], dilations: Sequence[int],
) -> tuple[int, int]:
    _check_window_params(op, kernel, strides, pads, dilations)
    return (
        _window_out(op, hw[0], kernel[0], strides[0], pads[0] + pads[2], dilations[0]),
        _window_out(op, hw[1], kernel[1], strides[1], pads[1] + pads[3], dilations[1]),
    )


def _ints(attr: DenseArrayBase) -> tuple[int, ...]:
    return tuple(int(x) for x in attr.get_values())


def _array(values: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, list(values))


def _ranked(op: Operation, value: SSAValue) -> TensorType:
    return _tensor(op.name, value)


def _tensor(op: str, value: SSAValue) -> TensorType:
    """`value`'s type, which `op`'s shape rule needs ranked."""
    if not isinstance(value.type, TensorType):
        raise _fail(op, f"expects a ranked tensor, got {value.type}")
    return value.type


def _check_result(op: Operation, expected: Shape, element_type: Attribute) -> None:
    result = op.results[0].type
    assert isinstance(result, TensorType)
    if result.element_type != element_type:
        raise _fail(op.name, f"result element type {result.element_type} should be {element_type}")
    if not shapes_compatible(result.get_shape(), expected):
        raise _fail(
            op.name,
            f"result shape {fmt_shape(result.get_shape())} does not match the inferred shape {fmt_shape(expected)}",
        )


# --------------------------------------------------------------------------- graph structure


def _build(op: IRDLOperation, *, operands: Sequence[SSAValue] = (), result_types: Sequence[Attribute] = (),
           properties: dict[str, Attribute | None]) -> None:
    """What IRDL's builder makes of an op of fixed arity without regions (its properties less
    the None ones), without its argument normalisation, half of the cost: a compile builds
    the variable ops below by the thousand (`ge-split-weight-refreshable`: four per weight)."""
    init_op(op, operands, result_types, {k: v for k, v in properties.items() if v is not None})


def _build_compute(op: IRDLOperation, operands: Sequence[SSAValue], result_type: Attribute) -> None:
    """IRDL's builder for a compute op of single operands and one result: through `_build`
    when the operands are values (graphs are built of thousands), else IRDL's own (which
    also takes an op for its result)."""
    if all(isinstance(v, SSAValue) for v in operands):
        _build(op, operands=operands, result_types=(result_type,), properties={})
    else:
        IRDLOperation.__init__(op, operands=list(operands), result_types=[result_type])


@functools.lru_cache(maxsize=8192)
def _symbol_ref(name: str) -> SymbolRefAttr:
    """`SymbolRefAttr(name)`, made once per name (attributes are immutable values; a
    conversion refers to each variable from several ops, and xDSL checks each new one)."""
    return SymbolRefAttr(name)


@irdl_op_definition
class DataOp(IRDLOperation):
    """A graph input (GE `Data`): `%x = ge.data "x" index 0 : tensor<1x784xf32>`."""

    name = "ge.data"
    data_name = prop_def(StringAttr, prop_name="name")
    index = prop_def(IntegerAttr[I64])
    output = result_def(TensorType | UnrankedTensorType)

    assembly_format = "$name `index` $index attr-dict `:` type($output)"

    def __init__(self, name: str, index: int, type: Attribute):
        _build(self, properties={"name": StringAttr(name), "index": IntegerAttr(index, i64)}, result_types=[type])

    def verify_(self) -> None:
        if not self.data_name.data:
            raise VerifyException("ge.data: the input name must not be empty")
        if self.index.value.data < 0:
            raise VerifyException("ge.data: the input index must be non-negative")


@irdl_op_definition
class ConstOp(IRDLOperation):
    """A named constant (GE `Const`).

    `%w = ge.const "w" : tensor<784x10xf32>` names bytes held in wrc's weight table;
    `%b = ge.const "b" = dense<[1.0, 2.0]> : tensor<2xf32>` carries a small inline value.
    """

    name = "ge.const"
    const_name = prop_def(StringAttr, prop_name="name")
    value = opt_prop_def(DenseIntOrFPElementsAttr)
    output = result_def(TensorType)
    traits = traits_def(Pure())

    def __init__(self, name: str, type: TensorType, value: DenseIntOrFPElementsAttr | None = None):
        _build(self, properties={"name": StringAttr(name), "value": value}, result_types=[type])

    def verify_(self) -> None:
        if not self.const_name.data:
            raise VerifyException("ge.const: the constant name must not be empty")
        if DYNAMIC in self.output.type.get_shape():
            raise VerifyException(f"ge.const \"{self.const_name.data}\": a constant must have a static shape")
        if self.value is not None and self.value.type != self.output.type:
            raise VerifyException(
                f"ge.const \"{self.const_name.data}\": value type {self.value.type} differs from result type {self.output.type}"
            )

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_attribute(self.const_name)
        if self.value is not None:
            printer.print_string(" = ")
            printer.print_attribute(self.value)
        else:
            printer.print_string(" : ")
            printer.print_attribute(self.output.type)
        printer.print_op_attributes(self.attributes)

    @classmethod
    def parse(cls, parser: Parser) -> Self:
        name = parser.parse_str_literal(" for the constant name")
        value = None
        if parser.parse_optional_punctuation("="):
            attr = parser.parse_attribute()
            if not isinstance(attr, DenseIntOrFPElementsAttr) or not isinstance(attr.type, TensorType):
                parser.raise_error("ge.const expects a dense tensor value")
            value = attr
            type = attr.type
        else:
            parser.parse_punctuation(":")
            type = parser.parse_type()
            if not isinstance(type, TensorType):
                parser.raise_error("ge.const expects a ranked tensor type")
        op = cls(name, type, value)
        op.attributes |= parser.parse_optional_attr_dict()
        return op


@irdl_op_definition
class VariableOp(IRDLOperation):
    """A module-level variable shared by the graphs of a bundle.

    `ge.variable @w_var : tensor<784x10xf32>`. Between `ge-const-to-var` and
    `ge-split-weight-refreshable` it also records the constant it replaced
    (`{init = "w"}`, plus `init_value` when that constant was inline), which the split
    turns into the init graph.
    """

    name = "ge.variable"
    sym_name = prop_def(SymbolNameConstraint())
    type = prop_def(TensorType)
    init = opt_prop_def(StringAttr)
    init_value = opt_prop_def(DenseIntOrFPElementsAttr)
    traits = traits_def(SymbolOpInterface())
    irdl_options = (ParsePropInAttrDict(),)

    assembly_format = "$sym_name `:` $type attr-dict"

    def __init__(
        self,
        sym_name: str,
        type: TensorType,
        init: str | None = None,
        init_value: DenseIntOrFPElementsAttr | None = None,
    ):
        _build(self, properties={
            "sym_name": StringAttr(sym_name),
            "type": type,
            "init": StringAttr(init) if init is not None else None,
            "init_value": init_value,
        })

    def verify_(self) -> None:
        if DYNAMIC in self.type.get_shape():
            raise VerifyException(f"ge.variable @{self.sym_name.data}: a variable must have a static shape")
        if self.init_value is not None and self.init_value.type != self.type:
            raise VerifyException(
                f"ge.variable @{self.sym_name.data}: init_value type {self.init_value.type} differs from {self.type}"
            )


_VARIABLES: weakref.WeakKeyDictionary[Operation, dict[str, weakref.ref[VariableOp]]] = weakref.WeakKeyDictionary()
"""Per symbol-table op: its variables by name. `SymbolTable.lookup_symbol` scans the module
on every call, which made verifying a graph with many variables quadratic. The variables are
held weakly: a strong reference would keep the key (their parent module) alive forever."""


def lookup_variable(op: Operation, ref: SymbolRefAttr) -> VariableOp:
    table_op: Operation | None = op
    while table_op is not None and not table_op.has_trait(SymbolTable):
        table_op = table_op.parent_op()
    name = ref.root_reference.data
    found = None
    if table_op is not None and not ref.nested_references:
        table = _VARIABLES.get(table_op)
        entry = table.get(name) if table is not None else None
        found = entry() if entry is not None else None
        # A stale entry (the variable was erased, moved or renamed) rebuilds the table.
        if found is None or found.parent_op() is not table_op or found.sym_name.data != name:
            table = {v.sym_name.data: weakref.ref(v) for v in table_op.regions[0].block.ops
                     if isinstance(v, VariableOp)}
            _VARIABLES[table_op] = table
            entry = table.get(name)
            found = entry() if entry is not None else None
    if not isinstance(found, VariableOp):
        raise VerifyException(f"{op.name}: '@{ref.string_value()}' is not a ge.variable")
    return found


@dataclass(frozen=True)
class VariableUser(SymbolUserOpInterface):
    """The op's `variable` names a `ge.variable` of the enclosing module, and the tensor the
    op reads or writes (`role`: its result or its operand) has the variable's type. An
    `exact=False` user (`ge.assign_if_nonempty`) takes any shape compatible with it."""

    role: str = "value"
    exact: bool = True

    def verify(self, op: Operation) -> None:
        var = lookup_variable(op, op.properties["variable"])
        vtype = (op.results or op.operands)[0].type
        name = var.sym_name.data
        if self.exact:
            if vtype != var.type:
                raise VerifyException(f"{op.name}: {self.role} type {vtype} differs from @{name}'s type {var.type}")
            return
        assert isinstance(vtype, TensorType | UnrankedTensorType)
        if vtype.element_type != var.type.element_type:
            raise VerifyException(
                f"{op.name}: element type {vtype.element_type} differs from @{name}'s {var.type.element_type}"
            )
        if isinstance(vtype, TensorType) and not shapes_compatible(vtype.get_shape(), var.type.get_shape()):
            raise VerifyException(
                f"{op.name}: shape {fmt_shape(vtype.get_shape())} differs from @{name}'s {fmt_shape(var.type.get_shape())}"
            )


@irdl_op_definition
class ReadVariableOp(IRDLOperation):
    """`%w = ge.read_variable @w_var : tensor<784x10xf32>`."""

    name = "ge.read_variable"
    variable = prop_def(SymbolRefAttr)
    output = result_def(TensorType)
    traits = traits_def(VariableUser("result"))
    assembly_format = "$variable attr-dict `:` type($output)"

    def __init__(self, variable: str, type: TensorType):
        _build(self, properties={"variable": _symbol_ref(variable)}, result_types=[type])


@irdl_op_definition
class AssignOp(IRDLOperation):
    """`ge.assign @w_var, %c : tensor<784x10xf32>` (GE `Assign`; `name` is the GE node name)."""

    name = "ge.assign"
    variable = prop_def(SymbolRefAttr)
    value = operand_def(TensorType)
    assign_name = opt_prop_def(StringAttr, prop_name="name")
    traits = traits_def(VariableUser("value"))
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$variable `,` $value attr-dict `:` type($value)"

    def __init__(self, variable: str, value: SSAValue, name: str | None = None):
        _build(self, operands=[value], properties={
            "variable": _symbol_ref(variable),
            "name": StringAttr(name) if name is not None else None,
        })



@irdl_op_definition
class AssignIfNonEmptyOp(IRDLOperation):
    """The update graph's write: assign unless the input tensor is empty (size 0).

    `ge.assign_if_nonempty @w_var, %d : tensor<*xf32>`. An empty input leaves the
    variable as it is; a non-empty input must have the variable's shape and dtype. This
    tests emptiness, not truthiness: a scalar weight updated to 0 is updated.
    """

    name = "ge.assign_if_nonempty"
    variable = prop_def(SymbolRefAttr)
    value = operand_def(TensorType | UnrankedTensorType)
    traits = traits_def(VariableUser("value", exact=False))
    assembly_format = "$variable `,` $value attr-dict `:` type($value)"

    def __init__(self, variable: str, value: SSAValue):
        _build(self, operands=[value], properties={"variable": _symbol_ref(variable)})


# --------------------------------------------------------------------------- compute ops
# Every compute op owns its shape rule (`infer`), which its verifier and its constructor share.

class ComputeOp(IRDLOperation):
    """An op with a shape rule; `infer_result` gives its result type from its operands.

    Like MLIR's result-inferring builders, a constructor whose result type follows from its
    operands and properties takes it as optional (`None`: inferred by `infer`, which raises
    `ShapeError` on operands the rule rejects); reshape, cast, expand and slice need it, since
    there the result type *is* the op's parameter.
    """

    def infer_result(self) -> TensorType:
        raise NotImplementedError

    def verify_(self) -> None:
        expected = self.infer_result()
        _check_result(self, expected.get_shape(), expected.element_type)


# --------------------------------------------------------------------------- elementwise arithmetic
# NumPy broadcasting of two operands of one element type.

class ElementwiseBinaryOp(ComputeOp):
    """`%z = ge.add %x, %y : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xf32>` (NumPy broadcasting)."""

    T: ClassVar = VarConstraint("T", base(AnyFloat) | base(IntegerType))
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    output = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` `->` type($output)"

    def __init__(self, lhs: SSAValue, rhs: SSAValue, result_type: Attribute | None = None):
        if result_type is None:
            result_type = self.infer(self.name, _tensor(self.name, lhs), _tensor(self.name, rhs))
        _build_compute(self, (lhs, rhs), result_type)

    @staticmethod
    def infer(op: str, lhs: TensorType, rhs: TensorType) -> TensorType:
        if lhs.element_type != rhs.element_type:
            raise _fail(op, f"element types {lhs.element_type} and {rhs.element_type} differ")
        return TensorType(lhs.element_type, broadcast_shapes(op, lhs.get_shape(), rhs.get_shape()))

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.lhs), _ranked(self, self.rhs))


@irdl_op_definition
class AddOp(ElementwiseBinaryOp):
    name = "ge.add"
    traits = traits_def(Pure(), Commutative())


@irdl_op_definition
class SubOp(ElementwiseBinaryOp):
    name = "ge.sub"


@irdl_op_definition
class MulOp(ElementwiseBinaryOp):
    name = "ge.mul"
    traits = traits_def(Pure(), Commutative())


@irdl_op_definition
class DivOp(ElementwiseBinaryOp):
    name = "ge.div"


@irdl_op_definition
class MaximumOp(ElementwiseBinaryOp):
    """Elementwise max (NaN-propagating for floats, as ONNX Max)."""

    name = "ge.maximum"
    traits = traits_def(Pure(), Commutative())


@irdl_op_definition
class MinimumOp(ElementwiseBinaryOp):
    name = "ge.minimum"
    traits = traits_def(Pure(), Commutative())


class FloatBinaryOp(ElementwiseBinaryOp):
    """An elementwise binary op defined on floating-point tensors only."""

    @staticmethod
    def infer(op: str, lhs: TensorType, rhs: TensorType) -> TensorType:
        out = ElementwiseBinaryOp.infer(op, lhs, rhs)
        if not isinstance(out.element_type, AnyFloat):
            raise _fail(op, f"expects floating-point tensors, got {out.element_type}")
        return out


@irdl_op_definition
class PowOp(FloatBinaryOp):
    """`x ** y` elementwise (float), NumPy broadcasting."""

    name = "ge.pow"


class IntegerBinaryOp(ElementwiseBinaryOp):
    """An elementwise binary op on integer tensors (not bools), NumPy broadcasting."""

    @staticmethod
    def infer(op: str, lhs: TensorType, rhs: TensorType) -> TensorType:
        out = ElementwiseBinaryOp.infer(op, lhs, rhs)
        if not isinstance(out.element_type, IntegerType) or out.element_type == i1:
            raise _fail(op, f"expects integer tensors, got {out.element_type}")
        return out


@irdl_op_definition
class FloorModOp(IntegerBinaryOp):
    """`x mod y` with the sign of `y` (Python's and NumPy's `%`; ONNX Mod)."""

    name = "ge.floor_mod"


@irdl_op_definition
class FModOp(IntegerBinaryOp):
    """`x mod y` with the sign of `x` (C's `%`; ONNX Mod with fmod=1)."""

    name = "ge.fmod"


# --------------------------------------------------------------------------- elementwise functions
# One operand, result of the operand's type.

class ElementwiseUnaryOp(ComputeOp):
    """`%y = ge.relu %x : tensor<4x3xf32>` (result type = operand type)."""

    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    output = result_def(T)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input)"

    def __init__(self, input: SSAValue):
        _build_compute(self, (input,), self.infer(self.name, _tensor(self.name, input)))

    @staticmethod
    def infer(op: str, input: TensorType) -> TensorType:
        if not isinstance(input.element_type, AnyFloat):
            raise _fail(op, f"expects a floating-point tensor, got {input}")
        return input

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.input))


@irdl_op_definition
class ReluOp(ElementwiseUnaryOp):
    name = "ge.relu"


@irdl_op_definition
class SigmoidOp(ElementwiseUnaryOp):
    name = "ge.sigmoid"


@irdl_op_definition
class TanhOp(ElementwiseUnaryOp):
    name = "ge.tanh"


@irdl_op_definition
class ExpOp(ElementwiseUnaryOp):
    name = "ge.exp"


@irdl_op_definition
class SqrtOp(ElementwiseUnaryOp):
    name = "ge.sqrt"


@irdl_op_definition
class LogOp(ElementwiseUnaryOp):
    name = "ge.log"


@irdl_op_definition
class NegOp(ElementwiseUnaryOp):
    name = "ge.neg"


@irdl_op_definition
class AbsOp(ElementwiseUnaryOp):
    name = "ge.abs"


@irdl_op_definition
class ErfOp(ElementwiseUnaryOp):
    name = "ge.erf"


@irdl_op_definition
class SignOp(ElementwiseUnaryOp):
    """`%s = ge.sign %x : tensor<4xf32>`: -1, 0 or 1 (NaN stays NaN); floats and integers."""

    name = "ge.sign"

    @staticmethod
    def infer(op: str, input: TensorType) -> TensorType:
        if not isinstance(input.element_type, AnyFloat | IntegerType) or input.element_type == i1:
            raise _fail(op, f"expects a numeric tensor, got {input}")
        return input


# --------------------------------------------------------------------------- layout and indexing
# Ops that move, select or convert elements without arithmetic.

class RetypeOp(ComputeOp):
    """One operand and one result whose type is printed (for reshape, cast and expand it *is*
    the op's parameter): `%y = ge.<op> %x : tensor<...> -> tensor<...>`; `infer` checks it."""

    input = operand_def(TensorType)
    output = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, input: SSAValue, result_type: Attribute):
        super().__init__(operands=[input], result_types=[result_type])


@irdl_op_definition
class ReshapeOp(RetypeOp):
    """`%y = ge.reshape %x : tensor<2x6xf32> -> tensor<3x4xf32>` (the result type is the new shape)."""

    name = "ge.reshape"

    @staticmethod
    def infer(op: str, input: TensorType, shape: Sequence[int]) -> TensorType:
        """`shape` may hold one -1 (inferred) and 0s (copy the input dim), as in ONNX."""
        src = input.get_shape()
        dims = [src[i] if d == 0 and i < len(src) else d for i, d in enumerate(shape)]
        if dims.count(-1) > 1:
            raise _fail(op, f"at most one dimension may be -1 in {list(shape)}")
        if any(d < -1 for d in dims if d != DYNAMIC):
            raise _fail(op, f"invalid target shape {list(shape)}")
        if DYNAMIC in src or DYNAMIC in dims:
            if -1 in dims:
                raise _fail(op, "cannot infer a -1 dimension of a dynamically shaped tensor")
            return TensorType(input.element_type, dims)
        total = 1
        for d in src:
            total *= d
        known = 1
        for d in dims:
            known *= d if d != -1 else 1
        if -1 in dims:
            if known == 0 or total % known:
                raise _fail(op, f"cannot reshape {fmt_shape(src)} to {list(shape)}")
            dims[dims.index(-1)] = total // known
        elif known != total:
            raise _fail(op, f"cannot reshape {fmt_shape(src)} ({total} elements) to {fmt_shape(dims)} ({known} elements)")
        return TensorType(input.element_type, dims)

    def infer_result(self) -> TensorType:
        out = self.output.type
        if any(d < 0 and d != DYNAMIC for d in out.get_shape()):
            raise _fail(self.name, f"invalid result shape {fmt_shape(out.get_shape())}")
        src = _ranked(self, self.input)
        if 0 in out.get_shape():  # in a result *type* 0 is an empty dim, not ONNX's "copy"
            if DYNAMIC not in src.get_shape() and 0 not in src.get_shape():
                raise _fail(self.name, f"cannot reshape {fmt_shape(src.get_shape())} to the empty {fmt_shape(out.get_shape())}")
            return TensorType(src.element_type, out.get_shape())
        return self.infer(self.name, src, out.get_shape())


@irdl_op_definition
class ExpandOp(RetypeOp):
    """Broadcast to a larger shape (NumPy rules): `%y = ge.expand %x : tensor<3x1xf32> -> tensor<2x3x4xf32>`."""

    name = "ge.expand"

    @staticmethod
    def infer(op: str, input: TensorType, shape: Sequence[int]) -> TensorType:
        out = broadcast_shapes(op, input.get_shape(), tuple(shape))
        if not shapes_compatible(out, shape):
            raise _fail(op, f"{fmt_shape(input.get_shape())} does not broadcast to {fmt_shape(shape)}")
        return TensorType(input.element_type, shape)

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.input), self.output.type.get_shape())


@irdl_op_definition
class CastOp(RetypeOp):
    """`%y = ge.cast %x : tensor<2x3xi64> -> tensor<2x3xf32>` (ONNX Cast: float->int truncates)."""

    name = "ge.cast"

    @staticmethod
    def infer(op: str, input: TensorType, element_type: Attribute) -> TensorType:
        if not isinstance(element_type, AnyFloat | IntegerType):
            raise _fail(op, f"cannot cast to {element_type}")
        return TensorType(element_type, input.get_shape())

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.input), self.output.type.element_type)


@irdl_op_definition
class TransposeOp(ComputeOp):
    """`%y = ge.transpose %x {perm = array<i64: 1, 0>} : tensor<2x3xf32> -> tensor<3x2xf32>`."""

    name = "ge.transpose"
    input = operand_def(TensorType)
    output = result_def(TensorType)
    perm = prop_def(DenseArrayBase)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, input: SSAValue, perm: Sequence[int], result_type: Attribute | None = None):
        if result_type is None:
            result_type = self.infer(self.name, _tensor(self.name, input), perm)
        super().__init__(operands=[input], result_types=[result_type], properties={"perm": _array(perm)})

    @staticmethod
    def infer(op: str, input: TensorType, perm: Sequence[int]) -> TensorType:
        shape = input.get_shape()
        if sorted(perm) != list(range(len(shape))):
            raise _fail(op, f"perm {list(perm)} is not a permutation of the {len(shape)} dims of {fmt_shape(shape)}")
        return TensorType(input.element_type, [shape[p] for p in perm])

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.input), _ints(self.perm))


@irdl_op_definition
class ConcatOp(ComputeOp):
    """`%y = ge.concat %a, %b {axis = 1 : i64} : (tensor<2x3xf32>, tensor<2x1xf32>) -> tensor<2x4xf32>`."""

    name = "ge.concat"
    inputs = var_operand_def(TensorType)
    output = result_def(TensorType)
    axis = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$inputs attr-dict `:` `(` type($inputs) `)` `->` type($output)"

    def __init__(self, inputs: Sequence[SSAValue], axis: int, result_type: Attribute | None = None):
        if result_type is None:
            result_type = self.infer(self.name, [_tensor(self.name, v) for v in inputs], axis)
        super().__init__(operands=[list(inputs)], result_types=[result_type], properties={"axis": IntegerAttr(axis, i64)})

    @staticmethod
    def infer(op: str, inputs: Sequence[TensorType], axis: int) -> TensorType:
        if not inputs:
            raise _fail(op, "expects at least one input")
        first = inputs[0].get_shape()
        ax = normalize_axis(op, axis, len(first))
        total = 0
        for t in inputs:
            s = t.get_shape()
            if t.element_type != inputs[0].element_type:
                raise _fail(op, f"element types {inputs[0].element_type} and {t.element_type} differ")
            if len(s) != len(first) or not all(dims_compatible(a, b) for i, (a, b) in enumerate(zip(s, first)) if i != ax):
                raise _fail(op, f"shapes {fmt_shape(first)} and {fmt_shape(s)} differ outside axis {ax}")
            total = DYNAMIC if DYNAMIC in (total, s[ax]) else total + s[ax]
        return TensorType(inputs[0].element_type, [total if i == ax else d for i, d in enumerate(first)])

    def infer_result(self) -> TensorType:
        return self.infer(self.name, [_ranked(self, v) for v in self.inputs], self.axis.value.data)


@irdl_op_definition
class SliceOp(ComputeOp):
    """A strided slice with every dim given: `y[i...] = x[starts + i * steps]`.

    `%y = ge.slice %x {starts = array<i64: 0, 1>, steps = array<i64: 1, 2>} : tensor<4x5xf32> -> tensor<4x2xf32>`;
    starts are non-negative, steps positive, the result shape says how many elements each dim keeps.
    """

    name = "ge.slice"
    input = operand_def(TensorType)
    output = result_def(TensorType)
    starts = prop_def(DenseArrayBase)
    steps = prop_def(DenseArrayBase)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, input: SSAValue, starts: Sequence[int], steps: Sequence[int], result_type: Attribute):
        super().__init__(
            operands=[input], result_types=[result_type], properties={"starts": _array(starts), "steps": _array(steps)}
        )

    @staticmethod
    def infer(op: str, input: TensorType, starts: Sequence[int], steps: Sequence[int], sizes: Sequence[int]) -> TensorType:
        shape = input.get_shape()
        if not len(starts) == len(steps) == len(sizes) == len(shape):
            raise _fail(op, f"expects one start, step and size per dim of {fmt_shape(shape)}")
        for d, st, sp, n in zip(shape, starts, steps, sizes):
            if st < 0 or sp <= 0 or n < 0:
                raise _fail(op, f"starts {list(starts)} must be >= 0 and steps {list(steps)} > 0")
            if d != DYNAMIC and n > 0 and st + (n - 1) * sp >= d:
                raise _fail(op, f"slice of {n} elements from {st} by {sp} exceeds dim size {d} of {fmt_shape(shape)}")
        return TensorType(input.element_type, sizes)

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.input), _ints(self.starts), _ints(self.steps), self.output.type.get_shape())


@irdl_op_definition
class GatherOp(ComputeOp):
    """ONNX Gather: `%y = ge.gather %data, %idx {axis = 0 : i64} : (tensor<10x4xf32>, tensor<2x3xi64>) -> tensor<2x3x4xf32>`.

    The result is `data.shape[:axis] + indices.shape + data.shape[axis+1:]`; negative indices
    count from the end; an index out of range gives zeros (checked by nothing at run time).
    """

    name = "ge.gather"
    data = operand_def(TensorType)
    indices = operand_def(TensorType)
    output = result_def(TensorType)
    axis = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$data `,` $indices attr-dict `:` `(` type($data) `,` type($indices) `)` `->` type($output)"

    def __init__(self, data: SSAValue, indices: SSAValue, axis: int, result_type: Attribute | None = None):
        if result_type is None:
            result_type = self.infer(self.name, _tensor(self.name, data), _tensor(self.name, indices), axis)
        super().__init__(operands=[data, indices], result_types=[result_type], properties={"axis": IntegerAttr(axis, i64)})

    @staticmethod
    def infer(op: str, data: TensorType, indices: TensorType, axis: int) -> TensorType:
        d = data.get_shape()
        ax = normalize_axis(op, axis, len(d))
        if indices.element_type not in (IntegerType(32), IntegerType(64)):
            raise _fail(op, f"indices must be i32 or i64, got {indices.element_type}")
        return TensorType(data.element_type, (*d[:ax], *indices.get_shape(), *d[ax + 1:]))

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.data), _ranked(self, self.indices), self.axis.value.data)


# --------------------------------------------------------------------------- bool (i1) tensors
# Comparisons and logic for masks (attention masks, NaN guards). A bool tensor is `i1`, as in
# MLIR; comparisons give `i1` from numbers, logic ops take and give `i1`; `ge.where` selects by one.

def _bool_type(op: str, t: TensorType) -> None:
    if t.element_type != i1:
        raise _fail(op, f"expects bool (i1) tensors, got {t}")


class CompareOp(ElementwiseBinaryOp):
    """`%m = ge.less %x, %y : (tensor<4x3xf32>, tensor<3xf32>) -> tensor<4x3xi1>`.

    Operands of one numeric element type (NumPy broadcasting); the result is `i1`, false where
    an operand is NaN. Orderings are not defined on bools (`ge.equal` is).
    """

    @staticmethod
    def infer(op: str, lhs: TensorType, rhs: TensorType) -> TensorType:
        out = ElementwiseBinaryOp.infer(op, lhs, rhs)
        if out.element_type == i1:
            raise _fail(op, f"expects numeric tensors, got {out.element_type} (bools compare with ge.equal)")
        return TensorType(i1, out.get_shape())


@irdl_op_definition
class EqualOp(CompareOp):
    """`x == y` elementwise; bools too."""

    name = "ge.equal"
    traits = traits_def(Pure(), Commutative())

    @staticmethod
    def infer(op: str, lhs: TensorType, rhs: TensorType) -> TensorType:
        return TensorType(i1, ElementwiseBinaryOp.infer(op, lhs, rhs).get_shape())


@irdl_op_definition
class LessOp(CompareOp):
    name = "ge.less"


@irdl_op_definition
class LessEqualOp(CompareOp):
    name = "ge.less_equal"


@irdl_op_definition
class GreaterOp(CompareOp):
    name = "ge.greater"


@irdl_op_definition
class GreaterEqualOp(CompareOp):
    name = "ge.greater_equal"


class LogicalBinaryOp(ElementwiseBinaryOp):
    """`%z = ge.logical_and %a, %b : (tensor<1x4xi1>, tensor<4x4xi1>) -> tensor<4x4xi1>` (NumPy broadcasting)."""

    @staticmethod
    def infer(op: str, lhs: TensorType, rhs: TensorType) -> TensorType:
        _bool_type(op, lhs)
        _bool_type(op, rhs)
        return ElementwiseBinaryOp.infer(op, lhs, rhs)


@irdl_op_definition
class LogicalAndOp(LogicalBinaryOp):
    name = "ge.logical_and"
    traits = traits_def(Pure(), Commutative())


@irdl_op_definition
class LogicalOrOp(LogicalBinaryOp):
    name = "ge.logical_or"
    traits = traits_def(Pure(), Commutative())


@irdl_op_definition
class LogicalXorOp(LogicalBinaryOp):
    name = "ge.logical_xor"
    traits = traits_def(Pure(), Commutative())


@irdl_op_definition
class LogicalNotOp(ElementwiseUnaryOp):
    """`%n = ge.logical_not %m : tensor<4xi1>`."""

    name = "ge.logical_not"

    @staticmethod
    def infer(op: str, input: TensorType) -> TensorType:
        _bool_type(op, input)
        return input


class FloatTestOp(RetypeOp):
    """A test of each element of a float tensor: `%m = ge.is_nan %x : tensor<4xf32> -> tensor<4xi1>`."""

    def __init__(self, input: SSAValue, result_type: Attribute | None = None):
        super().__init__(input, result_type or self.infer(self.name, _tensor(self.name, input)))

    @staticmethod
    def infer(op: str, input: TensorType) -> TensorType:
        ElementwiseUnaryOp.infer(op, input)
        return TensorType(i1, input.get_shape())

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.input))


@irdl_op_definition
class IsNanOp(FloatTestOp):
    name = "ge.is_nan"


@irdl_op_definition
class IsInfOp(FloatTestOp):
    """True at +inf and -inf."""

    name = "ge.is_inf"


@irdl_op_definition
class WhereOp(ComputeOp):
    """`%y = ge.where %c, %a, %b : (tensor<4xi1>, tensor<4xf32>, tensor<1xf32>) -> tensor<4xf32>`.

    `c ? a : b` elementwise with NumPy broadcasting of all three; `c` is `i1`.
    """

    name = "ge.where"
    condition = operand_def(TensorType)
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    output = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = (
        "$condition `,` $lhs `,` $rhs attr-dict `:` `(` type($condition) `,` type($lhs) `,` type($rhs) `)` `->` type($output)"
    )

    def __init__(self, condition: SSAValue, lhs: SSAValue, rhs: SSAValue, result_type: Attribute | None = None):
        if result_type is None:
            result_type = self.infer(self.name, *(_tensor(self.name, v) for v in (condition, lhs, rhs)))
        super().__init__(operands=[condition, lhs, rhs], result_types=[result_type])

    @staticmethod
    def infer(op: str, condition: TensorType, lhs: TensorType, rhs: TensorType) -> TensorType:
        if condition.element_type != IntegerType(1):
            raise _fail(op, f"the condition must be an i1 tensor, got {condition}")
        out = ElementwiseBinaryOp.infer(op, lhs, rhs)
        return TensorType(out.element_type, broadcast_shapes(op, condition.get_shape(), out.get_shape()))

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.condition), _ranked(self, self.lhs), _ranked(self, self.rhs))


# --------------------------------------------------------------------------- contractions and windows
# Matrix products, convolutions and pooling.

@irdl_op_definition
class MatMulOp(ComputeOp):
    """`%y = ge.matmul %a, %b : (tensor<?x784xf32>, tensor<784x10xf32>) -> tensor<?x10xf32>`.

    Both operands have rank >= 2 and the same rank; leading (batch) dims must be equal.
    """

    name = "ge.matmul"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    output = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` `->` type($output)"

    def __init__(self, lhs: SSAValue, rhs: SSAValue, result_type: Attribute | None = None):
        if result_type is None:
            result_type = self.infer(self.name, _tensor(self.name, lhs), _tensor(self.name, rhs))
        _build_compute(self, (lhs, rhs), result_type)

    @staticmethod
    def infer(op: str, lhs: TensorType, rhs: TensorType) -> TensorType:
        a, b = lhs.get_shape(), rhs.get_shape()
        if lhs.element_type != rhs.element_type:
            raise _fail(op, f"element types {lhs.element_type} and {rhs.element_type} differ")
        if len(a) < 2 or len(a) != len(b):
            raise _fail(op, f"expects operands of equal rank >= 2, got {fmt_shape(a)} and {fmt_shape(b)}")
        if not dims_compatible(a[-1], b[-2]):
            raise _fail(op, f"contraction dims differ: {fmt_shape(a)} x {fmt_shape(b)}")
        if not shapes_compatible(a[:-2], b[:-2]):
            raise _fail(op, f"batch dims differ: {fmt_shape(a)} x {fmt_shape(b)}")
        batch = tuple(x if x != DYNAMIC else y for x, y in zip(a[:-2], b[:-2]))
        return TensorType(lhs.element_type, (*batch, a[-2], b[-1]))

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.lhs), _ranked(self, self.rhs))


@irdl_op_definition
class Conv2DOp(ComputeOp):
    """2-D convolution, NCHW input, FCHW filter (C = input channels / groups).

    `%y = ge.conv2d %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>,
    dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x8x8xf32>,
    tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>`; pads are (top, left, bottom, right).
    """

    name = "ge.conv2d"
    input = operand_def(TensorType)
    filter = operand_def(TensorType)
    output = result_def(TensorType)
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    dilations = prop_def(DenseArrayBase)
    groups = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input `,` $filter attr-dict `:` `(` type($input) `,` type($filter) `)` `->` type($output)"

    def __init__(
        self, input: SSAValue, filter: SSAValue, result_type: Attribute | None = None, strides: Sequence[int] = (1, 1),
        pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1), groups: int = 1,
    ):
        if result_type is None:
            result_type = self.infer(
                self.name, _tensor(self.name, input), _tensor(self.name, filter), strides, pads, dilations, groups
            )
        super().__init__(
            operands=[input, filter],
            result_types=[result_type],
            properties={
                "strides": _array(strides), "pads": _array(pads),
                "dilations": _array(dilations), "groups": IntegerAttr(groups, i64),
            },
        )

    @staticmethod
    def infer(
        op: str, input: TensorType, filter: TensorType, strides: Sequence[int], pads: Sequence[int],
        dilations: Sequence[int], groups: int,
    ) -> TensorType:
        x, w = input.get_shape(), filter.get_shape()
        if len(x) != 4 or len(w) != 4:
            raise _fail(op, f"expects a 4-D NCHW input and a 4-D FCHW filter, got {fmt_shape(x)} and {fmt_shape(w)}")
        if input.element_type != filter.element_type:
            raise _fail(op, f"element types {input.element_type} and {filter.element_type} differ")
        if groups <= 0:
            raise _fail(op, f"groups must be positive, got {groups}")
        if x[1] != DYNAMIC and (x[1] % groups or x[1] // groups != w[1]):
            raise _fail(op, f"input channels {x[1]} / groups {groups} must equal the filter's {w[1]} (input {fmt_shape(x)}, filter {fmt_shape(w)})")
        if w[0] % groups:
            raise _fail(op, f"filter count {w[0]} is not divisible by groups {groups}")
        oh, ow = window_output_hw(op, x[2:], w[2:], strides, pads, dilations)
        return TensorType(input.element_type, (x[0], w[0], oh, ow))

    def infer_result(self) -> TensorType:
        return self.infer(
            self.name, _ranked(self, self.input), _ranked(self, self.filter), _ints(self.strides),
            _ints(self.pads), _ints(self.dilations), self.groups.value.data,
        )


class Pool2DOp(ComputeOp):
    """Shared shape rule of `ge.max_pool2d` / `ge.avg_pool2d` on NCHW tensors."""

    input = operand_def(TensorType)
    output = result_def(TensorType)
    kernel = prop_def(DenseArrayBase)
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def __init__(
        self, input: SSAValue, result_type: Attribute | None, kernel: Sequence[int], strides: Sequence[int],
        pads: Sequence[int] = (0, 0, 0, 0), **extra: Attribute,
    ):
        if result_type is None:
            result_type = self.infer(self.name, _tensor(self.name, input), kernel, strides, pads)
        super().__init__(
            operands=[input], result_types=[result_type],
            properties={"kernel": _array(kernel), "strides": _array(strides), "pads": _array(pads), **extra},
        )

    @staticmethod
    def infer(op: str, input: TensorType, kernel: Sequence[int], strides: Sequence[int], pads: Sequence[int]) -> TensorType:
        x = input.get_shape()
        if len(x) != 4:
            raise _fail(op, f"expects a 4-D NCHW input, got {fmt_shape(x)}")
        ElementwiseUnaryOp.infer(op, input)
        _check_window_params(op, kernel, strides, pads, (1, 1))  # before indexing kernel below
        if len(pads) == 4 and (pads[0] >= kernel[0] or pads[1] >= kernel[1] or pads[2] >= kernel[0] or pads[3] >= kernel[1]):
            raise _fail(op, f"pads {list(pads)} must be smaller than the kernel {list(kernel)}")
        oh, ow = window_output_hw(op, x[2:], kernel, strides, pads, (1, 1))
        return TensorType(input.element_type, (x[0], x[1], oh, ow))

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.input), _ints(self.kernel), _ints(self.strides), _ints(self.pads))


@irdl_op_definition
class MaxPool2DOp(Pool2DOp):
    """`%y = ge.max_pool2d %x {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>} : ...`."""

    name = "ge.max_pool2d"


@irdl_op_definition
class AvgPool2DOp(Pool2DOp):
    """Average pooling; padded cells are excluded from the divisor unless `count_include_pad`."""

    name = "ge.avg_pool2d"
    count_include_pad = prop_def(IntegerAttr[I64])

    def __init__(
        self, input: SSAValue, result_type: Attribute | None, kernel: Sequence[int], strides: Sequence[int],
        pads: Sequence[int] = (0, 0, 0, 0), count_include_pad: bool = False,
    ):
        super().__init__(
            input, result_type, kernel, strides, pads, count_include_pad=IntegerAttr(int(count_include_pad), i64)
        )


@irdl_op_definition
class GlobalAvgPoolOp(RetypeOp):
    """`%y = ge.global_avg_pool %x : tensor<1x64x8x8xf32> -> tensor<1x64x1x1xf32>`."""

    name = "ge.global_avg_pool"

    def __init__(self, input: SSAValue, result_type: Attribute | None = None):
        super().__init__(input, result_type or self.infer(self.name, _tensor(self.name, input)))

    @staticmethod
    def infer(op: str, input: TensorType) -> TensorType:
        x = input.get_shape()
        if len(x) < 3:
            raise _fail(op, f"expects an N x C x spatial... input, got {fmt_shape(x)}")
        ElementwiseUnaryOp.infer(op, input)
        return TensorType(input.element_type, (x[0], x[1]) + (1,) * (len(x) - 2))

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.input))


# --------------------------------------------------------------------------- reductions
# Reductions over axes, and softmax (a normalization along one).

class ReduceOp(ComputeOp):
    """`%y = ge.reduce_sum %x {axes = array<i64: 1>, keepdims = 0 : i64} : tensor<4x3xf32> -> tensor<4xf32>`."""

    input = operand_def(TensorType)
    output = result_def(TensorType)
    axes = prop_def(DenseArrayBase)
    keepdims = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, input: SSAValue, axes: Sequence[int], keepdims: bool, result_type: Attribute | None = None):
        if result_type is None:
            result_type = self.infer(self.name, _tensor(self.name, input), axes, keepdims)
        super().__init__(
            operands=[input], result_types=[result_type],
            properties={"axes": _array(axes), "keepdims": IntegerAttr(int(keepdims), i64)},
        )

    @staticmethod
    def infer(op: str, input: TensorType, axes: Sequence[int], keepdims: bool) -> TensorType:
        shape = input.get_shape()
        norm = [normalize_axis(op, a, len(shape)) for a in axes]
        if len(set(norm)) != len(norm) or not norm:
            raise _fail(op, f"axes {list(axes)} must be non-empty and distinct")
        if keepdims:
            dims = [1 if i in norm else d for i, d in enumerate(shape)]
        else:
            dims = [d for i, d in enumerate(shape) if i not in norm]
        return TensorType(input.element_type, dims)

    def reduced_axes(self) -> list[int]:
        rank = _ranked(self, self.input).get_num_dims()
        return sorted(a % rank for a in _ints(self.axes))

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.input), _ints(self.axes), bool(self.keepdims.value.data))


@irdl_op_definition
class ReduceSumOp(ReduceOp):
    name = "ge.reduce_sum"


@irdl_op_definition
class ReduceMeanOp(ReduceOp):
    name = "ge.reduce_mean"


@irdl_op_definition
class ReduceMaxOp(ReduceOp):
    name = "ge.reduce_max"


@irdl_op_definition
class SoftmaxOp(ComputeOp):
    """`%y = ge.softmax %x {axis = -1 : i64} : tensor<4x10xf32>`."""

    name = "ge.softmax"
    T: ClassVar = VarConstraint("T", base(TensorType))
    input = operand_def(T)
    output = result_def(T)
    axis = prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input)"

    def __init__(self, input: SSAValue, axis: int):
        super().__init__(
            operands=[input], result_types=[self.infer(self.name, _tensor(self.name, input), axis)],
            properties={"axis": IntegerAttr(axis, i64)},
        )

    @staticmethod
    def infer(op: str, input: TensorType, axis: int) -> TensorType:
        ElementwiseUnaryOp.infer(op, input)
        normalize_axis(op, axis, input.get_num_dims())
        return input

    def infer_result(self) -> TensorType:
        return self.infer(self.name, _ranked(self, self.input), self.axis.value.data)


GE = Dialect(
    "ge",
    [
        DataOp, ConstOp, VariableOp, ReadVariableOp, AssignOp, AssignIfNonEmptyOp,
        AddOp, SubOp, MulOp, DivOp, MaximumOp, MinimumOp, PowOp, FloorModOp, FModOp,
        ReluOp, SigmoidOp, TanhOp, ExpOp, SqrtOp, LogOp, NegOp, AbsOp, ErfOp, SignOp,
        ReshapeOp, ExpandOp, CastOp, TransposeOp, ConcatOp, SliceOp, GatherOp,
        EqualOp, LessOp, LessEqualOp, GreaterOp, GreaterEqualOp,
        LogicalAndOp, LogicalOrOp, LogicalXorOp, LogicalNotOp, IsNanOp, IsInfOp, WhereOp,
        MatMulOp, Conv2DOp, MaxPool2DOp, AvgPool2DOp, GlobalAvgPoolOp,
        ReduceSumOp, ReduceMeanOp, ReduceMaxOp, SoftmaxOp,
    ],
)

