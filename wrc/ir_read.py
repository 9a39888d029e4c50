"""Reads of xDSL IR that compiling and loading repeat for every op, made cheaper than xDSL's
own accessors (same results):

* `walk(op)`: the ops `op.walk()` yields, in its order (pre-order: an op, then the ops of its
  regions' blocks), as a list;
* `inputs(op)` / `outputs(op)`: a linalg structured op's (a generic's, a fill's) `inputs` and
  `outputs`;
* `clone(op)`: `op.clone()` (the same IR, name hints included) in one pass.

xDSL 0.74's `Operation.walk` yields each op through a chain of generators, one per op, region
and block it is nested in; on a 25,000-op module this takes half the time of a walk: the
planner, the bundle checks, the load analysis and the lowering passes walk such modules
several times each (docs/performance.md, "Issue 12: compile and cold load (session 6)").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Attribute, Block, BlockArgument, Operation, Region, SSAValue


def walk(op: Operation) -> list[Operation]:
    """`list(op.walk())`: `op` and every op nested in it, in pre-order."""
    out: list[Operation] = []
    append = out.append

    def visit(o: Operation) -> None:
        append(o)
        for region in o.regions:
            for block in region.blocks:
                child = block.first_op
                while child is not None:
                    visit(child)
                    child = child.next_op

    visit(op)
    return out


_SEGMENTS: dict[int, tuple[Attribute, tuple[int, ...]]] = {}  # id → (operand segment sizes, values)


def _segments(op: Operation) -> tuple[int, ...] | None:
    """The operand segment sizes of a linalg structured op, decoded once per attribute object
    (xDSL's `inputs` and `outputs` decode them at each read, ~4 µs; the JIT's planner reads
    them a dozen times per op). Kept while the attribute is, by id. None for an op sized
    otherwise (`linalg.transpose`: same-size variadic operands)."""
    attr = op.properties.get("operandSegmentSizes")
    if attr is None:
        return None
    known = _SEGMENTS.get(id(attr))
    if known is None or known[0] is not attr:
        if len(_SEGMENTS) >= 4096:
            _SEGMENTS.clear()
        known = _SEGMENTS[id(attr)] = (attr, tuple(attr.get_values()))  # type: ignore[attr-defined]
    return known[1]


def inputs(op: linalg.GenericOp | linalg.FillOp) -> Sequence[SSAValue]:
    """`op.inputs`."""
    sizes = _segments(op)
    return op.inputs if sizes is None else op._operands[:sizes[0]]


def outputs(op: linalg.GenericOp | linalg.FillOp) -> Sequence[SSAValue]:
    """`op.outputs`."""
    sizes = _segments(op)
    return op.outputs if sizes is None else op._operands[sizes[0]:sizes[0] + sizes[1]]


OpT = TypeVar("OpT", bound=Operation)


class _ForwardUse(Exception):
    """An operand defined later in the op being cloned (a graph region) or a successor."""


def clone(root: OpT) -> OpT:
    """`root.clone()`: xDSL 0.74 creates each op without operands and then walks the clone
    again to set them all (graph regions may use a value before its definition); here each
    op is created with its operands, a third less time on the functions that compiles
    clone. An operand defined inside `root` but not yet cloned, or a successor, falls back to
    xDSL's clone (what was made is unlinked from the values it used)."""
    mapper: dict[SSAValue, SSAValue] = {}
    made: list[Operation] = []

    def one(op: Operation) -> Operation:
        if op._successors:
            raise _ForwardUse
        operands = []
        for v in op._operands:
            new = mapper.get(v)
            if new is None:
                if root.is_ancestor(v.owner):
                    raise _ForwardUse
                new = v  # defined outside `root`: the clone uses it too
            operands.append(new)
        regions = []
        for region in op.regions:
            copy = Region()
            for block in region.blocks:
                b = Block()  # (its arguments made at once: `insert_arg` rebuilds the tuple per argument)
                b._args = tuple(BlockArgument(a.type, b, i, a.location) for i, a in enumerate(block._args))
                for a, new_arg in zip(block._args, b._args):
                    mapper[a] = new_arg
                    new_arg.name_hint = a.name_hint
                copy.add_block(b)
                for child in block.ops:
                    b.add_op(one(child))
            regions.append(copy)
        new_op = op.create(operands=operands, result_types=[r.type for r in op.results], properties=op.properties,
                           attributes=op.attributes, location=op.location, regions=regions)
        made.append(new_op)
        for r, new_r in zip(op.results, new_op.results):
            mapper[r] = new_r
            new_r.name_hint = r.name_hint
        return new_op

    try:
        return one(root)
    except _ForwardUse:
        for op in made:
            op.drop_all_references()
        return root.clone()
