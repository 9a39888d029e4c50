"""How a `linalg.generic` runs: one kernel per kind of work, chosen before any emission.

Each kernel is a value the plan holds and `emit.FuncEmitter` has one emitter for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import BlockArgument, Operation, SSAValue

from wrc.backends.numpy_jit.access import Access, Generic
from wrc.backends.numpy_jit.contract import gather_axis
from wrc.backends.numpy_jit.gemm import Gemm, matrix, plan_gemm
from wrc.backends.numpy_jit.ir import root


@dataclass(frozen=True)
class Elementwise:
    """An all-parallel body: a few ufunc calls over views, the last one writing with `out=`."""


@dataclass(frozen=True)
class Reduce:
    """`yield comb(out, expr)`: `expr` over the views, then `comb.reduce` over the reduction dims."""


@dataclass(frozen=True)
class WindowReduce:
    """A reduction over small sliding windows (pools, depthwise convolutions): per window
    point, the body over shifted views (no window copy, no im2col), combined into the
    output in place (`np.maximum(out, view, out=out)`, `np.add(out, x * w, out=out)`).

    `rows` = (a, b, pitch): the output's two innermost loop dims (a row dim, a column dim
    of stride 1) read rows `pitch` elements apart in every input that uses them (a padded
    image, stride 1). Each point then runs over whole wide rows, `(ext[a] - 1) * pitch +
    ext[b]` contiguous elements (the columns past the row end are computed and dropped),
    into a scratch array copied out once: NumPy's inner loops become long instead of one
    output row.

    `separable` = (r1, r2, b, step): a pool (the body combines an input as it is) over a 2-d
    window, reduced over `r1` (the window's rows) into a scratch of whole input rows, then
    over `r2` (its columns) from that scratch: KH + KW ufunc calls instead of KH * KW, the
    first pass over contiguous rows. `b` is the output's column dim, `step` its stride in
    units of `r2`'s (the pool's horizontal stride). Measured faster than `rows` for stride-1
    pools too (bench --only kernels), so it takes precedence.
    """

    rows: tuple[int, int, int] | None = None
    separable: tuple[int, int, int, int] | None = None


MAX_WINDOW = 64
"""Largest window (product of the reduction extents) unrolled into one ufunc call per point:
beyond it the per-call overhead outweighs reading the input window by window."""


MIN_WIDE_ROWS = 2048
"""Fewest elements per wide row plane for a depthwise convolution to run over wide rows
rather than as its im2col GEMM: on smaller images the GEMM's few calls win (one thread, ms,
wide rows / GEMM: 144 channels 56x56 1.25 / 1.60; 96 x 28x28 0.50 / 0.32; 16 x 32x32
0.13 / 0.07)."""


@dataclass(frozen=True)
class ShiftedGemm:
    """A stride-1 convolution with few filters for its input channels (F ≤ C / 4, as
    DenseNet's 3x3 convolutions 128 → 32): per window point, one GEMM of the filters' [F, C]
    slice with the padded input read as C wide rows (`WindowReduce.rows`: a plain view),
    summed in a wide-row scratch whose kept columns are copied out at the end. It copies
    F·span elements per point instead of the im2col's C·OH·OW.

    `x`, `w`: operand indices of the image and the filters; `batch`: dims of the image and
    the output only; `f`: the filter dim; `c`: the channel dim (contracted by each GEMM);
    `window`: the other reduction dims (the points)."""

    x: int
    w: int
    rows: tuple[int, int, int]
    batch: tuple[int, ...]
    f: int
    c: int
    window: tuple[int, ...]


MIN_CHANNELS_PER_FILTER = 4
"""`ShiftedGemm` only when C ≥ 4 F: with as many filters as channels (ResNet) the im2col
GEMM is faster (docs/performance.md, window kernels)."""


@dataclass(frozen=True)
class Gather:
    """A lowered `ge.gather`: `np.take` of the rows along `axis`."""

    axis: int


@dataclass(frozen=True)
class PaddedImage:
    """The unpadded image a `NativeWindow` reads in place of the padded copy the lowering
    makes (`unpad.py`; the copy, its buffer and fill are elided): C-contiguous planes of
    `rows` x `cols` elements of `source`, a tap outside them reading the combiner's
    identity (the fill). The padded view's element offset and strides, digit by digit:
    `offset` and `strides` (per loop dim) step the planes, in elements of `source`;
    `row0`, `col0` are the first window origin's row and column in the image (negative:
    in the padding) and `rsteps`, `csteps` (per loop dim) step them."""

    source: SSAValue
    rows: int
    cols: int
    offset: int
    strides: tuple[int, ...]
    row0: int
    col0: int
    rsteps: tuple[int, ...]
    csteps: tuple[int, ...]


@dataclass(frozen=True)
class NativeWindow:
    """A depthwise convolution (one filter per channel: no loop dim where BLAS would reuse an
    operand) as one call of the compiled `window.conv` (`wrc/backends/native/window.c`): per
    output element, the sum over its window in registers, instead of an im2col copy and a
    batched matrix-vector product or one NumPy pass per window point; or a max or sum pool
    as one call of `window.pool` instead of the separable ufunc calls (`op` "max", "sum").

    `x`, `w`: operand indices of the image and the filters (None for a pool); `dims`: the
    loop dim of each of the C loop's slots (i0, i1, i2, i3: outer output dims, by decreasing
    output stride; j: the output's innermost dim; r, p, q: window dims, by decreasing image
    stride), None for a slot of extent 1; `pad`: the unpadded image read instead of
    operand `x`, when the plan elided its padded copy."""

    x: int
    w: int | None
    dims: tuple[int | None, ...]
    op: str = "conv"
    pad: PaddedImage | None = None


NATIVE_DTYPES = ("float32",)
"""Element types `window.conv` runs; other types keep the NumPy forms (float64's loops would
double the one-time build of window.c, ~4 s of CPU, for models that hardly exist)."""


@dataclass(frozen=True)
class PackedGemm:
    """A convolution's GEMM (`gemm`) whose image operand `x` is not a matrix BLAS takes (its
    im2col): packed by one call of the compiled `window.pack` into a C-contiguous buffer in
    the GEMM's group order (`dims`: its loop dims, outer first), then the one `np.matmul`
    of the plan. NumPy's `ascontiguousarray` of the 5-d window view walks runs of one
    output row (16 elements on a 16x16 plane) through its generic strided loop; the C loop
    copies them (memcpy) and writes a padded image's border as zeros (`pad`: the unpadded
    image read in place, `unpad.py`; `op` "conv": the padding it reads as nothing is 0)."""

    gemm: Gemm
    x: int
    dims: tuple[int, ...]
    op: str = "conv"
    pad: PaddedImage | None = None

    def groups(self) -> list[tuple[int, ...]]:
        """The packed operand's dim groups: [batch,] M, K or [batch,] K, N."""
        g = self.gemm
        return [*([g.batch] if g.batch else []), *((g.m, g.k) if self.x == g.x else (g.k, g.n))]

    def shape(self, extents: Sequence[int]) -> tuple[int, ...]:
        """The packed buffer's shape: the [batch,] matrix BLAS takes."""
        return tuple(math.prod(extents[d] for d in gr) for gr in self.groups())


