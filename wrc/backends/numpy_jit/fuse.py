"""Chains of elementwise generics as one compiled call (`wrc/backends/native/elementwise.c`).

A small transformer spends most of its time in NumPy's per-call cost: LayerNorm is 11
calls, GELU 5 and a 24-pass erf, each 1-4 µs on a few thousand elements. Adjacent generics
over one loop space become one **group** run by one call of the native module's register
machine: each value a member computes and a later member reads stays in a register (a
block of the innermost dim); only the values read after the group are stored. The IR is
unchanged: the group's last generic is a `Fused` kernel, the others are elided.

A group is a run of top-level generics with only ops that write nothing between them
(allocs, globals, reshapes, constants, elided ops; the call runs at the last member, where
every operand is defined and none has changed). Its loop space is its members' dims of
extent > 1, in order. A member is

* an `Elementwise` generic over that space, or over its leading dims only (a row's value,
  as `sum / n` or `sqrt(var + eps)`; a channel's, as a squeeze-excite gate over [N, C] before
  it scales [N, C, H, W]: broadcast along the dims it lacks, never stored);
* a fresh `Reduce` over the innermost dim with `addf` or `maximumf` (LayerNorm's means,
  softmax's maximum and sum), whose result is read in the group only: the machine runs the
  row in **passes**, each ending at the reductions it needs, the row's value then a
  register in the passes after (the values a pass needs are computed again from the
  operands: a row is in the cache; where a row is one block, its registers are kept from
  pass to pass and each value is computed once).

All its operands float32 (or all float64) buffers, or masks (`BOOL`) the group computes and
reads only in it, its body made of the ops in `OPCODES`.
Every access to an array some member writes (the array as the memory plan shares arrays
between buffers, its flat offset and strides per loop dim) must be the same access: each
element is then read and written at one row only, after the row's loads, so running the
chain row by row is running it generic by generic.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from xdsl.dialects import arith, memref
from xdsl.dialects.builtin import FloatAttr, IntegerAttr
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import BlockArgument, Operation, SSAValue

from wrc.backends.numpy_jit.access import Access, Generic
from wrc.backends.numpy_jit.kernels import Elementwise, Fused, Reduce

LOAD, STORE, CONST = 0, 1, 2
OPCODES: dict[str, int] = {
    "arith.negf": 3, "math.exp": 4, "math.log": 5, "math.sqrt": 6, "math.tanh": 7, "math.erf": 8,
    "math.absf": 9,
    "arith.addf": 10, "arith.subf": 11, "arith.mulf": 12, "arith.divf": 13, "arith.maximumf": 14,
    "arith.minimumf": 15, "arith.maxnumf": 16, "arith.minnumf": 17, "math.powf": 18,
    "arith.cmpf": 19, "arith.select": 20,
}
"""Body ops the machine runs, by opcode (the `enum` of elementwise.c)."""
REDUCTIONS = {"add": 21, "maximum": 22}
"""Combiners of the row reductions the machine runs (a whole row into one value)."""
PASS = 23
SIGMOID = 24
"""`1 / (1 + exp(-x))`, the machine's instruction for the chain of four (`_sigmoids`)."""
MULADD = 25
"""`a * b + c`, the product rounded first: a product only a sum reads (`_muladds`)."""
SOURCES = {LOAD: 0, STORE: 1, CONST: 0, **{c: 1 for c in range(3, 10)}, **{c: 2 for c in range(10, 20)},
           20: 3, 21: 1, 22: 1, SIGMOID: 1, MULADD: 3}
"""Registers each opcode reads (from field `a` on; a store's is `a`)."""

DTYPES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1}
BOOL = np.dtype(np.bool_)
"""A mask (`cmpf`'s i1) a member writes and a later one reads is a register of 0s and 1s;
a mask from memory, or read after the group, is no member's."""
MAX_DIMS, MAX_OPERANDS, MAX_REGS, MAX_INSTRS = 8, 32, 32, 256
"""The machine's limits (elementwise.c): a group that would exceed them stops growing."""
BLOCK = 256
"""Elements of a register (elementwise.c): a row of at most BLOCK elements is one block."""

