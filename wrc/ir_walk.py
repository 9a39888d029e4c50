"""`walk(op)`: the ops `op.walk()` yields, in its order (pre-order: an op, then the ops of its
regions' blocks), as a list.

xDSL 0.74's `Operation.walk` yields each op through a chain of generators, one per op, region
and block it is nested in; on a 25,000-op module this takes half the time of a walk: the
planner, the bundle checks, the load analysis and the lowering passes walk such modules
several times each (docs/performance.md, "Issue 12: compile and cold load (session 6)").
"""

from __future__ import annotations

from xdsl.ir import Operation


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
