"""Generic bodies built once and copied (`wrc.passes._linalg_builders._BODIES`,
`wrc.ir_read.clone_body`): the lowered IR is the same as building every body anew."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from test_lowering import MODEL
from xdsl.dialects import arith
from xdsl.dialects.builtin import FloatAttr, ModuleOp, f32, i32
from xdsl.ir import Block, Region

from wrc.context import make_context
from wrc.graph import Graph
from wrc.ir_read import clone_body
from wrc.ir_text import parse_module
from wrc.onnx import import_onnx
from wrc.passes import _linalg_builders as B
from wrc.passes.convert_ge_to_linalg import ConvertGeToLinalgPass

MODELS = Path(__file__).parent / "models"


def _level2(module: ModuleOp) -> str:
    ConvertGeToLinalgPass().apply(make_context(), module)
    module.verify()
    return str(module)


def _graphs() -> list[tuple[str, str]]:
    out = [("MODEL", MODEL)]
    for name in ("mlp", "resnet", "bert"):
        model = onnx.load(MODELS / f"{name}.onnx")
        known = {x.name for x in model.graph.initializer}
        shapes = {i.name: tuple(d.dim_value or 1 for d in i.type.tensor_type.shape.dim)
                  for i in model.graph.input if i.name not in known}
        out.append((name, import_onnx(model, shapes).to_mlir()))
    return out


@pytest.mark.parametrize(("name", "text"), _graphs(), ids=lambda x: x if len(x) < 20 else "")
def test_copied_bodies_lower_to_the_same_ir(name: str, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    B._BODIES.clear()
    first = _level2(parse_module(make_context(), text))  # templates made here
    again = _level2(parse_module(make_context(), text))  # ... and copied here
    assert B._BODIES  # (some bodies were kept)
    monkeypatch.setattr(B, "_body_key", lambda body, arg_types: None)
    built = _level2(parse_module(make_context(), text))  # every body built by the implicit builder
    assert first == again == built


def test_what_a_body_captures_is_in_its_key() -> None:
    def body_of(c: object):  # noqa: ANN202
        return lambda a: [c]

    key = B._body_key
    assert key(body_of(0.0), [f32]) != key(body_of(-0.0), [f32])  # equal floats, two constants
    assert key(body_of(1), [f32]) != key(body_of(1.0), [f32]) != key(body_of(True), [f32])
    assert key(body_of(arith.AddfOp), [f32]) == key(body_of(arith.AddfOp), [f32])
    assert key(body_of(arith.AddfOp), [f32]) != key(body_of(arith.MulfOp), [f32])
    assert key(body_of(arith.AddfOp), [f32]) != key(body_of(arith.AddfOp), [i32])
    assert key(body_of(i32), [f32]) == key(body_of(i32), [f32])
    assert key(body_of(FloatAttr(1.0, f32)), [f32]) is None  # (float attributes: 0.0 == -0.0)
    assert key(body_of([1]), [f32]) is None  # a mutable value
    assert key(body_of(Graph("g")), [f32]) is None  # any other object
    assert key(lambda a, k=1: [a[0]], [f32]) is None  # a default


def test_clone_body_copies_a_self_contained_body_only() -> None:
    block = Block(arg_types=(f32, f32))
    add = arith.AddfOp(block.args[0], block.args[1])
    block.add_op(add)
    region = Region(block)
    copy = clone_body(region)
    assert copy is not None
    (made,) = copy.block.ops
    assert made is not add and made.name == "arith.addf" and made.result.type == f32
    assert [(v.owner, v.index) for v in made.operands] == [(copy.block, 0), (copy.block, 1)]
    outside = arith.ConstantOp(FloatAttr(2.0, f32))
    uses_outside = Block(arg_types=(f32,))
    uses_outside.add_op(arith.AddfOp(uses_outside.args[0], uses_outside.args[0]))
    uses_outside.add_op(arith.AddfOp(uses_outside.args[0], outside.result))
    assert clone_body(Region(uses_outside)) is None
    assert len(list(uses_outside.args[0].uses)) == 3  # what it began to copy holds no use
