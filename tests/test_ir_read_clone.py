"""`wrc.ir_read.clone`: the IR `op.clone()` makes (printed the same, name hints included),
sharing no value with the original, which it leaves as it was."""

import numpy as np
from xdsl.dialects import test as test_dialect
from xdsl.dialects.builtin import ModuleOp, i32
from xdsl.ir import Block, Region

import wrc
from wrc.ir_read import clone, walk


def _uses(op):
    return [len(list(r.uses)) for o in walk(op) for r in o.results]


def _built():
    g = wrc.Graph("g")
    x = g.data("x", (2, 3))
    w = g.const("w", np.arange(12, dtype=np.float32).reshape(3, 4))
    g.output(g.relu(g.add(g.matmul(x, w), g.const("b", np.ones(4, np.float32)))))
    with wrc.BuildSession():
        gs = wrc.convert_to_weight_refreshable_graphs(g, ["w", "b"])
        model = wrc.bundle_build_model([gs.infer_graph, gs.var_init_graph, gs.var_update_graph])
    return g.module, model.module


def test_clone_equals_xdsl_clone_and_shares_no_value():
    for module in _built():  # level 1 (ge) and level 3 (linalg on memrefs, nested bodies)
        before, uses = str(module), _uses(module)
        copy = clone(module)
        assert str(copy) == str(module.clone()) == before
        copy.verify()
        assert str(module) == before and _uses(module) == uses
        originals = {id(v) for o in walk(module) for v in (*o.results, *(a for r in o.regions for b in r.blocks
                                                                         for a in b.args))}
        assert not any(id(v) in originals for o in walk(copy) for v in o.operands)


def test_an_operand_defined_outside_stays_shared():
    outer = test_dialect.TestOp(result_types=[i32])
    inner = test_dialect.TestOp(operands=[outer.results[0]], result_types=[i32])
    copy = clone(inner)
    assert copy.operands[0] is outer.results[0] and len(list(outer.results[0].uses)) == 2


def test_a_use_before_its_definition_falls_back_to_xdsl_clone():
    later = test_dialect.TestOp(result_types=[i32])
    user = test_dialect.TestOp(operands=[later.results[0]], result_types=[i32])
    outer = test_dialect.TestOp(result_types=[i32])
    first = test_dialect.TestOp(operands=[outer.results[0]])
    module = ModuleOp(Region(Block([first, user, later])))  # a graph region: `later` defined after its use
    copy = clone(module)
    # what the one-pass attempt made before it met the use is unlinked from `outer`: its uses
    # are the original's and the (xDSL) clone's
    assert len(list(outer.results[0].uses)) == 2 and len(list(later.results[0].uses)) == 1
    assert str(copy) == str(module.clone())
    ops = list(copy.body.block.ops)
    assert ops[1].operands[0] is ops[2].results[0]
