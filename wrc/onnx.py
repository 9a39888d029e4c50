"""`wrc.onnx.import_onnx`: an ONNX model as a `wrc.Graph` (docs/onnx.md).

Models at opsets 7-12 are first upgraded to 13 (`_upgrade`). Every initializer used as a tensor
becomes a `ge.const` named like the initializer, its bytes in `graph.weights` unless it is a
small non-weight (so the ONNX names can be passed to `convert_to_weight_refreshable_graphs` as
they are; `weight_names` says which are weights); graph inputs that are not initializers become
`ge.data` inputs; symbolic dims become dynamic ones unless pinned with `input_shapes`.

Values are either graph tensors or *static* NumPy arrays known at import time (Constant nodes,
`Shape` of a statically shaped tensor, integer initializers, ...). A node whose inputs are all
static and not float initializers is folded (`NUMPY_FOLDS`, else `onnx.reference`) — this is how
the shape-computation chains exporters emit (Shape -> Gather -> Unsqueeze -> Concat -> Reshape)
disappear. Float initializers are never folded into other constants: they stay weights.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from wrc.dtypes import UnsupportedDtypeError, to_element_type
from wrc.errors import OnnxImportError, UnsupportedOpError, WrcError
from wrc.graph import Graph, Tensor, is_weight_value

MIN_OPSET, MAX_OPSET = 13, onnx.defs.onnx_opset_version()
OLDEST_OPSET = 7
"""Models at opsets OLDEST_OPSET to MIN_OPSET - 1 are upgraded to MIN_OPSET with
`onnx.version_converter` before import (`_upgrade`)."""
TESTED_OPSETS = (13, 21)
"""Opsets 13-21 are what wrc targets; newer ones are accepted (the supported ops kept their
semantics; the conformance table runs ONNX's node tests at their own, often newer, opsets)."""
INLINE_LIMIT = 64
"""Static values that are not weights with at most this many elements are printed inline."""


class _Unsupported(Exception):
    """Raised by a handler for an unsupported form of a supported op (collected, not fatal)."""


@dataclass
class Static:
    """A value known at import time. `weight`: a float initializer (never folded away)."""

    array: np.ndarray
    weight: bool = False
    name: str | None = None  # the initializer's name: aliases (Identity outputs) materialize as it


Value = Tensor | Static


def _inlinable(array: np.ndarray) -> bool:
    """Small enough to print in the IR, and finite: NaN and inf do not survive the IR text
    (printed as hex, they are read back as integers)."""
    return array.size <= INLINE_LIMIT and (array.dtype.kind != "f" or bool(np.isfinite(array).all()))


class ImportedGraph(Graph):
    """The `Graph` `import_onnx` returns; `initializer_weights` names the constants that are
    ONNX initializers passing `is_weight_value`: its `weight_names()`."""

    def __init__(self, name: str):
        super().__init__(name)
        self.initializer_weights: list[str] = []

    def weight_names(self) -> list[str]:
        """The float initializers used as tensors with more than one element and no
        |x| >= 1e30, by their ONNX names; not values folded at import (Constant nodes,
        ConstantOfShape, ...)."""
        chosen = set(self.initializer_weights)
        return [name for name in self.constants if name in chosen]


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


def _default_opset(model: onnx.ModelProto) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


STUB_ELEMENTS = 1024
"""`_upgrade` passes initializers of this many elements or more to the version converter as
stubs (name, type and dims, no data)."""


def _stubbed(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, onnx.TensorProto]]:
    """A copy of `model` whose large top-level initializers are stubs, and those initializers by
    name. The converter copies a model several times over (ResNet-50's 100 MB of weights: a
    615 MB peak and 12–60 s on the loaded VM; with stubs: 15 MB and 0.5 s)."""
    def copy_fields(src: onnx.ModelProto | onnx.GraphProto, dst: onnx.ModelProto | onnx.GraphProto, skip: str) -> None:
        for field, value in src.ListFields():
            if field.name == skip:
                continue
            if hasattr(value, "extend"):  # repeated
                getattr(dst, field.name).extend(value)
            elif field.message_type is not None:
                getattr(dst, field.name).CopyFrom(value)
            else:
                setattr(dst, field.name, value)

    light, stubs = onnx.ModelProto(), {}
    copy_fields(model, light, "graph")
    copy_fields(model.graph, light.graph, "initializer")
    for init in model.graph.initializer:
        if math.prod(init.dims) < STUB_ELEMENTS:
            light.graph.initializer.add().CopyFrom(init)
            continue
        stub = light.graph.initializer.add(name=init.name, data_type=init.data_type)
        stub.dims.extend(init.dims)
        stubs[init.name] = init
    return light, stubs


def _is_stub_of(stub: onnx.TensorProto, init: onnx.TensorProto) -> bool:
    """Whether the converter left `_stubbed`'s stub of `init` as it was."""
    return ({f.name for f, _ in stub.ListFields()} <= {"name", "data_type", "dims"}
            and list(stub.dims) == list(init.dims) and stub.data_type == init.data_type)


def _upgrade(model: onnx.ModelProto, where: str) -> tuple[onnx.ModelProto, dict[str, onnx.TensorProto]]:
    """A model at opset 7-12 converted to MIN_OPSET by `onnx.version_converter` (initializer and
    value names are kept), and the initializers to read in place of its stubs (`_stubbed`: no
    adapter of the converter reads a weight's values; should one change a stub, or fail on
    them, the whole model is converted). When the converter fails, the failing node is found
    by converting ever longer prefixes of the node list (a binary search) and named in the error."""
    from onnx import version_converter

    opset = _default_opset(model)
    if opset is None or not OLDEST_OPSET <= opset < MIN_OPSET:
        return model, {}

    def convert(m: onnx.ModelProto) -> onnx.ModelProto:
        return version_converter.convert_version(m, MIN_OPSET)

    light, stubs = _stubbed(model)
    converted = None
    try:
        converted = convert(light) if stubs else None
    except Exception:  # noqa: BLE001 - converted whole below, which reports the failure
        pass
    del light
    if converted is not None and all(i.name not in stubs or _is_stub_of(i, stubs[i.name])
                                     for i in converted.graph.initializer):
        return converted, stubs
    try:
        return convert(model), {}
    except Exception as e:  # the converter raises RuntimeError/ConvertError with a C++ assertion text
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    reason = reason.split("failed: ")[-1]  # drop the C++ file, line and assertion text
    nodes = model.graph.node
    lo, hi = 0, len(nodes)  # the prefix of length hi fails; find the shortest one
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        prefix = onnx.ModelProto()
        prefix.CopyFrom(model)
        del prefix.graph.node[mid:]
        del prefix.graph.output[:]
        try:
            convert(prefix)
            lo = mid
        except Exception:  # noqa: BLE001 - any failure means the culprit is in this prefix
            hi = mid
    node = nodes[hi - 1] if nodes else None
    at = "" if node is None else f" at {_label(node)}"
    raise OnnxImportError(f"{where}: cannot upgrade this opset-{opset} model to opset {MIN_OPSET} with "
                          f"onnx.version_converter{at}: {reason}") from None


def _label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} (node {node.name!r})" if node.name else f"{node.op_type} (output {node.output[0]!r})"


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
    def __init__(self, model: onnx.ModelProto, where: str, input_shapes: Mapping[str, Sequence[int | None]],
                 originals: Mapping[str, onnx.TensorProto] | None = None):
        """`originals`: the initializers to read in place of `model`'s stubs of them (`_upgrade`)."""
        self.model, self.where = model, where
        self.opset = _default_opset(model)
        if self.opset is None or not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise OnnxImportError(f"{where}: ONNX opset {self.opset} is not supported (wrc imports opsets {MIN_OPSET} to "
                                  f"{MAX_OPSET}, targeting {TESTED_OPSETS[0]} to {TESTED_OPSETS[1]}; opsets "
                                  f"{OLDEST_OPSET} to {MIN_OPSET - 1} are upgraded to {MIN_OPSET})")
        g = model.graph
        self.graph = ImportedGraph(g.name or "main")
        self.env: dict[str, Value] = {}
        self.consts: dict[str, Tensor] = {}  # materialized static values, by ONNX name
        inits = {i.name for i in g.initializer}
        unknown = set(input_shapes) - {i.name for i in g.input if i.name not in inits}
        if unknown:
            raise OnnxImportError(f"{where}: input_shapes names {sorted(unknown)}, which are not inputs of the model")
        for init in g.initializer:
            init = (originals or {}).get(init.name, init)
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
            weight = v.name is not None and is_weight_value(v.array)  # only initializers have a name
            inline = not weight and _inlinable(v.array)
            # An initializer's array was read for the import alone: the graph keeps it, no copy.
            self.consts[name] = self.graph.const(name, v.array, dtype=v.array.dtype, inline=inline,
                                                 copy=v.name is None)
            if weight:
                self.graph.initializer_weights.append(name)
        return self.consts[name]

    def run(self) -> Graph:
        problems: list[str] = []
        poisoned: set[str] = set()
        for node in self.model.graph.node:
            label = _label(node)
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
        outs = handler(_Node(self, node, vals))
        empty = next((v for v in outs if isinstance(v, Tensor) and 0 in v.shape), None)
        if empty is not None:
            raise _Unsupported(f"it produces an empty tensor (shape {list(empty.shape)}), which wrc does not support")
        return outs

    def fold(self, node: onnx.NodeProto, vals: list[Value | None]) -> list[Value]:
        from onnx.reference import ReferenceEvaluator

        feeds = {i: v.array for i, v in zip(node.input, vals) if isinstance(v, Static)}
        try:
            if node.op_type in NUMPY_FOLDS:  # where onnx.reference is wrong
                return [Static(np.asarray(o)) for o in NUMPY_FOLDS[node.op_type](_Node(self, node, vals))]
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
FOLD_ONLY = {"Range", "ConstantOfShape", "NonZero", "ReduceProd", "Floor", "Ceil"}
"""Operators imported only when all their inputs are constants (folded by onnx.reference)."""
NO_FOLD = {"Dropout", "If", "Loop", "Scan"}


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
    if n.node.op_type == "Dropout" and n.has(2) and bool(n.s(2).reshape(-1)[0]):
        raise _Unsupported("Dropout in training mode (random)")
    v = n.vals[0]
    assert v is not None
    if len(n.node.output) > 1 and n.node.output[1]:
        return [v, *_dropout_mask(n, v)]
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
    x = n.t(0)
    if x.dtype.kind != "f":
        raise _Unsupported("Pow of an integer base")
    exponent = n.vals[1]
    if isinstance(exponent, Static) and not exponent.weight and exponent.array.size <= INLINE_LIMIT:
        # cast now: an inline exponent of x's type lowers to multiplications when small
        y = n.g.const(f"{n.node.output[0]}__c{len(n.g.constants)}", exponent.array.astype(x.dtype), inline=True)
    else:
        y = n.t(1)
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


