"""Copies read through views: a copy generic (attention's head transposes) whose result only
GEMMs and elementwise generics read is not made; they read its source through strided views
instead (an elementwise reader then does the copy's transposition itself).

A copy `U[p] = S[q(p)]` (one input, the body yields it, a dense permutation of its loop
points onto `U`) moves elements without changing them, so an access of a reader into `U`
(a stride per loop dim over `U`'s elements, or those of a reshape of `U`: same flat order)
is an access into `S`'s memory when it maps to `U`'s loop points without carries from one
copy dim into the next. The copy, `U`'s alloc and reshapes are then dropped; the memory plan
keeps `S`'s array alive until the last reader (its span is extended), and nothing may write
it in between.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, replace

from xdsl.dialects import memref
from xdsl.dialects.builtin import MemRefType
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Operation, SSAValue

from wrc.backends.numpy_jit.access import Access, Generic
from wrc.backends.numpy_jit.ir import buffer, root
from wrc.ir_read import inputs, outputs, walk

_Reshape = memref.CollapseShapeOp | memref.ExpandShapeOp


@dataclass(frozen=True)
class Forwarded:
    """What forwarding decided: ops that need no code, readers' new analyses, and the top-level
    index of the last read of each source alloc (its array must live that long)."""

    elided: frozenset[Operation]
    analyses: Mapping[linalg.GenericOp, Generic]
    last_read: Mapping[SSAValue, int]


def through_copy(strides: Sequence[int], offset: int, extents: Sequence[int],
                 dense: Sequence[tuple[int, int, int]], base: int) -> tuple[tuple[int, ...], int] | None:
    """An access (`strides` per reader loop dim of `extents`, `offset`, over the copy's output
    elements) as an access of the copy's source; `dense`: (output stride, extent, source
    stride) of each copy dim, outermost first, a dense layout of the output; `base`: the
    source offset of the copy's first point. None when a reader dim carries over copy dims."""

    def digits(v: int) -> list[int] | None:
        out = []
        for s, e, _ in dense:
            d, v = divmod(v, s)
            if d >= e:
                return None
            out.append(d)
        return out

    off = digits(offset)
    if off is None or any(s < 0 for s in strides):
        return None
    reach = list(off)
    new_strides = []
    for s, e in zip(strides, extents, strict=True):
        ds = digits(s) if e > 1 else [0] * len(dense)
        if ds is None:
            return None
        reach = [r + (e - 1) * d for r, d in zip(reach, ds, strict=True)]
        new_strides.append(sum(d * t for d, (_, _, t) in zip(ds, dense, strict=True)))
    if any(r >= e for r, (_, e, _) in zip(reach, dense, strict=True)):
        return None
    return tuple(new_strides), base + sum(d * t for d, (_, _, t) in zip(off, dense, strict=True))


def copy_layout(g: Generic) -> list[tuple[int, int, int]] | None:
    """`through_copy`'s `dense` for a copy generic `g`: its output written densely, once per
    loop point, in some order of the loop dims; None if `g` is not such a copy."""
    block = g.op.body.block
    yielded = block.last_op.operands if block.last_op is not None else ()
    if (g.kind != "parallel" or g.n_in != 1 or len(outputs(g.op)) != 1 or len(list(block.ops)) != 1
            or list(yielded) != [block.args[0]] or g.accesses[0].dtype != g.out.dtype
            or g.accesses[0].shape is None or g.out.offset != 0):
        return None
    src, out = g.accesses[0], g.out
    dims = sorted((k for k in range(len(g.extents)) if g.extents[k] > 1), key=lambda k: -out.strides[k])
    dense = [(out.strides[k], g.extents[k], src.strides[k]) for k in dims]
    need = 1
    for s, e, t in reversed(dense):
        if s != need or t < 0:
            return None
        need *= e
    assert out.shape is not None
    return dense if need == _size(out.shape) else None