PACK_DTYPES = ("float32", "float64")
"""Element types `window.pack` copies (4- and 8-byte items)."""


SMALL_GEMM = 1 << 18
"""Products (M·K·N) up to which a float32 GEMM of C-contiguous matrices runs as the compiled
`gemm.matmul` instead of `np.matmul` (whose own call, ~1.5-2 µs, is most of a GEMM of a few
thousand products); above, only GEMMs of few rows (`FEW_ROWS`) or of at most `NARROW_GEMM`
columns (a CNN's late layers over 4x4 planes: one panel of 16 columns, the left side read once), where its 6 x 16 blocks
measured 1.4-1.5x faster than OpenBLAS's ([256, 2304] @ [2304, 16]); with more panels the
left side is read once a panel, and large ones measured up to 1.8x slower ([512, 2048] @
[2048, 49])."""
NARROW_GEMM = 16
FEW_ROWS, DEEP_GEMM = (4, 16), 256
"""And any GEMM of 4 to 16 rows (`FEW_ROWS`: at most three of its 6-row blocks, each
16-column panel of the right side read at most three times) over at least `DEEP_GEMM`
products per output (a narrow CNN's 3x3 convolution): [8, 576] @ [576, 256] 47 -> 30 us,
[16, 576] @ [576, 3136] 0.68x, [16, 288] @ [288, 1024] 0.76-0.86x, [4, 768] @ [768, 768]
0.62x OpenBLAS's time; with fewer products per output (k = 3 to 64), more rows ([32, 1152]
@ [1152, 784] 1.15-1.3x, [64, 147] @ [147, 12544] 1.2x) or one or two ([2, 512] @ [512, 512]
1.7x, [1, 512] @ [512, 1024] 5x: OpenBLAS's matrix-vector product) OpenBLAS measured faster
(docs/performance.md, session 9)."""
SMALL_DOT = 1 << 14
"""Products up to which a GEMM of fewer than 8 columns, or whose right side is a C-contiguous
matrix transposed (a squeeze-excite layer's weight), runs as `gemm.matmul`'s dot products
(and any matrix-vector product of one row up to `SMALL_GEMM`): 16 columns a block would
mostly compute zeros, and above this the dot products measured slower than BLAS."""


