"""`wrc.ir_verify.verify`: xDSL's verification with each op signature's IRDL constraints checked
once. It must accept what `op.verify()` accepts, reject what it rejects with the same message,
and check the context of every op (traits, the op's own verifier) even when its signature was
seen before."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.dialects.linalg.ops import GenericOp
from xdsl.irdl import OpDef
from xdsl.utils.exceptions import VerifyException

import wrc
from tests.test_bundle_format import model
from wrc import ir_verify
from wrc.context import make_context
from wrc.ir_text import parse_module


def parse(text: str):
    return parse_module(make_context(), text)


def outcome(f, module) -> str:
    try:
        f(module)
    except (VerifyException, ValueError) as e:
        return f"{type(e).__name__}: {e}"
    return "ok"


def both(module) -> str:
    """The outcome of xDSL's verify, asserted equal to ir_verify's."""
    expected = outcome(lambda m: m.verify(), module)
    assert outcome(ir_verify.verify, module) == expected
    return expected


def count_definition_checks(monkeypatch, module) -> int:
    calls = []
    real = OpDef.verify
    monkeypatch.setattr(OpDef, "verify", lambda self, op: (calls.append(op), real(self, op))[1])
    ir_verify.verify(module)
    return len(calls)


def chain(layers: int) -> wrc.Graph:
    rng = np.random.default_rng(0)
    g = wrc.Graph("chain")
    h = g.data("x", (2, 4))
    for i in range(layers):
        h = g.relu(g.add(g.matmul(h, g.const(f"w{i}", rng.standard_normal((4, 4), np.float32))),
                         g.const(f"b{i}", rng.standard_normal(4, np.float32))))
    g.output(h)
    return g


def test_a_lowered_bundle_verifies_with_each_signature_checked_once(monkeypatch):
    module = wrc.compile_graph(chain(6)).module
    ops = list(module.walk())
    signatures = {ir_verify._signature(op) for op in ops}
    assert both(module) == "ok"
    assert count_definition_checks(monkeypatch, module) == len(signatures) < len(ops)


def test_a_seen_signature_still_checks_its_context():
    """The two returns have one signature (an f32 operand); only the second disagrees with
    its function's type, which func.return's own verifier reads from its parent."""
    module = parse("""
builtin.module {
  func.func @good() -> f32 {
    %0 = arith.constant 1.0 : f32
    func.return %0 : f32
  }
  func.func @bad() -> i32 {
    %0 = arith.constant 1.0 : f32
    func.return %0 : f32
  }
}""")
    assert "expected [i32], got [f32]" in both(module)


def test_a_seen_signature_still_checks_its_traits():
    """`func.return` must be in a `func.func` (a HasParent trait), whatever came before."""
    module = parse("""
builtin.module {
  func.func @g() {
    func.return
  }
  func.func @f() {
    "scf.execute_region"() ({
      func.return
    }) : () -> ()
    func.return
  }
}""")
    assert "expects parent op 'func.func'" in both(module)


@pytest.mark.parametrize("bad", [
    # an operand type the definition refuses (first and only use of the signature)
    '%0 = "arith.addf"(%a, %a) : (i32, i32) -> i32',
    # an attribute of the wrong type for its result
    '%0 = "arith.constant"() <{value = 1 : i64}> : () -> f32',
])
def test_definition_errors_are_the_same(bad):
    module = parse(f"""
