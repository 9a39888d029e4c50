"""How a `linalg.generic` runs: one kernel per kind of work, chosen before any emission.

Each kernel is a value the plan holds and `emit.FuncEmitter` has one emitter for.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.linalg import ops as linalg

from wrc.backends.numpy_jit.access import Generic
from wrc.backends.numpy_jit.contract import gather_axis
from wrc.backends.numpy_jit.gemm import Gemm, plan_gemm


@dataclass(frozen=True)
class Elementwise:
    """An all-parallel body: a few ufunc calls over views, the last one writing with `out=`."""


@dataclass(frozen=True)
class Reduce:
    """`yield comb(out, expr)`: `expr` over the views, then `comb.reduce` over the reduction dims."""


@dataclass(frozen=True)
class Gather:
    """A lowered `ge.gather`: `np.take` of the rows along `axis`."""

    axis: int


Kernel = Elementwise | Reduce | Gemm | Gather


def choose_kernel(op: linalg.GenericOp, analysis: Generic | None) -> Kernel:
    """The kernel of `op`; `analysis` is its access analysis (None for a gather)."""
    axis = gather_axis(op)
    if axis is not None:
        return Gather(axis)
    assert analysis is not None
    if analysis.kind == "parallel":
        return Elementwise()
    if analysis.mac is not None:
        gemm = plan_gemm(analysis)
        if gemm is not None:  # else e.g. a dim summed in one operand only: multiply, then reduce
            return gemm
    return Reduce()

