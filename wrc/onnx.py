"""`wrc.onnx.import_onnx`: an ONNX model as a `wrc.Graph` (docs/onnx.md).

Every initializer used as a tensor becomes a `ge.const` named like the initializer, its bytes in
`graph.weights` (so the ONNX names can be passed to `convert_to_weight_refreshable_graphs` as
they are); graph inputs that are not initializers become `ge.data` inputs; symbolic dims become
dynamic ones unless pinned with `input_shapes`.

Values are either graph tensors or *static* NumPy arrays known at import time (Constant nodes,
`Shape` of a statically shaped tensor, integer initializers, ...). A node whose inputs are all
static and not float initializers is folded with `onnx.reference` — this is how the
shape-computation chains exporters emit (Shape -> Gather -> Unsqueeze -> Concat -> Reshape)
disappear. Float initializers are never folded into other constants: they stay weights.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from wrc.dtypes import UnsupportedDtypeError, to_element_type
from wrc.errors import WrcError
from wrc.graph import Graph, Tensor
from wrc.model_buffer import ModelBuffer

MIN_OPSET, MAX_OPSET = 13, onnx.defs.onnx_opset_version()
TESTED_OPSETS = (13, 21)
"""Opsets 13-21 are what wrc targets; newer ones are accepted (the supported ops kept their
semantics; the conformance table runs ONNX's node tests at their own, often newer, opsets)."""
INLINE_LIMIT = 64
"""Static values created by the importer with at most this many elements are printed inline."""


class OnnxImportError(WrcError):
    """An ONNX model that cannot be read or imported (names the file, node or input)."""


class UnsupportedOpError(OnnxImportError):
    """The model uses operators (or operator forms) wrc does not support; lists every one."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(f"{len(problems)} unsupported node(s):\n  " + "\n  ".join(problems))


class _Unsupported(Exception):
    """Raised by a handler for an unsupported form of a supported op (collected, not fatal)."""


@dataclass
class Static:
    """A value known at import time. `weight`: a float initializer (never folded away)."""

    array: np.ndarray
    weight: bool = False
    name: str | None = None  # the initializer's name: aliases (Identity outputs) materialize as it


Value = Tensor | Static


# --------------------------------------------------------------------------- loading


def _load(model: str | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        return model, "<ModelProto>"
    path = os.fspath(model)
    try:
        return onnx.load(path), path  # external data is loaded from the model's folder
    except FileNotFoundError as e:
        raise OnnxImportError(f"{path}: no such file ({e.filename})") from None
    except Exception as e:  # protobuf DecodeError, bad external data, ...
        raise OnnxImportError(f"{path}: cannot load the ONNX model: {type(e).__name__}: {e}") from None


def _np_dtype(elem_type: int, where: str) -> np.dtype:
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
        to_element_type(dtype)
    except (KeyError, TypeError, UnsupportedDtypeError) as e:
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else elem_type
        raise OnnxImportError(f"{where}: unsupported element type {name} ({e})") from None
    return dtype


# --------------------------------------------------------------------------- the importer


class _Importer:
    def __init__(self, model: onnx.ModelProto, where: str, input_shapes: Mapping[str, Sequence[int | None]]):
        self.model, self.where = model, where
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if self.opset is None or not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise OnnxImportError(f"{where}: ONNX opset {self.opset} is not supported (wrc imports opsets {MIN_OPSET} to "
                                  f"{MAX_OPSET}, targeting {TESTED_OPSETS[0]} to {TESTED_OPSETS[1]})")
        g = model.graph
        self.graph = Graph(g.name or "main")
        self.env: dict[str, Value] = {}
        self.consts: dict[str, Tensor] = {}  # materialized static values, by ONNX name
        inits = {i.name for i in g.initializer}
        unknown = set(input_shapes) - {i.name for i in g.input if i.name not in inits}
        if unknown:
            raise OnnxImportError(f"{where}: input_shapes names {sorted(unknown)}, which are not inputs of the model")
        for init in g.initializer:
            try:
                array = numpy_helper.to_array(init, base_dir=os.path.dirname(where) if where != "<ModelProto>" else "")
            except Exception as e:
                raise OnnxImportError(f"{where}: cannot read initializer {init.name!r}: {e}") from None
            dtype = _np_dtype(init.data_type, f"{where}: initializer {init.name!r}")
            self.env[init.name] = Static(np.asarray(array, dtype), weight=dtype.kind == "f", name=init.name)
        for inp in g.input:
            if inp.name in inits:
                continue
            tt = inp.type.tensor_type
            dtype = _np_dtype(tt.elem_type, f"{where}: input {inp.name!r}")
            if inp.name in input_shapes:
                shape = [None if d is None or d < 0 else int(d) for d in input_shapes[inp.name]]
            elif not tt.HasField("shape"):
                raise OnnxImportError(f"{where}: input {inp.name!r} has no shape; give it with input_shapes={{{inp.name!r}: (...)}}")
            else:
                shape = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            self.env[inp.name] = self.graph.data(inp.name, shape, dtype)

    # ---------------------------------------------------------------- values

    def tensor(self, name: str) -> Tensor:
        v = self.env[name]
        if isinstance(v, Tensor):
            return v
        name = v.name or name  # one constant per initializer, however many aliases it has
        if name not in self.consts:
            inline = v.name is None and v.array.size <= INLINE_LIMIT  # initializers stay named weights
            self.consts[name] = self.graph.const(name, v.array, dtype=v.array.dtype, inline=inline)
        return self.consts[name]

    def run(self) -> Graph:
        problems: list[str] = []
        poisoned: set[str] = set()
        for node in self.model.graph.node:
            label = f"{node.op_type} (node {node.name!r})" if node.name else f"{node.op_type} (output {node.output[0]!r})"
            if node.domain not in ("", "ai.onnx"):
                problems.append(f"{label}: domain {node.domain!r} is not supported")
                poisoned.update(node.output)
                continue
            inputs = [i for i in node.input if i]
            if any(i in poisoned for i in inputs):
                if node.op_type not in HANDLERS and node.op_type not in FOLD_ONLY:
                    problems.append(f"{label}: operator not supported")
                poisoned.update(node.output)
                continue
            try:
                outs = self.node(node)
            except _Unsupported as e:
                problems.append(f"{label}: {e}")
                poisoned.update(node.output)
                continue
            except WrcError as e:
                raise OnnxImportError(f"{self.where}: {label}: {e}") from None
            for name, value in zip(node.output, outs):
                if name:
                    self.env[name] = value
        if problems:
            raise UnsupportedOpError(problems)
        outputs = []
        for out in self.model.graph.output:
            if out.name not in self.env:
                raise OnnxImportError(f"{self.where}: graph output {out.name!r} is not produced by any node")
            outputs.append(self.tensor(out.name))
        self.graph.output(*outputs)
        return self.graph

    def node(self, node: onnx.NodeProto) -> list[Value]:
        vals = [self.env.get(i) if i else None for i in node.input]
        missing = [i for i, v in zip(node.input, vals) if i and v is None]
        if missing:
            raise OnnxImportError(f"input(s) {missing} are not defined before this node")
        if node.op_type != "Constant" and all(isinstance(v, Static) and not v.weight for v in vals if v is not None) \
                and node.op_type not in NO_FOLD:
            return self.fold(node, vals)
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            raise _Unsupported("operator not supported" if node.op_type not in FOLD_ONLY
                               else "supported only when all its inputs are constants")
        return handler(_Node(self, node, vals))

    def fold(self, node: onnx.NodeProto, vals: list[Value | None]) -> list[Value]:
        from onnx.reference import ReferenceEvaluator

        feeds = {i: v.array for i, v in zip(node.input, vals) if isinstance(v, Static)}
        try:
            outs = ReferenceEvaluator(node, opsets={"": self.opset}).run(None, feeds)
        except Exception as e:
            raise _Unsupported(f"cannot fold this node over its constant inputs: {type(e).__name__}: {e}") from None
        return [Static(np.asarray(o)) for o in outs]


class _Node:
    """What a handler sees: attributes, operands as tensors or as static arrays, the graph."""

    def __init__(self, imp: _Importer, node: onnx.NodeProto, vals: list[Value | None]):
        self.imp, self.node, self.vals, self.g = imp, node, vals, imp.graph
        self.attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def attr(self, name: str, default: object = None) -> object:
        v = self.attrs.get(name, default)
        return v.decode() if isinstance(v, bytes) else v

    def has(self, i: int) -> bool:
        return i < len(self.vals) and self.vals[i] is not None

    def t(self, i: int) -> Tensor:
        if not self.has(i):
            raise _Unsupported(f"input {i} is required")
        return self.imp.tensor(self.node.input[i])

    def s(self, i: int) -> np.ndarray:
        """Input `i` as an import-time constant (shapes, axes, ...)."""
        v = self.vals[i] if self.has(i) else None
        if isinstance(v, Static):
            return v.array
        why = "is missing" if v is None else "is computed at run time"
        raise _Unsupported(f"input {i} ({self.node.input[i] if i < len(self.node.input) else '?'}) must be a constant, but {why}")

    def ints(self, i: int, attr: str | None = None) -> list[int] | None:
        """Integers from input `i` if given, else from attribute `attr`, else None."""
        if self.has(i):
            return [int(x) for x in self.s(i).reshape(-1)]
        if attr is not None and attr in self.attrs:
            return [int(x) for x in self.attrs[attr]]  # type: ignore[union-attr]
        return None

    def scalar(self, value: float, like: Tensor) -> Tensor:
        """An inline scalar constant of `like`'s dtype, named after this node."""
        name = f"{self.node.output[0]}__c{len(self.g.constants)}"
        return self.g.const(name, np.array(value, like.dtype), inline=True)

    def shape(self, t: Tensor) -> list[int]:
        if None in t.shape:
            raise OnnxImportError(
                f"{self.node.op_type}: needs the static shape of {t.shape}; pin dynamic input dims with "
                "import_onnx(..., input_shapes={'name': (...)})"
            )
        return [int(d) for d in t.shape]


# --------------------------------------------------------------------------- handlers

Handler = Callable[[_Node], list[Value]]
HANDLERS: dict[str, Handler] = {}
FOLD_ONLY = {"Range", "Equal", "Less", "Greater", "Not", "And", "Or", "ConstantOfShape", "NonZero",
             "ReduceProd", "Floor", "Ceil"}
"""Operators imported only when all their inputs are constants (folded by onnx.reference)."""
NO_FOLD = {"Dropout"}


def handles(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for n in names:
            HANDLERS[n] = fn
        return fn
    return register


@handles("Constant")
def _constant(n: _Node) -> list[Value]:
    attr = next(iter(n.node.attribute), None)
    if attr is None:
        raise _Unsupported("a Constant without a value")
    v = helper.get_attribute_value(attr)
    if isinstance(v, onnx.TensorProto):
        array = numpy_helper.to_array(v)
    elif attr.name in ("value_float", "value_int", "value_floats", "value_ints"):
        array = np.array(v, np.float32 if "float" in attr.name else np.int64)
    else:
        raise _Unsupported(f"Constant with attribute {attr.name!r}")
    _np_dtype(helper.np_dtype_to_tensor_dtype(array.dtype), "Constant")
    return [Static(array)]


@handles("Identity", "Dropout")
def _identity(n: _Node) -> list[Value]:
    training = n.node.op_type == "Dropout" and n.has(2) and bool(n.s(2).reshape(-1)[0])
    if training and (not n.has(1) or float(n.s(1).reshape(-1)[0]) != 0):  # ratio 0 drops nothing
        raise _Unsupported("Dropout in training mode (random)")
    v = n.vals[0]
    assert v is not None
    if len(n.node.output) > 1 and n.node.output[1]:  # Dropout's mask: all true in inference
        shape = v.array.shape if isinstance(v, Static) else n.shape(v)
        return [v, Static(np.ones(shape, np.bool_))]
    return [v]


def _binary(method: str) -> Handler:
    def fn(n: _Node) -> list[Value]:
        return [getattr(n.g, method)(n.t(0), n.t(1))]
    return fn


for _op, _m in (("Add", "add"), ("Sub", "sub"), ("Mul", "mul"), ("Div", "div")):
    HANDLERS[_op] = _binary(_m)


def _unary(method: str) -> Handler:
    def fn(n: _Node) -> list[Value]:
        return [getattr(n.g, method)(n.t(0))]
    return fn


for _op, _m in (("Relu", "relu"), ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("Exp", "exp"), ("Sqrt", "sqrt"),
                ("Log", "log"), ("Abs", "abs"), ("Erf", "erf")):
    HANDLERS[_op] = _unary(_m)


@handles("Neg")
def _neg(n: _Node) -> list[Value]:
    x = n.t(0)
    return [n.g.neg(x) if x.dtype.kind == "f" else n.g.sub(n.scalar(0, x), x)]


@handles("Pow")
def _pow(n: _Node) -> list[Value]:
    x, y = n.t(0), n.t(1)
    if x.dtype.kind != "f":
        raise _Unsupported("Pow of an integer base")
    if y.dtype != x.dtype:
        y = n.g.cast(y, x.dtype)
    return [n.g.pow(x, y)]


def _variadic(method: str, mean: bool = False) -> Handler:
    def fn(n: _Node) -> list[Value]:
        ts = [n.t(i) for i in range(len(n.vals))]
        y = ts[0]
        for t in ts[1:]:
            y = getattr(n.g, method)(y, t)
        if len(ts) == 1:
            y = n.g.add(y, n.scalar(0, y)) if method == "add" else n.g.maximum(y, y)  # a fresh value
        return [n.g.div(y, n.scalar(len(ts), y)) if mean else y]
    return fn


HANDLERS["Sum"] = _variadic("add")
HANDLERS["Mean"] = _variadic("add", mean=True)
HANDLERS["Max"] = _variadic("maximum")
HANDLERS["Min"] = _variadic("minimum")


def _leaky(x: Tensor, slope: Tensor, n: _Node) -> Tensor:
    """`x if x >= 0 else slope * x` as `max(x, 0) + slope * min(x, 0)` (exact: one term is 0)."""
    zero = n.scalar(0, x)
    return n.g.add(n.g.maximum(x, zero), n.g.mul(slope, n.g.minimum(x, zero)))


@handles("LeakyRelu")
def _leaky_relu(n: _Node) -> list[Value]:
    x = n.t(0)
    return [_leaky(x, n.scalar(float(n.attr("alpha", 0.01)), x), n)]  # type: ignore[arg-type]


@handles("PRelu")
def _prelu(n: _Node) -> list[Value]:
    return [_leaky(n.t(0), n.t(1), n)]


@handles("Clip")
def _clip(n: _Node) -> list[Value]:
    y = n.t(0)
    if n.has(1):
        y = n.g.maximum(y, n.t(1))
    if n.has(2):
        y = n.g.minimum(y, n.t(2))
    return [y]


@handles("HardSigmoid")
def _hard_sigmoid(n: _Node) -> list[Value]:
    x = n.t(0)
    a, b = float(n.attr("alpha", 0.2)), float(n.attr("beta", 0.5))  # type: ignore[arg-type]
    y = n.g.add(n.g.mul(x, n.scalar(a, x)), n.scalar(b, x))
    return [n.g.maximum(n.g.minimum(y, n.scalar(1, x)), n.scalar(0, x))]


@handles("Gelu")
def _gelu(n: _Node) -> list[Value]:
    x, g = n.t(0), n.g
    half = g.mul(x, n.scalar(0.5, x))
    if n.attr("approximate", "none") == "tanh":
        inner = g.mul(g.add(x, g.mul(g.mul(g.mul(x, x), x), n.scalar(0.044715, x))), n.scalar(math.sqrt(2 / math.pi), x))
        return [g.mul(half, g.add(g.tanh(inner), n.scalar(1, x)))]
    return [g.mul(half, g.add(g.erf(g.mul(x, n.scalar(1 / math.sqrt(2), x))), n.scalar(1, x)))]


@handles("Softmax")
def _softmax(n: _Node) -> list[Value]:
    return [n.g.softmax(n.t(0), int(n.attr("axis", -1)))]  # type: ignore[arg-type]


@handles("LogSoftmax")
def _log_softmax(n: _Node) -> list[Value]:
    x, g = n.t(0), n.g
    axis = int(n.attr("axis", -1))  # type: ignore[arg-type]
    s = g.sub(x, g.reduce_max(x, axis, keepdims=True))
    return [g.sub(s, g.log(g.reduce_sum(g.exp(s), axis, keepdims=True)))]


@handles("MatMul")
def _matmul(n: _Node) -> list[Value]:
    return [_matmul2(n, n.t(0), n.t(1))]


def _matmul2(n: _Node, a: Tensor, b: Tensor) -> Tensor:
    """ONNX/NumPy matmul: 1-D operands and broadcast batch dims included."""
    g = n.g
    sa, sb = n.shape(a), n.shape(b)
    if len(sa) == 1:
        return g.reshape(_matmul2(n, g.reshape(a, [1, sa[0]]), b), [*sb[:-2], sb[-1]] if len(sb) > 1 else [])
    if len(sb) == 1:
        y = _matmul2(n, a, g.reshape(b, [sb[0], 1]))
        return g.reshape(y, sa[:-1])
    if len(sb) == 2 and len(sa) > 2:  # fold the batch dims into the rows: one 2-D matmul
        y = g.matmul(g.reshape(a, [-1, sa[-1]]), b)
        return g.reshape(y, [*sa[:-1], sb[-1]])
    batch = list(np.broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2])))
    if sa[:-2] != batch:
        a = g.expand(a, [*batch, *sa[-2:]])
    if sb[:-2] != batch:
        b = g.expand(b, [*batch, *sb[-2:]])
    return g.matmul(a, b)