def small_gemm(m: int, k: int, n: int, transposed: bool = False) -> bool:
    """Whether an [m, k] @ [k, n] float32 GEMM runs as `gemm.matmul` (`SMALL_GEMM`,
    `SMALL_DOT`); `transposed`: the right side is a C-contiguous [n, k] matrix transposed."""
    if transposed or n < 8:
        return m * k * n <= SMALL_DOT or (m == 1 and k * n <= SMALL_GEMM)
    return m * k * n <= SMALL_GEMM or n <= NARROW_GEMM or (FEW_ROWS[0] <= m <= FEW_ROWS[1] and k >= DEEP_GEMM)


@dataclass(frozen=True)
class Fused:
    """A chain of elementwise generics (and row reductions between them) run as one call of
    the native register machine (`fuse.py`, `wrc/backends/native/elementwise.c`), at the
    chain's last generic (the others are elided): `run(program, *operands)`. `program`: the int64 words the machine
    reads (loop space, operand strides, instructions); `operands`: the buffers passed;
    `members`: the generics it runs."""

    program: tuple[int, ...]
    operands: tuple[SSAValue, ...]
    members: tuple[linalg.GenericOp, ...] = field(compare=False)


Kernel = Elementwise | Reduce | Gemm | WindowReduce | ShiftedGemm | NativeWindow | PackedGemm | Gather | Fused


def wide_rows(g: Generic) -> tuple[int, int, int] | None:
    """`WindowReduce.rows` for `g`, when every input is read in rows of one pitch, at most
    twice the row length (the dropped columns cost at most as much as the kept ones)."""
    block = g.op.body.block
    par = [k for k in range(len(g.extents)) if k not in g.reduction and g.extents[k] > 1]
    if len(par) < 2:
        return None
    a, b = par[-2:]
    if (g.out.strides[a], g.out.strides[b]) != (g.extents[b], 1):
        return None
    pitches = set()
    for arg, acc in zip(block.args[:g.n_in], g.accesses[:g.n_in], strict=True):
        if not arg.uses or (not acc.uses(a) and not acc.uses(b)):
            continue  # broadcast along whole images (a weight)
        if acc.strides[b] != 1 or not acc.uses(a):
            return None
        pitches.add(acc.strides[a])
    if len(pitches) != 1:
        return None
    (pitch,) = pitches
    return (a, b, pitch) if g.extents[b] < pitch <= 2 * g.extents[b] else None


def span(g: Generic, rows: tuple[int, int, int]) -> int:
    """Elements per wide row plane (`WindowReduce.rows`)."""
    a, b, pitch = rows
    return (g.extents[a] - 1) * pitch + g.extents[b]


def separable(g: Generic) -> tuple[int, int, int, int] | None:
    """`WindowReduce.separable` for `g`, when it is a pool over a 2-d window of one input
    whose column dim steps a whole number of window columns."""
    block = g.op.body.block
    if len(g.reduction) != 2 or g.expr not in block.args or g.expr.index >= g.n_in:
        return None
    acc = g.accesses[g.expr.index]
    r1, r2 = sorted(g.reduction, key=lambda k: -abs(acc.strides[k]))
    unit = acc.strides[r2]
    if unit <= 0 or acc.strides[r1] <= unit:
        return None
    cols = [k for k in range(len(g.extents)) if k not in g.reduction and g.extents[k] > 1 and g.out.uses(k)
            and acc.strides[k] > 0 and acc.strides[k] % unit == 0 and acc.strides[k] < acc.strides[r1]]
    if not cols:
        return None
    b = min(cols, key=lambda k: acc.strides[k])
    return r1, r2, b, acc.strides[b] // unit