_QUIET = (memref.AllocOp, memref.GetGlobalOp, memref.CollapseShapeOp, memref.ExpandShapeOp,
          memref.DeallocOp, arith.ConstantOp)
"""Top-level ops that write no memory: a group may span them."""

ArrayKey = tuple[object, int, tuple[int, ...]]
"""An access as (array, flat element offset, stride per group dim)."""


def fuse_groups(top: Sequence[Operation], kernels: Mapping[linalg.GenericOp, object],
                analyses: Mapping[linalg.GenericOp, Generic], elided: frozenset[Operation] | set[Operation],
                fresh: frozenset[Operation] | set[Operation],
                array_of: Callable[[SSAValue], tuple[object, int] | None],
                live_after: Callable[[SSAValue, int], bool]) -> list[Fused]:
    """The groups among the top-level ops `top`. `fresh`: generics whose output needs no
    initial value; `array_of(buffer)`: the array a buffer is (a key) and its element offset
    in it, None where unknown; `live_after(buffer, i)`: whether the buffer is read after
    top-level op i (or lives on: a global, a result)."""
    groups: list[Fused] = []
    run: list[tuple[int, linalg.GenericOp]] = []
    checked: list[tuple[tuple[linalg.GenericOp, ...], _Loaded | None]] = []  # the last run checked, its `_load`

    def close() -> None:
        """The run's longest valid prefix is a group (if worth a call), then the rest."""
        while run:
            for end in range(len(run), 0, -1):
                members = [op for _, op in run[:end]]
                at = run[end - 1][0]
                loaded = checked[0][1] if checked and checked[0][0] == tuple(members) else \
                    _load(members, analyses, array_of)
                fused = _build(members, loaded, lambda v, at=at: live_after(v, at))
                if fused is not None:
                    break
            else:
                end, fused = 1, None
            # One generic whose body is one op stays a NumPy call (as cheap as the machine's),
            # unless an operand broadcasts over a small space (a per-channel bias or gate:
            # NumPy's broadcasting costs ~1 µs more a call than the machine's uniform
            # registers; a constant, as a pool's mean `/ (H * W)` or a ReLU: ~0.2 µs more).
            first = run[0][1]
            if fused is not None and (end > 1 or sum(o.name in OPCODES for o in first.body.block.ops) > 1
                                      or _small_broadcast(analyses[first], first)):
                groups.append(fused)
            del run[:end]

    for i, op in enumerate(top):
        if op in elided or isinstance(op, _QUIET):
            continue
        if not (isinstance(op, linalg.GenericOp) and _eligible(op, kernels.get(op), analyses.get(op), op in fresh)):
            close()
            continue
        if run and _group_space([analyses[o] for _, o in run] + [analyses[op]]) is None:
            close()
        run.append((i, op))
        if len(run) > 1:
            members = tuple(o for _, o in run)
            checked[:] = [(members, _load(members, analyses, array_of))]
            if _build(members, checked[0][1], None) is None:
                last = run.pop()  # over the machine's limits (or a hazard): a new run
                close()
                run.append(last)
    close()
    return groups


SMALL_BROADCAST = 16384
"""Elements up to which one broadcasting op runs in the machine: a bias add on 16 x 32 costs
NumPy's iterator ~1 µs more than the machine's call; from some 10^4 elements on, the two are
even or NumPy's loops faster (a bias add on 256 x 768: 50 against 61 µs)."""


def _small_broadcast(g: Generic, op: linalg.GenericOp) -> bool:
    """Some input of `g` (its generic `op`) is an array read at a stride of 0 along a dim of
    extent > 1, or a float constant, in a loop space of at most SMALL_BROADCAST elements."""
    return math.prod(g.extents) <= SMALL_BROADCAST and (any(
        a.shape is not None and any(e > 1 and a.strides[k] == 0 for k, e in enumerate(g.extents))
        for a in g.accesses[:g.n_in]) or any(
        isinstance(v.owner, Operation) and _float(v.owner) is not None
        for o in op.body.block.ops if o.name in OPCODES for v in o.operands))


def _space(g: Generic) -> tuple[int, ...]:
    return tuple(e for e in g.extents if e > 1)