@handles("Gemm")
def _gemm(n: _Node) -> list[Value]:
    g = n.g
    a, b = n.t(0), n.t(1)
    if n.attr("transA", 0):
        a = g.transpose(a)
    if n.attr("transB", 0):
        b = g.transpose(b)
    y = g.matmul(a, b)
    alpha, beta = float(n.attr("alpha", 1.0)), float(n.attr("beta", 1.0))  # type: ignore[arg-type]
    if alpha != 1:
        y = g.mul(y, n.scalar(alpha, y))
    if n.has(2) and beta != 0:
        c = n.t(2)
        y = g.add(y, c if beta == 1 else g.mul(c, n.scalar(beta, c)))
    return [y]


def _same_pads(auto_pad: str, size: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
               dilations: Sequence[int]) -> list[int]:
    """Explicit (begins..., ends...) pads of ONNX `auto_pad`."""
    if auto_pad == "VALID":
        return [0] * (2 * len(size))
    begins, ends = [], []
    for d, k, s, dl in zip(size, kernel, strides, dilations):
        out = -(-d // s)
        total = max(0, (out - 1) * s + (k - 1) * dl + 1 - d)
        small, big = total // 2, total - total // 2
        begins.append(big if auto_pad == "SAME_LOWER" else small)
        ends.append(small if auto_pad == "SAME_LOWER" else big)
    return begins + ends


def _window_attrs(n: _Node, x_shape: Sequence[int], kernel: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    nd = len(kernel)
    strides = list(n.attr("strides", [1] * nd))  # type: ignore[arg-type]
    dilations = list(n.attr("dilations", [1] * nd))  # type: ignore[arg-type]
    auto_pad = str(n.attr("auto_pad", "NOTSET"))
    if auto_pad in ("NOTSET", ""):
        pads = list(n.attr("pads", [0] * 2 * nd))  # type: ignore[arg-type]
    else:
        pads = _same_pads(auto_pad, x_shape[2:], kernel, strides, dilations)
    return strides, dilations, pads


def _to_2d(n: _Node, x: Tensor, what: str) -> tuple[Tensor, bool]:
    """A 1-D spatial tensor (N, C, L) as (N, C, 1, L); 2-D spatial tensors as they are."""
    shape = n.shape(x)
    if len(shape) == 3:
        return n.g.reshape(x, [shape[0], shape[1], 1, shape[2]]), True
    if len(shape) != 4:
        raise _Unsupported(f"{what} of a {len(shape) - 2}-D spatial input")
    return x, False


def _pads_2d(pads: Sequence[int], one_d: bool) -> list[int]:
    return [0, pads[0], 0, pads[1]] if one_d else list(pads)


@handles("Conv")
def _conv(n: _Node) -> list[Value]:
    x, w = n.t(0), n.t(1)
    kernel = n.shape(w)[2:]
    strides, dilations, pads = _window_attrs(n, n.shape(x), kernel)
    x2, one_d = _to_2d(n, x, "Conv")
    w2, _ = _to_2d(n, w, "Conv") if one_d else (w, False)
    if one_d:
        strides, dilations = [1, *strides], [1, *dilations]
    y = n.g.conv2d(x2, w2, strides, _pads_2d(pads, one_d), dilations, int(n.attr("group", 1)))  # type: ignore[arg-type]
    if n.has(2):
        b = n.t(2)
        y = n.g.add(y, n.g.reshape(b, [n.shape(b)[0], 1, 1]))
    if one_d:
        s = n.shape(y)
        y = n.g.reshape(y, [s[0], s[1], s[3]])
    return [y]


def _upsample_zeros(n: _Node, x: Tensor, axis: int, stride: int) -> Tensor:
    """Insert `stride - 1` zeros between the elements of `x` along `axis` (reshape, concat, slice)."""
    if stride == 1:
        return x
    g, shape = n.g, n.shape(x)
    split = [*shape[:axis + 1], 1, *shape[axis + 1:]]
    y = g.reshape(x, split)
    zeros = g.expand(n.scalar(0, x), [*shape[:axis + 1], stride - 1, *shape[axis + 1:]])
    y = g.concat([y, zeros], axis + 1)
    y = g.reshape(y, [*shape[:axis], shape[axis] * stride, *shape[axis + 1:]])
    return g.slice(y, [0] * len(shape), [(shape[axis] - 1) * stride + 1 if i == axis else d for i, d in enumerate(shape)])


@handles("ConvTranspose")
def _conv_transpose(n: _Node) -> list[Value]:
    """A convolution of the zero-upsampled, padded input with the flipped, transposed kernel.

    The flip is a `ge.gather` with reversed constant indices (affine maps cannot run backwards),
    so the kernel stays a refreshable weight. groups = 1 and 2-D (or 1-D) only."""
    g = n.g
    x, w = n.t(0), n.t(1)
    if int(n.attr("group", 1)) != 1:  # type: ignore[arg-type]
        raise _Unsupported("ConvTranspose with groups")
    x, one_d = _to_2d(n, x, "ConvTranspose")
    if one_d:
        w = g.reshape(w, [*n.shape(w)[:2], 1, n.shape(w)[2]])
    c, f, kh, kw = n.shape(w)
    nd = 1 if one_d else 2
    strides = list(n.attr("strides", [1] * nd))  # type: ignore[arg-type]
    dil = list(n.attr("dilations", [1] * nd))  # type: ignore[arg-type]
    outpad = list(n.attr("output_padding", [0] * nd))  # type: ignore[arg-type]
    if n.attr("output_shape") is not None or str(n.attr("auto_pad", "NOTSET")) not in ("NOTSET", ""):
        raise _Unsupported("ConvTranspose with output_shape or auto_pad")
    pads = list(n.attr("pads", [0] * 2 * nd))  # type: ignore[arg-type]
    if one_d:
        strides, dil, outpad, pads = [1, *strides], [1, *dil], [0, *outpad], [0, pads[0], 0, pads[1]]
    for axis, s in ((2, strides[0]), (3, strides[1])):
        x = _upsample_zeros(n, x, axis, s)
    # full padding (k - 1) * d minus the given pads, plus output_padding at the end
    lo = [(k - 1) * d - p for k, d, p in zip((kh, kw), dil, pads[:2])]
    hi = [(k - 1) * d - p + o for k, d, p, o in zip((kh, kw), dil, pads[2:], outpad)]
    if any(v < 0 for v in lo + hi):
        raise _Unsupported("ConvTranspose pads larger than the kernel extent")
    flip = [n.g.const(f"{n.node.output[0]}__flip{axis}", np.arange(k - 1, -1, -1, dtype=np.int64), inline=True)
            for axis, k in ((2, kh), (3, kw))]
    wf = g.transpose(g.gather(g.gather(w, flip[0], 2), flip[1], 3), [1, 0, 2, 3])
    y = g.conv2d(x, wf, (1, 1), [lo[0], lo[1], hi[0], hi[1]], dil, 1)
    if n.has(2):
        y = g.add(y, g.reshape(n.t(2), [f, 1, 1]))
    if one_d:
        s = n.shape(y)
        y = g.reshape(y, [s[0], s[1], s[3]])
    return [y]


def _pool(kind: str) -> Handler:
    def fn(n: _Node) -> list[Value]:
        if len([o for o in n.node.output if o]) > 1:
            raise _Unsupported("the Indices output of MaxPool is not supported")
        x = n.t(0)
        kernel = list(n.attr("kernel_shape"))  # type: ignore[arg-type]
        strides, dilations, pads = _window_attrs(n, n.shape(x), kernel)
        if any(d != 1 for d in dilations):
            raise _Unsupported("pooling with dilations")
        if n.attr("ceil_mode", 0) and kind == "AveragePool" and n.attr("count_include_pad", 0):
            raise _Unsupported("ceil_mode=1 with count_include_pad=1")
        if n.attr("ceil_mode", 0):  # more high padding, as long as each window still sees input
            shape = n.shape(x)[2:]
            nd = len(kernel)
            for i in range(nd):
                span = shape[i] + pads[i] + pads[nd + i] - kernel[i]
                extra = (-span) % strides[i]
                if extra and (span + extra) // strides[i] * strides[i] < shape[i] + pads[i]:
                    pads[nd + i] += extra
        x2, one_d = _to_2d(n, x, kind)
        k2, s2, p2 = ([1, *kernel], [1, *strides], _pads_2d(pads, one_d)) if one_d else (kernel, strides, pads)
        if kind == "MaxPool":
            y = n.g.max_pool2d(x2, k2, s2, p2)
        else:
            y = n.g.avg_pool2d(x2, k2, s2, p2, bool(n.attr("count_include_pad", 0)))
        if one_d:
            s = n.shape(y)
            y = n.g.reshape(y, [s[0], s[1], s[3]])
        return [y]
    return fn


HANDLERS["MaxPool"] = _pool("MaxPool")
HANDLERS["AveragePool"] = _pool("AveragePool")


@handles("GlobalAveragePool")
def _gap(n: _Node) -> list[Value]:
    return [n.g.global_avg_pool(n.t(0))]


@handles("GlobalMaxPool")
def _gmp(n: _Node) -> list[Value]:
    x = n.t(0)
    return [n.g.reduce_max(x, list(range(2, len(n.shape(x)))), keepdims=True)]


@handles("BatchNormalization")
def _batch_norm(n: _Node) -> list[Value]:
    if n.attr("training_mode", 0) or len([o for o in n.node.output if o]) > 1:
        raise _Unsupported("BatchNormalization in training mode")
    g = n.g
    x = n.t(0)
    rank = len(n.shape(x))

    def per_channel(i: int) -> Tensor:
        t = n.t(i)
        return g.reshape(t, [n.shape(t)[0]] + [1] * (rank - 2)) if rank > 2 else t

    scale, bias, mean, var = (per_channel(i) for i in (1, 2, 3, 4))
    std = g.sqrt(g.add(var, n.scalar(float(n.attr("epsilon", 1e-5)), var)))  # type: ignore[arg-type]
    # x * k + (bias - mean * k): two ops on activations; k and the shift depend on weights
    # only, so ge-hoist-weight-only computes them once per update, not per inference.
    k = g.div(scale, std)
    return [g.add(g.mul(x, k), g.sub(bias, g.mul(mean, k)))]


@handles("LayerNormalization")
def _layer_norm(n: _Node) -> list[Value]:
    g = n.g
    x = n.t(0)
    rank = len(n.shape(x))
    axis = int(n.attr("axis", -1)) % rank  # type: ignore[arg-type]
    axes = list(range(axis, rank))
    d = g.sub(x, g.reduce_mean(x, axes, keepdims=True))
    var = g.reduce_mean(g.mul(d, d), axes, keepdims=True)
    std = g.sqrt(g.add(var, n.scalar(float(n.attr("epsilon", 1e-5)), x)))  # type: ignore[arg-type]
    y = g.mul(g.div(d, std), n.t(1))
    y = g.add(y, n.t(2)) if n.has(2) else y
    if len(n.node.output) == 1:
        return [y]
    # the optional Mean and InvStdDev outputs (keepdims shapes)
    return [y, g.reduce_mean(x, axes, keepdims=True), g.div(n.scalar(1, x), std)]


@handles("LRN")
def _lrn(n: _Node) -> list[Value]:
    """`x / (bias + alpha / size * sum of x² over a channel window) ** beta`; the window sum
    adds `size` channel slices of x² zero-padded (concat with expanded zeros) on the channel axis."""
    g, x = n.g, n.t(0)
    shape = n.shape(x)
    size = int(n.attr("size"))  # type: ignore[arg-type]
    alpha, beta, bias = (float(n.attr(k, d)) for k, d in (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0)))  # type: ignore[arg-type]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = g.mul(x, x)
    zero = n.scalar(0, x)
    parts = [g.expand(zero, [lo if i == 1 else d for i, d in enumerate(shape)])] if lo else []
    parts += [sq] + ([g.expand(zero, [hi if i == 1 else d for i, d in enumerate(shape)])] if hi else [])
    padded = g.concat(parts, 1) if len(parts) > 1 else sq
    total = None
    for k in range(size):
        part = g.slice(padded, [k if i == 1 else 0 for i in range(len(shape))],
                       [k + shape[1] if i == 1 else d for i, d in enumerate(shape)])
        total = part if total is None else g.add(total, part)
    assert total is not None
    base = g.add(g.mul(total, n.scalar(alpha / size, x)), n.scalar(bias, x))
    return [g.div(x, g.pow(base, n.scalar(beta, x)))]


@handles("Reshape")
def _reshape(n: _Node) -> list[Value]:
    shape = n.ints(1)
    assert shape is not None
    x = n.t(0)
    if n.attr("allowzero", 0) and 0 in shape:
        raise _Unsupported("Reshape with allowzero=1 and a 0 in the shape")
    return [n.g.reshape(x, shape)]


@handles("Flatten")
def _flatten(n: _Node) -> list[Value]:
    x = n.t(0)
    shape = n.shape(x)
    axis = int(n.attr("axis", 1))  # type: ignore[arg-type]
    axis = axis + len(shape) if axis < 0 else axis
    return [n.g.reshape(x, [math.prod(shape[:axis]), math.prod(shape[axis:])])]


@handles("Transpose")
def _transpose(n: _Node) -> list[Value]:
    perm = n.attr("perm")
    return [n.g.transpose(n.t(0), None if perm is None else list(perm))]  # type: ignore[arg-type]


@handles("Squeeze")
def _squeeze(n: _Node) -> list[Value]:
    x = n.t(0)
    shape = n.shape(x)
    axes = n.ints(1, "axes")
    axes = [i for i, d in enumerate(shape) if d == 1] if axes is None else [a % len(shape) for a in axes]
    return [n.g.reshape(x, [d for i, d in enumerate(shape) if i not in axes])]


@handles("Unsqueeze")
def _unsqueeze(n: _Node) -> list[Value]:
    x = n.t(0)
    shape = n.shape(x)
    axes = n.ints(1, "axes") or []
    rank = len(shape) + len(axes)
    axes = sorted(a % rank for a in axes)
    out, it = [], iter(shape)
    for i in range(rank):
        out.append(1 if i in axes else next(it))
    return [n.g.reshape(x, out)]


@handles("Expand")
def _expand(n: _Node) -> list[Value]:
    x = n.t(0)
    target = n.ints(1)
    assert target is not None
    return [n.g.expand(x, list(np.broadcast_shapes(tuple(n.shape(x)), tuple(target))))]


@handles("Concat")
def _concat(n: _Node) -> list[Value]:
    ts = [n.t(i) for i in range(len(n.vals)) if n.has(i)]
    return [n.g.concat(ts, int(n.attr("axis")))]  # type: ignore[arg-type]


@handles("Split")
def _split(n: _Node) -> list[Value]:
    x = n.t(0)
    shape = n.shape(x)
    axis = int(n.attr("axis", 0)) % len(shape)  # type: ignore[arg-type]
    sizes = n.ints(1, "split")
    outs = [o for o in n.node.output]
    if sizes is None:
        k = len(outs)
        chunk = -(-shape[axis] // k)
        sizes = [min(chunk, shape[axis] - i * chunk) for i in range(k)]
    results: list[Value] = []
    start = 0
    for size in sizes:
        starts = [start if i == axis else 0 for i in range(len(shape))]
        ends = [start + size if i == axis else d for i, d in enumerate(shape)]
        results.append(n.g.slice(x, starts, ends))
        start += size
    return results


@handles("Slice")
def _slice(n: _Node) -> list[Value]:
    x = n.t(0)
    shape = n.shape(x)
    starts, ends = n.ints(1), n.ints(2)
    assert starts is not None and ends is not None
    axes = n.ints(3) or list(range(len(starts)))
    steps = n.ints(4) or [1] * len(starts)
    if any(s <= 0 for s in steps):
        raise _Unsupported("Slice with negative steps")
    full_s, full_e, full_k = [0] * len(shape), list(shape), [1] * len(shape)
    for a, s, e, k in zip(axes, starts, ends, steps):
        a %= len(shape)
        full_s[a], full_e[a], full_k[a] = s, min(e, shape[a]) if e > 0 else e, k
    return [n.g.slice(x, full_s, full_e, full_k)]


def _pad_constant(n: _Node) -> list[Value]:
    """Constant-mode Pad (the Pad handler, in wrc/onnx_ops_extra.py, takes the other modes): per
    axis, concat with blocks of the pad value (a scalar broadcast by `expand`, so no large
    constant is created); negative pads crop with a slice."""
    x = n.t(0)
    shape = n.shape(x)
    rank = len(shape)
    pads = n.ints(1)
    assert pads is not None
    axes = [a % rank for a in (n.ints(3) or range(rank))]
    value = n.s(2).reshape(-1)[0] if n.has(2) and n.s(2).size else 0
    fill = n.scalar(float(value) if x.dtype.kind == "f" else int(value), x)
    for k, axis in enumerate(axes):
        lo, hi = pads[k], pads[k + len(axes)]
        if lo < 0 or hi < 0:
            cur = n.shape(x)
            starts = [max(-lo, 0) if i == axis else 0 for i in range(rank)]
            ends = [cur[i] - max(-hi, 0) if i == axis else cur[i] for i in range(rank)]
            x = n.g.slice(x, starts, ends)
            lo, hi = max(lo, 0), max(hi, 0)
        parts = []
        for size, where in ((lo, "lo"), (None, "x"), (hi, "hi")):
            if where == "x":
                parts.append(x)
            elif size:
                parts.append(n.g.expand(fill, [size if i == axis else d for i, d in enumerate(n.shape(x))]))
        if len(parts) > 1:
            x = n.g.concat(parts, axis)
    return [x]


@handles("Gather")
def _gather(n: _Node) -> list[Value]:
    data = n.t(0)
    idx = n.t(1)
    if idx.dtype not in (np.int32, np.int64):
        raise _Unsupported(f"Gather indices of dtype {idx.dtype}")
    return [n.g.gather(data, idx, int(n.attr("axis", 0)))]  # type: ignore[arg-type]


@handles("Where")
def _where(n: _Node) -> list[Value]:
    return [n.g.where(n.t(0), n.t(1), n.t(2))]


@handles("Cast")
def _cast(n: _Node) -> list[Value]:
    to = _np_dtype(int(n.attr("to")), "Cast")  # type: ignore[arg-type]
    return [n.g.cast(n.t(0), to)]


@handles("Shape")
def _shape(n: _Node) -> list[Value]:
    shape = n.shape(n.t(0))
    end = n.attr("end")
    return [Static(np.array(shape[int(n.attr("start", 0)):None if end is None else int(end)], np.int64))]  # type: ignore[arg-type]


def _reduce(method: str, axes_input_since: int) -> Handler:
    def fn(n: _Node) -> list[Value]:
        x = n.t(0)
        rank = len(n.shape(x))
        axes = n.ints(1) if n.imp.opset >= axes_input_since else n.ints(len(n.vals), "axes")
        if not axes:
            if n.attr("noop_with_empty_axes", 0):
                return [n.g.reshape(x, n.shape(x))]
            axes = list(range(rank))
        keep = bool(n.attr("keepdims", 1))
        if any(n.shape(x)[a % rank] == 0 for a in axes) if rank else False:
            raise _Unsupported("a reduction over an empty axis")
        if rank == 0:
            return [n.g.reshape(x, [])]
        return [getattr(n.g, method)(x, axes, keep)]
    return fn


HANDLERS["ReduceSum"] = _reduce("reduce_sum", 13)
HANDLERS["ReduceMean"] = _reduce("reduce_mean", 18)
HANDLERS["ReduceMax"] = _reduce("reduce_max", 18)

# More handlers (activations, Resize, Pad modes, normalizations, CumSum, Trilu, Einsum, indexing)
# live in their own module, which registers them with `handles` when imported here.
from wrc import onnx_ops_extra  # noqa: E402, F401, I001


# --------------------------------------------------------------------------- API


def import_onnx(
    model: str | os.PathLike | onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int | None]] | None = None,
) -> Graph:
    """Import an ONNX model (opsets 13 to 21) as a `wrc.Graph`.

    `input_shapes` pins input shapes by name (`{"x": (1, 3, 224, 224)}`); compiling needs
    static shapes. Raises `UnsupportedOpError` listing every unsupported node at once,
    `OnnxImportError` for anything else wrong with the model.
    """
    proto, where = _load(model)
    return _Importer(proto, where, dict(input_shapes or {})).run()


def weight_names(graph: Graph) -> list[str]:
    """The constants of an imported graph whose bytes live in the weight table (the ONNX
    initializers it uses, plus large folded constants): what `--all-weights` converts."""
    return [name for name in graph.constants if name in graph.weights]


def compile_graph(graph: Graph, const_names: Sequence[str] | None = None, init: bool = True) -> ModelBuffer:
    """Convert `graph` (all its weights by default) and build a bundle: infer + update graphs,
    plus the init graph unless `init=False` (a weight-stripped bundle). Returns the
    `ModelBuffer`; opens a build session when none is open."""
    from wrc.workflow import (
        _SESSION,
        BuildSession,
        bundle_build_model,
        convert_to_weight_refreshable_graphs,
    )

    names = weight_names(graph) if const_names is None else list(const_names)
    if not names:
        raise OnnxImportError(f"graph {graph.name!r} has no weights to make refreshable")

    def build() -> ModelBuffer:
        parts = convert_to_weight_refreshable_graphs(graph, names)
        graphs = [parts.infer_graph, parts.var_update_graph] + ([parts.var_init_graph] if init else [])
        return bundle_build_model(graphs)

    if _SESSION.active:
        return build()
    with BuildSession():
        return build()
