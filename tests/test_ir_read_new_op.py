"""`wrc.ir_read.new_op` / `init_op`: the op `cls.create(...)` makes (same fields, defaults, uses,
regions' parent), and `Operation.create` itself where that is what the op needs (inside an
implicit builder, which inserts the new op; a class with its own `__post_init__`)."""

import pytest
from xdsl.builder import ImplicitBuilder
from xdsl.dialects import arith, memref, scf
from xdsl.dialects import test as test_dialect
from xdsl.dialects.builtin import (
    UNKNOWN_LOC,
    DenseArrayBase,
    FileLineColLoc,
    FloatAttr,
    IntAttr,
    MemRefType,
    StringAttr,
    SymbolRefAttr,
    UnitAttr,
    f32,
    i1,
    i32,
)
from xdsl.dialects.linalg.ops import YieldOp
from xdsl.ir import Block, Operation, Region

from wrc.ir_read import init_op, new_op, op_defaults


def _fields(op: Operation) -> tuple:
    return (type(op), tuple(op.operands), [r.type for r in op.results], [r.index for r in op.results],
            [r.op is op for r in op.results], op.properties, op.attributes, op.location,
            [(len(r.blocks), r.parent is op) for r in op.regions], tuple(op.successors), op.parent, op.next_op,
            op.prev_op)


def _same(made: Operation, created: Operation) -> None:
    a, b = _fields(made), _fields(created)
    assert a[0] is b[0] and a[1] == b[1] and a[2:] == b[2:] and str(made) == str(created)


T = MemRefType(f32, [2, 3])


def test_new_op_makes_what_create_makes():
    src = memref.AllocOp.create(result_types=(T,), properties={"operandSegmentSizes": DenseArrayBase.from_list(i32, (0, 0))})
    value = src.results[0]
    x = arith.ConstantOp(FloatAttr(1.0, f32)).result
    cases = [
        (memref.GetGlobalOp, dict(result_types=(T,), properties={"name": SymbolRefAttr("w")})),
        (memref.CopyOp, dict(operands=(value, value))),
        (memref.GlobalOp, dict(properties={"sym_name": StringAttr("w"), "type": T, "initial_value": UnitAttr(),
                                           "sym_visibility": StringAttr("private")}, attributes={"wrc.x": UnitAttr()})),
        (arith.AddfOp, dict(operands=(x, x), result_types=(f32,))),  # a default property: fastmath
        (test_dialect.TestOp, dict(operands=(value,), result_types=(i32, i1), attributes={"a": IntAttr(1)},
                                   location=FileLineColLoc(StringAttr("f"), IntAttr(1), IntAttr(2)))),
    ]
    for cls, kw in cases:
        made, created = new_op(cls, **kw), cls.create(**{"location": UNKNOWN_LOC, **kw})
        _same(made, created)
        if cls is arith.AddfOp:
            assert "fastmath" in made.properties  # IRDL's default, filled as `__post_init__` fills it
        if cls is not test_dialect.TestOp:
            made.verify()
    # every use is recorded, in the order xDSL records them (the latest first)
    uses = [(u.operation, u.index) for u in value.uses]
    assert len(uses) == 2 + 2 + 1 + 1 and uses == [(u.operation, u.index) for u in value.uses]
    first = value.first_use
    assert first is not None and first.operation.name == "test.op" and first._prev_use is None
    assert first._next_use._prev_use is first


def test_new_op_sets_the_regions_parent_and_refuses_an_attached_region():
    body = Block([new_op(scf.YieldOp)])
    cond = arith.ConstantOp.from_int_and_width(1, 1).result
    op = new_op(scf.IfOp, operands=(cond,), regions=(Region(body), Region()))
    assert op.regions[0].parent is op and op.regions[1].parent is op and body.parent_op() is op
    with pytest.raises(ValueError, match="already attached"):
        new_op(scf.IfOp, operands=(cond,), regions=(op.regions[0], Region()))
    _same(new_op(scf.IfOp, operands=(cond,), regions=(Region(), Region())),
          scf.IfOp.create(operands=(cond,), regions=(Region(), Region()), location=UNKNOWN_LOC))


def test_inside_an_implicit_builder_the_op_is_inserted_as_create_inserts_it():
    block = Block(arg_types=(f32, f32))
    with ImplicitBuilder(block):
        op = new_op(YieldOp, operands=(block.args[0],))
    assert list(block.ops) == [op]
    after = new_op(YieldOp, operands=(block.args[1],))  # outside it: not inserted
    assert after.parent is None and list(block.ops) == [op]


def test_a_class_with_its_own_post_init_goes_through_create():
    class Checked(test_dialect.TestOp):
        seen: list[Operation] = []

        def __post_init__(self):
            Checked.seen.append(self)
            super().__post_init__()

    assert op_defaults(Checked) is None and op_defaults(memref.CopyOp) == ((), ())
    op = new_op(Checked, result_types=(i32,))
    assert Checked.seen == [op] and op.results[0].type == i32


def test_init_op_sets_the_fields_of_an_op_being_constructed():
    op = memref.GetGlobalOp.__new__(memref.GetGlobalOp)
    init_op(op, result_types=(T,), properties={"name": SymbolRefAttr("w")})
    _same(op, memref.GetGlobalOp.create(result_types=(T,), properties={"name": SymbolRefAttr("w")},
                                        location=UNKNOWN_LOC))
