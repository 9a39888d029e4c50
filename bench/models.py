"""The benchmark models, each built twice from one weight dict: as a `wrc.Graph` and as an
ONNX model (onnx.helper API) computing the same function.

Every model is `(name, inputs, weights, build_wrc, build_onnx)`; weight names are the
refreshable constants. The transformer block uses ReLU in its FFN and no LayerNorm: the
`ge` dialect has neither GELU nor LayerNorm (yet); the ONNX twin does the same.
`encoder_ln_gelu` has both: its wrc graph is its ONNX model imported by `wrc.onnx`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import wrc


@dataclass
class Model:
    name: str
    inputs: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    build: Callable[[dict[str, np.ndarray]], wrc.Graph]  # weights → wrc graph (weights as consts)
    onnx: Callable[[dict[str, np.ndarray], bool], onnx.ModelProto]  # (weights, as_inputs)
    note: str = ""
    onnx_ok: bool = True

    @property
    def weight_bytes(self) -> int:
        return sum(w.nbytes for w in self.weights.values())


def _rand(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


class _Onnx:
    """A tiny ONNX builder: nodes plus weights as initializers or as graph inputs."""

    def __init__(self, weights: dict[str, np.ndarray], as_inputs: bool):
        self.weights, self.as_inputs = weights, as_inputs
        self.nodes: list[onnx.NodeProto] = []
        self.extra: list[onnx.TensorProto] = []
        self.n = 0

    def op(self, kind: str, *inputs: str, **attrs: object) -> str:
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def const(self, value: np.ndarray) -> str:
        """A non-refreshable constant (shapes, scales): always an initializer."""
        name = f"k{len(self.extra)}"
        self.extra.append(numpy_helper.from_array(value, name))
        return name

    def model(self, inputs: dict[str, np.ndarray], out: str) -> onnx.ModelProto:
        def vi(name: str, a: np.ndarray) -> onnx.ValueInfoProto:
            return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(a.shape))

        ins = [vi(n, a) for n, a in inputs.items()]
        inits = list(self.extra)
        if self.as_inputs:
            ins += [vi(n, a) for n, a in self.weights.items()]
        else:
            inits += [numpy_helper.from_array(a, n) for n, a in self.weights.items()]
        graph = helper.make_graph(self.nodes, "bench", ins, [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                                  initializer=inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m


# ---------------------------------------------------------------------------- MLP


def mlp(batch: int, seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    dims = (784, 1024, 1024, 10)
    w: dict[str, np.ndarray] = {}
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        w[f"w{i}"] = _rand(rng, a, b, scale=a ** -0.5)
        w[f"b{i}"] = _rand(rng, b, scale=0.1)

    def build(w: dict[str, np.ndarray]) -> wrc.Graph:
        g = wrc.Graph("mlp")
        h = g.data("x", (batch, 784))
        for i in range(3):
            h = g.add(g.matmul(h, g.const(f"w{i}", w[f"w{i}"])), g.const(f"b{i}", w[f"b{i}"]))
            if i < 2:
                h = g.relu(h)
        g.output(h)
        return g

    def to_onnx(w: dict[str, np.ndarray], as_inputs: bool) -> onnx.ModelProto:
        o = _Onnx(w, as_inputs)
        h = "x"
        for i in range(3):
            h = o.op("Add", o.op("MatMul", h, f"w{i}"), f"b{i}")
            if i < 2:
                h = o.op("Relu", h)
        return o.model({"x": np.zeros((batch, 784), np.float32)}, h)

    return Model(f"MLP b{batch}", {"x": _rand(rng, batch, 784)}, w, build, to_onnx)


def mlp_bn(batch: int, seed: int = 0) -> Model:
    """The MLP as PyTorch exports it: `Linear` weights stored [out, in] (ONNX `Gemm
    transB=1`) and a `BatchNorm1d` after each hidden layer: the weight-only work (transposes,
    `gamma / sqrt(var + eps)`) that `ge-hoist-weight-only` moves out of inference."""
    rng = np.random.default_rng(seed)
    dims, eps = (784, 1024, 1024, 10), 1e-5
    w: dict[str, np.ndarray] = {}
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        w[f"w{i}"] = _rand(rng, b, a, scale=a ** -0.5)
        w[f"b{i}"] = _rand(rng, b, scale=0.1)
        if i < 2:
            w[f"gamma{i}"] = (1 + _rand(rng, b, scale=0.1))
            w[f"beta{i}"] = _rand(rng, b, scale=0.1)
            w[f"mean{i}"] = _rand(rng, b, scale=0.1)
            w[f"var{i}"] = rng.uniform(0.5, 1.5, b).astype(np.float32)

    def build(w: dict[str, np.ndarray]) -> wrc.Graph:
        g = wrc.Graph("mlp_bn")
        h = g.data("x", (batch, 784))
        for i in range(3):
            h = g.add(g.matmul(h, g.transpose(g.const(f"w{i}", w[f"w{i}"]), [1, 0])), g.const(f"b{i}", w[f"b{i}"]))
            if i < 2:
                scale = g.div(g.const(f"gamma{i}", w[f"gamma{i}"]),
                              g.sqrt(g.add(g.const(f"var{i}", w[f"var{i}"]), g.const(f"eps{i}", np.float32(eps)))))
                h = g.add(g.mul(g.sub(h, g.const(f"mean{i}", w[f"mean{i}"])), scale), g.const(f"beta{i}", w[f"beta{i}"]))
                h = g.relu(h)
        g.output(h)
        return g

    def to_onnx(w: dict[str, np.ndarray], as_inputs: bool) -> onnx.ModelProto:
        o = _Onnx(w, as_inputs)
        h = "x"
        for i in range(3):
            h = o.op("Gemm", h, f"w{i}", f"b{i}", transB=1)
            if i < 2:
                h = o.op("Relu", o.op("BatchNormalization", h, f"gamma{i}", f"beta{i}", f"mean{i}", f"var{i}",
                                      epsilon=eps))
        return o.model({"x": np.zeros((batch, 784), np.float32)}, h)

    return Model(f"MLP-BN b{batch}", {"x": _rand(rng, batch, 784)}, w, build, to_onnx,
                 note="Gemm transB=1 + BatchNorm")


def small_mlp(seed: int = 0) -> Model:
    """For interp vs numpy: the interpreter costs ~50 µs per multiply-add."""
    rng = np.random.default_rng(seed)
    w = {"w0": _rand(rng, 8, 8), "b0": _rand(rng, 8), "w1": _rand(rng, 8, 4)}

    def build(w: dict[str, np.ndarray]) -> wrc.Graph:
        g = wrc.Graph("small")
        x = g.data("x", (2, 8))
        h = g.relu(g.add(g.matmul(x, g.const("w0", w["w0"])), g.const("b0", w["b0"])))
        g.output(g.matmul(h, g.const("w1", w["w1"])))
        return g

    def to_onnx(w: dict[str, np.ndarray], as_inputs: bool) -> onnx.ModelProto:
        raise NotImplementedError

    return Model("MLP 8-8-4 b2", {"x": _rand(rng, 2, 8)}, w, build, to_onnx, onnx_ok=False)


# ---------------------------------------------------------------------------- CNN


def cnn(batch: int, seed: int = 0) -> Model:
    """3×64×64 → conv3x3 32 (pad 1) + bias + ReLU → conv3x3 64 stride 2 (pad 1) + bias + ReLU
    → global average pool → FC 64×10 + bias."""
    rng = np.random.default_rng(seed)
    w = {
        "c1": _rand(rng, 32, 3, 3, 3, scale=(27) ** -0.5), "c1b": _rand(rng, 32, 1, 1, scale=0.1),
        "c2": _rand(rng, 64, 32, 3, 3, scale=(288) ** -0.5), "c2b": _rand(rng, 64, 1, 1, scale=0.1),
        "fc": _rand(rng, 64, 10, scale=0.125), "fcb": _rand(rng, 10, scale=0.1),
    }

    def build(w: dict[str, np.ndarray]) -> wrc.Graph:
        g = wrc.Graph("cnn")
        x = g.data("x", (batch, 3, 64, 64))
        h = g.relu(g.add(g.conv2d(x, g.const("c1", w["c1"]), pads=(1, 1, 1, 1)), g.const("c1b", w["c1b"])))
        h = g.relu(g.add(g.conv2d(h, g.const("c2", w["c2"]), strides=(2, 2), pads=(1, 1, 1, 1)),
                         g.const("c2b", w["c2b"])))
        v = g.reshape(g.global_avg_pool(h), (batch, 64))
        g.output(g.add(g.matmul(v, g.const("fc", w["fc"])), g.const("fcb", w["fcb"])))
        return g

    def to_onnx(w: dict[str, np.ndarray], as_inputs: bool) -> onnx.ModelProto:
        o = _Onnx(w, as_inputs)
        h = o.op("Relu", o.op("Add", o.op("Conv", "x", "c1", pads=[1, 1, 1, 1]), "c1b"))
        h = o.op("Relu", o.op("Add", o.op("Conv", h, "c2", pads=[1, 1, 1, 1], strides=[2, 2]), "c2b"))
        v = o.op("Flatten", o.op("GlobalAveragePool", h))
        return o.model({"x": np.zeros((batch, 3, 64, 64), np.float32)}, o.op("Add", o.op("MatMul", v, "fc"), "fcb"))

    return Model(f"CNN b{batch}", {"x": _rand(rng, batch, 3, 64, 64)}, w, build, to_onnx)


# ---------------------------------------------------------------------------- transformer


def transformer(seq: int = 128, d: int = 256, heads: int = 4, ffn: int = 1024, seed: int = 0) -> Model:
    """Post-residual encoder block without LayerNorm, FFN with ReLU (see module docstring):
    h = x + (softmax(Q Kᵀ / √dh) V) Wo + bo;  y = h + relu(h W1 + b1) W2 + b2."""
    rng = np.random.default_rng(seed)
    dh = d // heads
    w: dict[str, np.ndarray] = {}
    for n in ("q", "k", "v", "o"):
        w[f"w{n}"] = _rand(rng, d, d, scale=d ** -0.5)
        w[f"b{n}"] = _rand(rng, d, scale=0.1)
    w["w1"], w["b1"] = _rand(rng, d, ffn, scale=d ** -0.5), _rand(rng, ffn, scale=0.1)
    w["w2"], w["b2"] = _rand(rng, ffn, d, scale=ffn ** -0.5), _rand(rng, d, scale=0.1)
    scale = np.float32(1 / np.sqrt(dh))

    def build(w: dict[str, np.ndarray]) -> wrc.Graph:
        g = wrc.Graph("encoder")
        x = g.data("x", (seq, d))

        def lin(h: wrc.Tensor, n: str) -> wrc.Tensor:
            return g.add(g.matmul(h, g.const(f"w{n}", w[f"w{n}"])), g.const(f"b{n}", w[f"b{n}"]))

        def split(t: wrc.Tensor, perm: tuple[int, ...]) -> wrc.Tensor:
            return g.transpose(g.reshape(t, (seq, heads, dh)), perm)

        q = split(lin(x, "q"), (1, 0, 2))                       # heads × seq × dh
        kt = split(lin(x, "k"), (1, 2, 0))                      # heads × dh × seq
        v = split(lin(x, "v"), (1, 0, 2))
        s = g.mul(g.matmul(q, kt), g.const("scale", np.array(scale)))
        a = g.matmul(g.softmax(s, axis=-1), v)                  # heads × seq × dh
        a = g.reshape(g.transpose(a, (1, 0, 2)), (seq, d))
        h = g.add(x, lin(a, "o"))
        f = lin(g.relu(lin(h, "1")), "2")
        g.output(g.add(h, f))
        return g

    def to_onnx(w: dict[str, np.ndarray], as_inputs: bool) -> onnx.ModelProto:
        o = _Onnx(w, as_inputs)

        def lin(h: str, n: str) -> str:
            return o.op("Add", o.op("MatMul", h, f"w{n}"), f"b{n}")

        shape = o.const(np.array([seq, heads, dh], np.int64))

        def split(t: str, perm: list[int]) -> str:
            return o.op("Transpose", o.op("Reshape", t, shape), perm=perm)

        q, kt, v = split(lin("x", "q"), [1, 0, 2]), split(lin("x", "k"), [1, 2, 0]), split(lin("x", "v"), [1, 0, 2])
        s = o.op("Mul", o.op("MatMul", q, kt), o.const(np.array(scale)))
        a = o.op("MatMul", o.op("Softmax", s, axis=-1), v)
        a = o.op("Reshape", o.op("Transpose", a, perm=[1, 0, 2]), o.const(np.array([seq, d], np.int64)))
        h = o.op("Add", "x", lin(a, "o"))
        f = lin(o.op("Relu", lin(h, "1")), "2")
        return o.model({"x": np.zeros((seq, d), np.float32)}, o.op("Add", h, f))

    return Model(f"encoder s{seq}", {"x": _rand(rng, seq, d)}, w, build, to_onnx,
                 note="ReLU FFN, no LayerNorm (ge has no GELU/LayerNorm yet)")


def chain(n_ops: int, width: int = 16) -> wrc.Graph:
    """A graph of about `n_ops` compute ops (matmul/add/relu triples) for compile-time scaling."""
    rng = np.random.default_rng(0)
    g = wrc.Graph(f"chain{n_ops}")
    h = g.data("x", (4, width))
    for i in range(n_ops // 3):
        h = g.relu(g.add(g.matmul(h, g.const(f"w{i}", _rand(rng, width, width, scale=width ** -0.5))),
                         g.const(f"b{i}", _rand(rng, width, scale=0.1))))
    g.output(h)
    return g


def wide_chain(layers: int = 50, width: int = 256) -> Model:
    """100 weights (50 matmul + bias layers, 256 wide; 13 MB): partial vs full updates."""
    rng = np.random.default_rng(0)
    w: dict[str, np.ndarray] = {}
    for i in range(layers):
        w[f"w{i}"] = _rand(rng, width, width, scale=width ** -0.5)
        w[f"b{i}"] = _rand(rng, width, scale=0.1)

    def build(w: dict[str, np.ndarray]) -> wrc.Graph:
        g = wrc.Graph("chain")
        h = g.data("x", (1, width))
        for i in range(layers):
            h = g.relu(g.add(g.matmul(h, g.const(f"w{i}", w[f"w{i}"])), g.const(f"b{i}", w[f"b{i}"])))
        g.output(h)
        return g

    def to_onnx(w: dict[str, np.ndarray], as_inputs: bool) -> onnx.ModelProto:
        o = _Onnx(w, as_inputs)
        h = "x"
        for i in range(layers):
            h = o.op("Relu", o.op("Add", o.op("MatMul", h, f"w{i}"), f"b{i}"))
        return o.model({"x": np.zeros((1, width), np.float32)}, h)

    return Model(f"chain {2 * layers}w", {"x": _rand(rng, 1, width)}, w, build, to_onnx)


def encoder_ln_gelu(seq: int = 128, d: int = 256, heads: int = 4, ffn: int = 1024, seed: int = 0) -> Model:
    """Pre-LN encoder block as PyTorch exports it (ViT / BERT style): LayerNormalization,
    softmax attention, FFN with the exact (Erf) GELU written as Div / Erf / Add / Mul / Mul:
    h = x + attn(LN1(x)) Wo + bo;  y = h + gelu(LN2(h) W1 + b1) W2 + b2. The wrc graph is the
    ONNX model imported by `wrc.onnx` (ge has no LayerNorm / GELU op of its own)."""
    rng = np.random.default_rng(seed)
    dh = d // heads
    w: dict[str, np.ndarray] = {}
    for n in ("q", "k", "v", "o"):
        w[f"w{n}"] = _rand(rng, d, d, scale=d ** -0.5)
        w[f"b{n}"] = _rand(rng, d, scale=0.1)
    w["w1"], w["b1"] = _rand(rng, d, ffn, scale=d ** -0.5), _rand(rng, ffn, scale=0.1)
    w["w2"], w["b2"] = _rand(rng, ffn, d, scale=ffn ** -0.5), _rand(rng, d, scale=0.1)
    for i in (1, 2):
        w[f"ln{i}_g"], w[f"ln{i}_b"] = 1 + _rand(rng, d, scale=0.1), _rand(rng, d, scale=0.1)

    def to_onnx(w: dict[str, np.ndarray], as_inputs: bool) -> onnx.ModelProto:
        o = _Onnx(w, as_inputs)

        def lin(h: str, n: str) -> str:
            return o.op("Add", o.op("MatMul", h, f"w{n}"), f"b{n}")

        shape = o.const(np.array([seq, heads, dh], np.int64))

        def split(t: str, perm: list[int]) -> str:
            return o.op("Transpose", o.op("Reshape", t, shape), perm=perm)

        a = o.op("LayerNormalization", "x", "ln1_g", "ln1_b", axis=-1, epsilon=1e-5)
        q, kt, v = split(lin(a, "q"), [1, 0, 2]), split(lin(a, "k"), [1, 2, 0]), split(lin(a, "v"), [1, 0, 2])
        s = o.op("Mul", o.op("MatMul", q, kt), o.const(np.array(1 / np.sqrt(dh), np.float32)))
        a = o.op("MatMul", o.op("Softmax", s, axis=-1), v)
        a = o.op("Reshape", o.op("Transpose", a, perm=[1, 0, 2]), o.const(np.array([seq, d], np.int64)))
        h = o.op("Add", "x", lin(a, "o"))
        f = lin(o.op("LayerNormalization", h, "ln2_g", "ln2_b", axis=-1, epsilon=1e-5), "1")
        erf = o.op("Erf", o.op("Div", f, o.const(np.array(np.sqrt(2), np.float32))))
        f = o.op("Mul", o.op("Mul", f, o.op("Add", erf, o.const(np.array(1, np.float32)))),
                 o.const(np.array(0.5, np.float32)))
        return o.model({"x": np.zeros((seq, d), np.float32)}, o.op("Add", h, lin(f, "2")))

    def build(w: dict[str, np.ndarray]) -> wrc.Graph:
        from wrc.onnx import import_onnx

        return import_onnx(to_onnx(w, False))

    return Model(f"encoder LN+GELU s{seq}", {"x": _rand(rng, seq, d)}, w, build, to_onnx,
                 note="pre-LN, Erf GELU, imported from ONNX")


def vit_stack(layers: int = 12, seq: int = 197, d: int = 768, heads: int = 12, ffn: int = 3072,
              seed: int = 0) -> Model:
    """A ViT-B/16-sized stack (12 layers: 85 M weights, 340 MB) of encoder blocks built with
    `wrc.Graph`: attention as in `transformer`, FFN with the exact (erf) GELU, no LayerNorm.
    For first-call and memory measurements; no ONNX twin."""
    rng = np.random.default_rng(seed)
    dh = d // heads
    w: dict[str, np.ndarray] = {}
    for i in range(layers):
        for n in ("q", "k", "v", "o"):
            w[f"w{n}{i}"] = _rand(rng, d, d, scale=d ** -0.5)
            w[f"b{n}{i}"] = _rand(rng, d, scale=0.1)
        w[f"w1_{i}"], w[f"b1_{i}"] = _rand(rng, d, ffn, scale=d ** -0.5), _rand(rng, ffn, scale=0.1)
        w[f"w2_{i}"], w[f"b2_{i}"] = _rand(rng, ffn, d, scale=ffn ** -0.5), _rand(rng, d, scale=0.1)

    def build(w: dict[str, np.ndarray]) -> wrc.Graph:
        g = wrc.Graph("vit")
        h = g.data("x", (seq, d))
        scale = g.const("scale", np.float32(1 / np.sqrt(dh)), inline=True)
        half, one = g.const("half", np.float32(0.5), inline=True), g.const("one", np.float32(1), inline=True)
        root2 = g.const("root2", np.float32(np.sqrt(0.5)), inline=True)
        for i in range(layers):
            def lin(t: wrc.Tensor, n: str) -> wrc.Tensor:
                return g.add(g.matmul(t, g.const(f"w{n}", w[f"w{n}"])), g.const(f"b{n}", w[f"b{n}"]))

            def split(t: wrc.Tensor, perm: tuple[int, ...]) -> wrc.Tensor:
                return g.transpose(g.reshape(t, (seq, heads, dh)), perm)

            q, kt, v = split(lin(h, f"q{i}"), (1, 0, 2)), split(lin(h, f"k{i}"), (1, 2, 0)), split(lin(h, f"v{i}"), (1, 0, 2))
            a = g.matmul(g.softmax(g.mul(g.matmul(q, kt), scale), axis=-1), v)
            h = g.add(h, lin(g.reshape(g.transpose(a, (1, 0, 2)), (seq, d)), f"o{i}"))
            f = lin(h, f"1_{i}")
            f = g.mul(g.mul(f, half), g.add(g.erf(g.mul(f, root2)), one))
            h = g.add(h, lin(f, f"2_{i}"))
        g.output(h)
        return g

    def to_onnx(w: dict[str, np.ndarray], as_inputs: bool) -> onnx.ModelProto:
        raise NotImplementedError

    return Model(f"ViT-B stack {layers}L", {"x": _rand(rng, seq, d)}, w, build, to_onnx,
                 note="ViT-B/16 sizes, erf GELU, no LayerNorm", onnx_ok=False)