def shifted_gemm(g: Generic, rows: tuple[int, int, int]) -> ShiftedGemm | None:
    """`ShiftedGemm` for a multiply-accumulate `g` whose image is read in wide `rows`."""
    assert g.mac is not None
    a, b, _ = rows
    ix = next((i for i in g.mac if g.accesses[i].uses(a)), None)
    if ix is None:
        return None
    iw = g.mac[1] if ix == g.mac[0] else g.mac[0]
    x, w = g.accesses[ix], g.accesses[iw]
    batch, fs, cs, window = [], [], [], []
    for k, e in enumerate(g.extents):
        if e == 1 or k in (a, b):
            continue
        if k in g.reduction:
            if not (x.uses(k) and w.uses(k)):
                return None
            (window if x.strides[k] in (x.strides[a], x.strides[b]) else cs).append(k)
        elif x.uses(k) and not w.uses(k):
            batch.append(k)
        elif w.uses(k) and not x.uses(k):
            fs.append(k)
        else:
            return None  # groups: a dim of all three
    if len(fs) != 1 or len(cs) != 1 or w.uses(a) or w.uses(b):
        return None
    if g.extents[cs[0]] < MIN_CHANNELS_PER_FILTER * g.extents[fs[0]]:
        return None
    return ShiftedGemm(ix, iw, rows, tuple(batch), fs[0], cs[0], tuple(window))


def native_window(op: linalg.GenericOp, g: Generic) -> NativeWindow | None:
    """`NativeWindow` for `g`, when it is a float multiply-accumulate over sliding windows
    in which every output dim is an image dim (a depthwise convolution: no filter dim of
    weights only) and every window dim is read by both operands, of at most 4 + 1 output
    and 3 window dims, none of whose inputs is the output's memory."""
    if g.mac is None or not g.windowed or g.out.dtype.name not in NATIVE_DTYPES:
        return None
    e = g.expr.owner if g.expr is not None else None
    if not isinstance(e, Operation) or e.name != "arith.mulf" \
            or any(root(v) == root(op.outputs[0]) for v in op.inputs):
        return None
    i, k = g.mac
    a, b = g.accesses[i], g.accesses[k]
    if a.dtype != g.out.dtype or b.dtype != g.out.dtype:
        return None
    dims = [d for d in range(len(g.extents)) if g.extents[d] > 1]
    par = sorted((d for d in dims if d not in g.reduction), key=lambda d: -g.out.strides[d])
    if not par or len(par) > 5 or len(g.reduction) > 3:
        return None
    inner = par[-1]
    if not a.uses(inner) and b.uses(inner):
        (i, a), (k, b) = (k, b), (i, a)
    if any(not a.uses(d) for d in par) or any(not (a.uses(d) and b.uses(d)) for d in g.reduction):
        return None
    return NativeWindow(i, k, _slots(g, par, a))


def _slots(g: Generic, par: list[int], x: Access) -> tuple[int | None, ...]:
    """`NativeWindow.dims`: the output dims `par` (by decreasing output stride) and the
    window dims by decreasing stride of the image `x`."""
    window = sorted(g.reduction, key=lambda d: -abs(x.strides[d]))
    return (*[None] * (5 - len(par)), *par, *[None] * (3 - len(window)), *window)


def packed_gemm(g: Generic, gemm: Gemm) -> PackedGemm | None:
    """`PackedGemm` for a convolution's GEMM plan (a windowed generic, or a strided 1x1
    convolution's subsample) that copies exactly one input (its image) and takes the other
    input and the output as matrix views, in at most 8 dims; the image made the right side
    where the others stay matrices (the plan may have put it left to avoid short rows in
    NumPy's copy, which the C loop copies as blocks: `window.pack`)."""
    if gemm.cost <= 0 or g.out.dtype.name not in PACK_DTYPES:
        return None
    grp = [gemm.batch] if gemm.batch else []
    sides = {gemm.x: [*grp, gemm.m, gemm.k], gemm.y: [*grp, gemm.k, gemm.n]}
    copied = [i for i, groups in sides.items() if matrix(groups, g.accesses[i].strides, g.extents) is None]
    if len(copied) != 1 or matrix([*grp, gemm.m, gemm.n], g.out.strides, g.extents) is None:
        return None
    (i,) = copied
    if i == gemm.x:  # the image as the right side: rows of output columns packed, the output as it is
        swapped = replace(gemm, x=gemm.y, y=gemm.x, m=gemm.n, n=gemm.m)
        if matrix([*grp, swapped.m, swapped.k], g.accesses[swapped.x].strides, g.extents) is not None \
                and matrix([*grp, swapped.m, swapped.n], g.out.strides, g.extents) is not None:
            gemm = swapped
            sides = {gemm.x: [*grp, gemm.m, gemm.k], gemm.y: [*grp, gemm.k, gemm.n]}
    dims = tuple(d for gr in sides[i] for d in gr)
    acc = g.accesses[i]
    if len(dims) > 8 or acc.dtype != g.out.dtype or not acc.shape or any(acc.strides[d] < 0 for d in dims):
        return None
    # A convolution: windows, or (1x1, strided) every s-th column of the image's rows
    # (not a transposed head of attention, whose innermost step spans whole rows).
    if not g.windowed and not 2 <= acc.strides[dims[-1]] < acc.shape[-1]:
        return None
    return PackedGemm(gemm, i, dims)


