"""What the weight passes (`ge-fold-weight-scales`, `ge-hoist-weight-only`) and the lowering
ask of a `ge` graph: predicates of the passes, not rules of the dialect.

* `WeightOnly`: which values are *weight-only* (computed from `ge.read_variable` and
  `ge.const` alone) and from which variables;
* `writes_variables`: whether a function assigns variables (the init and update graphs);
* `is_matmul_transpose`: a transpose the matmul lowering reads for free.
"""

from __future__ import annotations

from xdsl.dialects.func import FuncOp
from xdsl.ir import Operation, SSAValue

from wrc.dialects import ge
from wrc.ir_read import walk


class WeightOnly:
    """Memoized per pass run: the variables each weight-only value is computed from (empty
    for constants alone), `None` for a value that depends on an input. A value a rewrite
    creates is analysed when first asked about."""

    def __init__(self) -> None:
        self._sources: dict[SSAValue, frozenset[str] | None] = {}

    def sources(self, value: SSAValue) -> frozenset[str] | None:
        known = self._sources
        # Iterative (graphs are deep): settle operands first, then the op.
        stack = [value]
        while stack:
            v = stack[-1]
            if v in known:
                stack.pop()
                continue
            owner = v.owner
            if isinstance(owner, ge.ReadVariableOp):
                known[v] = frozenset((owner.variable.string_value(),))
            elif isinstance(owner, ge.ConstOp):
                known[v] = frozenset()
            elif not isinstance(owner, ge.ComputeOp) or not owner.operands:
                known[v] = None
            else:
                pending = [o for o in owner.operands if o not in known]
                if pending:
                    stack.extend(pending)
                    continue
                deps = [known[o] for o in owner.operands]
                known[v] = None if None in deps else frozenset().union(*deps)
            stack.pop()
        return known[value]

    def is_weight(self, value: SSAValue) -> bool:
        return self.sources(value) is not None

    def is_weight_only(self, op: Operation) -> bool:
        """A compute op whose every result is weight-only."""
        return isinstance(op, ge.ComputeOp) and all(self.is_weight(r) for r in op.results)


def writes_variables(fn: FuncOp) -> bool:
    return any(isinstance(op, ge.AssignOp | ge.AssignIfNonEmptyOp) for op in walk(fn))


def is_matmul_transpose(op: Operation) -> bool:
    """A `ge.transpose` of the last two dims whose every use is a `ge.matmul` operand.

    It costs nothing: `convert-ge-to-linalg` folds it into the matmuls' indexing maps (BLAS
    reads the operand transposed, no copy), so `ge-hoist-weight-only` leaves it in place.
    """
    if not isinstance(op, ge.TransposeOp):
        return False
    perm = tuple(op.perm.get_values())
    rank = len(perm)
    return (rank >= 2 and perm == (*range(rank - 2), rank - 1, rank - 2)
            and all(isinstance(u.operation, ge.MatMulOp) for u in op.output.uses))