@handles("Pad")
def _pad(n: _Node) -> list[Value]:
    """Constant-mode Pad: per axis, concat with blocks of the pad value (a scalar broadcast by
    `expand`, so no large constant is created); negative pads crop with a slice. Other modes:
    `_pad_by_index`."""
    mode = n.attr("mode", "constant")
    if mode != "constant":
        return _pad_by_index(n, str(mode))
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
        if x.dtype.kind == "b" and method != "reduce_max":  # ge.reduce_max of bools is "any"
            raise _Unsupported(f"{n.node.op_type} of bool values")
        return [getattr(n.g, method)(x, axes, keep)]
    return fn


HANDLERS["ReduceSum"] = _reduce("reduce_sum", 13)
HANDLERS["ReduceMean"] = _reduce("reduce_mean", 18)
HANDLERS["ReduceMax"] = _reduce("reduce_max", 18)


# --------------------------------------------------------------------------- bool tensors, Sign, Mod
# Comparisons and logic at run time (attention masks, NaN guards): bool tensors are `i1`.

for _op, _m in (("Equal", "equal"), ("Less", "less"), ("LessOrEqual", "less_equal"), ("Greater", "greater"),
                ("GreaterOrEqual", "greater_equal"), ("And", "logical_and"), ("Or", "logical_or"),
                ("Xor", "logical_xor")):
    HANDLERS[_op] = _binary(_m)

for _op, _m in (("Not", "logical_not"), ("IsNaN", "is_nan")):
    HANDLERS[_op] = _unary(_m)


@handles("IsInf")
def _is_inf(n: _Node) -> list[Value]:
    x = n.t(0)
    pos, neg = bool(n.attr("detect_positive", 1)), bool(n.attr("detect_negative", 1))
    if pos and neg:
        return [n.g.is_inf(x)]
    if pos or neg:
        return [n.g.equal(x, n.scalar(math.inf if pos else -math.inf, x))]
    return [n.g.greater(x, n.scalar(math.inf, x))]  # nothing is: all false


@handles("Sign")
def _sign(n: _Node) -> list[Value]:
    return [n.g.sign(n.t(0))]


@handles("Mod")
def _mod(n: _Node) -> list[Value]:
    a, b = n.t(0), n.t(1)
    if a.dtype.kind == "f":
        return [_float_mod(n, a, b, bool(n.attr("fmod", 0)))]
    return [n.g.fmod(a, b) if n.attr("fmod", 0) else n.g.floor_mod(a, b)]


def _float_mod(n: _Node, a: Tensor, b: Tensor, truncated: bool) -> Tensor:
    """`a - q * b` with `q = trunc(a / b)` (fmod=1) or `floor(a / b)` (fmod=0), in float64: exact
    for float16/float32 operands while |a / b| < 2**29 (q and q * b are exact in float64, so only
    the final rounding remains). trunc is a round trip through int64 (for |q| < 2**52; larger
    floats, inf and NaN are integral already); an infinite `b` takes ONNX's special case."""
    g, dtype = n.g, a.dtype
    a64, b64 = g.cast(a, np.float64), g.cast(b, np.float64)
    ratio = g.div(a64, b64)
    small = g.less(g.abs(ratio), n.scalar(2.0 ** 52, ratio))
    safe = g.where(small, ratio, n.scalar(0, ratio))  # no cast of inf/NaN to int64
    q = g.where(small, g.cast(g.cast(safe, np.int64), np.float64), ratio)
    if not truncated:  # floor: one less where trunc rounded a negative quotient up
        q = g.sub(q, g.cast(g.greater(q, ratio), np.float64))
    r = g.sub(a64, g.mul(q, b64))
    finite_a = g.logical_not(g.logical_or(g.is_inf(a64), g.is_nan(a64)))
    inf_b = g.logical_and(g.is_inf(b64), finite_a)
    if truncated:
        special = a64
    else:  # a when zero or of b's sign, else b
        same = g.logical_or(g.equal(a64, n.scalar(0, a64)), g.equal(g.sign(a64), g.sign(b64)))
        special = g.where(same, a64, b64)
    return g.cast(g.where(inf_b, special, r), dtype)
# ------------------------------------------------- issue 11: Dropout's mask, If, NumPy folds


def _consumed(imp: _Importer, name: str) -> bool:
    """Whether any node (in subgraphs too) or graph output reads value `name`."""
    def reads(graph: onnx.GraphProto) -> bool:
        return any(o.name == name for o in graph.output) or any(
            name in node.input or any(reads(a.g) for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)
            for node in graph.node)
    return reads(imp.model.graph)


def _dropout_mask(n: _Node, x: Value) -> list[Value]:
    """Dropout's mask output in inference mode: all true, as a constant bool tensor (none at all
    when its shape is dynamic and nothing reads it)."""
    shape = x.array.shape if isinstance(x, Static) else x.shape
    if None not in shape:
        return [Static(np.ones(shape, np.bool_))]
    if _consumed(n.imp, n.node.output[1]):
        raise _Unsupported(f"the mask output of Dropout on a tensor of dynamic shape {list(shape)} "
                           "(pin the input shapes)")
    return []


def _branch(n: _Node, which: str) -> list[str]:
    """Import the nodes of the If's `which` subgraph into the enclosing graph (they read outer
    values by name); returns the names of its outputs."""
    return _import_subgraph(n, n.attrs[which], which)


def _import_subgraph(n: _Node, graph: onnx.GraphProto, which: str) -> list[str]:
    """Import the nodes of subgraph `graph` (called `which` in errors) into the enclosing graph;
    its initializers keep their names (one weight however often the subgraph is imported)."""
    imp = n.imp
    base = os.path.dirname(imp.where) if imp.where != "<ModelProto>" else ""
    for init in graph.initializer:
        dtype = _np_dtype(init.data_type, f"{which} initializer {init.name!r}")
        array = np.asarray(numpy_helper.to_array(init, base_dir=base), dtype)
        imp.env[init.name] = Static(array, weight=dtype.kind == "f", name=init.name)
    for sub in graph.node:
        try:
            outs = imp.node(sub)
        except _Unsupported as e:
            raise _Unsupported(f"in {which}, {_label(sub)}: {e}") from None
        for name, value in zip(sub.output, outs):
            if name:
                imp.env[name] = value
    missing = [o.name for o in graph.output if o.name not in imp.env]
    if missing:
        raise _Unsupported(f"{which} output(s) {missing} are not produced by any node")
    return [o.name for o in graph.output]


@handles("If")
def _if(n: _Node) -> list[Value]:
    """A constant condition inlines the taken branch; a run-time one imports both branches and
    selects each output with `ge.where` (the branches' outputs must have equal static shapes)."""
    imp, cond = n.imp, n.vals[0]
    if isinstance(cond, Static):
        if cond.array.size != 1:
            raise _Unsupported(f"an If condition with {cond.array.size} elements")
        taken = "then_branch" if bool(cond.array.reshape(-1)[0]) else "else_branch"
        return [imp.env[name] for name in _branch(n, taken)]
    c = n.t(0)
    if c.dtype.kind != "b" or None in c.shape or math.prod(c.shape) != 1:  # type: ignore[arg-type]
        raise _Unsupported(f"an If condition of type {c.dtype}{list(c.shape)} (a one-element bool is needed)")
    c = n.g.reshape(c, [])  # 0-d: broadcasts to any output shape
    then, other = _branch(n, "then_branch"), _branch(n, "else_branch")
    outs: list[Value] = []
    for i, (a, b) in enumerate(zip(then, other)):
        va, vb = imp.env[a], imp.env[b]
        if isinstance(va, Static) and isinstance(vb, Static) and va.array.dtype == vb.array.dtype \
                and np.array_equal(va.array, vb.array):
            outs.append(va)
            continue
        ta, tb = imp.tensor(a), imp.tensor(b)
        if ta.shape != tb.shape or None in ta.shape or ta.dtype != tb.dtype:
            raise _Unsupported(f"a run-time condition with output {i} of {ta.dtype}{list(ta.shape)} in then_branch "
                               f"but {tb.dtype}{list(tb.shape)} in else_branch (selecting needs equal static shapes)")
        outs.append(n.g.where(c, ta, tb))
    return outs


NumpyFold = Callable[[_Node], list[np.ndarray]]
NUMPY_FOLDS: dict[str, NumpyFold] = {}
"""Folds computed with wrc's own NumPy code instead of `onnx.reference` (where it is wrong)."""


def folds(*names: str) -> Callable[[NumpyFold], NumpyFold]:
    def register(fn: NumpyFold) -> NumpyFold:
        for name in names:
            NUMPY_FOLDS[name] = fn
        return fn
    return register


@folds("GatherElements")
def _fold_gather_elements(n: _Node) -> list[np.ndarray]:
    """`np.take_along_axis` on `data` cut to the indices' extent on the other axes (onnx.reference
    fails when the indices are smaller than `data` there)."""
    data, idx = n.s(0), n.s(1).astype(np.int64)
    axis = int(n.attr("axis", 0)) % data.ndim  # type: ignore[arg-type]
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    data = data[tuple(slice(None) if a == axis else slice(0, d) for a, d in enumerate(idx.shape))]
    return [np.take_along_axis(data, idx, axis)]
# --------------------------------------------------------------------------- issue 11's operators
# Activations, ArgMax/ArgMin, Pad edge/reflect/wrap, Resize and Upsample, normalizations, CumSum,
# Trilu, Einsum, Gather/Scatter forms and recurrent layers (RNN, GRU, LSTM unrolled), each a
# composition of existing `ge` ops, so it gets both backends, weight-only hoisting and the NumPy
# JIT's fast paths unchanged. The recurring building block is `ge.gather` with a constant index
# vector along one axis (`np.take` in the NumPy JIT): Pad's edge/reflect/wrap modes and Resize's
# sampling taps are such gathers. Index arithmetic that depends on constants only (Trilu masks,
# GatherElements' flat indices of constant indices, ...) is built from small vectors and
# broadcasting rather than as a large constant: `ge-hoist-weight-only` computes it once, at load.

LARGE_INLINE = 64 * INLINE_LIMIT
"""Index constants this handler module creates are printed inline up to this many elements;
larger ones (Scatter permutations of big tensors) go to the weight table like folded constants."""