def _dims(g: Generic) -> list[int]:
    return [k for k, e in enumerate(g.extents) if e > 1]


def _group_space(gs: Sequence[Generic]) -> tuple[int, ...] | None:
    """The members' common loop space: the longest; each member's is it or, for an
    elementwise one, its leading dims (and a reduction's innermost dim is its reduced one).
    None if none."""
    space = max((_space(g) for g in gs), key=len)
    for g in gs:
        s = _space(g)
        if s != space and (g.kind != "parallel" or not space or s != space[:len(s)]):
            return None
        if g.kind == "reduce" and (not s or g.reduction != (_dims(g)[-1],)):
            return None
    return space


def _eligible(op: linalg.GenericOp, kernel: object, g: Generic | None, fresh: bool) -> bool:
    if g is None or op.library_call is not None:
        return False
    block = op.body.block
    comb: Operation | None = None
    if isinstance(kernel, Reduce):
        comb = block.last_op.operands[0].owner if block.last_op is not None else None
        if not fresh or g.combiner not in REDUCTIONS or not isinstance(comb, Operation) \
                or comb.name not in ("arith.addf", "arith.maximumf"):
            return False
    elif not isinstance(kernel, Elementwise):
        return False
    floats = {a.dtype for a in g.accesses} - {BOOL}
    if len(floats) != 1 or next(iter(floats)) not in DTYPES or any(a.shape is None for a in g.accesses):
        return False
    if len(_space(g)) > MAX_DIMS:
        return False
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


def _operand(operands: dict[tuple[SSAValue, int, tuple[int, ...]], int],
             layout: list[tuple[int, int, tuple[int, ...]]], acc: Access, strides: tuple[int, ...],
             write: bool) -> int:
    """The index of `acc` read with `strides` among a group's operands, added to `layout`
    (written, offset, strides) when new and marked written when `write`."""
    k = (acc.value, acc.offset, strides)
    if k not in operands:
        operands[k] = len(layout)
        layout.append((0, acc.offset, strides))
    i = operands[k]
    if write:
        layout[i] = (1, *layout[i][1:])
    return i


def _build(run: Sequence[linalg.GenericOp], loaded: _Loaded | None,
           live: Callable[[SSAValue], bool] | None) -> Fused | None:
    """The group's program from `loaded = _load(run, ...)` (`live(buffer)`: whether a value
    written into it is read after the group; None: as if every stored one were, to check the
    machine's limits while a run grows), or None when the run is no group (two accesses to
    an array written, a row value or reduction read after the group) or exceeds the
    machine's limits. A run is loaded once for both (`fuse_groups`)."""
    if loaded is None:
        return None
    gs, space, dtype, operands_, layout_, code, consts, stores, unstored = loaded
    operands, layout = dict(operands_), list(layout_)  # (stores add operands: `loaded` is kept as it is)
    n = len(space)

    def operand(acc: Access, strides: tuple[int, ...], write: bool) -> int:
        return _operand(operands, layout, acc, strides, write)

    if live is not None and any(live(v) for v in unstored):
        return None
    targets = [[STORE, operand(acc, s, True), r, 0, 0] for acc, s, r in stores.values()
               if acc.value not in unstored and (live is None or live(acc.value))]
    if not targets and live is not None:
        return None  # nothing read after it
    extents, strides = _coalesce(space, [s for _, _, s in layout], keep_inner=any(g.kind == "reduce" for g in gs))
    code = _passes(_muladds(_sigmoids(code, targets), targets), targets)
    # Constants and reductions are set before a pass and read in each of its blocks: their
    # registers are theirs throughout.
    regs = _allocate(code, {*consts.values(), *(ins[1] for ins in code if ins[0] in REDUCTIONS.values())})
    if regs is None or len(layout) > MAX_OPERANDS or len(code) > MAX_INSTRS or n > MAX_DIMS:
        return None
    if extents[-1] <= BLOCK:
        code = _kept_across_passes(code)
    words = [DTYPES[dtype], len(extents), *extents, len(layout)]
    for (written_, offset, _), s in zip(layout, strides, strict=True):
        words += [written_, offset, *s]
    words += [regs, len(code)]
    for ins in code:
        words += ins
    return Fused(tuple(words), tuple(v for v, _, _ in operands), tuple(run))