builtin.module {{
  func.func @f(%a: i32) {{
    %c = arith.constant 1.0 : f32
    {bad}
    func.return
  }}
}}""")
    assert both(module) != "ok"


def test_loading_a_bundle_uses_it(monkeypatch, tmp_path):
    """The cold load verifies through ir_verify (and a hostile file still fails there), as a
    decoded module (binary IR: the decoder checked its structure)."""
    seen = []
    real = ir_verify.verify
    monkeypatch.setattr(ir_verify, "verify", lambda op, **kw: (seen.append(kw), real(op, **kw))[1])
    monkeypatch.setenv("WRC_CACHE_DIR", "off")
    path = tmp_path / "m.wrcb"
    wrc.bundle_format.write_bundle(path, model())
    wrc.bundle_format.read_bundle(path)
    assert seen == [{"decoded": True}]


GLOBAL = '"memref.global"() <{{sym_name = {name}, sym_visibility = "private", type = memref<2xf32>, initial_value}}> : () -> ()'


@pytest.mark.parametrize("second, fails", [
    ('"b"', None),  # another name: the signature holds only the name's class, and it verifies
    ('"a"', 'Redefinition of symbol "a"'),  # the module's symbol table (a trait) still sees it
    ("3 : i64", "should be a string"),  # a value of another class: a new signature, checked
])
def test_names_enter_signatures_as_their_class(second, fails):
    first = GLOBAL.format(name='"a"')
    module = parse(f"builtin.module {{\n{first}\n{GLOBAL.format(name=second)}\n}}")
    result = both(module)
    assert result == "ok" if fails is None else fails in result


GENERIC = """linalg.generic {{indexing_maps = [affine_map<(d0) -> ({map})>, affine_map<(d0) -> (d0)>],
      iterator_types = ["parallel"]}} ins(%a : memref<4xf32>) outs({out}) {{
    ^bb0(%x: {arg}, %y: f32):
      linalg.yield %y : f32
    }}"""


@pytest.mark.parametrize("second, fails", [
    (dict(map="d0", out="%b : memref<4xf32>", arg="f32"), None),  # the same signature again
    (dict(map="d0", out="%c : memref<3xf32>", arg="f32"), "inferred input/output operand #1"),
    (dict(map="d0 + 1", out="%b : memref<4xf32>", arg="f32"), "inferred input/output operand #0"),
    (dict(map="d0", out="%b : memref<4xf32>", arg="i32"), "expected type of bb argument #0"),
])
def test_a_generic_verifier_runs_once_per_signature(second, fails, monkeypatch):
    """A `linalg.generic`'s own verifier reads only its signature: it runs for the first op of
    each signature only, and a generic that differs from a seen one is checked as xDSL
    checks it, with xDSL's message."""
    first = GENERIC.format(map="d0", out="%b : memref<4xf32>", arg="f32")
    module = parse(f"""
builtin.module {{
  func.func @f(%a: memref<4xf32>, %b: memref<4xf32>, %c: memref<3xf32>) {{
    {first}
    {GENERIC.format(**second)}
    func.return
  }}
}}""")
    result = both(module)
    assert result == "ok" if fails is None else fails in result
    original = ir_verify._irdl_parts
    op_def, own = original(GenericOp)
    calls = []

    def counted(op):
        calls.append(op)
        own(op)

    monkeypatch.setattr(ir_verify, "_irdl_parts", lambda cls: (op_def, counted) if cls is GenericOp else original(cls))
    monkeypatch.setattr(ir_verify, "_SIGNATURE_ONLY_VERIFIERS", frozenset({(GenericOp, counted)}))
    assert outcome(ir_verify.verify, module) == result
    assert calls == []  # a seen signature skips it (a new one runs it inside op.verify_())
    monkeypatch.setattr(ir_verify, "_SIGNATURE_ONLY_VERIFIERS", frozenset())
    assert outcome(ir_verify.verify, module) == result
    assert len(calls) == (1 if fails is None else 0)  # without the skip, the seen one ran it


TRANSPOSES = """
builtin.module {{
  func.func @f() -> (tensor<4x3x2xf32>, tensor<4x3x2xf32>) {{
    %x = ge.data "x" index 0 : tensor<2x3x4xf32>
    %a = ge.transpose %x {{perm = array<i64: 2, 1, 0>}} : tensor<2x3x4xf32> -> tensor<4x3x2xf32>
    %b = ge.transpose %x {{perm = array<i64: {perm}>}} : tensor<2x3x4xf32> -> tensor<4x3x2xf32>
    func.return %a, %b : tensor<4x3x2xf32>, tensor<4x3x2xf32>
  }}
}}"""


@pytest.mark.parametrize("perm, fails", [("2, 1, 0", None), ("0, 1, 2", "does not match the inferred shape")])
def test_a_ge_shape_rule_runs_once_per_signature_of_property_values(perm, fails, monkeypatch):
    """A ge compute op's shape rule reads only its operand and result types and its properties:
    it runs once per signature, whose properties are values (a transpose's `perm` is checked
    by class by IRDL, but the rule reads it), so a second transpose with another perm is
    checked, with xDSL's message."""
    from wrc.dialects.ge import ComputeOp, TransposeOp

    module = parse(TRANSPOSES.format(perm=perm))
    result = both(module)
    assert result == "ok" if fails is None else fails in result
    calls = []
    real = TransposeOp.infer_result
    monkeypatch.setattr(TransposeOp, "infer_result", lambda op: (calls.append(op), real(op))[1])
    assert outcome(ir_verify.verify, module) == result
    assert len(calls) == (1 if fails is None else 2)
    assert ir_verify._signature_only(TransposeOp, ComputeOp.verify_)


DATA = '%{v} = "ge.data"() <{{name = "{v}", index = {index}}}> : () -> tensor<2xf32>'


@pytest.mark.parametrize("second, fails", [
    ("1 : i64", None),  # another index: the same signature (the class and the i64), and it verifies
    ("-1 : i64", "the input index must be non-negative"),  # ge.data's own verifier still runs
    ("1 : i32", "Expected attribute i64 but got i32"),  # another integer type: a new signature, checked
    ('"one"', "should be of base attribute integer"),  # another class: a new signature, checked
])
def test_values_checked_by_their_parameters_enter_signatures_as_those(second, fails, monkeypatch):
    module = parse(f"""
builtin.module {{
  func.func @f() {{
    {DATA.format(v="x", index="0 : i64")}
    {DATA.format(v="y", index=second)}
    func.return
  }}
}}""")
    result = both(module)
    assert result == "ok" if fails is None else fails in result
    if fails is None:  # (the module, the function, its return and one for both ge.data)
        assert count_definition_checks(monkeypatch, module) == 4