def _size(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _base(v: SSAValue) -> SSAValue:
    """The value whose array `v` reshapes (an alloc, a global, an argument)."""
    while isinstance(v.owner, _Reshape):
        v = v.owner.src
    return v


def forward_copies(top: Sequence[Operation], analysis: Callable[[linalg.GenericOp], Generic],
                   span: Mapping[SSAValue, tuple[int, int, Operation]],
                   keep: Set[Operation | SSAValue] = frozenset()) -> Forwarded:
    """Plan which copy generics of the function's top level the GEMMs and elementwise
    generics reading them make useless (see the module's docstring). Ops and buffers in
    `keep` (the memory plan's copies made views, `_Planner.find_parts`) are left alone:
    neither forwarded, nor read through, nor made to read through a view."""
    index = {op: i for i, op in enumerate(top)}
    elided: set[Operation] = set()
    analyses: dict[linalg.GenericOp, Generic] = {}
    last_read: dict[SSAValue, int] = {}
    for i, op in enumerate(top):
        if not isinstance(op, linalg.GenericOp) or op.library_call is not None:
            continue
        g = analyses.get(op) or analysis(op)
        dense = copy_layout(g)
        out = outputs(op)[0]
        if dense is None or not isinstance(out.owner, memref.AllocOp) or out not in span or op in keep or out in keep:
            continue
        # (the source as the copy reads it: through an earlier copy's source, if forwarded)
        src = g.accesses[0].value if op in analyses else _base(inputs(op)[0])
        if src.owner in elided or not isinstance(src.type, MemRefType) or src in keep:
            continue
        plan = copy_readers(op, out, index)
        if plan is None:
            continue
        _, reshapes, readers = plan
        new: dict[linalg.GenericOp, Generic] = {}
        for reader, operands in readers.items():
            r = new.get(reader) or analyses.get(reader) or analysis(reader)
            if reader in keep or (r.kind != "parallel" and (r.mac is None or r.windowed)):
                break
            accs = list(r.accesses)
            for j in operands:
                moved = through_copy(accs[j].strides, accs[j].offset, r.extents, dense, g.accesses[0].offset)
                if moved is None:
                    break
                accs[j] = Access(src, buffer(op, src.type)[0], accs[j].dtype, *moved)
            else:
                new[reader] = replace(r, accesses=tuple(accs))
                continue
            break
        else:
            last = max(index[r] for r in readers)
            if not untouched(top[i + 1:last + 1], root(src)):
                continue
            analyses.update(new)
            elided |= {op, out.owner, *reshapes}
            if isinstance(src.owner, memref.AllocOp) and src in span:
                last_read[src] = max(last, last_read.get(src, span[src][1]))
    for op in reversed(top):  # the reshapes only elided copies read (last first: chains)
        if isinstance(op, _Reshape) and op.result.uses and all(u.operation in elided for u in op.result.uses):
            elided.add(op)
    return Forwarded(frozenset(elided), analyses, last_read)


def copy_readers(copy: linalg.GenericOp, out: SSAValue, index: Mapping[Operation, int], fill: bool = False
            ) -> tuple[linalg.FillOp | None, list[Operation], dict[linalg.GenericOp, list[int]]] | None:
    """The reshapes of `out` and, per generic reading it (or them) after `copy` at the top
    level, which of its operands do; with `fill`, also the fill of `out` before `copy` (at the
    top level), which there must be. None if anything else uses them."""
    filled = None
    reshapes: list[Operation] = []
    found: dict[linalg.GenericOp, list[int]] = {}
    todo = [out]
    while todo:
        v = todo.pop()
        for use in v.uses:
            user = use.operation
            if isinstance(user, _Reshape):
                reshapes.append(user)
                todo.append(user.result)
            elif user is copy and use.index == 1:
                continue
            elif fill and isinstance(user, linalg.FillOp) and v is out and filled is None \
                    and -1 < index.get(user, -1) < index[copy]:
                filled = user
            elif (isinstance(user, linalg.GenericOp) and user.library_call is None and use.index < len(inputs(user))
                  and index.get(user, -1) > index[copy]):
                found.setdefault(user, []).append(use.index)
            else:
                return None
    return (filled, reshapes, found) if found and (filled is not None or not fill) else None


def untouched(ops: Sequence[Operation], mem: object) -> bool:
    """Nothing in `ops` (their regions included) writes memory `mem`, or may: only generics
    read it."""
    if mem is None:
        return False
    for op in ops:
        for inner in walk(op):
            if isinstance(inner, _Reshape | memref.AllocOp | memref.GetGlobalOp | memref.DeallocOp):
                continue
            if mem not in [root(v) for v in inner.operands if isinstance(v.type, MemRefType)]:
                continue
            if isinstance(inner, linalg.GenericOp) and all(root(v) != mem for v in outputs(inner)):
                continue
            return False
    return True