_Loaded = tuple[list[Generic], tuple[int, ...], np.dtype[Any], dict[tuple[SSAValue, int, tuple[int, ...]], int],
                list[tuple[int, int, tuple[int, ...]]], list[list[int]], dict[float, int],
                dict[ArrayKey, tuple[Access, tuple[int, ...], int]], set[SSAValue]]
"""What `_load` finds of a run: its members' analyses, loop space, dtype, operands and their
layout (loads only), instructions, constants' registers, stores and unstored values."""


def _load(run: Sequence[linalg.GenericOp], analyses: Mapping[linalg.GenericOp, Generic],
          array_of: Callable[[SSAValue], tuple[object, int] | None]) -> _Loaded | None:
    """`_build`'s first part, which does not depend on what is live after the run: the
    members' instructions, or None when the run is no group whatever is live."""
    gs = [analyses[op] for op in run]
    space = _group_space(gs)
    if space is None:
        return None
    floats = {a.dtype for g in gs for a in g.accesses} - {BOOL}
    if len(floats) != 1:
        return None
    (dtype,) = floats
    n = len(space)
    operands: dict[tuple[SSAValue, int, tuple[int, ...]], int] = {}
    layout: list[tuple[int, int, tuple[int, ...]]] = []  # per operand: written, offset, strides
    code: list[list[int]] = []
    values: dict[object, int] = {}  # SSA value → virtual register
    consts: dict[float, int] = {}
    current: dict[ArrayKey, int] = {}  # an array's elements (this loop point) → register
    stores: dict[ArrayKey, tuple[Access, tuple[int, ...], int]] = {}  # key → (access, strides, register)
    written: dict[object, set[ArrayKey]] = {}
    accessed: dict[object, set[ArrayKey]] = {}
    unstored: set[SSAValue] = set()  # row values and reductions: never stored
    nv = 0

    def operand(acc: Access, strides: tuple[int, ...], write: bool) -> int:
        return _operand(operands, layout, acc, strides, write)

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
        row = _space(g) != space  # a row's (or channel's) value: the trailing dims broadcast

        def strides_of(acc: Access, dims: list[int] = dims) -> tuple[int, ...]:
            return tuple(acc.strides[k] for k in dims) + (0,) * (n - len(dims))

        keys = []
        for acc in g.accesses:
            at = array_of(acc.value)
            keys.append(None if at is None else (at[0], at[1] + acc.offset, strides_of(acc)))
        for j, key in enumerate(keys):
            if key is None:
                if j >= g.n_in:
                    return None
                continue
            accessed.setdefault(key[0], set()).add(key)
            if j >= g.n_in:
                written.setdefault(key[0], set()).add(key)
        for arg, acc, key in zip(block.args, g.accesses, keys, strict=True):
            if not arg.uses or (g.kind == "reduce" and arg.index >= g.n_in):
                continue
            if key in current:
                values[arg] = current[key]
                continue
            if acc.dtype == BOOL:
                return None  # a mask the group does not compute (registers hold floats)
            r = new()
            code.append([LOAD, r, operand(acc, strides_of(acc), False), 0, 0])
            values[arg] = r
            if key is not None:
                current[key] = r
        yield_op = block.last_op
        assert isinstance(yield_op, linalg.YieldOp)
        comb = yield_op.operands[0].owner if g.kind == "reduce" else None
        for o in block.ops:
            if o is yield_op or o is comb or o.name == "arith.constant":
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
        if g.kind == "reduce":
            assert g.expr is not None and g.combiner is not None
            r = new()
            code.append([REDUCTIONS[g.combiner], r, value(g.expr), 0, 0])
            key = keys[g.n_in]
            assert key is not None
            current[key] = r
            unstored.add(g.out.value)
            continue
        for j, v in enumerate(yield_op.operands):
            acc, key = g.accesses[g.n_in + j], keys[g.n_in + j]
            assert key is not None
            current[key] = value(v)
            stores[key] = (acc, strides_of(acc), value(v))
            if row or acc.dtype == BOOL:
                unstored.add(acc.value)
    if any(len(written[a] | accessed[a]) > 1 for a in written):
        return None  # an array written and accessed another way
    return gs, space, dtype, operands, layout, code, consts, stores, unstored


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _sources(ins: list[int]) -> list[int]:
    return [] if ins[0] == PASS else ins[2:2 + SOURCES[ins[0]]]