NATIVE_POOLS = {"arith.maximumf": "max", "arith.addf": "sum"}
"""Pool combiners `window.pool` runs (NaN-propagating max, as `np.maximum`)."""


def native_pool(op: linalg.GenericOp, g: Generic) -> NativeWindow | None:
    """`NativeWindow` for a pool: a float32 max or sum over sliding windows of one input
    (the body combines it as it is), every output and window dim read by it, of at most
    4 + 1 output and 3 window dims, the input not the output's memory."""
    if g.kind != "reduce" or not g.windowed or g.out.dtype.name not in NATIVE_DTYPES or g.expr is None \
            or not isinstance(g.expr, BlockArgument) or g.expr.owner is not op.body.block or g.expr.index >= g.n_in:
        return None
    yielded = op.body.block.last_op
    comb = yielded.operands[0].owner if yielded is not None and len(yielded.operands) == 1 else None
    if not isinstance(comb, Operation) or comb.name not in NATIVE_POOLS:
        return None
    i = g.expr.index
    x = g.accesses[i]
    if x.dtype != g.out.dtype or any(root(v) == root(op.outputs[0]) for v in op.inputs):
        return None
    dims = [d for d in range(len(g.extents)) if g.extents[d] > 1]
    par = sorted((d for d in dims if d not in g.reduction), key=lambda d: -g.out.strides[d])
    if not par or len(par) > 5 or len(g.reduction) > 3 or not all(x.uses(d) for d in dims):
        return None
    return NativeWindow(i, None, _slots(g, par, x), NATIVE_POOLS[comb.name])


def choose_kernel(op: linalg.GenericOp, analysis: Generic | None, windows: bool = True,
                  fresh: bool = False, native: Callable[[], bool] = lambda: False) -> Kernel:
    """The kernel of `op`; `analysis` is its access analysis (None for a gather);
    `windows`: whether `WindowReduce` may be chosen; `fresh`: the output needs no initial
    value (its fill was elided); `native`: whether compiled kernels can be had (asked only
    for a generic that has one)."""
    axis = gather_axis(op)
    if axis is not None:
        return Gather(axis)
    assert analysis is not None
    if analysis.kind == "parallel":
        return Elementwise()
    if (nat := native_window(op, analysis) or native_pool(op, analysis)) is not None and native():
        return nat
    window = (windows and analysis.windowed and math.prod(analysis.extents[k] for k in analysis.reduction) <= MAX_WINDOW
              and all(o.name != "linalg.index" for o in op.body.block.ops)
              and not any(root(x) == root(op.outputs[0]) for x in op.inputs))  # written point by point
    if analysis.mac is not None:
        gemm = plan_gemm(analysis)
        # A batched matrix-vector product (a depthwise convolution: one filter per channel)
        # gets nothing from BLAS but pays the im2col copy: wide-row windows are cheaper
        # (measured; point by point over short rows they are not: bench --only kernels).
        rows = wide_rows(analysis) if window and fresh else None
        if rows is not None and span(analysis, rows) < MIN_WIDE_ROWS:
            rows = None
        if gemm is not None and gemm.cost > 0 and fresh and analysis.windowed:
            conv_rows = wide_rows(analysis)
            if conv_rows is not None and span(analysis, conv_rows) >= MIN_WIDE_ROWS \
                    and (shifted := shifted_gemm(analysis, conv_rows)) is not None:
                return shifted
        if gemm is not None and not (rows and (not gemm.m or not gemm.n) and gemm.cost > 0):
            if gemm.cost > 0 and (packed := packed_gemm(analysis, gemm)) is not None and native():
                return packed
            return gemm  # else e.g. a dim summed in one operand only: multiply, then reduce
    if window:
        sep = separable(analysis)
        return WindowReduce(wide_rows(analysis) if fresh and sep is None else None, sep)
    return Reduce()

