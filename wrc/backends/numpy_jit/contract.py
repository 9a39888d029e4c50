"""What the JIT reads of the bundle contract (argument attributes, library calls): the only
module of the package that knows where those names are defined."""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr
from xdsl.dialects.linalg import ops as linalg

from wrc.abi import GATHER_AXIS, GATHER_CALL, arguments
from wrc.backends.numpy_jit.ir import fail


def optional_flags(fn: func.FuncOp) -> dict[int, int]:
    """Argument index → index of its i1 flag, for each optional update input (read only
    when its flag, the next argument, is set)."""
    return {i: role.flag for i, role in enumerate(arguments(fn)) if role.flag is not None}


def gather_axis(op: linalg.GenericOp) -> int | None:
    """The axis of a lowered `ge.gather` (`library_call = GATHER_CALL`), None for a plain
    generic; a `LoweringError` for another library call or a malformed gather."""
    if op.library_call is None:
        return None
    if op.library_call.data != GATHER_CALL:
        raise fail(op, f"library_call {op.library_call.data!r} is not supported (only {GATHER_CALL!r})")
    axis = op.attributes.get(GATHER_AXIS)
    if len(op.inputs) != 2 or len(op.outputs) != 1 or not isinstance(axis, IntegerAttr):
        raise fail(op, f"{GATHER_CALL} takes data and indices, one output and an integer {GATHER_AXIS}")
    return axis.value.data