def _passes(code: list[list[int]], stores: list[list[int]]) -> list[list[int]]:
    """The instructions in passes over a row: a reduction's pass computes what it reads
    (the values of earlier passes' reductions are registers by then), the last pass what
    is stored, stores last. Passes end with PASS. (A value the same along a block, as a
    row's, is computed once a block: the machine tracks that itself, elementwise_run.h.)"""
    by_reg = {ins[1]: ins for ins in code}
    order = {ins[1]: i for i, ins in enumerate(code)}
    level: dict[int, int] = {}  # reduction register → its pass
    for ins in code:
        if ins[0] in REDUCTIONS.values():
            level[ins[1]] = 1 + max((level[r] for r in _reductions_under(ins, by_reg, level)), default=-1)
    passes = [[ins for ins in code if level.get(ins[1]) == k] for k in range(1 + max(level.values(), default=-1))]
    out: list[list[int]] = []
    for targets in [*passes, stores]:
        need: set[int] = set()
        stack = [s for t in targets for s in _sources(t)]
        while stack:
            r = stack.pop()
            if r in need or r in level:
                continue
            need.add(r)
            stack.extend(_sources(by_reg[r]))
        body = [list(by_reg[r]) for r in sorted(need, key=order.__getitem__)]
        out += body + [list(t) for t in targets] + [[PASS, 0, 0, 0, 0]]
    return out[:-1]


def _defs_and_uses(code: list[list[int]], stores: list[list[int]]) -> tuple[dict[int, list[int]], dict[int, int]]:
    """Register → the instruction that writes it, and register → how many instructions read it
    (the stores included): what `_sigmoids` and `_muladds` ask before they merge instructions."""
    by_reg = {ins[1]: ins for ins in code if ins[0] != STORE}
    uses: dict[int, int] = {}
    for ins in [*code, *stores]:
        for r in _sources(ins):
            uses[r] = uses.get(r, 0) + 1
    return by_reg, uses


def _sigmoids(code: list[list[int]], stores: list[list[int]]) -> list[list[int]]:
    """The program with each `1 / (1 + exp(-x))` (Sigmoid's lowering: negf, exp, addf and divf
    by the constant 1, in one member or across several) as one SIGMOID instruction, where the
    three values between are read by the chain only: the machine's sigmoid computes e^-|x|
    once, with no overflow and no second pass over the block for each step."""
    by_reg, uses = _defs_and_uses(code, stores)
    ones = {ins[1] for ins in code if ins[0] == CONST and ins[2] == _bits(1.0)}

    def only(r: int, op: int) -> list[int] | None:
        ins = by_reg.get(r)
        return ins if ins is not None and ins[0] == op and uses.get(r) == 1 else None

    dropped: set[int] = set()
    out = []
    for ins in code:
        if ins[0] == OPCODES["arith.divf"] and ins[2] in ones:
            add = only(ins[3], OPCODES["arith.addf"])
            one_plus = add is not None and (add[2] in ones) != (add[3] in ones)
            exp = only(add[3] if add[2] in ones else add[2], OPCODES["math.exp"]) if add and one_plus else None
            neg = only(exp[2], OPCODES["arith.negf"]) if exp else None
            if add and exp and neg:
                dropped |= {id(add), id(exp), id(neg)}
                uses[ins[2]] -= 1
                uses[add[2] if add[2] in ones else add[3]] -= 1
                out.append([SIGMOID, ins[1], neg[2], 0, 0])
                continue
        out.append(ins)
    return [ins for ins in out if id(ins) not in dropped and not (ins[0] == CONST and uses.get(ins[1]) == 0)]


