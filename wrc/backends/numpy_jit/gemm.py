"""GEMM planning: a multiply-accumulate generic as one batched `np.matmul` over views.

Loop dims are grouped as batch / M / N / K; the orientation and the order of the dims in
each group are chosen so that the fewest operands need a copy before BLAS takes them.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from wrc.backends.numpy_jit.access import Generic


def merge(dims: Sequence[int], strides: Sequence[int], ext: Sequence[int]) -> tuple[int, int] | None:
    """(extent, stride) of the loop dims `dims` (outer first) seen as one dim, if possible."""
    if not dims:
        return 1, 0
    for a, b in itertools.pairwise(dims):
        if strides[a] != strides[b] * ext[b]:
            return None
    return math.prod(ext[k] for k in dims), strides[dims[-1]]


def matrix(groups: Sequence[Sequence[int]], strides: Sequence[int],
           ext: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The operand as a [batch,] rows x cols matrix view that BLAS takes without a copy."""
    merged = [merge(g, strides, ext) for g in groups]
    if any(m is None for m in merged):
        return None
    shape = [m[0] for m in merged if m is not None]
    st = [m[1] for m in merged if m is not None]
    (p, q), (sp, sq) = shape[-2:], st[-2:]
    # An extent-1 dim may take any stride: pick the one that keeps the matrix BLAS-able.
    if p == 1:
        sp = q if sq == 1 else 1
    if q == 1:
        sq = p if sp == 1 else 1
    st[-2:] = [sp, sq]
    if not ((sq == 1 and sp >= q) or (sp == 1 and sq >= p)) or any(s < 0 for s in st):
        return None
    return tuple(shape), tuple(st)


@dataclass(frozen=True)
class Gemm:
    """out[batch, M, N] (+)= a[batch, M, K] @ b[batch, K, N], each group in a fixed dim order.

    `a` is input `x` of the multiply and `b` is input `y` (`x`, `y`: operand indices of the
    generic); the planner may swap them (out^T = y^T @ x^T): which one is the row side
    decides the layout of the copies BLAS may need.
    """

    x: int
    y: int
    batch: tuple[int, ...]
    m: tuple[int, ...]
    n: tuple[int, ...]
    k: tuple[int, ...]
    cost: float


def copy_cost(strides: Sequence[int], groups: Sequence[Sequence[int]], ext: Sequence[int]) -> float:
    """0 if the operand (its `strides`) is a BLAS-able [batch,] matrix view as it is, else a
    copy estimate.

    NumPy copies strided views fast only when the innermost run is long, so short
    innermost dims (a 3-wide kernel row of an im2col) are charged extra.
    """
    if matrix(groups, strides, ext) is not None:
        return 0.0
    dims = [d for g in groups for d in g]
    inner = dims[-1]
    return math.prod(ext[d] for d in dims) * (1 + 16 / ext[inner]) * (1 if abs(strides[inner]) == 1 else 1.5)


def column_major(strides: Sequence[int], groups: Sequence[Sequence[int]], ext: Sequence[int]) -> float:
    """0.5 (less than any copy) when the output is a matrix view with columns of stride 1:
    of two orientations that copy nothing, the one writing rows is taken. Its operands are
    then mostly the buffers reshaped (a 1x1 convolution: [F, C] @ [C, H*W] into [F, H*W]),
    views the generated code makes once, where the other needs strided ones every call."""
    mat = matrix(groups, strides, ext)
    return 0.5 if mat is not None and mat[1][-1] != 1 else 0.0


def plan_gemm(g: Generic) -> Gemm | None:
    """Group loop dims as batch/M/N/K, pick the orientation and dim orders that copy least;
    None when the multiply-accumulate is not a GEMM (a dim summed in one operand only)."""
    assert g.mac is not None
    x, y = g.mac
    return _plan_gemm(g.mac, g.extents, g.accesses[x].strides, g.accesses[y].strides, g.out.strides)


@functools.lru_cache(maxsize=4096)
def _plan_gemm(mac: tuple[int, int], ext: tuple[int, ...], x_strides: tuple[int, ...],
               y_strides: tuple[int, ...], out_strides: tuple[int, ...]) -> Gemm | None:
    """`plan_gemm` from all it reads (a model repeats few GEMM shapes: planned once each)."""
    strides = {mac[0]: x_strides, mac[1]: y_strides}

    def order(ds: list[int], acc: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(ds, key=lambda d: -abs(acc[d])))

    oa = out_strides
    best: Gemm | None = None
    for swap in (False, True):
        xi, yi = mac[::-1] if swap else mac
        a, b = strides[xi], strides[yi]
        groups: dict[tuple[bool, bool, bool], list[int]] = {}
        for d in range(len(ext)):
            if ext[d] > 1:
                groups.setdefault((a[d] != 0, b[d] != 0, oa[d] != 0), []).append(d)
        batch, m = groups.pop((True, True, True), []), groups.pop((True, False, True), [])
        n, k = groups.pop((False, True, True), []), groups.pop((True, True, False), [])
        if groups or not k:
            return None  # a dim summed in only one operand, or no contraction: not a GEMM
        # A row or column dim may also go to the batch, the other operand broadcast along it
        # (stride 0): a convolution's image dim then writes its output in place, one GEMM
        # per image, instead of a [F, N*OH*OW] result transposed into [N, F, OH, OW].
        for extra in [None, *m, *n]:
            if best is not None and best.cost == 0:
                return best  # no copy at all: nothing to improve
            bb = batch + ([] if extra is None else [extra])
            mm, nn = [d for d in m if d != extra], [d for d in n if d != extra]
            for ob, om, on, ok in itertools.product((oa, a), (oa, a), (oa, b), (a, b)):
                b_, m_, n_, k_ = order(bb, ob), order(mm, om), order(nn, on), order(k, ok)
                grp = [b_] if b_ else []
                cost = (copy_cost(a, [*grp, m_, k_], ext) + copy_cost(b, [*grp, k_, n_], ext)
                        + copy_cost(oa, [*grp, m_, n_], ext) + column_major(oa, [*grp, m_, n_], ext))
                if best is None or cost < best.cost:
                    best = Gemm(xi, yi, b_, m_, n_, k_, cost)
    return best
