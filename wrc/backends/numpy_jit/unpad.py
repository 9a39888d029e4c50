"""Padded copies read in place: the lowering pads an image for a convolution or a pool by
filling a new buffer `P` with a constant and copying the image `S` into a box of it
(`P[..., t + h, l + w] = S[..., h, w]`). Where every reader of `P` is a compiled window
kernel (`kernels.NativeWindow`, or the im2col of `kernels.PackedGemm`) for which the fill is its combiner's identity (0 for a sum,
-inf for a max), the kernel reads `S` itself, a tap outside it reading the fill
(`kernels.PaddedImage`): `P`'s alloc, fill, copy and reshapes are dropped, and the memory
plan keeps `S`'s array alive until the last reader (its span is extended; nothing may write
it in between). The padding is then only along `P`'s last two dims (rows and columns).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, replace

from xdsl.dialects import memref
from xdsl.dialects.builtin import MemRefType
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Operation, SSAValue

from wrc.backends.numpy_jit.access import Access, Generic
from wrc.backends.numpy_jit.forward import copy_layout, copy_readers, untouched
from wrc.backends.numpy_jit.ir import c_strides, const_value, root
from wrc.backends.numpy_jit.kernels import NativeWindow, PackedGemm, PaddedImage

_Reshape = memref.CollapseShapeOp | memref.ExpandShapeOp

FILLS = {"conv": 0.0, "sum": 0.0, "max": -math.inf}
"""The padding each kind of `NativeWindow` (and `PackedGemm`: "conv") reads as nothing (its
combiner's identity)."""


@dataclass(frozen=True)
class Unpadded:
    """What was decided: ops that need no code, the readers' kernels (with their `pad`), and
    the top-level index of the last read of each source alloc (its array must live that
    long)."""

    elided: frozenset[Operation]
    kernels: Mapping[linalg.GenericOp, NativeWindow | PackedGemm]
    last_read: Mapping[SSAValue, int]


def unpad_windows(top: Sequence[Operation], analysis: Callable[[linalg.GenericOp], Generic],
                  kernel_of: Callable[[linalg.GenericOp, Generic], NativeWindow | PackedGemm | None],
                  span: Mapping[SSAValue, tuple[int, int, Operation]],
                  keep: Set[Operation | SSAValue] = frozenset()) -> Unpadded:
    """Plan which padded copies of the function's top level their window-kernel readers
    make useless (see the module's docstring); `kernel_of`: a generic's `NativeWindow` (or
    `PackedGemm`), if it gets one. Ops and buffers in `keep` are left alone."""
    index = {op: i for i, op in enumerate(top)}
    elided: set[Operation] = set()
    kernels: dict[linalg.GenericOp, NativeWindow | PackedGemm] = {}
    last_read: dict[SSAValue, int] = {}
    for i, op in enumerate(top):
        if not isinstance(op, linalg.GenericOp) or op.library_call is not None or op in keep:
            continue
        g = analysis(op)
        box = _pad_box(g)
        padded = op.outputs[0]
        if box is None or not isinstance(padded.owner, memref.AllocOp) or padded not in span or padded in keep:
            continue
        src = g.accesses[0].value
        if src in keep or not isinstance(src.type, MemRefType) or src.owner in elided:
            continue
        users = copy_readers(op, padded, index, fill=True)
        if users is None:
            continue
        fill, reshapes, readers = users
        found: dict[linalg.GenericOp, NativeWindow | PackedGemm] = {}
        for reader, operands in readers.items():
            r = analysis(reader)
            k = kernel_of(reader, r)
            if k is None or operands != [k.x] or const_value(fill.inputs[0]) != FILLS[k.op]:
                break
            pad = _through_pad(r.accesses[k.x], r.extents, box, src)
            if pad is None:
                break
            found[reader] = replace(k, pad=pad)
        else:
            last = max(index[r] for r in readers)
            if not untouched(top[i + 1:last + 1], root(src)):
                continue
            kernels.update(found)
            elided |= {op, fill, padded.owner, *reshapes}
            if isinstance(src.owner, memref.AllocOp) and src in span:
                last_read[src] = max(last, last_read.get(src, span[src][1]))
    return Unpadded(frozenset(elided), kernels, last_read)


@dataclass(frozen=True)
class _Box:
    """A pad copy: the padded buffer's shape, and where the image's first element lies in
    its last two dims."""

    shape: tuple[int, ...]  # the padded buffer's
    image: tuple[int, int]  # the image's rows and columns
    top: int
    left: int


def _pad_box(g: Generic) -> _Box | None:
    """`g` as a pad copy: the whole of a C-contiguous image copied, dim for dim, into a box
    of a C-contiguous buffer of the same shape but for its last two dims; else None."""
    if copy_layout(g) is not None or g.kind != "parallel" or g.n_in != 1 or len(g.op.outputs) != 1:
        return None  # (a dense copy: no padding)
    block = g.op.body.block
    yielded = block.last_op.operands if block.last_op is not None else ()
    src, out = g.accesses[0], g.out
    if len(list(block.ops)) != 1 or list(yielded) != [block.args[0]] or src.dtype != out.dtype \
            or src.shape is None or out.shape is None:
        return None
    n = len(src.shape)
    if n < 2 or len(out.shape) != n or len(g.extents) != n or tuple(g.extents) != src.shape \
            or src.offset != 0 or src.shape[:-2] != out.shape[:-2]:
        return None
    for k, (a, b) in enumerate(zip(c_strides(src.shape), c_strides(out.shape), strict=True)):
        if g.extents[k] > 1 and (src.strides[k], out.strides[k]) != (a, b):
            return None
    rows, cols = src.shape[-2:]
    top, left = divmod(out.offset, out.shape[-1])
    if not (0 <= top and top + rows <= out.shape[-2] and left + cols <= out.shape[-1]):
        return None
    return _Box(out.shape, (rows, cols), top, left)


def _through_pad(acc: Access, extents: Sequence[int], box: _Box, src: SSAValue) -> PaddedImage | None:
    """A reader's access into the padded buffer (or a reshape of it: same flat order) as
    planes, rows and columns of the image; None when a loop dim carries from columns into
    rows or rows into planes, or steps backwards."""
    hp, wp = box.shape[-2:]
    planes = math.prod(box.shape[:-2])
    rows, cols = box.image

    def digits(v: int) -> tuple[int, int, int]:
        a, rest = divmod(v, hp * wp)
        return (a, *divmod(rest, wp))

    reach = list(digits(acc.offset))
    plane_steps, rsteps, csteps = [], [], []
    for s, e in zip(acc.strides, extents, strict=True):
        if e <= 1 or s == 0:
            plane_steps.append(0), rsteps.append(0), csteps.append(0)
            continue
        if s < 0:
            return None
        d = digits(s)
        reach = [r + (e - 1) * x for r, x in zip(reach, d, strict=True)]
        plane_steps.append(d[0] * rows * cols), rsteps.append(d[1]), csteps.append(d[2])
    if reach[0] >= planes or reach[1] >= hp or reach[2] >= wp:
        return None
    a0, b0, c0 = digits(acc.offset)
    return PaddedImage(src, rows, cols, a0 * rows * cols, tuple(plane_steps), b0 - box.top, c0 - box.left,
                       tuple(rsteps), tuple(csteps))
