"""The memory plan of one function, decided before any code is emitted.

* **kernels**: how each `linalg.generic` runs (`kernels.py`), with its access analysis.
* **sinks**: a top-level buffer whose last use is an unconditional whole copy into a global
  that the function touches nowhere else (a derived variable, a computed assign) *is* that
  global's array; the copy is dropped. The runtime gives such a write an array of its own.
* **reuse**: a top-level buffer takes the array of a temporary that is dead by the new
  buffer's first use, so `matmul → +bias → relu` runs in one buffer, in place. The same
  type first; else the smallest dead array of the element type that holds it, else the
  largest one, grown (**pooled**: an array whose buffers differ in shape is a flat array
  as large as the largest of them, each buffer a view of its start). Buffers returned
  take only an array of their own type, never a pooled one.
* **parts**: a buffer whose only write before its first read is a whole contiguous copy
  out of a temporary that is dead after it (a concatenation's buffer with its spare cell,
  a slice) *is* that part of the temporary's array; the copy is dropped, and the
  temporary's array lives as long as either.
* **concatenated parts**: a buffer (with the buffers it was computed from in place, as
  `matmul → +bias → relu`) whose last use is a whole copy into a contiguous part of a
  buffer the function has not used before (a concatenation's operand) *is* that part:
  the copy is dropped and the destination's array lives from the first of them on.
* **zeroed**: a buffer filled with 0 right away is allocated zeroed (calloc'd pages come
  zeroed, cheaper than empty + fill); that fill is elided.
* **elided fills**: a `linalg.fill` whose buffer the next generic overwrites whole (or
  reduces into with the fill value as the combiner's identity); that generic is **fresh**:
  it writes its output with `out=` instead of accumulating into it.
* **unpadded images** (`unpad.py`, option `native`): a padded copy only compiled window
  kernels read is elided with its buffer; they read the image itself.
* **forwarded copies** (`forward.py`): a copy generic whose result only GEMMs read is elided
  with its buffer; they read its source through strided views, whose array lives that long.
* **fused chains** (`fuse.py`, option `native`): adjacent elementwise generics (and row
  reductions) over one loop space run as one native call at the last of them (a `Fused`
  kernel); the others are elided.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from xdsl.dialects import func, memref, scf
from xdsl.dialects.builtin import MemRefType
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Operation, SSAValue
from xdsl.utils.arg_spec import ArgSpecConvertible

from wrc.abi import copy_into_global
from wrc.backends import native
from wrc.backends.numpy_jit import fuse
from wrc.backends.numpy_jit.access import Generic, analyze, injective
from wrc.backends.numpy_jit.forward import forward_copies
from wrc.backends.numpy_jit.ir import buffer, const_value, fail, root
from wrc.backends.numpy_jit.kernels import Kernel, NativeWindow, PackedGemm, choose_kernel
from wrc.backends.numpy_jit.scalar import identity
from wrc.backends.numpy_jit.unpad import Unpadded, unpad_windows
from wrc.ir_read import inputs, outputs, walk


@dataclass(frozen=True)
class JitOptions(ArgSpecConvertible):
    """Options of the NumPy JIT, spelled like pass options in a backend name or a `wrc-opt`
    target: `numpy{reuse-buffers=false}`."""

    name: ClassVar[str] = "numpy"

    reuse_buffers: bool = True
    """Let an alloc take the array of a temporary that is dead by then (off: to measure it)."""

    window_kernels: bool = True
    """Run reductions over small windows point by point (`kernels.WindowReduce`; off: the
    strided `.reduce` and im2col GEMMs they replace, to measure them)."""

    forward_copies: bool = True
    """Let GEMMs read a copy's source through views instead of the copy (`forward.py`;
    off: to measure it)."""

    native: bool = True
    """Run a kernel through its compiled C form where it has one and it can be built here
    (`wrc.backends.native`; `WRC_NATIVE=off` turns it off too; off: NumPy forms only)."""

    hoist: bool = True
    """Make the weights' lookups and views once per set of globals (`bind`) and the
    temporaries and their views once per arena (`scratch`), out of the per-call function
    (`emit.py`, docs/internals.md; off: every statement per call, as written in order)."""

    pool_min_bytes: int = 128 * 1024
    """A buffer takes a dead array of another shape (a view of a pooled flat array) only from
    this size: below it `np.empty` is served from memory the allocator holds (one call) while
    the view costs two (a slice and a reshape); above it (glibc's default mmap threshold)
    each `np.empty` maps fresh pages, which the pool avoids."""


@dataclass(frozen=True)
class MemoryPlan:
    kernels: Mapping[linalg.GenericOp, Kernel]
    analyses: Mapping[linalg.GenericOp, Generic]  # every generic that is not a gather
    sinks: Mapping[SSAValue, str]  # alloc → the global whose array it is
    reuse: Mapping[SSAValue, SSAValue]  # alloc → the first alloc of the dead array it takes
    pooled: Mapping[SSAValue, int]  # first alloc → elements of its flat array (buffers of several shapes)
    parts: Mapping[SSAValue, tuple[SSAValue, int]]  # alloc → (the alloc whose array it is part of, element offset)
    zeroed: frozenset[SSAValue]  # allocs made zero-filled
    elided: frozenset[Operation]  # fills and copies that need no code
    fresh: frozenset[Operation]  # generics whose output needs no initial value


def plan_function(fn: func.FuncOp, options: JitOptions) -> MemoryPlan:
    return _Planner(fn, options).plan()


class _Planner:
    def __init__(self, fn: func.FuncOp, options: JitOptions) -> None:
        self.fn = fn
        self.options = options
        self.analyses: dict[linalg.GenericOp, Generic] = {}
        self.top = list(fn.body.block.ops)
        # alloc → (first, last top-level op index using it, views included; first user)
        self.span: dict[SSAValue, tuple[int, int, Operation]] = {}
        self.parts: dict[SSAValue, tuple[SSAValue, int]] = {}
        self.copies_out: set[Operation] = set()

    def native(self) -> bool:
        """Whether compiled window kernels are on and can be had here (built on first ask)."""
        return self.options.native and native.load("window") is not None

    def analysis(self, op: linalg.GenericOp) -> Generic:
        if op not in self.analyses:
            self.analyses[op] = analyze(op)
        return self.analyses[op]

    def plan(self) -> MemoryPlan:
        self.spans()
        if self.options.reuse_buffers:
            self.find_parts()
            self.find_concat_parts()
        kernels: dict[linalg.GenericOp, Kernel] = {}
        sinks: dict[SSAValue, str] = {}
        reuse: dict[SSAValue, SSAValue] = {}
        zeroed: set[SSAValue] = set()
        elided: set[Operation] = set(self.copies_out)
        fresh: set[Operation] = set()
        occupant: dict[SSAValue, SSAValue] = {}  # array (its first alloc) → its live buffer
        forwarded: frozenset[Operation] = frozenset()
        if self.options.forward_copies:
            parts = {v for y, (x, _) in self.parts.items() for v in (x, y)}
            fwd = forward_copies(self.top, self.analysis, self.span, {*self.copies_out, *parts})
            self.analyses.update(fwd.analyses)
            for src, last in fwd.last_read.items():  # read through views until then
                first, _, user = self.span[src]
                self.span[src] = (first, last, user)
            forwarded = fwd.elided
            elided |= forwarded
        unpadded = self.unpad(forwarded) if self.options.native else None
        if unpadded is not None:
            forwarded |= unpadded.elided
            elided |= unpadded.elided
        pooled: dict[SSAValue, int] = {}
        placed: set[memref.AllocOp] = set()

        def place(op: memref.AllocOp) -> None:
            placed.add(op)
            if op.dynamic_sizes or op.symbol_operands:
                raise fail(op, "dynamic sizes")
            buffer(op, op.memref.type)
            buf = op.memref
            base = self.parts.get(buf, (None,))[0]
            if base is not None and isinstance(base.owner, memref.AllocOp) and base.owner not in placed:
                place(base.owner)  # a concatenated part, allocated before the concatenation
            sink = self.global_sink(buf)
            if sink is not None:
                sinks[buf], copy = sink
                elided.add(copy)
                return
            array = self.dead_array(buf, occupant, pooled) if self.options.reuse_buffers else None
            if array is not None:
                reuse[buf] = array
                occupant[array] = buf
                if buf.type != array.type or array in pooled:
                    pooled[array] = max(pooled.get(array, elements(array)), elements(buf))
                return
            fill = self.first_user(op, buf)
            if (isinstance(fill, linalg.FillOp) and outputs(fill)[0] is buf
                    and const_value(inputs(fill)[0]) == 0 and self.overwriter(fill) is None):
                zeroed.add(buf)
                elided.add(fill)
            if buf in self.span:
                occupant[buf] = buf

        for op in walk(self.fn):
            if op in forwarded:
                continue
            if isinstance(op, linalg.GenericOp):  # after its fill: whether it is fresh is known
                kernels[op] = choose_kernel(op, None if op.library_call is not None else self.analysis(op),
                                            self.options.window_kernels, op in fresh, self.native)
                if unpadded is not None and op in unpadded.kernels:
                    kernels[op] = unpadded.kernels[op]
            elif isinstance(op, linalg.FillOp):
                check_fill(op)
                if op not in elided and (nxt := self.overwriter(op)) is not None:
                    elided.add(op)
                    fresh.add(nxt)
            elif isinstance(op, memref.AllocOp) and op not in placed:
                place(op)
        if self.options.native:
            self.fuse(kernels, elided, fresh, sinks, reuse)
        return MemoryPlan(
            kernels=MappingProxyType(kernels), analyses=MappingProxyType(dict(self.analyses)),
            sinks=MappingProxyType(sinks), reuse=MappingProxyType(reuse), pooled=MappingProxyType(pooled),
            parts=MappingProxyType(dict(self.parts)),
            zeroed=frozenset(zeroed),
            elided=frozenset(elided), fresh=frozenset(fresh))

    # -- padded copies read in place

    def unpad(self, skip: frozenset[Operation]) -> Unpadded:
        """Padded images the window kernels read in place (`unpad.py`); the sources' spans
        extended to their last reader."""
        def kernel_of(op: linalg.GenericOp, g: Generic) -> NativeWindow | PackedGemm | None:
            # (fresh: as a convolution's output is; a ShiftedGemm, which reads the padded
            # buffer, is then seen here as the main pass will choose it)
            k = choose_kernel(op, g, fresh=True, native=self.native)
            return k if isinstance(k, NativeWindow | PackedGemm) else None

        keep = {*self.copies_out, *skip, *(v for y, (x, _) in self.parts.items() for v in (x, y))}
        found = unpad_windows(self.top, self.analysis, kernel_of, self.span, keep)
        for src, last in found.last_read.items():
            first, _, user = self.span[src]
            self.span[src] = (first, last, user)
        return found

    # -- fused elementwise chains

    def fuse(self, kernels: dict[linalg.GenericOp, Kernel], elided: set[Operation], fresh: set[Operation],
             sinks: Mapping[SSAValue, str], reuse: Mapping[SSAValue, SSAValue]) -> None:
        """Chains of elementwise generics as one native call (`fuse.py`), where the native
        module can be had: the last generic's kernel is the chain's, the others elided."""
        if fuse.native_module() is None:
            return

        def array_of(buf: SSAValue) -> tuple[object, int] | None:
            r = root(buf)
            if not (isinstance(r, SSAValue) and isinstance(r.owner, memref.AllocOp)):
                return (r, 0) if r is not None else None
            if r in sinks:
                return ("global", sinks[r]), 0
            if r in self.parts:
                base, offset = self.parts[r]
                at = array_of(base)
                return (at[0], at[1] + offset) if at is not None else None
            return reuse.get(r, r), 0

        def live_after(buf: SSAValue, i: int) -> bool:
            r = root(buf)
            if not (isinstance(r, SSAValue) and isinstance(r.owner, memref.AllocOp)) or r in sinks \
                    or r in self.parts or any(base is r for base, _ in self.parts.values()):
                return True
            return r not in self.span or self.span[r][1] > i

        for group in fuse.fuse_groups(self.top, kernels, self.analyses, elided, fresh, array_of, live_after):
            kernels[group.members[-1]] = group
            elided.update(group.members[:-1])

    # -- fills

    def overwriter(self, fill: linalg.FillOp) -> linalg.GenericOp | None:
        """The generic right after `fill` that makes it useless, if any: it overwrites the
        whole buffer, or reduces into it with the fill value as the combiner's identity."""
        out = outputs(fill)[0]
        nxt = self.next_writer(fill, out)
        value = const_value(inputs(fill)[0])
        if not isinstance(nxt, linalg.GenericOp) or value is None:
            return None
        g = self.analysis(nxt)
        ok = g.fill_ok and not any(root(a) == root(out) for a in inputs(nxt))
        if g.kind != "parallel" and g.combiner is not None:
            ok = ok and value == identity(g.combiner, g.out.dtype)
        return nxt if ok else None

    @staticmethod
    def next_writer(fill: Operation, out: SSAValue) -> Operation | None:
        """The next op of the block that touches `out`'s memory, if it writes exactly `out`."""
        mem_root = root(out)
        if mem_root is None:
            return None
        op = fill.next_op
        while op is not None:
            views = isinstance(op, memref.CollapseShapeOp | memref.ExpandShapeOp)
            mem = [root(v) for v in op.operands if isinstance(v.type, MemRefType)]
            if isinstance(op, func.ReturnOp | scf.IfOp) or (
                op.regions and not isinstance(op, linalg.GenericOp | linalg.FillOp)
            ):
                return None
            if views or (not mem and not op.regions):
                op = op.next_op
                continue
            if None in mem:
                return None
            if mem_root not in mem:
                op = op.next_op
                continue
            if isinstance(op, linalg.GenericOp) and len(outputs(op)) == 1 and outputs(op)[0] is out:
                return op
            return None
        return None

    @staticmethod
    def first_user(first: Operation, buf: SSAValue) -> Operation | None:
        """The first op after `first` in its block that uses `buf` (None past a region op)."""
        op = first.next_op
        while op is not None:
            if buf in op.operands:
                return op
            if op.regions and not isinstance(op, linalg.GenericOp | linalg.FillOp):
                return None
            op = op.next_op
        return None

    # -- top-level buffers

    def spans(self) -> None:
        """First and last use (top-level op index, views included) of each top-level alloc."""
        index = {op: i for i, op in enumerate(self.top)}
        uses: dict[SSAValue, list[tuple[int, Operation]]] = {}
        allocs: dict[int, SSAValue | None] = {}  # id of a value → the alloc it views, or None
        for i, top in enumerate(self.top):
            # (each op nested in a top-level op counts as that op)
            for op in walk(top) if top.regions else (top,):
                if isinstance(op, memref.AllocOp):
                    continue
                for v in op._operands:
                    if id(v) in allocs:
                        r = allocs[id(v)]
                    else:
                        r = root(v) if isinstance(v.type, MemRefType) else None
                        r = allocs[id(v)] = r if isinstance(r, SSAValue) and isinstance(r.owner, memref.AllocOp) \
                            else None
                    if r is not None:
                        uses.setdefault(r, []).append((i, top))
        for r, us in uses.items():
            if r.owner in index:
                first = min(us, key=lambda u: u[0])
                self.span[r] = (first[0], max(i for i, _ in us), first[1])

    def find_parts(self) -> None:
        """`parts`: each top-level copy generic `y[i] = x[i + offset]` (all of `y`, contiguous
        in `x`) where `x` and `y` are top-level allocs, `x` allocated first and last used by
        the copy, `y` first used by it and not returned; `y`'s uses then extend `x`'s span."""
        index = {op: i for i, op in enumerate(self.top)}
        for i, op, x, y in self.top_copies(index):
            if index[x.owner] > index[y.owner] or self.span[x][1] != i or self.span[y][0] != i \
                    or isinstance(self.top[self.span[y][1]], func.ReturnOp):
                continue
            g = self.analysis(op)
            src, dst = g.accesses[0], g.out
            if g.kind != "parallel" or src.dtype != dst.dtype or not g.full_cover() or dst.offset != 0 or any(
                    src.strides[k] != dst.strides[k] for k in range(len(g.extents)) if g.extents[k] > 1):
                continue
            if self.global_sink(x) is not None or self.global_sink(y) is not None:
                continue
            self.parts[y] = (x, src.offset)
            self.copies_out.add(op)
            first, _, user = self.span[x]
            self.span[x] = (first, self.span.pop(y)[1], user)

    def top_copies(self, index: Mapping[Operation, int]) -> Iterator[tuple[int, linalg.GenericOp, SSAValue, SSAValue]]:
        """(index, op, x, y) of each top-level generic that copies the top-level alloc `x` into
        the top-level alloc `y` (one input, one output, its body yielding the input), both
        still in `span` when it is reached."""
        for i, op in enumerate(self.top):
            if not isinstance(op, linalg.GenericOp) or op.library_call is not None \
                    or len(inputs(op)) != 1 or len(outputs(op)) != 1:
                continue
            x, y = inputs(op)[0], outputs(op)[0]
            if not all(isinstance(v.owner, memref.AllocOp) and v.owner in index and v in self.span for v in (x, y)):
                continue
            block = op.body.block
            if len(block.ops) == 1 and block.last_op is not None and list(block.last_op.operands) == [block.args[0]]:
                yield i, op, x, y

    def find_concat_parts(self) -> None:
        """`parts` the other way round: each top-level copy generic `y[i + offset] = x[i]`
        (all of `x`, contiguous in `y` with `x`'s own strides) where `x` is a top-level
        alloc last used by the copy and `y` one not returned and used before only by such
        copies: `x`, and each buffer `x` was computed from in place (`in_place`: the
        bias and activation tails after a GEMM), *are* that part of `y`; `y`'s span then
        starts at the first of them."""
        index = {op: i for i, op in enumerate(self.top)}
        bases = {x for x, _ in self.parts.values()}
        done: dict[SSAValue, dict[int, int]] = {}  # y → {index of a copy elided: its part's offset}
        for i, op, x, y in self.top_copies(index):
            if op in self.copies_out or x is y or self.span[x][1] != i \
                    or isinstance(self.top[self.span[y][1]], func.ReturnOp) or x in bases or any(
                        u != i and u not in done.get(y, ()) for u in self.uses(y, self.span[y][0], i + 1)):
                continue
            g = self.analysis(op)
            src, dst = g.accesses[0], g.out
            dims = [k for k in range(len(g.extents)) if g.extents[k] > 1]
            if g.kind != "parallel" or src.dtype != dst.dtype or src.offset != 0 or any(
                    src.strides[k] != dst.strides[k] for k in dims) or src.shape is None or \
                    math.prod(g.extents[k] for k in dims if src.uses(k)) != math.prod(src.shape) or \
                    not injective([src.strides[k] for k in dims], [g.extents[k] for k in dims]):
                continue
            n = math.prod(src.shape)  # (x's elements: the part is [offset, offset + n) of y)
            if any(o < dst.offset + n and dst.offset < o + elements(inputs(self.top[j])[0])
                   for j, o in done.get(y, {}).items()):
                continue
            if self.global_sink(x) is not None or self.global_sink(y) is not None:
                continue
            chain = [x]
            while (prev := self.in_place_source(chain[-1])) is not None and prev not in bases | set(self.parts):
                chain.append(prev)
            for v in chain:
                self.parts[v] = (y, dst.offset)
            self.copies_out.add(op)
            done.setdefault(y, {})[i] = dst.offset
            first = self.span[chain[-1]][0]
            for v in chain:
                del self.span[v]
            start, last, user = self.span[y]
            self.span[y] = (min(start, first), last, user)

    def in_place_source(self, buf: SSAValue) -> SSAValue | None:
        """The top-level alloc of `buf`'s type that the op first using `buf` reads exactly as
        it writes `buf` and last uses (`in_place`), if any."""
        first, _, user = self.span[buf]
        if not isinstance(user, linalg.GenericOp):
            return None
        for v in inputs(user):
            if v is not buf and v.type == buf.type and isinstance(v.owner, memref.AllocOp) and v in self.span \
                    and self.span[v][1] == first and self.in_place(user, v, buf):
                return v
        return None

    def uses(self, buf: SSAValue, lo: int, hi: int) -> list[int]:
        """Indices in [lo, hi) of the top-level ops that use `buf` (or a view of it)."""
        return [i for i in range(lo, hi) for top in (self.top[i],)
                if any(root(v) is buf for o in (walk(top) if top.regions else (top,)) for v in o.operands)]

    def global_sink(self, buf: SSAValue) -> tuple[str, memref.CopyOp] | None:
        """(global, copy) when `buf` ends, unconditionally, in a whole-buffer copy into a
        global that the function touches nowhere else."""
        if buf not in self.span:
            return None
        copy = self.top[self.span[buf][1]]
        name = copy_into_global(copy)
        if name is None or copy.source is not buf or copy.destination.type != buf.type:
            return None
        for other in walk(self.fn):
            if isinstance(other, memref.GetGlobalOp) and other.name_.string_value() == name and any(
                    use.operation is not copy or use.index != 1 for use in other.memref.uses):
                return None
        return name, copy

    def dead_array(self, new: SSAValue, occupant: Mapping[SSAValue, SSAValue],
                   pooled: Mapping[SSAValue, int]) -> SSAValue | None:
        """An array whose occupant is dead when `new` is first used: one of `new`'s type if
        any, else (best fit) the smallest of its element type that holds it, else the
        largest, to be grown. Not pooled for a returned buffer (a result must not hold
        more memory than its own).

        Dead means last used before `new`'s first use, or (same type) by that very op when
        it is an elementwise generic reading the old buffer exactly as it writes `new` (in
        place: each element is read before it is written, as in `np.add(x, b, out=x)`).
        """
        if new not in self.span:
            return None
        first, last_new, user = self.span[new]
        returned = isinstance(self.top[last_new], func.ReturnOp)
        n, fits, short = elements(new), [], []
        assert isinstance(new.type, MemRefType)
        poolable = not returned and n * buffer(user, new.type)[1].itemsize >= self.options.pool_min_bytes
        for array, occ in occupant.items():
            last = self.span[occ][1]
            if occ.type == new.type and not (returned and array in pooled) and (
                    last < first or (last == first and self.in_place(user, occ, new))):
                return array
            assert isinstance(occ.type, MemRefType)
            if last < first and poolable and occ.type.element_type == new.type.element_type:
                size = pooled.get(array, elements(array))
                (fits if size >= n else short).append((size, array))
        if fits:
            return min(fits, key=lambda f: f[0])[1]
        return max(short, key=lambda f: f[0])[1] if short else None

    def in_place(self, op: Operation, old: SSAValue, new: SSAValue) -> bool:
        if not isinstance(op, linalg.GenericOp) or len(outputs(op)) != 1 or outputs(op)[0] is not new:
            return False
        g = self.analysis(op)
        reads = [a for a in g.accesses[:g.n_in] if a.shape is not None and root(a.value) == old]
        if any(self.parts.get(root(a.value), (None,))[0] is old for a in g.accesses[:g.n_in]):
            return False  # a part of old, read at an offset
        return g.kind == "parallel" and all(
            a.value is old and (a.strides, a.offset) == (g.out.strides, g.out.offset) for a in reads)


def elements(buf: SSAValue) -> int:
    assert isinstance(buf.type, MemRefType)
    return math.prod(buf.type.get_shape())


def check_fill(op: linalg.FillOp) -> None:
    if len(inputs(op)) != 1 or len(outputs(op)) != 1 or op.res:
        raise fail(op, "expected one scalar input and one memref output")
    buffer(op, outputs(op)[0].type)

