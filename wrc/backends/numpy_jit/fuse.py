"""Chains of elementwise generics as one compiled call (`wrc/backends/native/elementwise.c`).

A small transformer spends most of its time in NumPy's per-call cost: LayerNorm is 11
calls, GELU 5 and a 24-pass erf, each 1-4 µs on a few thousand elements. Adjacent
`Elementwise` generics over the same loop space (the dims of extent > 1, in order) become
one **group** run by one call of the native module's register machine: each value a
member computes and a later member reads stays in a register (a block of the innermost
dim); only the values read after the group are stored. The IR is unchanged: the group's
last generic is a `Fused` kernel, the others are elided.

A group is a run of top-level generics with only ops that write nothing between them
(allocs, globals, reshapes, constants, elided ops; the call runs at the last member,
where every operand is defined and none has changed). A member must be all-float of the
group's dtype (float32 or float64), without scalar operands, its body made of the ops in
`OPCODES`. Every access to an array some member writes (the array, as the memory plan
shares arrays between buffers, and its flat offset and strides per loop dim) must be the
same access: each element is then read and written at one loop point only, so running the
chain block by block is running it generic by generic.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from xdsl.dialects import arith, memref
from xdsl.dialects.builtin import FloatAttr, IntegerAttr
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import BlockArgument, Operation, SSAValue

from wrc.backends.numpy_jit.access import Access, Generic
from wrc.backends.numpy_jit.kernels import Elementwise, Fused

LOAD, STORE, CONST = 0, 1, 2
OPCODES: dict[str, int] = {
    "arith.negf": 3, "math.exp": 4, "math.log": 5, "math.sqrt": 6, "math.tanh": 7, "math.erf": 8,
    "math.absf": 9,
    "arith.addf": 10, "arith.subf": 11, "arith.mulf": 12, "arith.divf": 13, "arith.maximumf": 14,
    "arith.minimumf": 15, "arith.maxnumf": 16, "arith.minnumf": 17, "math.powf": 18,
    "arith.cmpf": 19, "arith.select": 20,
}
"""Body ops the machine runs, by opcode (the `enum` of elementwise.c)."""

DTYPES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1}
MAX_DIMS, MAX_OPERANDS, MAX_REGS, MAX_INSTRS = 8, 32, 32, 256
"""The machine's limits (elementwise.c): a group that would exceed them stops growing."""

_QUIET = (memref.AllocOp, memref.GetGlobalOp, memref.CollapseShapeOp, memref.ExpandShapeOp,
          memref.DeallocOp, arith.ConstantOp)
"""Top-level ops that write no memory: a group may span them."""


ArrayKey = tuple[object, int, tuple[int, ...]]
"""An access as (array, flat element offset, stride per group dim)."""


def fuse_groups(top: Sequence[Operation], kernels: Mapping[linalg.GenericOp, object],
                analyses: Mapping[linalg.GenericOp, Generic], elided: frozenset[Operation] | set[Operation],
                array_of: Callable[[SSAValue], tuple[object, int] | None],
                live_after: Callable[[SSAValue, int], bool]) -> list[Fused]:
    """The groups among the top-level ops `top`. `array_of(buffer)`: the array a buffer
    is (a key) and its element offset in it, None where unknown; `live_after(buffer, i)`:
    whether the buffer is read after top-level op i (or lives on: a global, a result)."""
    groups: list[Fused] = []
    run: list[linalg.GenericOp] = []
    positions: list[int] = []

    def close() -> None:
        # One generic whose body is one op stays a NumPy call (as cheap as the machine's).
        if run and (len(run) > 1 or sum(o.name in OPCODES for o in run[0].body.block.ops) > 1):
            fused = _build(run, analyses, array_of, lambda v: live_after(v, positions[-1]))
            if fused is not None:
                groups.append(fused)
        run.clear()
        positions.clear()

    for i, op in enumerate(top):
        if op in elided or isinstance(op, _QUIET):
            continue
        if not (isinstance(op, linalg.GenericOp) and isinstance(kernels.get(op), Elementwise)
                and _eligible(op, analyses[op])):
            close()
            continue
        if run and not _compatible([*run, op], analyses, array_of):
            close()
        run.append(op)
        positions.append(i)
        if _build(run, analyses, array_of, lambda v: True) is None:  # over the machine's limits
            run.pop()
            positions.pop()
            close()
            run.append(op)
            positions.append(i)
    close()
    return groups


def _space(g: Generic) -> tuple[int, ...]:
    return tuple(e for e in g.extents if e > 1)


