"""Emission: one emitter per op kind and per generic kernel, looking decisions up in the
`MemoryPlan` (emitters decide nothing about memory; they only write the code for it)."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import singledispatchmethod

import numpy as np
from xdsl.dialects import func, memref, scf
from xdsl.dialects.builtin import IntegerAttr, MemRefType
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Block, BlockArgument, Operation, SSAValue

from wrc.backends import native
from wrc.backends.arrays import ArrayModule
from wrc.backends.numpy_jit import fuse
from wrc.backends.numpy_jit.access import Access, Generic
from wrc.backends.numpy_jit.contract import optional_flags
from wrc.backends.numpy_jit.gemm import Gemm, matrix
from wrc.backends.numpy_jit.ir import (
    buffer,
    c_strides,
    fail,
    inline_constant,
    root,
    scalar_dtype,
    walks_c_order,
)
from wrc.backends.numpy_jit.kernels import (
    Elementwise,
    Fused,
    Gather,
    Kernel,
    NativeWindow,
    PackedGemm,
    Reduce,
    ShiftedGemm,
    WindowReduce,
    small_gemm,
    span,
)
from wrc.backends.numpy_jit.plan import MemoryPlan
from wrc.backends.numpy_jit.scalar import is_ufunc, scalar_expr
from wrc.backends.numpy_jit.source import Source
from wrc.errors import LoweringError

_NAME = re.compile(r"[a-z]\d+")  # a generated name
_CONST = re.compile(r"k\d+")  # a constant's


class FuncEmitter:
    """Writes the source of `def graph(G, a0, a1, ...)` for one `func.func` (hoisting:
    `bind(G)`, `scratch()` and `def graph(W, S, a0, a1, ...)`, `Source`)."""

    def __init__(self, fn: func.FuncOp, plan: MemoryPlan, arrays: ArrayModule, hoist: bool = False,
                 native: bool = False) -> None:
        self.fn = fn
        self.plan = plan
        self.native = native  # compiled kernels allowed (`matmul_into`; the plan's own are in it)
        self.arrays = arrays
        self.src = Source(arrays, once=hoist)
        self.names: dict[SSAValue, str] = {}
        # Hoisting (`JitOptions.hoist`): the names made once, in `bind` ("bind": the globals'
        # arrays and their views) or `scratch` ("scratch": temporaries and their views), and
        # the arrays returned, which stay allocated per call (the caller keeps them).
        self.phase: dict[str, str] = {}
        self.once_made: dict[str, str] = {}  # an expression made once → its name
        # Names of arrays known C-contiguous (new arrays, globals, their reshapes and parts):
        # only their reshapes are sure to be views, so only those are made once (a reshape
        # that copies must be made when the copy is read).
        self.contiguous: set[str] = set()
        self.returned: set[SSAValue] = self.returned_arrays() if hoist else set()
        # Top-level names bound once to the same array (a reused temporary's), and reshaped
        # views made at the top level, by (array, shape): a view is made once per function.
        self.same_array: dict[str, str] = {}
        self.made: dict[tuple[object, ...], str] = {}  # views made at the top level, by what they are
        self.flat: dict[SSAValue, str] = {}  # a pooled array's first alloc → its flat array
        self.occupant: dict[SSAValue, SSAValue] = {}  # a pooled array's first alloc → its last buffer
        self.in_range: dict[tuple[SSAValue, str], str] = {}  # a constant's indices → its range test's flag
        self.constants: set[str] | None = None  # the module's constant globals (see indices_in_range)
        self.pack_sizes: dict[str, int] | None = None  # the largest PackedGemm buffer per dtype (packed_buffer)

    def emit(self) -> str:
        block = self.fn.body.block
        params = []
        for arg in block.args:
            params.append(self.src.var("a"))
            self.names[arg] = params[-1]
        self.src.emit(0, f"def graph({'W, S' if self.src.once is not None else 'G'}{''.join(', ' + p for p in params)}):")
        c = self.src.const
        flags = optional_flags(self.fn)
        for arg in block.args:
            if isinstance(arg.type, MemRefType):
                shape, dtype = buffer(self.fn, arg.type)
                a, ind = self.names[arg], 1
                # An optional update input is read only when its i1 flag is set: check it
                # only then, so a partial update costs nothing per weight left out.
                if arg.index in flags:
                    self.src.emit(1, f"if {self.names[block.args[flags[arg.index]]]}:")
                    ind = 2
                # Views are built on the argument's buffer, which must be contiguous; a wrong
                # shape or dtype would be misread, not just slow: checked (~0.2 µs).
                self.src.emit(ind, f"{a} = np.asarray({a}, order={c('C')})")
                self.src.emit(ind, f"if {a}.shape != {c(shape)} or {a}.dtype != {c(dtype)}:")
                self.src.emit(ind + 1, f"_bad_arg({c(arg.index)}, {a}, {c(shape)}, {c(dtype)})")
        self.block(block, 1)
        return self.src.text()

    def block(self, block: Block, ind: int, results: Sequence[str] = ()) -> None:
        start = len(self.src.lines)
        for op in block.ops:
            if isinstance(op, scf.YieldOp):  # the end of an scf.if branch
                for r, v in zip(results, op.operands, strict=True):
                    self.src.emit(ind, f"{r} = {self.name(v)}")
            elif op not in self.plan.elided:
                _OP(type(op))(self, op, ind)  # (self.op(op, ind), see _OP)
        if len(self.src.lines) == start:
            self.src.emit(ind, "pass")

    def name(self, v: SSAValue) -> str:
        if v not in self.names:
            raise LoweringError(f"numpy backend: a value used before its definition: {v}")
        return self.names[v]

    def define(self, v: SSAValue) -> str:
        self.names[v] = self.src.var()
        return self.names[v]

    def let(self, ind: int, expr: str, *bases: str, name: str | None = None) -> str:
        """A new name (or `name`) for `expr`, a view of the arrays named `bases` (or a fact
        of them): made once with them when they are all made once in one function (`phase`)
        and this is the top level (the same expression there: the same name), else here."""
        phases = {self.phase.get(b) for b in bases}
        phase = phases.pop() if ind == 1 and len(phases) == 1 else None
        if phase is None:
            v = name or self.src.var()
            self.src.emit(ind, f"{v} = {expr}")
            return v
        v = self.once_made.get(expr)
        if v is None:
            v = self.once_made[expr] = name or self.src.var()
            self.src.hoist(phase, v, expr)
            self.phase[v] = phase
        return v

    def global_array(self, v: SSAValue, global_name: str, ind: int) -> None:
        """`v` is the array of a global: looked up in `bind` when hoisting at the top level,
        else here (in a branch: an optional update input's variable is a global only when
        its flag is set; `graph` then reads `G` too)."""
        name, expr = self.define(v), f"G[{self.src.const(global_name)}]"
        self.contiguous.add(name)  # (globals are C-contiguous: the backend contract)
        if self.src.once is None or ind != 1:
            self.src.emit(ind, f"{name} = {expr}")
        else:
            self.src.hoist("bind", name, expr)
            self.phase[name] = "bind"

    def returned_arrays(self) -> set[SSAValue]:
        """The arrays (their first allocs) that the function's results are, or are views or
        parts of: allocated at every call, not once per arena."""
        ret = self.fn.body.block.last_op
        out: set[SSAValue] = set()
        for v in ret.operands if isinstance(ret, func.ReturnOp) else ():
            r = root(v)
            while isinstance(r, SSAValue) and r not in out:
                r = self.plan.reuse.get(r, r)
                out.add(r)
                r = self.plan.parts[r][0] if r in self.plan.parts else None
        return out

    # -- function-level ops

    @singledispatchmethod
    def op(self, op: Operation, ind: int) -> None:
        """A scalar arith/math op outside any generic."""
        expr = scalar_expr(op, [self.name(v) for v in op.operands], None, self.src, self.arrays)
        if self.src.once is not None and len(op.results) == 1 and _CONST.fullmatch(expr):
            self.names[op.results[0]] = expr  # a constant: its name
            return
        for r in op.results:
            self.names[r] = self.src.var()
        self.src.emit(ind, f"{', '.join(self.names[r] for r in op.results)} = {expr}")

    @op.register
    def _(self, op: memref.AllocOp, ind: int) -> None:
        buf, c = op.memref, self.src.const
        if buf in self.names:
            return  # allocated early, for a part of it (`plan.find_concat_parts`)
        base = self.plan.parts[buf][0] if buf in self.plan.parts else None
        if base is not None and base not in self.names and isinstance(base.owner, memref.AllocOp):
            self.op(base.owner, ind)
        if buf in self.plan.sinks:  # computed straight into the global it is finally copied to
            self.global_array(buf, self.plan.sinks[buf], ind)
        elif buf in self.plan.parts:  # the contiguous part of a dead temporary it was copied from, or into
            base, offset = self.plan.parts[buf]
            shape, dtype = buffer(op, buf.type)
            strides = tuple(s * dtype.itemsize for s in c_strides(shape))
            self.names[buf] = self.let(ind, f"_nd({c(shape)}, {c(dtype)}, {self.name(base)}, "
                                            f"{c(offset * dtype.itemsize)}, {c(strides)})", self.name(base))
            self.contiguous.add(self.names[buf])
        elif buf in self.plan.reuse:  # a dead temporary's array: no allocation, no page faults
            first = self.plan.reuse[buf]
            array = self.name(first)
            view = array
            if first in self.plan.pooled:  # the last buffer's view if it has this shape
                prev = self.occupant[first]
                view = self.name(prev) if prev.type == buf.type else self.pooled_view(first, buf)
            if self.src.once is not None and _NAME.fullmatch(view):  # the same array: the same name
                self.names[buf] = view
            else:
                self.names[buf] = self.let(ind, view, self.flat.get(first, array))
                if first in self.plan.pooled or array in self.contiguous:  # a pooled view, or an alias
                    self.contiguous.add(self.names[buf])
            self.occupant[first] = buf
            if ind == 1:
                self.same_array[self.names[buf]] = self.same_array.get(array, array)
        else:
            shape, dtype = buffer(op, buf.type)
            zeroed = buf in self.plan.zeroed
            if buf in self.plan.pooled:  # a flat array, as large as the largest buffer it holds
                self.flat[buf] = self.allocate(ind, buf, (self.plan.pooled[buf],), dtype, zeroed)
                self.names[buf] = self.let(ind, self.pooled_view(buf, buf), self.flat[buf])
                self.contiguous.add(self.names[buf])
                self.occupant[buf] = buf
            else:
                self.names[buf] = self.allocate(ind, buf, shape, dtype, zeroed)

    def allocate(self, ind: int, buf: SSAValue, shape: tuple[int, ...], dtype: np.dtype, zeroed: bool) -> str:
        """A name for a new array for `buf`: allocated once per arena (in `scratch`; a zeroed
        one filled with zeros again here, as the last call left it) when hoisting, at the top
        level, and not returned; else allocated here."""
        c = self.src.const
        v = self.new_array(ind, f"np.{'zeros' if zeroed else 'empty'}({c(shape)}, {c(dtype)})", buf in self.returned)
        if zeroed and self.phase.get(v) == "scratch":
            self.src.emit(ind, f"{v}.fill({c(0)})")
        return v

    def new_array(self, ind: int, expr: str, per_call: bool = False) -> str:
        """A name for the new array `expr`: made once per arena (in `scratch`) when hoisting,
        at the top level, and not `per_call` (a result); else made here."""
        v = self.src.var()
        self.contiguous.add(v)
        if self.src.once is None or ind != 1 or per_call:
            self.src.emit(ind, f"{v} = {expr}")
        else:
            self.src.hoist("scratch", v, expr)
            self.phase[v] = "scratch"
        return v

    def pooled_view(self, first: SSAValue, buf: SSAValue) -> str:
        """`buf` as a view of the start of the pooled flat array of `first`."""
        shape, _ = buffer(self.fn, buf.type)
        n = math.prod(shape)
        flat = self.flat[first] if n == self.plan.pooled[first] else f"{self.flat[first]}[:{self.src.const(n)}]"
        return f"{flat}.reshape({self.src.const(shape)})"

    @op.register
    def _(self, op: memref.DeallocOp, ind: int) -> None:
        pass

    @op.register
    def _(self, op: memref.GetGlobalOp, ind: int) -> None:
        buffer(op, op.memref.type)
        self.global_array(op.memref, op.name_.string_value(), ind)

    @op.register
    def _(self, op: memref.CopyOp, ind: int) -> None:
        if buffer(op, op.source.type) != buffer(op, op.destination.type):
            raise fail(op, "source and destination types differ")
        src, dst = op.source, op.destination
        if (isinstance(src.owner, memref.AllocOp) and isinstance(dst.owner, memref.AllocOp)
                and self.plan.reuse.get(src, src) is self.plan.reuse.get(dst, dst)):
            return  # the destination took the source's array: a copy onto itself
        self.src.emit(ind, f"np.copyto({self.name(op.destination)}, {self.name(op.source)})")

    @op.register(memref.CollapseShapeOp)
    @op.register(memref.ExpandShapeOp)
    def _(self, op: memref.CollapseShapeOp | memref.ExpandShapeOp, ind: int) -> None:
        (shape, dtype), (src_shape, src_dtype) = buffer(op, op.result.type), buffer(op, op.src.type)
        if (math.prod(shape), dtype) != (math.prod(src_shape), src_dtype):
            raise fail(op, "source and result sizes differ")
        if op.result.uses and all(isinstance(u.operation, memref.CollapseShapeOp | memref.ExpandShapeOp)
                                  for u in op.result.uses):
            # Only reshaped again (collapse then expand around a matmul): those reshape the
            # source itself, one call instead of a chain of them.
            self.names[op.result] = self.name(op.src)
            return
        self.names[op.result] = self.reshape(self.name(op.src), shape, ind)

    @op.register
    def _(self, op: linalg.FillOp, ind: int) -> None:
        self.src.emit(ind, f"{self.name(op.outputs[0])}.fill({self.name(op.inputs[0])})")

    @op.register
    def _(self, op: linalg.GenericOp, ind: int) -> None:
        kernel = self.plan.kernels[op]
        _KERNEL(type(kernel))(self, kernel, op, ind)  # (self.kernel(kernel, op, ind), see _OP)

    @op.register
    def _(self, op: scf.IfOp, ind: int) -> None:
        results = [self.define(r) for r in op.results]
        self.src.emit(ind, f"if {self.name(op.cond)}:")
        self.block(op.true_region.block, ind + 1, results)
        if op.false_region.blocks:
            self.src.emit(ind, "else:")
            self.block(op.false_region.block, ind + 1, results)
        elif results:
            raise fail(op, "results without an else region")

    @op.register
    def _(self, op: func.ReturnOp, ind: int) -> None:
        outs, seen = [], set()
        for v in op.operands:
            if isinstance(v.type, MemRefType):
                r = root(v)
                # Results must be fresh arrays: copy what is not a buffer allocated here.
                fresh = r is not None and isinstance(r, SSAValue) and r not in seen
                seen.add(r)
                outs.append(self.name(v) + ("" if fresh else ".copy()"))
            else:
                outs.append(f"np.array({self.name(v)}, {self.src.const(scalar_dtype(op, v.type))})")
        self.src.emit(ind, f"return [{', '.join(outs)}]")

    # -- views

    def reshape(self, array: str, shape: tuple[int, ...], ind: int) -> str:
        """A name for `array` reshaped to `shape`: the view made earlier at the top level,
        else a new one."""
        key = ("reshape", self.same_array.get(array, array), tuple(shape))
        bases = (array,) if array in self.contiguous else (array, "")  # ("": made per call)
        v = self.made_once(key, f"{array}.reshape({self.src.const(tuple(shape))})", ind, *bases)
        if array in self.contiguous:
            self.contiguous.add(v)
        return v

    def made_once(self, key: tuple[object, ...], expr: str, ind: int, *bases: str) -> str:
        """A name for the view `expr` of `bases` (what `key` says it is): the one made earlier
        at the top level, else a new one (`let`), kept for later if made at the top level."""
        if key in self.made:
            return self.made[key]
        v = self.let(ind, expr, *bases)
        if ind == 1:
            self.made[key] = v
        return v

    def view(self, acc: Access, ext: Sequence[int], ind: int, dims: Sequence[int] | None = None,
             shape: Sequence[int] | None = None, strides: Sequence[int] | None = None,
             bare_ok: bool = False) -> str:
        """A strided view of an operand: loop-space by default, else given dims/shape/strides.

        `bare_ok`: the operand is only read by ufuncs, so the buffer itself may stand for a
        view that only adds leading broadcast dims.
        """
        buf = self.name(acc.value)
        if acc.shape is None:
            return buf
        if shape is None or strides is None:
            if dims is None:  # loop space: unused dims get extent 1 and broadcast
                shape = tuple(e if acc.uses(k) else 1 for k, e in enumerate(ext))
                strides = acc.strides
            else:
                shape = tuple(ext[k] for k in dims)
                strides = tuple(acc.strides[k] for k in dims)
        shape, strides = tuple(shape), tuple(strides)
        c = self.src.const
        # Cheaper than a strided view: the buffer as it is, or reshaped to insert 1-dims.
        big = [(d, s) for d, s in zip(shape, strides, strict=True) if d != 1]
        own = [(d, s) for d, s in zip(acc.shape, c_strides(acc.shape), strict=True) if d != 1]
        if acc.offset == 0 and big == own:
            lead = len(shape) - len(acc.shape)
            if shape == acc.shape or (bare_ok and lead >= 0 and shape[lead:] == acc.shape):
                return buf
            return self.reshape(buf, shape, ind)
        flat = self.flat_view(acc, shape, strides)
        if flat is not None:  # the whole buffer in another shape, or such a matrix transposed
            view = self.reshape(buf, flat[0], ind)
            return self.transposed(view, ind) if flat[1] else view
        box = self.box(acc, shape, strides)
        if box is not None:  # a slice of the buffer: cheaper to make than a strided view
            return self.let(ind, f"{buf}[{c(box)}]", buf)
        isz = acc.dtype.itemsize
        return self.let(ind, f"_nd({c(shape)}, {c(acc.dtype)}, {buf}, {c(acc.offset * isz)}, "
                             f"{c(tuple(s * isz for s in strides))})", buf)

    @staticmethod
    def flat_view(acc: Access, shape: tuple[int, ...], strides: tuple[int, ...]
                  ) -> tuple[tuple[int, ...], bool] | None:
        """(the shape to reshape the whole buffer to, whether to transpose it then) for this
        view: the view's own shape when it walks the buffer C-contiguously (a 1x1
        convolution's image as a [C, H*W] matrix), its two dims swapped and transposed when
        it is such a matrix transposed; else None. (A reshape,
        and a transpose, cost ~0.2 µs and are made once per function at the top level; a
        strided view ~1 µs, every time.)"""
        assert acc.shape is not None
        if acc.offset != 0 or math.prod(shape) != math.prod(acc.shape) or not math.prod(shape):
            return None

        if walks_c_order(shape, strides):
            return shape, False
        if len(shape) == 2 and walks_c_order(shape[::-1], strides[::-1]):
            return shape[::-1], True
        return None

    def transposed(self, array: str, ind: int) -> str:
        """`array.T`, made once per function at the top level (as `reshape`'s views)."""
        return self.made_once(("T", array), f"{array}.T", ind, array)

    @staticmethod
    def box(acc: Access, shape: tuple[int, ...], strides: tuple[int, ...]) -> tuple[slice, ...] | None:
        """The view as basic slices of its buffer, when it is a box of it (same dims and
        strides, from an offset inside it), else None."""
        assert acc.shape is not None
        if len(shape) != len(acc.shape):
            return None
        own, slices, rest = c_strides(acc.shape), [], acc.offset
        for d, s, size, cs in zip(shape, strides, acc.shape, own, strict=True):
            start, rest = divmod(rest, cs)
            if (s != cs and d != 1) or start + d > size:
                return None
            slices.append(slice(start, start + d))
        return tuple(slices) if rest == 0 else None

    # -- generic kernels

    @singledispatchmethod
    def kernel(self, kernel: Kernel, op: linalg.GenericOp, ind: int) -> None:
        raise NotImplementedError(f"no emitter for kernel {kernel!r}")

    @kernel.register(Elementwise)
    @kernel.register(Reduce)
    def _(self, kernel: Elementwise | Reduce, op: linalg.GenericOp, ind: int) -> None:
        """The body's ops as ufunc calls over loop-space views; a reduction then combines
        `expr` into the output with `comb.reduce` over the reduction dims."""
        g = self.plan.analyses[op]
        block = op.body.block
        env: dict[SSAValue, str] = {}
        shapes: dict[SSAValue, tuple[int, ...]] = {}
        n = len(g.extents)
        parallel = isinstance(kernel, Elementwise)
        for arg, acc in zip(block.args, g.accesses, strict=True):
            if arg.uses or arg.index >= g.n_in:
                env[arg] = self.view(acc, g.extents, ind, bare_ok=parallel and arg.index < g.n_in)
                shapes[arg] = tuple(g.extents[k] if acc.uses(k) else 1 for k in range(n))
        outs = [env[a] for a in block.args[g.n_in:]]
        yield_op = block.last_op
        assert isinstance(yield_op, linalg.YieldOp)

        # The value written by the last ufunc may go straight into the (single) output.
        # (Not if a later body op still reads the output's old value.)
        final: Operation | None = None
        if parallel and len(outs) == 1:
            owner = yield_op.operands[0].owner
            if (isinstance(owner, Operation) and owner.parent_block() is block
                    and is_ufunc(owner) and owner.results[0].uses.get_length() == 1):
                ops = list(block.ops)
                later = ops[ops.index(owner) + 1:]
                if not any(u.operation in later for u in block.args[g.n_in].uses):
                    final = owner

        # `select(c, a, out's own elements)`: only where `c` holds is anything written
        # (a masked fill in place: one `copyto` instead of `np.where` and a copy).
        sel = yield_op.operands[0].owner if parallel and len(outs) == 1 and final is None else None
        if not (isinstance(sel, Operation) and sel.name == "arith.select" and sel.parent_block() is block
                and sel.results[0].uses.get_length() == 1 and self.same_elements(g, sel.operands[2], g.n_in)
                and shapes[block.args[g.n_in]] == tuple(g.extents)):
            sel = None
        comb_op = yield_op.operands[0].owner if not parallel else sel
        body = [o for o in block.ops if o is not yield_op and o is not comb_op]
        early = self.early_into_output(body, final, block.args[g.n_in]) if final else None
        if shapes.get(block.args[g.n_in]) != tuple(g.extents):  # an output broadcast along a dim
            early = None
        self.body_ops(g, body, env, final, outs[0] if final else None, ind, shapes, early)

        if sel is not None:
            c, a = (env.get(v) or self.name(v) for v in sel.operands[:2])
            self.src.emit(ind, f"np.copyto({outs[0]}, {a}, where={c})")
            return
        if parallel:
            for j, v in enumerate(yield_op.operands):
                if env.get(v) != outs[j] and not self.same_elements(g, v, g.n_in + j):
                    self.src.emit(ind, f"np.copyto({outs[j]}, {env.get(v) or self.name(v)})")
            return

        assert g.expr is not None and g.combiner is not None
        expr_v = env.get(g.expr) or self.name(g.expr)
        if self.row_sum(g, shapes.get(g.expr)):
            # A sum along the innermost loop dim as a product with a column of ones: one BLAS
            # call, several times cheaper than `add.reduce` with `keepdims` on small rows.
            ones = self.src.const(self.arrays.to_device(np.ones((g.extents[-1], 1), g.out.dtype)))
            if op in self.plan.fresh:
                self.src.emit(ind, f"np.matmul({expr_v}, {ones}, out={outs[0]})")
            else:
                self.src.emit(ind, f"np.add({outs[0]}, np.matmul({expr_v}, {ones}), out={outs[0]})")
            return
        lead = self.plane_sum(g, shapes.get(g.expr))
        if lead is not None:
            # A sum over trailing dims (a global average pool's H and W) as the rows of the
            # value's [lead..., H*W] matrix times ones: one BLAS call instead of a reduce
            # with `keepdims` (its output viewed without its trailing 1-dims: still a view).
            size = math.prod(g.extents[lead:])
            ones = self.src.const(self.arrays.to_device(np.ones((size, 1), g.out.dtype)))
            rows = tuple(g.extents[:lead])
            x, o = self.reshape(expr_v, rows + (size,), ind), self.reshape(outs[0], rows + (1,), ind)
            if op in self.plan.fresh:  # (x and o: reshapes, C-contiguous; 1-d when summing all dims)
                self.matmul_into(x, ones, o, (math.prod(rows), size, 1) if rows else None, [None] * 3,
                                 g.out.dtype, ind)
            else:
                self.src.emit(ind, f"np.add({o}, np.matmul({x}, {ones}), out={o})")
            return
        target = tuple(g.extents[k] if (k in g.reduction or g.out.uses(k)) else 1 for k in range(n))
        if shapes.get(g.expr, (1,) * n) != target:
            expr_v = f"np.broadcast_to({expr_v}, {self.src.const(target)})"
        red = f"np.{g.combiner}.reduce({expr_v}, axis={self.src.const(g.reduction)}, keepdims=True"
        if op in self.plan.fresh:
            self.src.emit(ind, f"{red}, out={outs[0]})")
        else:
            self.src.emit(ind, f"np.{g.combiner}({outs[0]}, {red}), out={outs[0]})")

    @kernel.register
    def _(self, kernel: Fused, op: linalg.GenericOp, ind: int) -> None:
        """A chain of elementwise generics as one call of the native register machine
        (`fuse.py`): its program a constant, the buffers passed as they are."""
        c = self.src.const
        run = c(fuse.native_module().run)
        args = "".join(f", {self.name(v)}" for v in kernel.operands)
        self.src.emit(ind, f"{run}({c(fuse.program_array(kernel.program))}{args})")

    @kernel.register
    def _(self, kernel: WindowReduce, op: linalg.GenericOp, ind: int) -> None:
        """Per window point: the inputs as views shifted to that point, the body's ops over
        them, combined into the output in place. A fresh output takes the first point's
        value (the first two points' combination when that value is an input as it is)."""
        g = self.plan.analyses[op]
        assert g.expr is not None and g.combiner is not None
        block = op.body.block
        comb_op = block.last_op.operands[0].owner if block.last_op is not None else None
        body = [o for o in block.ops if o is not comb_op and not isinstance(o, linalg.YieldOp)]
        # The value combined at each point: an input itself, or written by the body's last
        # ufunc into the output (first point, fresh) or into one scratch array.
        last = g.expr.owner if isinstance(g.expr.owner, Operation) else None
        direct = last is not None and last in body and is_ufunc(last) and last.results[0].uses.get_length() == 1
        points = list(itertools.product(*(range(g.extents[k]) for k in g.reduction)))
        comb, c = f"np.{g.combiner}", self.src.const
        fresh = op in self.plan.fresh
        n = len(g.extents)
        red = set(g.reduction)

        # The space the ufuncs run over: the loop space, or with wide rows its dims a and b
        # merged into one of `span` elements (stride 1 in the inputs, `pitch` per row).
        space = list(range(n))
        if kernel.rows is not None:
            a, b, pitch = kernel.rows
            span = (g.extents[a] - 1) * pitch + g.extents[b]
            space.remove(b)

        def layout(acc: Access) -> tuple[tuple[int, ...], tuple[int, ...]]:
            """Shape and element strides of an operand over `space` (reduction dims fixed)."""
            if kernel.rows is None:
                return (tuple(g.extents[k] if acc.uses(k) and k not in red else 1 for k in space),
                        tuple(0 if k in red else acc.strides[k] for k in space))
            return (tuple((span if acc.uses(a) else 1) if k == a else g.extents[k] if acc.uses(k) and k not in red
                          else 1 for k in space),
                    tuple((1 if acc.uses(a) else 0) if k == a else 0 if k in red else acc.strides[k] for k in space))

        def shifted(point: tuple[int, ...]) -> dict[SSAValue, str]:
            env: dict[SSAValue, str] = {}
            for arg, acc in zip(block.args[:g.n_in], g.accesses[:g.n_in], strict=True):
                if arg.uses:
                    shift = sum(acc.strides[k] * p for k, p in zip(g.reduction, point, strict=True))
                    shape, strides = layout(acc)
                    env[arg] = self.view(replace(acc, offset=acc.offset + shift), g.extents, ind,
                                         shape=shape, strides=strides)
            return env

        out_shape = layout(g.out)[0]
        if kernel.rows is None:
            out = self.view(g.out, g.extents, ind)
        else:  # a scratch array of wide rows; its first `ext[b]` columns are the output
            out = self.src.var()
            self.src.emit(ind, f"{out} = np.empty({c(out_shape)}, {c(g.out.dtype)})")

        if g.expr in block.args:  # pools: the window's elements themselves (or its columns'
            # maxima over the window's rows: `separable_rows`)
            views = (self.separable_rows(kernel.separable, g, comb, ind) if kernel.separable
                     else [shifted(p)[g.expr] for p in points])
            if fresh and len(views) > 1:
                self.src.emit(ind, f"{comb}({views[0]}, {views[1]}, out={out})")
                views = views[2:]
            elif fresh:
                self.src.emit(ind, f"np.copyto({out}, {views[0]})")
                views = []
            for v in views:
                self.src.emit(ind, f"{comb}({out}, {v}, out={out})")
        else:
            scratch = None
            for i, point in enumerate(points):
                env = shifted(point)
                if fresh and i == 0:
                    value = self.body_ops(g, body, env, last if direct else None, out, ind)[g.expr]
                    if value != out:
                        self.src.emit(ind, f"np.copyto({out}, {value})")
                    continue
                if direct and scratch is None:
                    scratch = self.src.var()
                    self.src.emit(ind, f"{scratch} = np.empty({c(out_shape)}, {c(g.out.dtype)})")
                value = self.body_ops(g, body, env, last if direct else None, scratch, ind)[g.expr]
                self.src.emit(ind, f"{comb}({out}, {value}, out={out})")
        if kernel.rows is not None:  # the kept columns of the wide rows into the output
            isz, cs = g.out.dtype.itemsize, c_strides(out_shape)
            at = {k: cs[i] for i, k in enumerate(space)}
            at[b], at[a] = at[a], at[a] * pitch
            shape = tuple(g.extents[k] if g.out.uses(k) else 1 for k in range(n))
            self.src.emit(ind, f"np.copyto({self.view(g.out, g.extents, ind)}, _nd({c(shape)}, {c(g.out.dtype)}, "
                               f"{out}, {c(0)}, {c(tuple(at[k] * isz for k in range(n)))}))")

    @staticmethod
    def row_sum(g: Generic, expr_shape: tuple[int, ...] | None) -> bool:
        """`g` sums a float value over whole loop space along its innermost dim only, into
        every other dim (as a row sum of LayerNorm or softmax): a matrix-vector product."""
        n = len(g.extents)
        return (g.combiner == "add" and g.out.dtype in (np.float32, np.float64) and g.reduction == (n - 1,)
                and expr_shape == tuple(g.extents)
                and all(g.out.uses(k) or g.extents[k] == 1 for k in range(n - 1)))

    @staticmethod
    def plane_sum(g: Generic, expr_shape: tuple[int, ...] | None) -> int | None:
        """The number of leading dims when `g` sums a float value over whole loop space along
        its two or more trailing dims only, into every other dim (a global average pool's
        sum over H and W); else None."""
        n = len(g.extents)
        lead = n - len(g.reduction)
        if not (g.combiner == "add" and g.out.dtype in (np.float32, np.float64) and len(g.reduction) >= 2
                and g.reduction == tuple(range(lead, n)) and expr_shape == tuple(g.extents)):
            return None
        return lead if all(g.out.uses(k) or g.extents[k] == 1 for k in range(lead)) else None

    def same_elements(self, g: Generic, v: SSAValue, out: int) -> bool:
        """`v` is an input read at the very elements output `out` writes (the output took
        the input's array, same layout): copying it would copy each element onto itself."""
        if not isinstance(v, BlockArgument) or v.index >= g.n_in:
            return False
        a, o = g.accesses[v.index], g.accesses[out]
        ra, ro = root(a.value), root(o.value)
        if not (isinstance(ra, SSAValue) and isinstance(ro, SSAValue)):
            return False
        return (self.plan.reuse.get(ra, ra) is self.plan.reuse.get(ro, ro) and a.dtype == o.dtype
                and (a.strides, a.offset) == (o.strides, o.offset))

    @staticmethod
    def early_into_output(body: Sequence[Operation], final: Operation, out: SSAValue) -> Operation | None:
        """The body op whose value may also be written into the output before `final` is:
        the last op reading a block argument (an input may share the output's array), if
        it is a ufunc of the output's type whose only use comes later; e.g. softmax's
        `exp(x - max)` computes `x - max` into the output instead of a new temporary."""
        if final not in body:
            return None
        ops = body[:body.index(final) + 1]
        readers = [o for o in ops if any(isinstance(v, BlockArgument) for v in o.operands)]
        if not readers or readers[-1] is final:
            return None
        op = readers[-1]
        if not is_ufunc(op) or op.results[0].uses.get_length() != 1 or op.results[0].type != out.type:
            return None
        return op
    def separable_rows(self, sep: tuple[int, int, int, int], g: Generic, comb: str, ind: int) -> list[str]:
        """A 2-d pool's first pass (`WindowReduce.separable`): the input combined over the
        window's rows into a scratch of whole input rows (every column the windows read);
        returns the views of that scratch shifted to each window column, to be combined
        into the output."""
        r1, r2, b, step = sep
        acc, c, n = g.accesses[g.expr.index], self.src.const, len(g.extents)
        red = set(g.reduction)
        shape = [g.extents[k] if acc.uses(k) and k not in red else 1 for k in range(n)]
        strides = [0 if k in red else acc.strides[k] for k in range(n)]
        shape[b], strides[b] = (g.extents[b] - 1) * step + g.extents[r2], acc.strides[r2]
        rows = [self.view(replace(acc, offset=acc.offset + acc.strides[r1] * p), g.extents, ind,
                          shape=shape, strides=strides) for p in range(g.extents[r1])]
        scratch = self.src.var()
        self.src.emit(ind, f"{scratch} = np.empty({c(tuple(shape))}, {c(acc.dtype)})")
        self.src.emit(ind, f"{comb}({rows[0]}, {rows[1]}, out={scratch})")
        for v in rows[2:]:
            self.src.emit(ind, f"{comb}({scratch}, {v}, out={scratch})")
        isz, cs = acc.dtype.itemsize, list(c_strides(tuple(shape)))
        pitch = cs[b]
        shape[b], cs[b] = g.extents[b], pitch * step
        cols = []
        for p in range(g.extents[r2]):
            v = self.src.var()
            self.src.emit(ind, f"{v} = _nd({c(tuple(shape))}, {c(acc.dtype)}, {scratch}, {c(p * pitch * isz)}, "
                               f"{c(tuple(s * isz for s in cs))})")
            cols.append(v)
        return cols

    def body_ops(self, g: Generic, ops: Sequence[Operation], env: dict[SSAValue, str], final: Operation | None,
                 final_out: str | None, ind: int,
                 shapes: dict[SSAValue, tuple[int, ...]] | None = None,
                 early: Operation | None = None) -> dict[SSAValue, str]:
        """The values of a generic's body ops over the views of `env` (`final`, and `early`
        before it, write into `final_out`); `shapes`, when given, gets each value's
        loop-space shape."""
        n = len(g.extents)
        for body_op in ops:
            args = []
            for v in body_op.operands:
                if v in env:
                    args.append(env[v])
                else:  # defined outside the body: a scalar
                    args.append(self.name(v))
                    if shapes is not None:
                        shapes[v] = (1,) * n
            res = body_op.results[0]
            if body_op.name == "linalg.index":
                d = body_op.properties["dim"]
                assert isinstance(d, IntegerAttr)
                k = d.value.data
                shape = tuple(g.extents[k] if i == k else 1 for i in range(n))
                env[res] = self.src.const(self.arrays.to_device(np.arange(g.extents[k]).reshape(shape)))
                if shapes is not None:
                    shapes[res] = shape
                continue
            out = final_out if body_op is final else None
            if shapes is not None:
                shapes[res] = (tuple(max(s) for s in zip(*(shapes[v] for v in body_op.operands), strict=True))
                               if body_op.operands else (1,) * n)
                if body_op is early and shapes[res] == tuple(g.extents):
                    out = final_out
            expr = scalar_expr(body_op, args, out, self.src, self.arrays)
            if out is not None:
                self.src.emit(ind, expr)
                env[res] = out
            elif body_op.name == "arith.constant":
                env[res] = expr
            else:
                env[res] = self.src.var("t")
                self.src.emit(ind, f"{env[res]} = {expr}")
        return env

    @kernel.register
    def _(self, kernel: Gather, op: linalg.GenericOp, ind: int) -> None:
        """`np.take` of the rows, with the one-hot body's semantics (a negative index counts
        from the end; one still out of range gives zeros). Checked against the operand
        shapes, not trusted."""
        data, idx, out = op.inputs[0], op.inputs[1], op.outputs[0]
        (dshape, ddt), (ishape, idt), (oshape, odt) = (buffer(op, v.type) for v in (data, idx, out))
        axis = kernel.axis
        if not 0 <= axis < len(dshape) or oshape != dshape[:axis] + ishape + dshape[axis + 1:] \
                or idt.kind not in "iu" or ddt != odt:
            call = op.library_call.data if op.library_call is not None else ""
            raise fail(op, f"{call}: data {ddt}{list(dshape)}, indices {idt}{list(ishape)} and output "
                           f"{odt}{list(oshape)} along axis {axis} are not a gather")
        c, e = self.src.const, self.src.emit
        d, i, o = self.name(data), self.name(idx), self.name(out)
        t, ok = self.src.var(), self.src.var()
        size = c(dshape[axis])
        mask_shape = (1,) * axis + ishape + (1,) * (len(dshape) - axis - 1)
        if math.prod(ishape) == 0:  # nothing to take (and no minimum to check)
            return
        known = inline_constant(idx)
        at = ind + 1  # where the masked copy goes
        if known is not None and -dshape[axis] <= known.min() and known.max() < dshape[axis]:
            # constant indices in range, checked now; one index (torchvision's q, k, v =
            # proj[0], proj[1], proj[2]) is a copy of a slice (~1 µs against ~2 for np.take)
            if known.ndim == 0:
                key = (slice(None),) * axis + (int(known) % dshape[axis],)
                e(ind, f"np.copyto({o}, {d}[{c(key)}])")
            else:
                e(ind, f"{d}.take({i}, axis={c(axis)}, out={o}, mode='wrap')")  # (the method: ~0.8 µs, np.take ~2)
            return
        flag = None if known is not None else self.indices_in_range(idx, size, ind)
        if known is not None:
            at = ind  # constant indices out of range, known now: the masked copy alone
        elif flag is None and self.arrays.host:
            # NumPy's take raises IndexError unless every index is in [-size, size), counting
            # -size..-1 from the end: one call where checking the min and max first is three
            # (~5 against ~12 µs on BERT's 16 token ids). Then mask the out-of-range ones.
            e(ind, "try:")
            e(ind + 1, f"np.take({d}, {i}, axis={c(axis)}, out={o})")
            e(ind, "except IndexError:")
        else:
            # All indices in [-size, size) (a constant's flag, or two reductions over the
            # indices): take straight into the output, unbuffered; mode "wrap" maps -size..-1
            # to what they count from the end. Else mask the out-of-range ones.
            e(ind, f"if {flag or f'{i}.min() >= -{size} and {i}.max() < {size}'}:")
            e(ind + 1, f"np.take({d}, {i}, axis={c(axis)}, out={o}, mode='wrap')")
            e(ind, "else:")
        e(at, f"{t} = np.where({i} < 0, {i} + {size}, {i})")
        e(at, f"{ok} = np.logical_and({t} >= 0, {t} < {size})")
        e(at, f"np.copyto({o}, np.where({ok}.reshape({c(mask_shape)}), np.take({d}, np.where({ok}, {t}, 0), "
              f"axis={c(axis)}), {c(np.zeros((), ddt))}))")

    def indices_in_range(self, idx: SSAValue, size: str, ind: int) -> str | None:
        """A flag that every index of `idx` lies in [-size, size), for the indices of a constant
        global, else None. They cannot change while the function runs: the first top-level
        gather of them computes the test into the flag, later ones read it (the hoisted gathers
        of many weights by one shared row read it thousands of times)."""
        owner = idx.owner
        if not isinstance(owner, memref.GetGlobalOp):
            return None
        if self.constants is None:
            module = self.fn.parent_block()  # (globals are top-level ops)
            self.constants = {g.sym_name.data for g in (module.ops if module is not None else ())
                              if isinstance(g, memref.GlobalOp) and g.constant is not None}
        if owner.name_.string_value() not in self.constants:
            return None
        flag = self.in_range.get((idx, size))
        if flag is None and ind == 1:
            i = self.name(idx)
            flag = self.in_range[idx, size] = self.let(ind, f"{i}.min() >= -{size} and {i}.max() < {size}", i,
                                                       name=self.src.var("r"))
        return flag

    @kernel.register
    def _(self, plan: Gemm, op: linalg.GenericOp, ind: int) -> None:
        """`out (+)= Σ x*y` as one (batched) matmul over regrouped views."""
        g = self.plan.analyses[op]
        ext, c = g.extents, self.src.const
        grp = [plan.batch] if plan.batch else []

        def operand(acc: Access, groups: list[tuple[int, ...]]) -> str:
            mat = matrix(groups, acc.strides, ext)
            if mat is not None:
                return self.view(acc, ext, ind, shape=mat[0], strides=mat[1])
            full = [d for gr in groups for d in gr]
            v = self.view(acc, ext, ind, dims=full)
            return f"np.ascontiguousarray({v}).reshape({c(tuple(math.prod(ext[d] for d in gr) for gr in groups))})"

        a = operand(g.accesses[plan.x], [*grp, plan.m, plan.k])
        b = operand(g.accesses[plan.y], [*grp, plan.k, plan.n])
        omat = matrix([*grp, plan.m, plan.n], g.out.strides, ext)
        fresh = op in self.plan.fresh
        if fresh and omat is not None:
            o = self.view(g.out, ext, ind, shape=omat[0], strides=omat[1])
            x, y = g.accesses[plan.x], g.accesses[plan.y]
            mkn = None if grp or not x.dtype == y.dtype == g.out.dtype else tuple(
                math.prod(ext[d] for d in gr) for gr in (plan.m, plan.k, plan.n))
            mats = [matrix(gr, acc.strides, ext) for acc, gr in ((x, [plan.m, plan.k]), (y, [plan.k, plan.n]))]
            self.matmul_into(a, b, o, mkn, [*mats, omat], g.out.dtype, ind)
            return
        dims = plan.batch + plan.m + plan.n
        o = self.view(g.out, ext, ind, dims=dims)
        res = f"np.matmul({a}, {b}).reshape({c(tuple(ext[d] for d in dims))})"
        if fresh:
            self.src.emit(ind, f"np.copyto({o}, {res})")
        else:
            self.src.emit(ind, f"np.add({o}, {res}, out={o})")


    @kernel.register
    def _(self, plan: NativeWindow, op: linalg.GenericOp, ind: int) -> None:
        """One call of the compiled `window.conv` (`window.pool`) on the operands' buffers,
        with each view's element offset and strides over the kernel's loop slots
        (`NativeWindow.dims`); for an unpadded image (`NativeWindow.pad`) its planes' offset
        and strides, then its rows, columns, first window origin and row and column steps."""
        g = self.plan.analyses[op]
        module = native.load("window")
        assert module is not None  # the plan chose it: it was built
        c, pad = self.src.const, plan.pad

        def slots(steps: Sequence[int]) -> list[int]:
            return [0 if d is None else steps[d] for d in plan.dims]

        params: list[int] = [0 if op in self.plan.fresh else 1]
        params += [1 if d is None else g.extents[d] for d in plan.dims]
        x_acc = g.accesses[plan.x]
        params += [pad.offset, *slots(pad.strides)] if pad else [x_acc.offset, *slots(x_acc.strides)]
        w_acc = g.accesses[plan.w] if plan.w is not None else None
        params += [w_acc.offset, *slots(w_acc.strides)] if w_acc else [0] * (1 + len(plan.dims))
        params += [g.out.offset, *slots(g.out.strides)]
        if pad:
            params += [pad.rows, pad.cols, pad.row0, pad.col0, *slots(pad.rsteps), *slots(pad.csteps)]
        x, o = self.name(pad.source if pad else x_acc.value), self.name(g.out.value)
        if w_acc is None:
            self.src.emit(ind, f"{c(module.pool)}({x}, {o}, {c(plan.op)}, {c(tuple(params))})")
        else:
            self.src.emit(ind, f"{c(module.conv)}({x}, {self.name(w_acc.value)}, {o}, {c(tuple(params))})")

    @kernel.register
    def _(self, plan: PackedGemm, op: linalg.GenericOp, ind: int) -> None:
        """`window.pack` of the image into its [batch,] matrix (`packed_buffer`), with the
        params of `window.conv` (no weights; the output the buffer, C-contiguous over the
        slots), then the plan's one `np.matmul`, written into the output as the GEMM's."""
        g = self.plan.analyses[op]
        gemm, ext, c, pad = plan.gemm, g.extents, self.src.const, plan.pad
        module = native.load("window")
        assert module is not None  # the plan chose it: it was built
        dims = (None,) * (8 - len(plan.dims)) + plan.dims
        size = [1 if d is None else ext[d] for d in dims]

        def slots(steps: Sequence[int]) -> list[int]:
            return [0 if d is None else steps[d] for d in dims]

        x_acc = g.accesses[plan.x]
        params = [0, *size]
        params += [pad.offset, *slots(pad.strides)] if pad else [x_acc.offset, *slots(x_acc.strides)]
        params += [0] * 9 + [0, *c_strides(tuple(size))]
        if pad:
            params += [pad.rows, pad.cols, pad.row0, pad.col0, *slots(pad.rsteps), *slots(pad.csteps)]
        shape = plan.shape(ext)
        buf = self.packed_buffer(shape, x_acc.dtype, ind)
        x = self.name(pad.source if pad else x_acc.value)
        self.src.emit(ind, f"{c(module.pack)}({x}, {buf}, {c(tuple(params))})")
        other = gemm.y if plan.x == gemm.x else gemm.x
        grp = [gemm.batch] if gemm.batch else []
        groups = [*grp, gemm.k, gemm.n] if other == gemm.y else [*grp, gemm.m, gemm.k]
        mat = matrix(groups, g.accesses[other].strides, ext)
        assert mat is not None  # (packed_gemm: only the image is copied)
        w = self.view(g.accesses[other], ext, ind, shape=mat[0], strides=mat[1])
        a, b = (buf, w) if plan.x == gemm.x else (w, buf)
        omat = matrix([*grp, gemm.m, gemm.n], g.out.strides, ext)
        assert omat is not None
        o = self.view(g.out, ext, ind, shape=omat[0], strides=omat[1])
        if op in self.plan.fresh:
            mkn = None if grp else tuple(math.prod(ext[d] for d in gr) for gr in (gemm.m, gemm.k, gemm.n))
            views = [None, mat] if plan.x == gemm.x else [mat, None]  # (the packed buffer: C-contiguous)
            self.matmul_into(a, b, o, mkn, [*views, omat], x_acc.dtype, ind)
        else:
            self.src.emit(ind, f"np.add({o}, np.matmul({a}, {b}), out={o})")

    def matmul_into(self, a: str, b: str, o: str, mkn: tuple[int, int, int] | None,
                    views: Sequence[tuple[tuple[int, ...], tuple[int, ...]] | None], dtype: np.dtype, ind: int) -> None:
        """`o = a @ b` for a fresh `o`: the compiled `gemm.matmul` for a small float32 GEMM
        (`kernels.small_gemm`; `mkn` its sizes, None when batched) whose `a` and `o` are
        C-contiguous matrices and `b` one or one transposed (`views`: each one's shape and
        element strides, None for an operand that is a contiguous copy), else `np.matmul`."""
        def contiguous(view: tuple[tuple[int, ...], tuple[int, ...]] | None, order: int = 1) -> bool:
            return view is None or walks_c_order(view[0][::order], view[1][::order])

        transposed = not contiguous(views[1]) and contiguous(views[1], -1)
        module = native.load("gemm") if (self.native and dtype == np.float32 and mkn
                                         and small_gemm(*mkn, transposed)) else None
        if module is not None and contiguous(views[0]) and contiguous(views[2]) and (transposed or contiguous(views[1])):
            self.src.emit(ind, f"{self.src.const(module.matmul)}({a}, {b}, {o})")
        else:
            self.src.emit(ind, f"np.matmul({a}, {b}, out={o})")

    def packed_buffer(self, shape: tuple[int, ...], dtype: np.dtype, ind: int) -> str:
        """A buffer for a `PackedGemm`'s packed image: a view of the start of one flat array
        per arena (per call without hoisting) and element type, as large as the function's largest (made at the first
        one; each shape's view made once), so a model's im2col buffers cost one allocation
        and its page faults, not one per convolution."""
        if self.pack_sizes is None:
            self.pack_sizes = {}
            for k_op, k in self.plan.kernels.items():
                if isinstance(k, PackedGemm):
                    g = self.plan.analyses[k_op]
                    name = g.accesses[k.x].dtype.name
                    self.pack_sizes[name] = max(self.pack_sizes.get(name, 0), math.prod(k.shape(g.extents)))
        c = self.src.const
        flat = self.made.get(("packed", dtype.name))
        if flat is None:  # (once per arena when hoisting, as other temporaries)
            flat = self.new_array(ind, f"np.empty({c((self.pack_sizes[dtype.name],))}, {c(dtype)})")
            if ind == 1:
                self.made[("packed", dtype.name)] = flat
        n = math.prod(shape)
        view = flat if n == self.pack_sizes[dtype.name] else f"{flat}[:{c(n)}]"
        return self.made_once(("packed", dtype.name, shape), f"{view}.reshape({c(shape)})", ind, flat)

    @kernel.register
    def _(self, plan: ShiftedGemm, op: linalg.GenericOp, ind: int) -> None:
        """Per window point `np.matmul(w[:, :, i, j], rows shifted to (i, j))`, summed in a
        wide-row scratch (the first point written into it, the others through one more);
        the kept columns copied into the output."""
        g = self.plan.analyses[op]
        ext, c, n = g.extents, self.src.const, len(g.extents)
        x, w = g.accesses[plan.x], g.accesses[plan.w]
        a, b, pitch = plan.rows
        cols = span(g, plan.rows)
        wide_shape = tuple(ext[d] for d in plan.batch) + (ext[plan.f], cols)
        wide, tmp = self.src.var(), None
        self.src.emit(ind, f"{wide} = np.empty({c(wide_shape)}, {c(g.out.dtype)})")
        for i, point in enumerate(itertools.product(*(range(ext[d]) for d in plan.window))):
            dx = sum(x.strides[d] * p for d, p in zip(plan.window, point, strict=True))
            dw = sum(w.strides[d] * p for d, p in zip(plan.window, point, strict=True))
            xv = self.view(replace(x, offset=x.offset + dx), ext, ind,
                           shape=[ext[d] for d in plan.batch] + [ext[plan.c], cols],
                           strides=[x.strides[d] for d in plan.batch] + [x.strides[plan.c], 1])
            wv = self.view(replace(w, offset=w.offset + dw), ext, ind, shape=[ext[plan.f], ext[plan.c]],
                           strides=[w.strides[plan.f], w.strides[plan.c]])
            if i == 0:
                self.src.emit(ind, f"np.matmul({wv}, {xv}, out={wide})")
                continue
            if tmp is None:
                tmp = self.src.var()
                self.src.emit(ind, f"{tmp} = np.empty({c(wide_shape)}, {c(g.out.dtype)})")
            self.src.emit(ind, f"np.matmul({wv}, {xv}, out={tmp})")
            self.src.emit(ind, f"np.add({wide}, {tmp}, out={wide})")
        isz, ws = g.out.dtype.itemsize, c_strides(wide_shape)
        at = {d: ws[j] for j, d in enumerate(plan.batch)}
        at.update({plan.f: ws[-2], a: pitch, b: 1})
        shape = tuple(ext[k] if g.out.uses(k) else 1 for k in range(n))
        self.src.emit(ind, f"np.copyto({self.view(g.out, ext, ind)}, _nd({c(shape)}, {c(g.out.dtype)}, {wide}, "
                           f"{c(0)}, {c(tuple(at.get(k, 0) * isz for k in range(n)))}))")


# `self.op(op, ind)` and `self.kernel(...)` where they run for every op: singledispatchmethod's
# `__get__` makes and wraps a new function at each call in Python 3.11 (~15 % of emission);
# its dispatcher's `dispatch` finds the same emitter, cached per class.
_OP = FuncEmitter.__dict__["op"].dispatcher.dispatch
_KERNEL = FuncEmitter.__dict__["kernel"].dispatcher.dispatch