def _muladds(code: list[list[int]], stores: list[list[int]]) -> list[list[int]]:
    """The program with each sum of a product that nothing else reads (`x * k + b`: a
    convolution's BatchNorm scale and shift left on its output, `ge-fold-weight-scales`) as
    one MULADD instruction: one pass over the block instead of two, the same rounding."""
    by_reg, uses = _defs_and_uses(code, stores)
    mul = OPCODES["arith.mulf"]
    dropped: set[int] = set()
    out = []
    for ins in code:
        if ins[0] == OPCODES["arith.addf"]:
            for product, other in ((ins[2], ins[3]), (ins[3], ins[2])):
                m = by_reg.get(product)
                if m is not None and m[0] == mul and uses.get(product) == 1 and id(m) not in dropped:
                    dropped.add(id(m))
                    ins = [MULADD, ins[1], m[2], m[3], other]
                    break
        out.append(ins)
    return [ins for ins in out if id(ins) not in dropped]


def _kept_across_passes(code: list[list[int]]) -> list[list[int]]:
    """The program without the instructions that compute again a value still in its register:
    the same instruction as the last that wrote its register, its sources unchanged since.
    Only where a row is one block: the machine then keeps a block's registers from pass to
    pass (LayerNorm's `x + bias + residual` and `x - mean`, softmax's `exp(x - max)` are
    computed once, not in every pass)."""
    kept: list[list[int]] = []
    writes: dict[int, int] = {}  # register → writes so far
    last: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # register → its last write
    for ins in code:
        if ins[0] in (PASS, STORE):
            kept.append(ins)
            continue
        made = (tuple(ins), tuple(writes.get(r, 0) for r in _sources(ins)))
        d = ins[1]
        if last.get(d) == made:
            continue
        writes[d] = writes.get(d, 0) + 1
        last[d] = made
        kept.append(ins)
    return kept


def _reductions_under(ins: list[int], by_reg: Mapping[int, list[int]], level: Mapping[int, int]) -> set[int]:
    """The reductions `ins` reads through the instructions it depends on."""
    found, seen, stack = set(), set(), list(_sources(ins))
    while stack:
        r = stack.pop()
        if r in seen:
            continue
        seen.add(r)
        if r in level:
            found.add(r)
        else:
            stack.extend(_sources(by_reg[r]))
    return found


def _allocate(code: list[list[int]], pinned: set[int]) -> int | None:
    """Virtual registers → physical ones in place (a register is free again after its last
    read; `pinned` ones keep theirs); the number used, or None beyond `MAX_REGS`. A value read
    in several passes is computed again in each under the same virtual register: its
    register is taken from its first definition to its last read."""
    last: dict[int, int] = {}
    for i, ins in enumerate(code):
        for v in _sources(ins):
            last[v] = i
    phys: dict[int, int] = {}
    free: list[int] = []
    used = 0
    for i, ins in enumerate(code):
        op = ins[0]
        if op == PASS:
            continue
        srcs = _sources(ins)
        for k, v in enumerate(srcs):
            ins[2 + k] = phys[v]
        if op == STORE:
            continue
        for v in set(srcs):  # free before the destination is chosen: it may take a source's
            if last.get(v) == i and v not in pinned:
                free.append(phys[v])
        d = ins[1]
        if d in phys:  # computed again in a later pass: its register is still its own
            ins[1] = phys[d]
            continue
        if free and d not in pinned:
            phys[d] = free.pop()
        else:
            phys[d] = used
            used += 1
        ins[1] = phys[d]
        if d not in last and d not in pinned:  # computed, never read (a dead output)
            free.append(phys[d])
    return used if used <= MAX_REGS else None


def _coalesce(extents: Sequence[int], strides: Sequence[tuple[int, ...]], keep_inner: bool = False
              ) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """Adjacent dims that every operand steps through as one (stride[k] = stride[k+1] ·
    extent[k+1]) merged: the innermost dim, the machine's blocks, as long as it can be
    (`keep_inner`: the innermost dim is the one reductions run over, kept as it is)."""
    ext = list(extents) or [1]
    st = [list(s) or [0] for s in strides]
    k = len(ext) - (3 if keep_inner else 2)
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
    """`wrc.backends.native.load("elementwise")`: the machine, or None."""
    from wrc.backends import native

    return native.load("elementwise")