def _dims(g: Generic) -> list[int]:
    return [k for k, e in enumerate(g.extents) if e > 1]


def _eligible(op: linalg.GenericOp, g: Generic) -> bool:
    if g.kind != "parallel" or op.library_call is not None:
        return False
    dtypes = {a.dtype for a in g.accesses}
    if len(dtypes) != 1 or next(iter(dtypes)) not in DTYPES or any(a.shape is None for a in g.accesses):
        return False
    if len(_space(g)) > MAX_DIMS:
        return False
    block = op.body.block
    for o in block.ops:
        if isinstance(o, linalg.YieldOp):
            if not all(isinstance(v.owner, Operation) and (v.owner.parent_block() is block or _float(v.owner)
                                                           is not None) for v in o.operands):
                return False  # a copy: other kernels (parts, forwarded copies) serve it
            continue
        if o.name == "arith.constant":
            if _float(o) is None:
                return False
            continue
        if o.name not in OPCODES or len(o.results) != 1:
            return False
        if o.name == "arith.cmpf" and not isinstance(o.properties.get("predicate"), IntegerAttr):
            return False
        for v in o.operands:
            owner = v.owner
            if isinstance(v, BlockArgument):
                if v.owner is not block:
                    return False
            elif not (isinstance(owner, Operation) and (owner.parent_block() is block or _float(owner) is not None)):
                return False
    return True


def _float(op: Operation) -> float | None:
    """The value of a float `arith.constant`, else None."""
    attr = op.properties.get("value") if op.name == "arith.constant" else None
    return float(attr.value.data) if isinstance(attr, FloatAttr) else None


def _key(acc: Access, dims: Sequence[int], array_of: Callable[[SSAValue], tuple[object, int] | None]
         ) -> ArrayKey | None:
    at = array_of(acc.value)
    if at is None:
        return None
    array, base = at
    return array, base + acc.offset, tuple(acc.strides[k] for k in dims)


def _compatible(run: Sequence[linalg.GenericOp], analyses: Mapping[linalg.GenericOp, Generic],
                array_of: Callable[[SSAValue], tuple[object, int] | None]) -> bool:
    """One loop space, and every array written accessed one way only."""
    gs = [analyses[op] for op in run]
    if len({_space(g) for g in gs}) != 1:
        return False
    written: set[object] = set()
    accesses: dict[object, set[ArrayKey]] = {}
    for g in gs:
        dims = _dims(g)
        for j, acc in enumerate(g.accesses):
            key = _key(acc, dims, array_of)
            if key is None:
                if j >= g.n_in:
                    return False
                continue
            accesses.setdefault(key[0], set()).add(key)
            if j >= g.n_in:
                written.add(key[0])
    return all(len(accesses[a]) == 1 for a in written)


