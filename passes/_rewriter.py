"""`OnePassRewriter`: the `PatternRewriter` of the passes that visit each op once, in program
order (`ge-const-to-var`, `convert-ge-to-linalg`, `ge-bufferize`).

Their drivers register no listener and keep no worklist, so xDSL's bookkeeping around an op's
replacement and erasure (the list of modified users, the notifications, a placeholder value
made for each result of an erased op even when nothing uses it) is work without effect; on a
graph of thousands of ops it was a tenth of `ge-bufferize`. The IR edits, the name hints and
the errors are xDSL 0.74's (`PatternRewriter.replace` / `erase`).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter
from xdsl.rewriter import InsertPoint


class OnePassRewriter(PatternRewriter):
    """A `PatternRewriter` without listeners; `start(op)` readies it for the next matched op."""

    def start(self, op: Operation) -> None:
        """Reset for matching `op` (what xDSL's walker does before each op)."""
        self.has_done_action = False
        self._current_operation = op
        self.insertion_point = InsertPoint.before(op)
        self.name_hint = None

    def replace(self, op: Operation, new_ops: Operation | Sequence[Operation],
                new_results: Sequence[SSAValue | None] | None = None, safe_erase: bool = True) -> None:
        self.has_done_action = True
        if isinstance(new_ops, Operation):
            new_ops = (new_ops,)
        if new_ops:
            self.insert(new_ops, InsertPoint.before(op))
        if new_results is None:
            new_results = new_ops[-1].results if new_ops else []
        if len(op.results) != len(new_results):
            raise ValueError(f"Expected {len(op.results)} new results, but got {len(new_results)}")
        for old, new in zip(op.results, new_results):
            if new is None:
                old.erase(safe_erase=safe_erase)
                continue
            if new is not old:
                old.replace_all_uses_with(new)
            if not new.name_hint:
                new.name_hint = old.name_hint
        if len(new_results) == 1 and (only := new_results[0]) is not None and (hint := only.name_hint) is not None:
            for new_op in new_ops:
                for res in new_op.results:
                    if not res.name_hint:
                        res.name_hint = hint
        self.erase(op, safe_erase)

    def erase(self, op: Operation, safe_erase: bool = True) -> None:
        self.has_done_action = True
        if op.parent is not None:
            op.parent.detach_op(op)
        op.drop_all_references()
        for result in op.results:
            if result.first_use is not None:  # (xDSL's error, or its placeholder uses)
                result.erase(safe_erase=safe_erase)