def _const(n: _Node, tag: str, value: np.ndarray) -> Tensor:
    """A constant created for this node (index vectors, sampling weights), named after it."""
    value = np.ascontiguousarray(value)
    name = f"{n.node.output[0]}__{tag}{len(n.g.constants)}"
    return n.g.const(name, value, dtype=value.dtype, inline=value.size <= LARGE_INLINE)


def _float_input(n: _Node, i: int = 0) -> Tensor:
    x = n.t(i)
    if x.dtype.kind != "f":
        raise _Unsupported(f"{n.node.op_type} of a {x.dtype} tensor (float only)")
    return x


def _in_float32(n: _Node, build: Callable[[Tensor], Tensor]) -> list[Value]:
    """`build` applied to input 0 (float), in float32 when it is float16 (as onnxruntime computes
    these activations: a float16 `exp`/`log` chain loses digits), cast back."""
    x = _float_input(n)
    if x.dtype != np.float16:
        return [build(x)]
    return [n.g.cast(build(n.g.cast(x, np.float32)), np.float16)]


def _axis_vector(values: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """`values` (1-D) shaped to broadcast along `axis` of a rank-`rank` tensor."""
    return values.reshape([-1 if i == axis else 1 for i in range(rank)])


# --------------------------------------------------------------------------- activations


@handles("Reciprocal")
def _reciprocal(n: _Node) -> list[Value]:
    x = _float_input(n)
    return [n.g.div(n.scalar(1, x), x)]


def _hard_sigmoid_of(n: _Node, x: Tensor, alpha: float, beta: float) -> Tensor:
    y = n.g.add(n.g.mul(x, n.scalar(alpha, x)), n.scalar(beta, x))
    return n.g.maximum(n.g.minimum(y, n.scalar(1, x)), n.scalar(0, x))


@handles("HardSwish")
def _hard_swish(n: _Node) -> list[Value]:
    """`x * max(0, min(1, x / 6 + 1/2))`."""
    x = _float_input(n)
    return [n.g.mul(x, _hard_sigmoid_of(n, x, 1 / 6, 0.5))]


def _softplus(n: _Node, x: Tensor) -> Tensor:
    """`log(1 + exp(x))` as `max(x, 0) + log(1 + exp(-|x|))`: no overflow for large x."""
    g = n.g
    tail = g.log(g.add(g.exp(g.neg(g.abs(x))), n.scalar(1, x)))
    return g.add(g.maximum(x, n.scalar(0, x)), tail)


@handles("Softplus")
def _softplus_op(n: _Node) -> list[Value]:
    return _in_float32(n, lambda x: _softplus(n, x))


@handles("Mish")
def _mish(n: _Node) -> list[Value]:
    return _in_float32(n, lambda x: n.g.mul(x, n.g.tanh(_softplus(n, x))))


def _elu(n: _Node, x: Tensor, alpha: float, scale_in: float = 1.0) -> Tensor:
    """`max(x, 0) + alpha * (exp(min(x, 0) * scale_in) - 1)`: exact (one term is 0)."""
    g = n.g
    neg = g.minimum(x, n.scalar(0, x))
    if scale_in != 1:
        neg = g.mul(neg, n.scalar(scale_in, x))
    tail = g.mul(g.sub(g.exp(neg), n.scalar(1, x)), n.scalar(alpha, x))
    return g.add(g.maximum(x, n.scalar(0, x)), tail)


@handles("Elu")
def _elu_op(n: _Node) -> list[Value]:
    return _in_float32(n, lambda x: _elu(n, x, float(n.attr("alpha", 1.0))))  # type: ignore[arg-type]


@handles("Selu")
def _selu(n: _Node) -> list[Value]:
    alpha = float(n.attr("alpha", 1.67326319217681884765625))  # type: ignore[arg-type]
    gamma = float(n.attr("gamma", 1.05070102214813232421875))  # type: ignore[arg-type]
    return _in_float32(n, lambda x: n.g.mul(_elu(n, x, alpha), n.scalar(gamma, x)))


@handles("Celu")
def _celu(n: _Node) -> list[Value]:
    """`max(0, x) + min(0, alpha * (exp(x / alpha) - 1))` = Elu of x with exp(min(x, 0) / alpha)."""
    alpha = float(n.attr("alpha", 1.0))  # type: ignore[arg-type]
    return _in_float32(n, lambda x: _elu(n, x, alpha, 1 / alpha))


@handles("ThresholdedRelu")
def _thresholded_relu(n: _Node) -> list[Value]:
    """`x if x > alpha else 0`: the condition is `relu(x - alpha) != 0` (a cast to bool)."""
    x = _float_input(n)
    alpha = float(n.attr("alpha", 1.0))  # type: ignore[arg-type]
    above = n.g.cast(n.g.relu(n.g.sub(x, n.scalar(alpha, x))), np.bool_)
    return [n.g.where(above, x, n.scalar(0, x))]


@handles("Softsign")
def _softsign(n: _Node) -> list[Value]:
    x = _float_input(n)
    return [n.g.div(x, n.g.add(n.g.abs(x), n.scalar(1, x)))]


def _arg_extreme(largest: bool) -> Handler:
    """ArgMax/ArgMin without comparisons: `is_max = 1 - bool(v - max(v))` (int64), then the first
    (or last) index holding it: `L - max(is_max * (L - i))` (`max(is_max * (i + 1)) - 1`)."""
    def fn(n: _Node) -> list[Value]:
        g, x = n.g, n.t(0)
        shape = n.shape(x)
        axis = int(n.attr("axis", 0)) % len(shape)  # type: ignore[arg-type]
        keep, last = bool(n.attr("keepdims", 1)), bool(n.attr("select_last_index", 0))
        v = x if largest else (g.neg(x) if x.dtype.kind == "f" else g.sub(n.scalar(0, x), x))
        differs = g.cast(g.cast(g.sub(v, g.reduce_max(v, axis, keepdims=True)), np.bool_), np.int64)
        is_max = g.sub(_const(n, "one", np.array(1, np.int64)), differs)
        size = shape[axis]
        positions = np.arange(size, dtype=np.int64)
        weights = _const(n, "pos", _axis_vector(positions + 1 if last else size - positions, axis, len(shape)))
        best = g.reduce_max(g.mul(is_max, weights), axis, keepdims=keep)
        if last:
            return [g.sub(best, _const(n, "one", np.array(1, np.int64)))]
        return [g.sub(_const(n, "size", np.array(size, np.int64)), best)]
    return fn


HANDLERS["ArgMax"] = _arg_extreme(True)
HANDLERS["ArgMin"] = _arg_extreme(False)


@handles("TopK")
def _top_k(n: _Node) -> list[Value]:
    """Ranks without sorting: element i's rank along the axis is the number of elements before
    it, `#{j: x_j > x_i} + #{j < i: x_j == x_i}` (smallest: `<`), so ties keep the lower index
    first as ONNX specifies; output p's index is `sum_i i * (rank_i == p)`, its value a gather
    (`_take_along`). Costs O(L²) comparisons per row of length L (L = the axis' size)."""
    g, x = n.g, n.t(0)
    shape = n.shape(x)
    rank = len(shape)
    axis = int(n.attr("axis", -1)) % rank  # type: ignore[arg-type]
    k, size = int(n.s(1).reshape(-1)[0]), shape[axis]
    if not 0 < k <= size:
        raise _Unsupported(f"TopK with k={k} along an axis of {size} (1 <= k <= {size} is needed)")
    if x.dtype.kind == "b":
        raise _Unsupported("TopK of bool values")
    mine = g.reshape(x, [*shape[:axis + 1], 1, *shape[axis + 1:]])  # element i along axis, j along axis + 1
    other = g.reshape(x, [*shape[:axis], 1, *shape[axis:]])
    beats = g.greater(other, mine) if n.attr("largest", 1) else g.less(other, mine)
    i, j = np.arange(size).reshape(-1, 1), np.arange(size).reshape(1, -1)
    earlier = _const(n, "earlier", (j < i).reshape([size, size] + [1] * (rank - axis - 1)))
    before = g.logical_or(beats, g.logical_and(g.equal(other, mine), earlier))
    ranks = g.reduce_sum(g.cast(before, np.int64), axis + 1, keepdims=True)  # (..., L, 1, ...)
    wanted = _const(n, "p", _axis_vector(np.arange(k, dtype=np.int64), axis + 1, rank + 1))
    at = g.cast(g.equal(ranks, wanted), np.int64)  # (..., L, k, ...): element i has rank p
    positions = _const(n, "i", _axis_vector(np.arange(size, dtype=np.int64), axis, rank + 1))
    index = g.reduce_sum(g.mul(at, positions), axis, keepdims=False)  # (..., k, ...)
    return [_take_along(n, x, index, axis), index]


# --------------------------------------------------------------------------- Pad modes


def _pad_by_index(n: _Node, mode: str) -> list[Value]:
    """Pad modes edge, reflect and wrap: per padded axis, one `ge.gather` with the constant index
    vector `np.pad(arange(d), pads, mode)`."""
    if mode not in ("edge", "reflect", "wrap"):
        raise _Unsupported(f"Pad mode {mode!r}")
    x = n.t(0)
    rank = len(n.shape(x))
    pads = n.ints(1)
    assert pads is not None
    axes = [a % rank for a in (n.ints(3) or range(rank))]
    for k, axis in enumerate(axes):
        lo, hi = pads[k], pads[k + len(axes)]
        if lo == hi == 0:
            continue
        size = n.shape(x)[axis]
        if size == 0 or (mode == "reflect" and size == 1):
            raise _Unsupported(f"Pad mode {mode!r} of an axis of size {size}")
        src = np.arange(size, dtype=np.int64)[max(-lo, 0):size - max(-hi, 0)]  # negative pads crop
        index = np.pad(src, (max(lo, 0), max(hi, 0)), mode=mode)  # type: ignore[call-overload]
        x = n.g.gather(x, _const(n, "pad", index), axis)
    return [x]


# --------------------------------------------------------------------------- Resize / sampling

COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric")


def _source_coords(mode: str, out_size: int, in_size: int, scale: float) -> np.ndarray:
    """Source coordinate of each output index (ONNX Resize's coordinate_transformation_mode),
    computed in float32 like onnxruntime, so ties round the same way (a float64 computation,
    as in `onnx.reference`, can differ by one source pixel at exact ties)."""
    f = np.float32
    y, s, half = np.arange(out_size, dtype=f), f(scale), f(0.5)
    if mode == "align_corners":
        return np.zeros(out_size, f) if out_size == 1 else y * f(in_size - 1) / f(out_size - 1)
    if mode == "asymmetric":
        return y / s
    if mode == "pytorch_half_pixel" and out_size == 1:
        return np.zeros(out_size, f)
    if mode == "half_pixel_symmetric":
        offset = f(in_size / 2) * (f(1) - f(out_size) / (s * f(in_size)))
        return offset + (y + half) / s - half
    return (y + half) / s - half  # half_pixel, pytorch_half_pixel


def sampling_taps(kind: str, in_size: int, out_size: int, scale: float, coord_mode: str = "half_pixel",
                  nearest_mode: str = "round_prefer_floor", cubic_a: float = -0.75,
                  exclude_outside: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Resize along one axis as taps: output `i` is `sum_t weights[i, t] * x[index[i, t]]`.

    `kind` is nearest, linear or cubic; returns int64 indices (clamped: edge padding) and
    float64 weights, both (out_size, taps), as the ONNX spec and onnxruntime define them."""
    x = _source_coords(coord_mode, out_size, in_size, scale).astype(np.float64)
    if kind == "nearest":
        if nearest_mode == "round_prefer_floor":
            src = np.where(x - np.floor(x) == 0.5, np.floor(x), np.round(x))
        elif nearest_mode == "round_prefer_ceil":
            src = np.where(x - np.floor(x) == 0.5, np.ceil(x), np.round(x))
        elif nearest_mode in ("floor", "ceil"):
            src = np.floor(x) if nearest_mode == "floor" else np.ceil(x)
        else:
            raise _Unsupported(f"Resize nearest_mode {nearest_mode!r}")
        return np.clip(src, 0, in_size - 1).astype(np.int64)[:, None], np.ones((out_size, 1))
    base = np.floor(x)
    r = x - base
    if kind == "linear":
        index = base[:, None] + np.arange(2)
        weights = np.stack([1 - r, r], axis=1)
    else:  # cubic: four taps around x, Keys' kernel with parameter a
        a = cubic_a
        index = base[:, None] + np.arange(-1, 3)
        d = np.abs(x[:, None] - index)
        weights = np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                           np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))
    if exclude_outside:
        weights = np.where((index < 0) | (index >= in_size), 0.0, weights)
        weights /= weights.sum(axis=1, keepdims=True)
    return np.clip(index, 0, in_size - 1).astype(np.int64), weights


def _window_coeffs(kind: str, ratio: np.ndarray, scale: float, antialias: bool, cubic_a: float,
                   nearest_mode: str) -> np.ndarray:
    """onnx.reference's Resize coefficients per output position (ratio in (0, 1]); with
    antialias, the linear/cubic kernel stretched by 1 / scale when downsampling, normalized."""
    r, a = ratio[:, None], cubic_a

    def cubic(d: np.ndarray) -> np.ndarray:
        d = np.abs(d)
        return np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                        np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))
    if antialias:
        s = min(scale, 1.0)
        start = int(np.floor((-1 if kind == "linear" else -2) / s) + 1)
        d = (np.arange(start, 2 - start)[None, :] - r) * s
        c = np.clip(1 - np.abs(d), 0, 1) if kind == "linear" else cubic(d)
        return c / c.sum(axis=1, keepdims=True)
    if kind == "linear":
        return np.hstack([1 - r, r])
    if kind == "cubic":
        return cubic(np.arange(-1, 3)[None, :] - r)
    up = {"round_prefer_floor": r > 0.5, "round_prefer_ceil": r >= 0.5, "floor": r < 0, "ceil": r >= 0}
    if nearest_mode not in up:
        raise _Unsupported(f"Resize nearest_mode {nearest_mode!r}")
    take_up = up[nearest_mode] | (r == 1)  # an integer coordinate takes itself
    return np.hstack([~take_up, take_up]).astype(np.float64)


def _reference_taps(kind: str, in_size: int, out_size: int, scale: float, coord_mode: str,
                   roi: tuple[float, float] = (0.0, 1.0), antialias: bool = False, cubic_a: float = -0.75,
                   exclude_outside: bool = False, nearest_mode: str = "round_prefer_floor",
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Taps (see `sampling_taps`) as onnx.reference builds them, for the forms `sampling_taps`
    leaves out: antialias and tf_crop_and_resize. Also returns which outputs fall outside the
    input (tf_crop_and_resize: they take `extrapolation_value`)."""
    outside = np.zeros(out_size, bool)
    if coord_mode == "tf_crop_and_resize":  # the spec's integer output length, as onnxruntime
        y = np.arange(out_size, dtype=np.float64)
        span = (roi[1] - roi[0]) * (in_size - 1)
        x = np.full(out_size, span / 2) if out_size == 1 else y * span / (out_size - 1)
        x = x + roi[0] * (in_size - 1)
        outside = (x < 0) | (x > in_size - 1)
    else:
        x = _source_coords(coord_mode, out_size, in_size, scale).astype(np.float64)
    ratio = np.where(x == np.floor(x), 1.0, x - np.floor(x))
    coeffs = _window_coeffs(kind, ratio, scale, antialias, cubic_a, nearest_mode)
    taps = coeffs.shape[1]
    pad = -(-taps // 2)
    shifted = x + pad
    base, frac = np.floor(shifted), shifted - np.floor(shifted)
    if taps % 2 == 0:  # the window of the `taps` nearest pixels, ties to the lower one
        offset = np.where(frac == 0, -(taps // 2), -(taps // 2) + 1)
    else:
        offset = np.where(frac <= 0.5, -((taps - 1) // 2), -((taps - 1) // 2) + 1)
    index = (base + offset)[:, None] + np.arange(taps)[None, :] - pad
    if exclude_outside:
        coeffs = np.where((index < 0) | (index >= in_size), 0.0, coeffs)
        total = coeffs.sum(axis=1, keepdims=True)
        coeffs = coeffs / np.where(total == 0, 1.0, total)
    return np.clip(index, 0, in_size - 1).astype(np.int64), coeffs, outside


def resample(n: _Node, x: Tensor, axis: int, index: np.ndarray, weights: np.ndarray) -> Tensor:
    """`x` resampled along `axis` by taps (see `sampling_taps`): one `ge.gather` per tap that
    has a nonzero weight, times its weights, summed; a single tap of weight 1 is just the gather
    (nothing at all when it is the identity)."""
    rank = len(n.shape(x))
    live = [t for t in range(index.shape[1]) if np.any(weights[:, t] != 0)]
    if len(live) == 1 and np.all(weights[:, live[0]] == 1):
        if np.array_equal(index[:, live[0]], np.arange(n.shape(x)[axis])):
            return x
        return n.g.gather(x, _const(n, "idx", index[:, live[0]]), axis)
    y = None
    for t in live:
        part = n.g.gather(x, _const(n, "idx", index[:, t]), axis)
        part = n.g.mul(part, _const(n, "w", _axis_vector(weights[:, t], axis, rank).astype(x.dtype)))
        y = part if y is None else n.g.add(y, part)
    assert y is not None
    return y


def _resize_axes(n: _Node, shape: list[int]) -> tuple[list[int], list[float]]:
    """Output sizes and scales of every axis (ONNX Resize: scales or sizes, axes, policy)."""
    rank = len(shape)
    axes = [a % rank for a in (n.attr("axes") or range(rank))]  # type: ignore[attr-defined]
    scales_in = n.s(2).astype(np.float64).reshape(-1) if n.has(2) and n.s(2).size else None
    sizes_in = n.ints(3) if n.has(3) and n.s(3).size else None
    sizes, scales = list(shape), [1.0] * rank
    if sizes_in is not None:
        ratios = [sizes_in[i] / shape[a] for i, a in enumerate(axes)]
        policy = n.attr("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            common = min(ratios) if policy == "not_larger" else max(ratios)
            ratios = [common] * len(axes)
            sizes_in = [int(math.floor(common * shape[a] + 0.5)) for a in axes]
        for i, a in enumerate(axes):
            sizes[a], scales[a] = sizes_in[i], ratios[i]
    elif scales_in is not None:
        for i, a in enumerate(axes):
            scales[a], sizes[a] = float(scales_in[i]), int(math.floor(shape[a] * scales_in[i]))
    else:
        raise _Unsupported("Resize needs constant scales or sizes")
    return sizes, scales


@handles("Resize")
def _resize(n: _Node) -> list[Value]:
    """Separable: per resized axis, `resample` with the taps of the mode (nearest: one gather;
    linear: two gathers and a weighted sum; cubic: four). Scales/sizes must be constants."""
    x = n.t(0)
    shape = n.shape(x)
    mode = str(n.attr("mode", "nearest"))
    coord = str(n.attr("coordinate_transformation_mode", "half_pixel"))
    if mode not in ("nearest", "linear", "cubic"):
        raise _Unsupported(f"Resize mode {mode!r}")
    crop = coord == "tf_crop_and_resize"
    if coord not in COORDINATE_MODES and not crop:
        raise _Unsupported(f"Resize coordinate_transformation_mode {coord!r}")
    antialias = bool(n.attr("antialias", 0))
    if antialias and mode == "nearest":
        raise _Unsupported("Resize with antialias in mode 'nearest' (linear and cubic only)")
    if mode != "nearest" and x.dtype.kind != "f":
        raise _Unsupported(f"Resize mode {mode!r} of a {x.dtype} tensor")
    sizes, scales = _resize_axes(n, shape)
    rank = len(shape)
    rois = [(0.0, 1.0)] * rank
    if crop:
        if not (n.has(1) and n.s(1).size):
            raise _Unsupported("Resize tf_crop_and_resize without a roi")
        roi = [float(v) for v in n.s(1).reshape(-1)]
        axes = [a % rank for a in (n.attr("axes") or range(rank))]  # type: ignore[attr-defined]
        for i, a in enumerate(axes):
            rois[a] = (roi[i], roi[len(axes) + i])
    nearest, cubic_a = str(n.attr("nearest_mode", "round_prefer_floor")), float(n.attr("cubic_coeff_a", -0.75))  # type: ignore[arg-type]
    exclude = bool(n.attr("exclude_outside", 0))
    for axis, (size, out, scale) in enumerate(zip(shape, sizes, scales)):
        if out == size and scale == 1 and rois[axis] == (0.0, 1.0):
            continue
        if out == 0 or size == 0:
            raise _Unsupported("Resize to or from an empty axis")
        if antialias or crop:
            index, weights, outside = _reference_taps(mode, size, out, scale, coord, rois[axis], antialias, cubic_a,
                                                     exclude, nearest)
        else:
            index, weights = sampling_taps(mode, size, out, scale, coord, nearest, cubic_a, exclude)
            outside = np.zeros(out, bool)
        x = resample(n, x, axis, index, weights)
        if outside.any():
            fill = n.scalar(float(n.attr("extrapolation_value", 0.0)), x)  # type: ignore[arg-type]
            x = n.g.where(_const(n, "outside", _axis_vector(outside, axis, rank)), fill, x)
    return [x]


@handles("Upsample")
def _upsample(n: _Node) -> list[Value]:
    """Opsets 7-9: Resize with asymmetric coordinates (nearest: floor). Imported natively because
    `onnx.version_converter` turns it into a Resize with the default half_pixel coordinates,
    which changes linear results."""
    x = n.t(0)
    shape = n.shape(x)
    scales = [float(s) for s in (n.s(1).reshape(-1) if n.has(1) else n.attr("scales"))]  # type: ignore[union-attr]
    mode = {"bilinear": "linear"}.get(str(n.attr("mode", "nearest")), str(n.attr("mode", "nearest")))
    if mode not in ("nearest", "linear") or len(scales) != len(shape):
        raise _Unsupported(f"Upsample mode {mode!r} with scales {scales}")
    for axis, (size, scale) in enumerate(zip(shape, scales)):
        if scale != 1:
            out = int(math.floor(size * scale))
            x = resample(n, x, axis, *sampling_taps(mode, size, out, scale, "asymmetric", "floor"))
    return [x]


# --------------------------------------------------------------------------- normalizations


def _normalize(n: _Node, x: Tensor, axes: list[int]) -> Tensor:
    """`(x - mean) / sqrt(var + epsilon)` over `axes` (biased variance, like ONNX)."""
    g = n.g
    d = g.sub(x, g.reduce_mean(x, axes, keepdims=True))
    var = g.reduce_mean(g.mul(d, d), axes, keepdims=True)
    return g.div(d, g.sqrt(g.add(var, n.scalar(float(n.attr("epsilon", 1e-5)), x))))  # type: ignore[arg-type]


def _per_channel(n: _Node, i: int, rank: int) -> Tensor:
    """Input `i`, a (C,) vector, shaped to broadcast over (N, C, spatial...)."""
    t = n.t(i)
    return n.g.reshape(t, [n.shape(t)[0]] + [1] * (rank - 2))


@handles("InstanceNormalization")
def _instance_norm(n: _Node) -> list[Value]:
    x = _float_input(n)
    rank = len(n.shape(x))
    if rank < 3:
        raise _Unsupported(f"InstanceNormalization of a rank-{rank} tensor")
    y = _normalize(n, x, list(range(2, rank)))
    return [n.g.add(n.g.mul(y, _per_channel(n, 1, rank)), _per_channel(n, 2, rank))]


@handles("GroupNormalization")
def _group_norm(n: _Node) -> list[Value]:
    """Normalized over (N, groups, C/groups * spatial); scale and bias per channel (opset 21)
    or per group (opset 18)."""
    g, x = n.g, _float_input(n)
    shape = n.shape(x)
    groups = int(n.attr("num_groups"))  # type: ignore[arg-type]
    if len(shape) < 2 or shape[1] % groups:
        raise _Unsupported(f"GroupNormalization of {shape} in {groups} groups")
    y = _normalize(n, g.reshape(x, [shape[0], groups, -1]), [2])
    if n.shape(n.t(1))[0] == groups and groups != shape[1]:  # opset 18: per group
        y = g.add(g.mul(y, g.reshape(n.t(1), [groups, 1])), g.reshape(n.t(2), [groups, 1]))
        return [g.reshape(y, shape)]
    y = g.reshape(y, shape)
    return [g.add(g.mul(y, _per_channel(n, 1, len(shape))), _per_channel(n, 2, len(shape)))]


# --------------------------------------------------------------------------- CumSum, Trilu


def _shift(n: _Node, x: Tensor, axis: int, by: int, backwards: bool) -> Tensor:
    """`x` moved `by` places along `axis` (towards higher indices unless `backwards`), zero-filled."""
    shape = n.shape(x)
    zeros = n.g.expand(n.scalar(0, x), [by if i == axis else d for i, d in enumerate(shape)])
    lo = [by if i == axis and backwards else 0 for i in range(len(shape))]
    hi = [d - by if i == axis and not backwards else d for i, d in enumerate(shape)]
    kept = n.g.slice(x, lo, hi)
    return n.g.concat([kept, zeros] if backwards else [zeros, kept], axis)


@handles("CumSum")
def _cumsum(n: _Node) -> list[Value]:
    """A log-step prefix sum (Hillis-Steele): `y += shift(y, 1, 2, 4, ...)`, ceil(log2 L)
    steps of slice + concat + add, exact for integers; exclusive = the sum shifted by one."""
    x = n.t(0)
    shape = n.shape(x)
    axis = int(n.s(1).reshape(-1)[0]) % len(shape)
    backwards = bool(n.attr("reverse", 0))
    length = shape[axis]
    y = x
    step = 1
    while step < length:
        y = n.g.add(y, _shift(n, y, axis, step, backwards))
        step *= 2
    if n.attr("exclusive", 0):
        return [_shift(n, y, axis, 1, backwards) if length else y]
    return [y if y is not x else n.g.add(x, n.scalar(0, x))]  # a fresh value, not an alias


@handles("Trilu")
def _trilu(n: _Node) -> list[Value]:
    """`where(mask, x, 0)`; the (rows, cols) mask comes from column minus row index vectors,
    clamped to 0/1 and cast to bool: built from constants only, so it is computed at load."""
    x = n.t(0)
    shape = n.shape(x)
    if len(shape) < 2:
        raise _Unsupported("Trilu of a tensor of rank < 2")
    k = int(n.s(1).reshape(-1)[0]) if n.has(1) else 0
    rows, cols = shape[-2:]
    diff = n.g.sub(_const(n, "col", np.arange(cols, dtype=np.int64)[None, :]),
                   _const(n, "row", np.arange(rows, dtype=np.int64)[:, None]))
    one = _const(n, "one", np.array(1, np.int64))
    # upper keeps col - row >= k: (col - row) - k + 1 >= 1; lower keeps k - (col - row) + 1 >= 1
    if n.attr("upper", 1):
        d = n.g.add(diff, _const(n, "k", np.array(1 - k, np.int64)))
    else:
        d = n.g.sub(_const(n, "k", np.array(k + 1, np.int64)), diff)
    keep = n.g.cast(n.g.maximum(n.g.minimum(d, one), _const(n, "zero", np.array(0, np.int64))), np.bool_)
    return [n.g.where(keep, x, n.scalar(0, x))]


# --------------------------------------------------------------------------- Einsum


def _einsum_terms(equation: str, ranks: Sequence[int]) -> tuple[list[list[str]], list[str]]:
    """Each operand's and the output's index labels; `...` becomes labels `.0`, `.1`, ..."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    specs = lhs.split(",")
    if len(specs) != len(ranks) or not re.fullmatch(r"[A-Za-z.,]*", lhs) or not re.fullmatch(r"[A-Za-z.]*", rhs):
        raise _Unsupported(f"Einsum equation {equation!r} for {len(ranks)} inputs")
    width = max((r - len(s.replace("...", "")) for s, r in zip(specs, ranks) if "..." in s), default=0)

    def labels(spec: str, rank: int | None) -> list[str]:
        head, dots, tail = spec.partition("...")
        if not dots:
            return list(spec)
        k = width if rank is None else rank - len(head) - len(tail)
        return [*head, *(f".{width - k + i}" for i in range(k)), *tail]

    terms = [labels(s, r) for s, r in zip(specs, ranks)]
    for t, r in zip(terms, ranks):
        if len(t) != r:
            raise _Unsupported(f"Einsum equation {equation!r}: a term does not match its input's rank {r}")
        if len(set(t)) != len(t):
            raise _Unsupported(f"Einsum equation {equation!r}: a repeated index within one input (diagonal)")
    if arrow:
        out = labels(rhs, None)
    else:  # implicit output: the broadcast dims, then the labels used once, in order
        flat = [label for t in terms for label in t]
        out = sorted({lb for lb in flat if lb.startswith(".")}) + sorted(lb for lb in set(flat) if flat.count(lb) == 1 and not lb.startswith("."))
    return terms, out


def _permute(n: _Node, x: Tensor, labels: list[str], order: list[str]) -> Tensor:
    perm = [labels.index(lb) for lb in order]
    return x if perm == sorted(perm) else n.g.transpose(x, perm)


def _reshape_to(n: _Node, x: Tensor, shape: list[int]) -> Tensor:
    return x if n.shape(x) == shape else n.g.reshape(x, shape)


def _contract(n: _Node, a: Tensor, la: list[str], b: Tensor, lb: list[str], keep: set[str]) -> tuple[Tensor, list[str]]:
    """`a` and `b` contracted over the labels they share that are not in `keep`, as one
    (batched) `ge.matmul` of [batch, left, inner] x [batch, inner, right] regrouped operands."""
    sizes: dict[str, int] = {}
    for t, labels in ((a, la), (b, lb)):
        for lbl, d in zip(labels, n.shape(t)):
            if sizes.get(lbl, 1) not in (1, d) and d != 1:
                raise _Unsupported(f"Einsum: dimension {lbl!r} is {sizes[lbl]} and {d}")
            sizes[lbl] = max(sizes.get(lbl, 1), d)
    batch = [lbl for lbl in la if lbl in lb and lbl in keep]
    inner = [lbl for lbl in la if lbl in lb and lbl not in keep]
    left = [lbl for lbl in la if lbl not in lb]
    right = [lbl for lbl in lb if lbl not in la]
    for t, labels in ((a, la), (b, lb)):
        if any(d != sizes[lbl] for lbl, d in zip(labels, n.shape(t)) if lbl in inner):
            raise _Unsupported("Einsum: a broadcast (size-1) contracted dimension")
    if any(n.shape(a)[la.index(lbl)] != n.shape(b)[lb.index(lbl)] for lbl in batch):
        a = n.g.expand(a, [sizes[lbl] if lbl in batch else d for lbl, d in zip(la, n.shape(a))])
        b = n.g.expand(b, [sizes[lbl] if lbl in batch else d for lbl, d in zip(lb, n.shape(b))])
    prod = {k: math.prod(sizes[lbl] for lbl in v) for k, v in (("l", left), ("i", inner), ("r", right))}
    lead = [sizes[lbl] for lbl in batch]  # batch dims stay dims: ge.matmul takes them as they are
    a3 = _reshape_to(n, _permute(n, a, la, batch + left + inner), [*lead, prod["l"], prod["i"]])
    b3 = _reshape_to(n, _permute(n, b, lb, batch + inner + right), [*lead, prod["i"], prod["r"]])
    y = n.g.matmul(a3, b3)
    labels = batch + left + right
    return _reshape_to(n, y, [sizes[lbl] for lbl in labels]), labels


@handles("Einsum")
def _einsum(n: _Node) -> list[Value]:
    """Operands are summed over the labels no one else uses, then contracted left to right
    (`_contract`: one matmul each), then transposed to the output's order."""
    ts = [n.t(i) for i in range(len(n.vals))]
    first = ts[0]
    terms, out = _einsum_terms(str(n.attr("equation")), [len(n.shape(t)) for t in ts])
    if not set(out) <= {lbl for t in terms for lbl in t} or len(set(out)) != len(out):
        raise _Unsupported(f"Einsum equation {n.attr('equation')!r}: bad output labels")
    for i, (t, labels) in enumerate(zip(ts, terms)):
        others = set(out).union(*(set(u) for j, u in enumerate(terms) if j != i))
        alone = [k for k, lbl in enumerate(labels) if lbl not in others]
        if alone:
            ts[i] = n.g.reduce_sum(t, alone)
            terms[i] = [lbl for lbl in labels if lbl in others]
    y, labels = ts[0], terms[0]
    for i in range(1, len(ts)):
        keep = set(out).union(*(set(u) for u in terms[i + 1:]))
        y, labels = _contract(n, y, labels, ts[i], terms[i], keep)
    y = _permute(n, y, labels, out)
    return [n.g.add(y, n.scalar(0, y)) if y is first else y]  # a fresh value, not an alias


# --------------------------------------------------------------------------- indexing


def _normalized(n: _Node, index: Tensor, size: int) -> Tensor:
    """Indices with negative ones counted from the end: a gather from `arange(size)` (`ge.gather`
    wraps negative indices), as int64."""
    return n.g.gather(_const(n, "ar", np.arange(size, dtype=np.int64)), index, 0)


def _position(n: _Node, shape: Sequence[int], strides: Sequence[int]) -> Tensor | None:
    """`sum_k arange(shape[k]) * strides[k]` broadcast over `shape` (None when all strides are 0)."""
    total = None
    for k, (d, s) in enumerate(zip(shape, strides)):
        if s and d > 1:
            part = _const(n, "pos", _axis_vector(np.arange(d, dtype=np.int64) * s, k, len(shape)))
            total = part if total is None else n.g.add(total, part)
    return total


def _index_input(n: _Node, i: int) -> Tensor:
    t = n.t(i)
    if t.dtype not in (np.int32, np.int64):
        raise _Unsupported(f"{n.node.op_type} indices of dtype {t.dtype}")
    return t


@handles("GatherElements")
def _gather_elements(n: _Node) -> list[Value]:
    """One `ge.gather` from the flattened data at `index * stride(axis) + position`, the flat
    offset of every other coordinate (from broadcast `arange` vectors). With constant indices
    the whole index computation is computed once, at load."""
    data, index = n.t(0), _index_input(n, 1)
    return [_take_along(n, data, index, int(n.attr("axis", 0)))]  # type: ignore[arg-type]


def _take_along(n: _Node, data: Tensor, index: Tensor, axis: int) -> Tensor:
    """`np.take_along_axis(data, index, axis)` as one `ge.gather` (see `_gather_elements`)."""
    dshape, ishape = n.shape(data), n.shape(index)
    rank = len(dshape)
    axis %= rank
    strides = [math.prod(dshape[k + 1:]) for k in range(rank)]
    flat = n.g.mul(_normalized(n, index, dshape[axis]), _const(n, "stride", np.array(strides[axis], np.int64)))
    pos = _position(n, ishape, [0 if k == axis else s for k, s in enumerate(strides)])
    if pos is not None:
        flat = n.g.add(flat, pos)
    return n.g.gather(n.g.reshape(data, [-1]), flat, 0)


@handles("GatherND")
def _gather_nd(n: _Node) -> list[Value]:
    """The data as rows (batch and indexed dims flattened), one `ge.gather` of the rows at
    `batch position * rows per batch + sum_j index[..., j] * stride_j`."""
    data, index = n.t(0), _index_input(n, 1)
    dshape, ishape = n.shape(data), n.shape(index)
    b = int(n.attr("batch_dims", 0))  # type: ignore[arg-type]
    k = ishape[-1]
    if b + k > len(dshape):
        raise _Unsupported(f"GatherND with {k} indexed dims and batch_dims={b} of data {dshape}")
    lead = ishape[:-1]
    per_batch = math.prod(dshape[b:b + k])
    batch_strides = [math.prod(dshape[m + 1:b]) * per_batch for m in range(b)]
    flat = _position(n, lead, batch_strides + [0] * (len(lead) - b))
    for j in range(k):
        comp = n.g.reshape(n.g.slice(index, [0] * len(lead) + [j], [*lead, j + 1]), lead)
        term = _normalized(n, comp, dshape[b + j])
        stride = math.prod(dshape[b + j + 1:b + k])
        if stride != 1:
            term = n.g.mul(term, _const(n, "stride", np.array(stride, np.int64)))
        flat = term if flat is None else n.g.add(flat, term)
    if flat is None:  # k == 0 and no batch dims: every row is the whole data
        flat = _const(n, "zero", np.zeros(lead, np.int64))
    rows = n.g.reshape(data, [math.prod(dshape[:b + k]), *dshape[b + k:]])
    return [n.g.gather(rows, flat, 0)]


def _scatter(n: _Node, rows: int, targets: np.ndarray, data: Tensor, updates: Tensor, row_shape: list[int]) -> Tensor:
    """Rows of `data` replaced by rows of `updates` (update `u` goes to row `targets[u]`, the
    last one winning): one `ge.gather` from `concat(data rows, update rows)` with a constant
    permutation."""
    perm = np.arange(rows, dtype=np.int64)
    perm[targets] = rows + np.arange(targets.size, dtype=np.int64)
    both = n.g.concat([n.g.reshape(data, [rows, *row_shape]), n.g.reshape(updates, [targets.size, *row_shape])], 0)
    return n.g.gather(both, _const(n, "perm", perm), 0)


def _hits(n: _Node, index: Tensor, size: int, at: int) -> Tensor:
    """`index_u == p` (bool) for an int64 `index` holding positions in [0, size): `index`'s axis
    `at` (the entries u) followed by a new axis of the positions p."""
    shape = n.shape(index)
    spread = n.g.reshape(index, [*shape[:at + 1], 1, *shape[at + 1:]])
    return n.g.equal(spread, _const(n, "p", _axis_vector(np.arange(size, dtype=np.int64), at + 1, len(shape) + 1)))


def _pad_to(n: _Node, x: Tensor, shape: Sequence[int], fill: float) -> Tensor:
    """`x` padded at the end of each axis to `shape` with `fill` (`ge.expand`ed blocks)."""
    for axis, want in enumerate(shape):
        have = n.shape(x)
        if have[axis] < want:
            block = n.g.expand(n.scalar(fill, x), [want - have[axis] if k == axis else d for k, d in enumerate(have)])
            x = n.g.concat([x, block], axis)
    return x


def _negated(n: _Node, x: Tensor) -> Tensor:
    return n.g.neg(x) if x.dtype.kind == "f" else n.g.sub(n.scalar(0, x), x)


def _scatter_by_comparison(n: _Node, data: Tensor, hit: Tensor, updates: Tensor, at: int, rows: bool) -> Tensor:
    """Scatter from the comparison `hit` (`_hits`: entries along `at`, then the positions).
    `rows`: the positions are rows of `data` (ScatterND: `hit` is (updates, rows), `updates` one
    row each); else elements along axis `at` (ScatterElements: `hit` is shaped like the indices
    with the positions after `at`, padded up to `data` at the end). Reduction none: the last
    update landing on a position wins (`max_u (u + 1) · hit`, a gather, `ge.where`); add, mul,
    max, min: the updates landing on a position reduced with data's value."""
    g, dshape, ushape = n.g, n.shape(data), n.shape(updates)
    reduction = str(n.attr("reduction", "none"))
    if reduction not in ("none", "add", "mul", "max", "min"):
        raise _Unsupported(f"{n.node.op_type} with reduction {reduction!r}")
    zero = _const(n, "zero", np.array(0, np.int64))

    def placed(x: Tensor, fill: float) -> Tensor:  # per position, shaped to combine with data
        return x if rows else _pad_to(n, x, dshape, fill)
    if reduction == "none":
        order = _const(n, "u", _axis_vector(np.arange(1, n.shape(hit)[at] + 1, dtype=np.int64), at, len(n.shape(hit))))
        winner = g.reduce_max(g.mul(g.cast(hit, np.int64), order), at)
        source = g.maximum(g.sub(winner, _const(n, "one", np.array(1, np.int64))), zero)
        lands = g.greater(winner, zero)
        if rows:
            lands = g.reshape(lands, [dshape[0]] + [1] * (len(dshape) - 1))
            return g.where(lands, g.gather(updates, source, 0), data)
        return g.where(placed(lands, 0), placed(_take_along(n, updates, source, at), 0), data)
    spread = g.reshape(updates, [*ushape[:at + 1], 1, *ushape[at + 1:]])
    if rows:
        hit = g.reshape(hit, [*n.shape(hit), *[1] * (len(ushape) - 1)])
    if reduction == "add":
        return g.add(data, placed(g.reduce_sum(g.where(hit, spread, n.scalar(0, spread)), at), 0))
    if reduction == "mul":  # no product reduction: the entries multiplied one by one
        filled = g.where(hit, spread, n.scalar(1, spread))
        shape = n.shape(filled)
        product = None
        for u in range(shape[at]):
            part = g.slice(filled, [u if k == at else 0 for k in range(len(shape))],
                           [u + 1 if k == at else d for k, d in enumerate(shape)])
            product = part if product is None else g.mul(product, part)
        assert product is not None
        return g.mul(data, placed(g.reshape(product, shape[:at] + shape[at + 1:]), 1))
    lowest = float(np.finfo(spread.dtype).min) if spread.dtype.kind == "f" else int(np.iinfo(spread.dtype).min)
    signed = spread if reduction == "max" else _negated(n, spread)
    best = g.reduce_max(g.where(hit, signed, n.scalar(lowest, spread)), at)
    best = best if reduction == "max" else _negated(n, best)
    lands = g.reduce_max(hit, at)  # "any"
    combined = (g.maximum if reduction == "max" else g.minimum)(data, placed(best, 0))
    return g.where(placed(lands, 0), combined, data)


@handles("ScatterND")
def _scatter_nd(n: _Node) -> list[Value]:
    """Constant indices and no reduction: a static permutation (see `_scatter`); else rows of the
    data (the indexed dims flattened) updated as in `_scatter_by_comparison`."""
    data = n.t(0)
    dshape = n.shape(data)
    if not isinstance(n.vals[1], Static) or n.attr("reduction", "none") != "none":
        index = _index_input(n, 1)
        ishape = n.shape(index)
        k = ishape[-1]
        if k == 0:
            raise _Unsupported("ScatterND with an empty index tuple at run time")
        rows, row_shape = math.prod(dshape[:k]), dshape[k:]
        lead = math.prod(ishape[:-1])
        flat_index = n.g.reshape(index, [lead, k])
        target = None
        for j in range(k):
            comp = n.g.reshape(n.g.slice(flat_index, [0, j], [lead, j + 1]), [lead])
            term = _normalized(n, comp, dshape[j])
            stride = math.prod(dshape[j + 1:k])
            if stride != 1:
                term = n.g.mul(term, _const(n, "stride", np.array(stride, np.int64)))
            target = term if target is None else n.g.add(target, term)
        assert target is not None
        y = _scatter_by_comparison(n, n.g.reshape(data, [rows, *row_shape]), _hits(n, target, rows, 0),
                                   n.g.reshape(n.t(2), [lead, *row_shape]), 0, rows=True)
        return [n.g.reshape(y, dshape)]
    index = n.s(1).astype(np.int64)
    k = index.shape[-1]
    dims = np.array(dshape[:k], np.int64)
    index = np.where(index < 0, index + dims, index).reshape(-1, k)
    if np.any(index < 0) or np.any(index >= dims):
        raise _Unsupported(f"ScatterND indices out of range of data {dshape}")
    targets = np.ravel_multi_index(tuple(index.T), dshape[:k]) if k else np.zeros(index.shape[0], np.int64)
    y = _scatter(n, math.prod(dshape[:k]), np.asarray(targets, np.int64), data, n.t(2), dshape[k:])
    return [n.g.reshape(y, dshape)]


@handles("ScatterElements")
def _scatter_elements(n: _Node) -> list[Value]:
    """Constant indices and no reduction: a static permutation of the flattened elements; else
    `_scatter_by_comparison` along the axis."""
    data = n.t(0)
    dshape = n.shape(data)
    axis = int(n.attr("axis", 0)) % len(dshape)  # type: ignore[arg-type]
    if not isinstance(n.vals[1], Static) or n.attr("reduction", "none") != "none":
        hit = _hits(n, _normalized(n, _index_input(n, 1), dshape[axis]), dshape[axis], axis)
        return [_scatter_by_comparison(n, data, hit, n.t(2), axis, rows=False)]
    index = n.s(1).astype(np.int64)
    index = np.where(index < 0, index + dshape[axis], index)
    if np.any(index < 0) or np.any(index >= dshape[axis]):
        raise _Unsupported(f"ScatterElements indices out of range of data {dshape}")
    coords = list(np.indices(index.shape))
    coords[axis] = index
    targets = np.ravel_multi_index(tuple(coords), dshape).reshape(-1)
    y = _scatter(n, math.prod(dshape), np.asarray(targets, np.int64), data, n.t(2), [])
    return [n.g.reshape(y, dshape)]


# --------------------------------------------------------------------------- recurrent layers

RECURRENT_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
ACTIVATIONS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu"}


class _Cell:
    """One direction of a recurrent layer: its weights (as 2-D tensors) and activations."""

    def __init__(self, n: _Node, kind: str, d: int, hidden: int, acts: list[str]):
        g, gh = n.g, RECURRENT_GATES[kind] * hidden
        self.n, self.kind, self.hidden = n, kind, hidden
        w, r = n.t(1), n.t(2)
        self.w_t = g.transpose(g.reshape(g.slice(w, [d, 0, 0], [d + 1, *n.shape(w)[1:]]), n.shape(w)[1:]))
        self.r_t = g.transpose(g.reshape(g.slice(r, [d, 0, 0], [d + 1, *n.shape(r)[1:]]), n.shape(r)[1:]))
        self.wb = self.rb = None
        if n.has(3):
            b = g.reshape(g.slice(n.t(3), [d, 0], [d + 1, 2 * gh]), [2 * gh])
            self.wb, self.rb = g.slice(b, [0], [gh]), g.slice(b, [gh], [2 * gh])
        self.acts = acts
        clip = n.attr("clip")
        self.clip = None if clip is None else float(clip)  # type: ignore[arg-type]
        self.peep = None
        if kind == "LSTM" and n.has(7):
            p = n.t(7)
            self.peep = [g.reshape(g.slice(p, [d, k * hidden], [d + 1, (k + 1) * hidden]), [hidden]) for k in range(3)]

    def clipped(self, x: Tensor) -> Tensor:
        if self.clip is None:
            return x
        return self.n.g.minimum(self.n.g.maximum(x, self.n.scalar(-self.clip, x)), self.n.scalar(self.clip, x))

    def act(self, i: int, x: Tensor, clip: bool = True) -> Tensor:
        return getattr(self.n.g, ACTIVATIONS[self.acts[i]])(self.clipped(x) if clip else x)

    def columns(self, x: Tensor, lo: int, hi: int) -> Tensor:
        """Gates `lo` to `hi` (exclusive) of a (rows, gates * hidden) matrix or a bias vector."""
        shape = self.n.shape(x)
        if len(shape) == 1:
            return self.n.g.slice(x, [lo * self.hidden], [hi * self.hidden])
        return self.n.g.slice(x, [0, lo * self.hidden], [shape[0], hi * self.hidden])

    def gru_step(self, xw: Tensor, h: Tensor | None) -> Tensor:
        """z, r = f(x W_zr + h R_zr + b); h~ = g(x W_h + r * (h R_h + Rb_h)) (linear_before_reset)
        or g(x W_h + (r * h) R_h + Rb_h); h' = (1 - z) * h~ + z * h. `xw` holds x W + Wb."""
        g = self.n.g
        rb = [None if self.rb is None else self.columns(self.rb, k, k + 1) for k in range(3)]
        rec = None if h is None else g.matmul(h, self.columns(self.r_t, 0, 2))
        z, r = (self.act(0, _plus(_plus(self.columns(xw, k, k + 1), None if rec is None else self.columns(rec, k, k + 1)), rb[k]))
                for k in range(2))
        if self.n.attr("linear_before_reset", 0):
            rh = rb[2] if h is None else _plus(g.matmul(h, self.columns(self.r_t, 2, 3)), rb[2])
            hh = self.columns(xw, 2, 3) if rh is None else g.add(self.columns(xw, 2, 3), g.mul(r, rh))
        else:
            rh = None if h is None else g.matmul(g.mul(r, h), self.columns(self.r_t, 2, 3))
            hh = _plus(_plus(self.columns(xw, 2, 3), rh), rb[2])
        hh = self.act(1, hh)
        new = g.mul(g.sub(self.n.scalar(1, z), z), hh)
        return new if h is None else g.add(new, g.mul(z, h))

    def step(self, xw: Tensor, h: Tensor | None, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """One time step: `xw` is x_t @ W^T (+ biases folded in); returns (h, c)."""
        g, kind = self.n.g, self.kind
        if kind == "GRU":
            return self.gru_step(xw, h), None
        rec = None if h is None else g.matmul(h, self.r_t)
        pre = xw if rec is None else g.add(xw, rec)
        if kind == "RNN":
            return self.act(0, pre), None
        i, o, f, cc = (self.columns(pre, k, k + 1) for k in range(4))
        if self.peep is not None and c is not None:
            i, f = g.add(i, g.mul(self.peep[0], c)), g.add(f, g.mul(self.peep[2], c))
        i, f, cc = self.act(0, i), self.act(0, f), self.act(1, cc)
        c_new = g.mul(i, cc) if c is None else g.add(g.mul(f, c), g.mul(i, cc))
        if self.peep is not None:
            o = g.add(o, g.mul(self.peep[1], c_new))
        return g.mul(self.act(0, o), self.act(2, c_new, False)), c_new


def _plus(a: Tensor, b: Tensor | None) -> Tensor:
    return a if b is None else a.graph.add(a, b)


def _recurrent(kind: str) -> Handler:
    """RNN, GRU and LSTM unrolled over the static sequence: `X @ W^T` for all steps in one matmul,
    then per step one matmul with `R^T` and the gate arithmetic. The weights stay refreshable;
    their slices and transposes are weight-only (computed once per update)."""
    def fn(n: _Node) -> list[Value]:
        g = n.g
        x = _float_input(n)
        if n.attr("layout", 0):
            x = g.transpose(x, [1, 0, 2])
        steps, batch, size = n.shape(x)
        hidden = int(n.attr("hidden_size"))  # type: ignore[arg-type]
        direction = str(n.attr("direction", "forward"))
        dirs = ["forward", "reverse"] if direction == "bidirectional" else [direction]
        if n.has(4) and np.any(n.s(4) != steps):
            raise _Unsupported(f"{kind} with sequence_lens other than the sequence length {steps}")
        if kind == "LSTM" and n.attr("input_forget", 0):
            raise _Unsupported("LSTM with input_forget")
        per = len(DEFAULT_ACTIVATIONS[kind])
        names = [str(a.decode() if isinstance(a, bytes) else a) for a in n.attr("activations", DEFAULT_ACTIVATIONS[kind] * len(dirs))]  # type: ignore[union-attr]
        if any(a not in ACTIVATIONS for a in names) or n.attr("activation_alpha") or n.attr("activation_beta"):
            raise _Unsupported(f"{kind} activations {names} (Sigmoid, Tanh and Relu only)")
        ys, hs, cs = [], [], []
        for d, dname in enumerate(dirs):
            cell = _Cell(n, kind, d, hidden, names[d * per:(d + 1) * per])
            xw = g.matmul(g.reshape(x, [steps * batch, size]), cell.w_t)
            if cell.wb is not None:
                xw = g.add(xw, cell.wb if kind == "GRU" else g.add(cell.wb, cell.rb))  # type: ignore[arg-type]
            xw = g.reshape(xw, [steps, batch, -1])
            h = g.reshape(g.slice(n.t(5), [d, 0, 0], [d + 1, batch, hidden]), [batch, hidden]) if n.has(5) else None
            c = g.reshape(g.slice(n.t(6), [d, 0, 0], [d + 1, batch, hidden]), [batch, hidden]) if n.has(6) else None
            if kind == "LSTM" and h is not None and c is None:
                c = g.expand(n.scalar(0, h), [batch, hidden])
            outs: list[Tensor] = [None] * steps  # type: ignore[list-item]
            for t in (range(steps - 1, -1, -1) if dname == "reverse" else range(steps)):
                xt = g.reshape(g.slice(xw, [t, 0, 0], [t + 1, batch, n.shape(xw)[2]]), [batch, -1])
                h, c = cell.step(xt, h, c)
                outs[t] = g.reshape(h, [1, 1, batch, hidden])
            assert h is not None
            ys.append(g.concat(outs, 0) if steps > 1 else outs[0])
            hs.append(g.reshape(h, [1, batch, hidden]))
            if c is not None:
                cs.append(g.reshape(c, [1, batch, hidden]))
        y, yh = (g.concat(ys, 1), g.concat(hs, 0)) if len(dirs) > 1 else (ys[0], hs[0])
        yc = (g.concat(cs, 0) if len(cs) > 1 else cs[0]) if cs else None
        if n.attr("layout", 0):
            y, yh = g.transpose(y, [2, 0, 1, 3]), g.transpose(yh, [1, 0, 2])
            yc = None if yc is None else g.transpose(yc, [1, 0, 2])
        return [y, yh] + ([yc] if yc is not None else [])
    return fn


for _kind in RECURRENT_GATES:
    HANDLERS[_kind] = _recurrent(_kind)


# --------------------------------------------------------------------------- Loop and Scan, unrolled
# Each iteration imports a copy of the body whose value names carry the loop and the iteration
# (`t@y.3`), fed with the previous iteration's values; the body's initializers keep their names,
# so a weight inside the body is one refreshable weight. Static values (the iteration number,
# counters, constant conditions) fold as they go.

MAX_UNROLL = 4096
"""Loop and Scan are unrolled up to this many iterations; longer ones are refused."""


def _defined_names(graph: onnx.GraphProto) -> set[str]:
    """The values a subgraph (and the subgraphs of its nodes) defines: inputs and node outputs."""
    names = {i.name for i in graph.input}
    for node in graph.node:
        names.update(o for o in node.output if o)
        for a in node.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                names |= _defined_names(sub)
    return names


def _rename(graph: onnx.GraphProto, mapping: Mapping[str, str]) -> None:
    """Rename values of `graph` (nested subgraphs included) in place."""
    for v in (*graph.input, *graph.output, *graph.value_info):
        v.name = mapping.get(v.name, v.name)
    for node in graph.node:
        for field in (node.input, node.output):
            renamed = [mapping.get(x, x) for x in field]
            del field[:]
            field.extend(renamed)
        for a in node.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                _rename(sub, mapping)


def _iteration(n: _Node, body: onnx.GraphProto, i: int, feeds: Sequence[Value]) -> list[str]:
    """Import iteration `i` of `body` with its inputs bound to `feeds`; the names of its outputs."""
    copy = onnx.GraphProto()
    copy.CopyFrom(body)
    tag = n.node.output[0]  # unique in the model, so two loops whose bodies reuse names do not collide
    _rename(copy, {name: f"{name}@{tag}.{i}" for name in _defined_names(body)})
    for inp, value in zip(copy.input, feeds):
        n.imp.env[inp.name] = value
    return _import_subgraph(n, copy, f"the body's iteration {i}")


def _shape_of(n: _Node, name: str) -> list[int]:
    v = n.imp.env[name]
    return list(v.array.shape) if isinstance(v, Static) else n.shape(v)


def _slice_at(n: _Node, name: str, axis: int, i: int) -> Value:
    """Element `i` of value `name` along `axis`, the axis dropped (non-weight static values fold)."""
    v = n.imp.env[name]
    if isinstance(v, Static) and not v.weight:
        return Static(np.take(v.array, i, axis))
    t = n.imp.tensor(name)
    shape = n.shape(t)
    part = n.g.slice(t, [i if k == axis else 0 for k in range(len(shape))],
                     [i + 1 if k == axis else d for k, d in enumerate(shape)])
    return n.g.reshape(part, shape[:axis] + shape[axis + 1:])


def _stack(n: _Node, names: Sequence[str], axis: int, what: str) -> Value:
    """Values `names` (one per iteration) stacked along a new `axis`, as `concat` of reshapes."""
    values = [n.imp.env[name] for name in names]
    if all(isinstance(v, Static) and not v.weight for v in values):
        arrays = [v.array for v in values]  # type: ignore[union-attr]
        if len({(a.shape, a.dtype) for a in arrays}) > 1:
            raise _Unsupported(f"{what} changes shape between iterations")
        return Static(np.stack(arrays, axis))
    ts = [n.imp.tensor(name) for name in names]
    if len({(t.shape, t.dtype) for t in ts}) > 1:
        raise _Unsupported(f"{what} changes shape between iterations ({[list(t.shape) for t in ts]})")
    shape = n.shape(ts[0])
    axis %= len(shape) + 1
    parts = [n.g.reshape(t, shape[:axis] + [1] + shape[axis:]) for t in ts]
    return n.g.concat(parts, axis) if len(parts) > 1 else parts[0]


@handles("Loop")
def _loop(n: _Node) -> list[Value]:
    """Unrolled: the trip count must be a constant (or absent with a condition that folds), and
    so must the condition each iteration computes. Loop-carried values may change shape; scan
    outputs are stacked on a new axis 0."""
    body = n.attrs["body"]
    if n.has(0) and not isinstance(n.vals[0], Static):
        raise _Unsupported(f"a trip count computed at run time ({n.node.input[0]}); wrc unrolls loops whose "
                           "trip count is a constant")
    trip = int(n.s(0).reshape(-1)[0]) if n.has(0) else None
    cond = n.vals[1] if n.has(1) else Static(np.array(True))
    if not isinstance(cond, Static):
        raise _Unsupported(f"a condition computed at run time ({n.node.input[1]}); wrc unrolls loops whose "
                           "condition folds to a constant")
    carried = list(n.vals[2:])
    n_scan = len(body.output) - 1 - len(carried)
    scans: list[list[str]] = [[] for _ in range(n_scan)]
    i = 0
    while (trip is None or i < trip) and bool(cond.array.reshape(-1)[0]):
        if i == MAX_UNROLL:
            raise _Unsupported(f"more than {MAX_UNROLL} iterations to unroll")
        outs = _iteration(n, body, i, [Static(np.array(i, np.int64)), Static(np.array(True)), *carried])
        value = n.imp.env[outs[0]]
        if not isinstance(value, Static):
            raise _Unsupported(f"the body computes its condition at run time (iteration {i}); wrc unrolls loops "
                               "whose condition folds to a constant")
        cond = value
        carried = [n.imp.env[name] for name in outs[1:1 + len(carried)]]
        for k, name in enumerate(outs[1 + len(carried):]):
            scans[k].append(name)
        i += 1
    if n_scan and i == 0:
        raise _Unsupported("zero iterations: its scan outputs would be empty tensors")
    return [*carried, *(_stack(n, names, 0, f"scan output {k}") for k, names in enumerate(scans))]  # type: ignore[list-item]


@handles("Scan")
def _scan(n: _Node) -> list[Value]:
    """Unrolled over the scan inputs' static length (each scan axis and direction honoured)."""
    body = n.attrs["body"]
    m = int(n.attr("num_scan_inputs"))  # type: ignore[arg-type]
    states, inputs = list(n.vals[:len(n.vals) - m]), list(n.node.input[len(n.vals) - m:])
    k = len(body.output) - len(states)
    in_axes, in_rev = n.attr("scan_input_axes", [0] * m), n.attr("scan_input_directions", [0] * m)
    out_axes, out_rev = n.attr("scan_output_axes", [0] * k), n.attr("scan_output_directions", [0] * k)
    shapes = [_shape_of(n, x) for x in inputs]
    axes = [int(a) % len(shape) for a, shape in zip(in_axes, shapes)]  # type: ignore[union-attr]
    lengths = {shape[a] for shape, a in zip(shapes, axes)}
    if len(lengths) != 1:
        raise _Unsupported(f"scan inputs of different lengths {sorted(lengths)}")
    steps = lengths.pop()
    if steps > MAX_UNROLL:
        raise _Unsupported(f"{steps} iterations to unroll (at most {MAX_UNROLL})")
    if k and steps == 0:
        raise _Unsupported("zero iterations: its scan outputs would be empty tensors")
    scans: list[list[str]] = [[] for _ in range(k)]
    for t in range(steps):
        xs = [_slice_at(n, x, a, steps - 1 - t if r else t) for x, a, r in zip(inputs, axes, in_rev)]  # type: ignore[arg-type]
        outs = _iteration(n, body, t, [*states, *xs])
        states = [n.imp.env[name] for name in outs[:len(states)]]
        for j, name in enumerate(outs[len(states):]):
            scans[j].append(name)
    outputs: list[Value] = [*states]  # type: ignore[list-item]
    for j, names in enumerate(scans):
        outputs.append(_stack(n, names[::-1] if out_rev[j] else names, int(out_axes[j]), f"scan output {j}"))  # type: ignore[index]
    return outputs


# --------------------------------------------------------------------------- API


def import_onnx(
    model: str | os.PathLike | onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int | None]] | None = None,
) -> Graph:
    """Import an ONNX model (opsets 13 to 21; 7 to 12 upgraded to 13 first) as a `wrc.Graph`.

    `input_shapes` pins input shapes by name (`{"x": (1, 3, 224, 224)}`); compiling needs
    static shapes. Raises `UnsupportedOpError` listing every unsupported node at once,
    `OnnxImportError` for anything else wrong with the model.
    """
    proto, where = _load(model)
    upgraded, originals = _upgrade(proto, where)
    return _Importer(upgraded, where, dict(input_shapes or {}), originals).run()


def weight_names(graph: Graph) -> list[str]:
    """The weights of an imported graph, by their ONNX initializer names: what `wrc compile`
    makes refreshable by default (`graph.weight_names()`). They are the float initializers used
    as tensors with more than one element and no |x| >= 1e30 (`is_weight_value`); not integer
    (index, shape) tensors, not scalar exponents, epsilons and scales, not mask fill constants,
    not values folded at import. Any other constant of `graph.constants` can still be named
    explicitly."""
    return graph.weight_names()

