"""`wrc.Graph`: build a `ge` graph from Python, with shapes inferred as ops are added.

The graph is xDSL IR from the first op on: a module holding one `func.func` whose body the
builder methods append to. Weight bytes stay in `Graph.weights` (keyed by constant name),
never in the IR text, unless a constant is created with `inline=True`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FunctionType,
    ModuleOp,
    TensorType,
    UnrankedTensorType,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException

from wrc import ir_verify
from wrc.context import make_context
from wrc.dialects import ge
from wrc.dtypes import to_element_type, to_numpy_dtype
from wrc.errors import GraphError, ShapeError
from wrc.ir_text import parse_module

DimLike = int | None

FILL_MAGNITUDE = 1e30
"""A float constant holding a value at least this large (or inf/NaN) is a fill constant
(attention masks use -1e38 / finfo.min / -inf), not a weight."""
T = TypeVar("T")


def is_weight_value(array: np.ndarray) -> bool:
    """`Graph.weight_names`' rule on a constant's value: floats, more than one element (0-d and
    one-element tensors are exponents, epsilons and scales, kept inline so passes see them),
    every |x| < FILL_MAGNITUDE (not a mask fill)."""
    if array.dtype.kind != "f" or array.size <= 1:
        return False
    if float(np.finfo(array.dtype).max) < FILL_MAGNITUDE:  # float16: only inf is that large
        return bool(np.isfinite(array).all())
    # Two reductions, no temporary (an |x| array as large as VGG's 411 MB fc6 weight was the
    # peak of importing it); a NaN fails both comparisons, as it fails |x| < FILL_MAGNITUDE.
    return bool(array.max() < FILL_MAGNITUDE) and bool(array.min() > -FILL_MAGNITUDE)


def _tensor_type(shape: Sequence[DimLike], dtype: np.dtype | str | type) -> TensorType:
    dims = []
    for d in shape:
        if d is None or d == -1:
            dims.append(ge.DYNAMIC)
        elif isinstance(d, int | np.integer) and d >= 0:
            dims.append(int(d))
        else:
            raise GraphError(f"invalid dimension {d!r} in shape {tuple(shape)} (use a non-negative int or None)")
    return TensorType(to_element_type(np.dtype(dtype)), dims)


def _check_name(kind: str, name: str) -> None:
    """A graph, input or constant name must be non-empty and valid Unicode: a lone surrogate
    (e.g. "\\ud800", possible in a Python str) cannot be stored in IR, a bundle or a weight file."""
    if not isinstance(name, str) or not name:
        raise GraphError(f"{kind} name must be a non-empty str, got {name!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise GraphError(f"{kind} name {name!r} is not valid Unicode: it holds a lone surrogate "
                         f"({name[e.start]!r}), which no bundle or weight file can store") from None


def dense_attr(value: np.ndarray) -> DenseIntOrFPElementsAttr:
    """An inline `dense<...>` attribute holding `value` (for small constants only)."""
    type = _tensor_type(value.shape, value.dtype)
    return DenseIntOrFPElementsAttr.from_list(type, value.reshape(-1).tolist())


def inline_value(op: ge.ConstOp) -> np.ndarray:
    """The inline `dense<...>` value of a constant, as an array of its type."""
    assert op.value is not None
    type = op.output.type
    return np.array(op.value.get_values(), dtype=to_numpy_dtype(type.element_type)).reshape(type.get_shape())


class Tensor:
    """A value of a graph: an op's result, with its static shape (None = dynamic) and dtype."""

    __slots__ = ("graph", "value")

    def __init__(self, graph: Graph, value: SSAValue):
        self.graph = graph
        self.value = value

    @property
    def type(self) -> TensorType:
        assert isinstance(self.value.type, TensorType)
        return self.value.type

    @property
    def shape(self) -> tuple[int | None, ...]:
        return tuple(None if d == ge.DYNAMIC else d for d in self.type.get_shape())

    @property
    def dtype(self) -> np.dtype:
        return to_numpy_dtype(self.type.element_type)

    def __repr__(self) -> str:
        return f"Tensor({self.value.owner.name}, shape={self.shape}, dtype={self.dtype})"


def verify_graph_module(module: ModuleOp) -> None:
    """xDSL's verifier over a graph's module (`wrc.ir_verify`); failures are `GraphError`s."""
    try:
        ir_verify.verify(module)
    except VerifyException as e:
        raise GraphError(f"invalid graph IR: {e}") from None


