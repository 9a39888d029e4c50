"""Reads of xDSL IR that compiling and loading repeat for every op, made cheaper than xDSL's
own accessors (same results):

* `walk(op)`: the ops `op.walk()` yields, in its order (pre-order: an op, then the ops of its
  regions' blocks), as a list;
* `inputs(op)` / `outputs(op)`: a linalg structured op's (a generic's, a fill's) `inputs` and
  `outputs`.

xDSL 0.74's `Operation.walk` yields each op through a chain of generators, one per op, region
and block it is nested in; on a 25,000-op module this takes half the time of a walk: the
planner, the bundle checks, the load analysis and the lowering passes walk such modules
several times each (docs/performance.md, "Issue 12: compile and cold load (session 6)").
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Attribute, Operation, SSAValue


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