def _build(run: Sequence[linalg.GenericOp], analyses: Mapping[linalg.GenericOp, Generic],
           array_of: Callable[[SSAValue], tuple[object, int] | None],
           live: Callable[[SSAValue], bool]) -> Fused | None:
    """The group's program (`live(buffer)`: whether a value written into it is read after
    the group), or None when it exceeds the machine's limits."""
    gs = [analyses[op] for op in run]
    dtype = gs[0].accesses[0].dtype
    space = _space(gs[0])
    operands: dict[tuple[SSAValue, int, tuple[int, ...]], int] = {}
    layout: list[tuple[int, int, tuple[int, ...]]] = []  # per operand: written, offset, strides
    code: list[list[int]] = []
    values: dict[object, int] = {}  # SSA value or array key → virtual register
    consts: dict[float, int] = {}
    current: dict[ArrayKey, int] = {}  # an array's elements (this loop point) → register
    stores: dict[ArrayKey, tuple[Access, list[int], int]] = {}  # key → (access, dims, register)
    nv = 0

    def operand(acc: Access, dims: list[int], written: bool) -> int:
        strides = tuple(acc.strides[k] for k in dims)
        k = (acc.value, acc.offset, strides)
        if k not in operands:
            operands[k] = len(layout)
            layout.append((0, acc.offset, strides))
        i = operands[k]
        if written:
            layout[i] = (1, *layout[i][1:])
        return i

    def new() -> int:
        nonlocal nv
        nv += 1
        return nv - 1

    def value(v: SSAValue) -> int:
        if v not in values:  # a float constant, in or outside the body
            c = _float(v.owner) if isinstance(v.owner, Operation) else None
            assert c is not None
            if c not in consts:
                consts[c] = new()
                code.append([CONST, consts[c], _bits(c), 0, 0])
            values[v] = consts[c]
        return values[v]

    for op, g in zip(run, gs, strict=True):
        block, dims = op.body.block, _dims(g)
        for arg, acc in zip(block.args, g.accesses, strict=True):
            if not arg.uses:
                continue
            key = _key(acc, dims, array_of)
            if key in current:
                values[arg] = current[key]
                continue
            r = new()
            code.append([LOAD, r, operand(acc, dims, False), 0, 0])
            values[arg] = r
            if key is not None:
                current[key] = r
        for o in block.ops:
            if isinstance(o, linalg.YieldOp):
                for j, v in enumerate(o.operands):
                    acc = g.accesses[g.n_in + j]
                    key = _key(acc, dims, array_of)
                    assert key is not None
                    current[key] = value(v)
                    stores[key] = (acc, dims, value(v))
                continue
            if o.name == "arith.constant":
                continue
            args = [value(v) for v in o.operands]
            r = new()
            values[o.results[0]] = r
            if o.name == "arith.cmpf":
                pred = o.properties["predicate"]
                assert isinstance(pred, IntegerAttr)
                code.append([OPCODES[o.name], r, args[0], args[1], pred.value.data])
            else:
                code.append([OPCODES[o.name], r, *args, *[0] * (3 - len(args))])
    # Only values read after the group reach memory (stores last: elementwise.c).
    code += [[STORE, operand(acc, dims, True), r, 0, 0] for acc, dims, r in stores.values() if live(acc.value)]
    regs = _allocate(code, set(consts.values()))
    if regs is None or len(layout) > MAX_OPERANDS or len(code) > MAX_INSTRS:
        return None
    extents, strides = _coalesce(space, [s for _, _, s in layout])
    words = [DTYPES[dtype], len(extents), *extents, len(layout)]
    for (written, offset, _), s in zip(layout, strides, strict=True):
        words += [written, offset, *s]
    words += [regs, len(code)]
    for ins in code:
        words += ins
    return Fused(tuple(words), tuple(v for v, _, _ in operands), tuple(run))


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _allocate(code: list[list[int]], pinned: set[int]) -> int | None:
    """Virtual registers → physical ones in place (a register is free again after its last
    read; constants keep theirs); the number used, or None beyond `MAX_REGS`."""
    reads = {LOAD: 0, STORE: 1, CONST: 0}
    last: dict[int, int] = {}
    for i, ins in enumerate(code):
        n = reads.get(ins[0], 3 if ins[0] == OPCODES["arith.select"] else 2 if ins[0] >= 10 else 1)
        srcs = [ins[2]] if ins[0] == STORE else ins[2:2 + n]
        for v in srcs:
            last[v] = i
    phys: dict[int, int] = {}
    free: list[int] = []
    used = 0
    for i, ins in enumerate(code):
        n = reads.get(ins[0], 3 if ins[0] == OPCODES["arith.select"] else 2 if ins[0] >= 10 else 1)
        if ins[0] == STORE:
            ins[2] = phys[ins[2]]
            continue
        srcs = ins[2:2 + n] if ins[0] not in (LOAD, CONST) else []
        for k, v in enumerate(srcs):
            ins[2 + k] = phys[v]
        for v in set(srcs):  # free before the destination is chosen: it may take a source's
            if last.get(v) == i and v not in pinned:
                free.append(phys[v])
        d = ins[1]
        if free and d not in pinned:
            phys[d] = free.pop()
        else:
            phys[d] = used
            used += 1
        ins[1] = phys[d]
        if d not in last and d not in pinned:  # computed, never read (a dead output)
            free.append(phys[d])
    return used if used <= MAX_REGS else None


def _coalesce(extents: Sequence[int], strides: Sequence[tuple[int, ...]]
              ) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """Adjacent dims that every operand steps through as one (stride[k] = stride[k+1] ·
    extent[k+1]) merged: the innermost dim, the machine's blocks, as long as it can be."""
    ext = list(extents) or [1]
    st = [list(s) or [0] for s in strides]
    k = len(ext) - 2
    while k >= 0:
        if all(s[k] == s[k + 1] * ext[k + 1] for s in st):
            ext[k:k + 2] = [ext[k] * ext[k + 1]]
            for s in st:
                s[k:k + 2] = [s[k + 1]]
        k -= 1
    return tuple(ext), [tuple(s) for s in st]


def program_array(words: tuple[int, ...]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The program as the read-only int64 array elementwise.c reads."""
    a = np.array(words, np.int64)
    a.flags.writeable = False
    return a


def native_module() -> Any:
    from wrc.backends import native

    return native.load("elementwise")