class Graph:
    """A GE-style inference graph (GE `Graph` + `GenGraph`).

    >>> g = Graph("mlp")
    >>> x = g.data("x", (8, 64))
    >>> w = g.const("const_1", np.zeros((64, 10), np.float32))
    >>> g.output(g.softmax(g.matmul(x, w), axis=-1))
    """

    def __init__(self, name: str = "main"):
        _check_name("graph", name)
        body = Block()
        body.add_op(func.ReturnOp())
        self.func = func.FuncOp(name, ((), ()), Region(body))
        self.module = ModuleOp([self.func])
        self.weights: dict[str, np.ndarray] = {}
        self._consts: dict[str, ge.ConstOp] | None = None

    # ------------------------------------------------------------------ construction helpers

    @classmethod
    def from_module(cls, module: ModuleOp, weights: Mapping[str, np.ndarray] | None = None) -> Graph:
        """Wrap a module holding one `func.func` (and maybe `ge.variable`s) as a Graph."""
        verify_graph_module(module)
        for op in module.walk():
            if isinstance(op, func.FuncOp):
                _check_name("graph", op.sym_name.data)
            elif isinstance(op, ge.DataOp):
                _check_name("input", op.data_name.data)
            elif isinstance(op, ge.ConstOp):
                _check_name("constant", op.const_name.data)
        return cls._of_verified(module, weights)

    @classmethod
    def _of_verified(cls, module: ModuleOp, weights: Mapping[str, np.ndarray] | None = None) -> Graph:
        """`from_module` without verifying: for modules that passes made from a verified graph
        (passes keep the IR valid; verifying each result again cost a fifth of a compile)."""
        funcs = [op for op in module.ops if isinstance(op, func.FuncOp)]
        if len(funcs) != 1:
            raise GraphError(f"a graph module must hold exactly one func.func, found {len(funcs)}")
        graph = cls.__new__(cls)
        graph.func = funcs[0]
        graph.module = module
        graph.weights = dict(weights or {})
        graph._consts = None
        return graph

    @classmethod
    def from_mlir(cls, text: str, weights: Mapping[str, np.ndarray] | None = None) -> Graph:
        """Parse a graph printed by `to_mlir` (or written by hand); `weights` holds the bytes
        of constants that have no inline value."""
        try:
            module = parse_module(make_context(), text, "<graph>")
        except ParseError as e:
            raise GraphError(f"cannot parse graph IR:\n{e}") from None
        except (ValueError, OverflowError) as e:  # xDSL's own checks on some malformed attributes
            raise GraphError(f"cannot parse graph IR: {type(e).__name__}: {e}") from None
        return cls.from_module(module, weights)

    def to_mlir(self) -> str:
        """The graph's IR in the ge dialect's custom syntax (weight bytes are not printed)."""
        return _print(self.module)

    def copy(self) -> Graph:
        return Graph.from_module(self.module.clone(), self.weights)

    @property
    def name(self) -> str:
        return self.func.sym_name.data

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, inputs={[n for n, _, _ in self.inputs]}, outputs={len(self.outputs)})"

    # ------------------------------------------------------------------ introspection

    def _ops(self) -> Iterable[Operation]:
        return self.func.body.block.ops

    @property
    def inputs(self) -> list[tuple[str, tuple[int | None, ...] | None, np.dtype]]:
        """(name, shape or None if unranked, dtype) of each `ge.data`, in index order."""
        datas = sorted((op for op in self._ops() if isinstance(op, ge.DataOp)), key=lambda op: op.index.value.data)
        out = []
        for op in datas:
            t = op.output.type
            shape = None if isinstance(t, UnrankedTensorType) else Tensor(self, op.output).shape
            out.append((op.data_name.data, shape, to_numpy_dtype(t.element_type)))
        return out

    @property
    def outputs(self) -> list[TensorType]:
        return list(self.func.function_type.outputs.data)

    @property
    def constants(self) -> dict[str, ge.ConstOp]:
        """The graph's `ge.const` ops by name (the candidates for `const_names`)."""
        block = self.func.body.block
        return {name: op for name, op in self._const_index().items() if op.parent is block}

    def _const_index(self) -> dict[str, ge.ConstOp]:
        """`ge.const` ops by name, in program order: one walk on first use, then kept up to date
        by `_insert` (a walk per new constant made building or importing a graph quadratic:
        1.1 s of DenseNet-121's 1.7 s import)."""
        if self._consts is None:
            self._consts = {op.const_name.data: op for op in self._ops() if isinstance(op, ge.ConstOp)}
        return self._consts

    def weight_names(self) -> list[str]:
        """The constants a conversion makes refreshable by default (`wrc.compile_graph`): the
        weight-table constants passing `is_weight_value`."""
        return [name for name in self.constants if name in self.weights and is_weight_value(self.weights[name])]

    def weight(self, name: str) -> np.ndarray:
        """The value of constant `name`: from the weight table, else its inline value."""
        if name in self.weights:
            return self.weights[name]
        op = self.constants.get(name)
        if op is None:
            raise GraphError(f"graph {self.name!r} has no constant named {name!r}")
        if op.value is None:
            raise GraphError(f"constant {name!r} of graph {self.name!r} has no value in the weight table")
        return inline_value(op)

    # ------------------------------------------------------------------ builder

    def _insert(self, op: Operation) -> Tensor:
        self.func.body.block.insert_op_before(op, self.func.body.block.last_op)
        if isinstance(op, ge.ConstOp) and self._consts is not None:
            self._consts.pop(op.const_name.data, None)  # a name seen before, erased since: now last
            self._consts[op.const_name.data] = op
        return Tensor(self, op.results[0])

    def _own(self, *tensors: Tensor) -> None:
        for t in tensors:
            if not isinstance(t, Tensor):
                raise GraphError(f"expected a Tensor of graph {self.name!r}, got {type(t).__name__}")
            if t.graph is not self:
                raise GraphError(f"a Tensor of graph {t.graph.name!r} was used in graph {self.name!r}")

    def data(self, name: str, shape: Sequence[DimLike], dtype: np.dtype | str | type = "float32",
             index: int | None = None) -> Tensor:
        """A graph input (GE `Data`); `None` in `shape` is a dynamic dimension."""
        existing = self.inputs
        _check_name("input", name)
        if any(n == name for n, _, _ in existing):
            raise GraphError(f"graph {self.name!r} already has an input named {name!r}")
        index = len(existing) if index is None else index
        if any(op.index.value.data == index for op in self._ops() if isinstance(op, ge.DataOp)):
            raise GraphError(f"graph {self.name!r} already has an input with index {index}")
        return self._insert(ge.DataOp(name, index, _tensor_type(shape, dtype)))

    def const(self, name: str, value: np.ndarray | float | Sequence, dtype: np.dtype | str | None = None,
              inline: bool = False, copy: bool = True) -> Tensor:
        """A named constant (GE `Const`); its bytes go to `weights[name]` unless `inline`.
        `copy=False`: a C-contiguous array of `dtype` is kept as it is (the caller must not
        change it; the ONNX importer hands over the arrays it read), not copied."""
        _check_name("constant", name)
        existing = self._const_index().get(name)
        if existing is not None and existing.parent is self.func.body.block:
            raise GraphError(f"graph {self.name!r} already has a constant named {name!r}")
        # A copy by default: later edits of `value` don't leak in.
        array = np.array(value, dtype=dtype, order="C", copy=None if not copy and isinstance(value, np.ndarray) else True)
        if array.dtype == np.float64 and dtype is None and not isinstance(value, np.ndarray):
            array = array.astype(np.float32)  # Python floats default to float32, like GE
        type = _tensor_type(array.shape, array.dtype)
        if inline:
            return self._insert(ge.ConstOp(name, type, dense_attr(array)))
        self.weights[name] = array
        return self._insert(ge.ConstOp(name, type))

    def _shape_rule(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)`: an op's shape rule or constructor; a `ShapeError` names the graph."""
        try:
            return fn(*args)
        except ShapeError as e:
            raise ShapeError(f"in graph {self.name!r}: {e}") from None

    def _build(self, cls: type[Operation], *args: Any) -> Tensor:
        """Insert `cls(*args)`; the op infers its result type, a `ShapeError` names the graph."""
        return self._insert(self._shape_rule(cls, *args))

    def _binary(self, cls: type[ge.ElementwiseBinaryOp], a: Tensor, b: Tensor) -> Tensor:
        self._own(a, b)
        return self._build(cls, a.value, b.value)

    def add(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.AddOp, a, b)

    def sub(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.SubOp, a, b)

    def mul(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.MulOp, a, b)

    def div(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.DivOp, a, b)

    def _unary(self, cls: type[ge.ElementwiseUnaryOp], x: Tensor) -> Tensor:
        self._own(x)
        return self._build(cls, x.value)

    def relu(self, x: Tensor) -> Tensor:
        return self._unary(ge.ReluOp, x)

    def sigmoid(self, x: Tensor) -> Tensor:
        return self._unary(ge.SigmoidOp, x)

    def tanh(self, x: Tensor) -> Tensor:
        return self._unary(ge.TanhOp, x)

    def exp(self, x: Tensor) -> Tensor:
        return self._unary(ge.ExpOp, x)

    def softmax(self, x: Tensor, axis: int = -1) -> Tensor:
        self._own(x)
        return self._build(ge.SoftmaxOp, x.value, axis)

    def matmul(self, a: Tensor, b: Tensor) -> Tensor:
        self._own(a, b)
        return self._build(ge.MatMulOp, a.value, b.value)

    def reshape(self, x: Tensor, shape: Sequence[int]) -> Tensor:
        """NumPy/ONNX reshape: one -1 is inferred, a 0 copies the input's dimension."""
        self._own(x)
        out = self._shape_rule(ge.ReshapeOp.infer, ge.ReshapeOp.name, x.type, [int(d) for d in shape])
        return self._insert(ge.ReshapeOp(x.value, out))

    def transpose(self, x: Tensor, perm: Sequence[int] | None = None) -> Tensor:
        self._own(x)
        perm = list(reversed(range(len(x.shape)))) if perm is None else [int(p) for p in perm]
        return self._build(ge.TransposeOp, x.value, perm)

    def conv2d(self, x: Tensor, w: Tensor, strides: Sequence[int] = (1, 1), pads: Sequence[int] = (0, 0, 0, 0),
               dilations: Sequence[int] = (1, 1), groups: int = 1) -> Tensor:
        """NCHW convolution with an FCHW filter; `pads` = (top, left, bottom, right)."""
        self._own(x, w)
        return self._build(ge.Conv2DOp, x.value, w.value, None, strides, pads, dilations, groups)

    def max_pool2d(self, x: Tensor, kernel: Sequence[int], strides: Sequence[int] | None = None,
                   pads: Sequence[int] = (0, 0, 0, 0)) -> Tensor:
        strides = kernel if strides is None else strides
        self._own(x)
        return self._build(ge.MaxPool2DOp, x.value, None, kernel, strides, pads)

    def avg_pool2d(self, x: Tensor, kernel: Sequence[int], strides: Sequence[int] | None = None,
                   pads: Sequence[int] = (0, 0, 0, 0), count_include_pad: bool = False) -> Tensor:
        strides = kernel if strides is None else strides
        self._own(x)
        return self._build(ge.AvgPool2DOp, x.value, None, kernel, strides, pads, count_include_pad)

    def global_avg_pool(self, x: Tensor) -> Tensor:
        self._own(x)
        return self._build(ge.GlobalAvgPoolOp, x.value)

    def _reduce(self, cls: type[ge.ReduceOp], x: Tensor, axes: int | Sequence[int], keepdims: bool) -> Tensor:
        self._own(x)
        axes = [axes] if isinstance(axes, int) else [int(a) for a in axes]
        return self._build(cls, x.value, axes, keepdims)

    def reduce_sum(self, x: Tensor, axes: int | Sequence[int], keepdims: bool = False) -> Tensor:
        return self._reduce(ge.ReduceSumOp, x, axes, keepdims)

    def reduce_mean(self, x: Tensor, axes: int | Sequence[int], keepdims: bool = False) -> Tensor:
        return self._reduce(ge.ReduceMeanOp, x, axes, keepdims)

    def reduce_max(self, x: Tensor, axes: int | Sequence[int], keepdims: bool = False) -> Tensor:
        return self._reduce(ge.ReduceMaxOp, x, axes, keepdims)

    # ops added for ONNX models (wrc.onnx)

    def sqrt(self, x: Tensor) -> Tensor:
        return self._unary(ge.SqrtOp, x)

    def log(self, x: Tensor) -> Tensor:
        return self._unary(ge.LogOp, x)

    def neg(self, x: Tensor) -> Tensor:
        return self._unary(ge.NegOp, x)

    def abs(self, x: Tensor) -> Tensor:
        return self._unary(ge.AbsOp, x)

    def erf(self, x: Tensor) -> Tensor:
        return self._unary(ge.ErfOp, x)

    def pow(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.PowOp, a, b)

    def maximum(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.MaximumOp, a, b)

    def minimum(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.MinimumOp, a, b)

    def cast(self, x: Tensor, dtype: np.dtype | str | type) -> Tensor:
        self._own(x)
        out = self._shape_rule(ge.CastOp.infer, ge.CastOp.name, x.type, to_element_type(np.dtype(dtype)))
        return self._insert(ge.CastOp(x.value, out))

    def where(self, cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
        """`cond ? a : b` elementwise (broadcasting); `cond` is a bool tensor."""
        self._own(cond, a, b)
        return self._build(ge.WhereOp, cond.value, a.value, b.value)

    def concat(self, tensors: Sequence[Tensor], axis: int) -> Tensor:
        self._own(*tensors)
        return self._build(ge.ConcatOp, [t.value for t in tensors], axis)

    def slice(self, x: Tensor, starts: Sequence[int], ends: Sequence[int], steps: Sequence[int] | None = None) -> Tensor:
        """`x[s0:e0:k0, s1:e1:k1, ...]` with every dim given and positive steps (Python rules
        for negative and out-of-range starts/ends)."""
        self._own(x)
        steps = [1] * len(starts) if steps is None else list(steps)
        if not len(starts) == len(ends) == len(steps) == len(x.shape) or None in x.shape:
            raise GraphError(f"slice needs one start, end and step per dim of the static shape {x.shape}")
        if any(k <= 0 for k in steps):
            raise GraphError(f"slice steps must be positive, got {list(steps)}")
        ranges = [range(*slice(s, e, k).indices(d)) for s, e, k, d in zip(starts, ends, steps, x.shape)]
        norm = [r.start if len(r) else 0 for r in ranges]
        sizes = [len(r) for r in ranges]
        out = self._shape_rule(ge.SliceOp.infer, ge.SliceOp.name, x.type, norm, steps, sizes)
        return self._insert(ge.SliceOp(x.value, norm, steps, out))

    def expand(self, x: Tensor, shape: Sequence[int]) -> Tensor:
        """Broadcast `x` to `shape` (NumPy rules; ONNX Expand with the final shape)."""
        self._own(x)
        out = self._shape_rule(ge.ExpandOp.infer, ge.ExpandOp.name, x.type, [int(d) for d in shape])
        return self._insert(ge.ExpandOp(x.value, out))

    def gather(self, data: Tensor, indices: Tensor, axis: int = 0) -> Tensor:
        """ONNX Gather (`np.take(data, indices, axis)`), e.g. an embedding lookup."""
        self._own(data, indices)
        return self._build(ge.GatherOp, data.value, indices.value, axis)

    # bool tensors: comparisons give bool, logic ops take and give bool (NumPy broadcasting)

    def equal(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.EqualOp, a, b)

    def less(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.LessOp, a, b)

    def less_equal(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.LessEqualOp, a, b)

    def greater(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.GreaterOp, a, b)

    def greater_equal(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.GreaterEqualOp, a, b)

    def logical_and(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.LogicalAndOp, a, b)

    def logical_or(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.LogicalOrOp, a, b)

    def logical_xor(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary(ge.LogicalXorOp, a, b)

    def logical_not(self, x: Tensor) -> Tensor:
        return self._unary(ge.LogicalNotOp, x)

    def _float_test(self, cls: type[ge.FloatTestOp], x: Tensor) -> Tensor:
        self._own(x)
        return self._build(cls, x.value)

    def is_nan(self, x: Tensor) -> Tensor:
        return self._float_test(ge.IsNanOp, x)

    def is_inf(self, x: Tensor) -> Tensor:
        """True at +inf and -inf."""
        return self._float_test(ge.IsInfOp, x)

    def sign(self, x: Tensor) -> Tensor:
        """-1, 0 or 1 elementwise (NaN stays NaN)."""
        return self._unary(ge.SignOp, x)

    def floor_mod(self, a: Tensor, b: Tensor) -> Tensor:
        """Integer `a % b` with the sign of `b` (NumPy's `%`)."""
        return self._binary(ge.FloorModOp, a, b)

    def fmod(self, a: Tensor, b: Tensor) -> Tensor:
        """Integer remainder with the sign of `a` (C's `%`, `np.fmod`)."""
        return self._binary(ge.FModOp, a, b)

    def output(self, *tensors: Tensor) -> None:
        """Set the graph's outputs (GE NetOutput), replacing earlier ones."""
        if not tensors:
            raise GraphError("output() needs at least one tensor")
        self._own(*tensors)
        ret = self.func.body.block.last_op
        assert isinstance(ret, func.ReturnOp)
        self.func.body.block.erase_op(ret)
        self.func.body.block.add_op(func.ReturnOp(*(t.value for t in tensors)))
        self.func.function_type = FunctionType.from_lists([], [t.type for t in tensors])


def _print(module: ModuleOp) -> str:
    import io

    stream = io.StringIO()
    Printer(stream=stream).print_op(module)
    return stream.getvalue() + "\n"
