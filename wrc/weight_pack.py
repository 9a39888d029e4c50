"""A weight set packed into one contiguous buffer plus a manifest (docs/api.md "Weight
versions", docs/fleet.md "Packed weight sets").

A dict of thousands of arrays costs per array wherever it travels: Ray pickles each one
(~13 µs here) and each replica unpickles it (~4 µs), and copying a set tensor by tensor into
a bundle's buffers runs at about half the speed of one large copy (small copies cannot use
the non-temporal stores a large memcpy does). A `WeightPack` is one `uint8` buffer and a
tuple of `(name, dtype, shape, offset)`: Ray moves it as one array, and a bundle staging it
with `copy=True` copies the whole buffer at once into memory of its own (`Bundle.stage`).

It is a read-only `Mapping` name → array (views of the buffer), so everything that takes a
weight dict takes a pack, with the same checks.

A `WeightParcel` is how a weight set travels through Ray without a copy of its large arrays:
the small arrays packed (copied: few bytes), the large ones as pieces of at most `PIECE` bytes
of the caller's own arrays (Ray copies a larger buffer with threads it starts for each,
measured slower than one memcpy here). Ray lays the buffers of one object out back to back in
its store, so the parcel arrives (is unpickled) as a `WeightPack` over the store's memory,
with no copy; laid out otherwise, its pieces are copied into one.
"""

from __future__ import annotations

import ctypes
import functools
import math
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from wrc.errors import InputError

ALIGN = 64
"""Each array's offset in a pack (and a bundle's copy of it) is a multiple of this."""

PIECE = 1 << 20
"""The largest buffer a `WeightParcel` hands Ray. Ray copies a larger out-of-band buffer into
its object store with 6 threads it starts for that buffer, one up to this size with one
memcpy (measured on 2 cores, 1 GiB: one array 1.7x a memcpy, 256 arrays of 4 MiB 3x, the same
bytes in pieces of 1 MiB 1.8x)."""

SMALL = 2048
"""Ray aligns a buffer of this many bytes or more at `ALIGN`, a smaller one at 8 (so no piece
of a parcel is smaller)."""

Entry = tuple[str, str, tuple[int, ...], int]
"""(weight name, dtype as `np.dtype.str`, shape, byte offset in the buffer)."""


_checked: tuple[tuple[Entry, ...], int] | None = None
"""The last manifest a `WeightPack` found valid, and the buffer size it needs."""


class WeightPack(Mapping[str, np.ndarray]):
    """`buffer` (a 1-D C-contiguous `uint8` array) holding the arrays that `entries` describe."""

    __slots__ = ("buffer", "entries", "_index")

    def __init__(self, buffer: np.ndarray, entries: tuple[Entry, ...]) -> None:
        global _checked
        if not (isinstance(buffer, np.ndarray) and buffer.dtype == np.uint8 and buffer.ndim == 1
                and buffer.flags.c_contiguous):
            raise InputError("WeightPack: the buffer must be a 1-D C-contiguous uint8 array")
        self.buffer, self.entries = buffer, tuple(entries)
        self._index: dict[str, Entry] | None = None  # made when first needed (see _table)
        last = _checked
        if last is not None and last[1] <= buffer.size and (last[0] is self.entries or last[0] == self.entries):
            # (the manifest every publish of one trainer sends: checked once, one C `==`; the
            # tuple checked kept, so that a bundle finds its own checks of it by identity)
            self.entries = last[0]
            return
        self._index = {}
        itemsize: dict[str, int] = {}  # (a replica unpickles thousands of entries: no np.prod each)
        end = 0
        for e in self.entries:
            name, dtype, shape, offset = e
            size = itemsize.get(dtype) or itemsize.setdefault(dtype, np.dtype(dtype).itemsize)
            size *= math.prod(shape)
            if name in self._index or offset < 0 or offset % ALIGN or offset + size > buffer.size:
                raise InputError(f"WeightPack: weight {name!r} is listed twice or lies outside the buffer "
                                 f"(offset {offset}, {size} bytes, buffer {buffer.size} bytes, "
                                 f"offsets multiples of {ALIGN})")
            self._index[name] = e
            end = max(end, offset + size)
        _checked = self.entries, end

    def _table(self) -> dict[str, Entry]:
        if self._index is None:
            self._index = {e[0]: e for e in self.entries}
        return self._index

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with protocol 5 (Ray), the buffer travels out of band: one array, no copy.
        return WeightPack, (self.buffer, self.entries)

    def __getitem__(self, name: str) -> np.ndarray:
        return _view(self.buffer, self._table()[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self.entries)

    def offset(self, name: str) -> int:
        """Where the array `name` starts in the buffer (bytes)."""
        return self._table()[name][3]


def _view(buffer: np.ndarray, entry: Entry) -> np.ndarray:
    _, dtype, shape, offset = entry
    return np.ndarray(shape, dtype, buffer=buffer, offset=offset)


def _packable(a: Any) -> bool:
    return type(a) is np.ndarray and a.flags.c_contiguous and not a.dtype.hasobject


def packable(weights: Mapping[str, Any]) -> bool:
    """Whether `pack_weights` packs these exactly as given: C-contiguous NumPy arrays of plain
    dtypes (anything else is left to the receiver's own checks, with their messages)."""
    return all(map(_packable, weights.values()))


def _padded(nbytes: int) -> int:
    """The bytes an array of `nbytes` takes in a pack (the next array starts aligned)."""
    return -(-nbytes // ALIGN) * ALIGN


def packed_size(weights: Mapping[str, np.ndarray]) -> int:
    """The bytes `pack_weights` needs for these arrays."""
    return sum(_padded(a.nbytes) for a in weights.values())


def pack_weights(weights: Mapping[str, np.ndarray], out: np.ndarray | None = None) -> WeightPack:
    """One pack of `weights` (C-contiguous NumPy arrays: `packable`), copied into `out` (a
    1-D `uint8` array of at least `packed_size` bytes, e.g. reused from the last pack: its
    pages are touched) or a new buffer."""
    bad = next((k for k, a in weights.items() if not _packable(a)), None)
    if bad is not None:
        raise InputError(f"pack_weights: weight {bad!r} must be a C-contiguous NumPy array of a plain dtype")
    size = packed_size(weights)
    buffer = out[:size] if out is not None and out.size >= size else aligned_empty(size)
    entries: list[Entry] = []
    offset = 0
    for name, a in weights.items():
        entries.append((name, a.dtype.str, a.shape, offset))
        buffer[offset:offset + a.nbytes] = a.reshape(-1).view(np.uint8)
        offset += _padded(a.nbytes)
    return WeightPack(buffer, tuple(entries))


def span(arrays: Sequence[Any]) -> tuple[np.ndarray, list[int]] | None:
    """A read-only `uint8` view of the memory from the first array's start to the last's end,
    and each array's byte offset in it, when the arrays lie in it back to back in this order
    (each starting less than `ALIGN` bytes after the one before ends), as Ray lays out the
    arrays of one object (a dict put with one `ray.put`, docs/fleet.md "Packed weight sets"):
    one copy of the view copies them all. None otherwise (not C-contiguous NumPy arrays of a
    plain dtype, empty, overlapping, apart or out of order).

    Safe to read whatever the arrays' owners: a gap under `ALIGN` bytes lies within the pages
    of the arrays around it, so every byte of the view is mapped; the view keeps the first
    array alive, the caller the others."""
    offsets: list[int] = []
    start = end = 0
    for a in arrays:
        if not _packable(a) or a.nbytes == 0:
            return None
        address = a.__array_interface__["data"][0]
        if not offsets:
            start = end = address
        elif not 0 <= address - end < ALIGN:
            return None
        offsets.append(address - start)
        end = address + a.nbytes
    if not offsets:
        return None
    first = arrays[0].reshape(-1).view(np.uint8)
    return as_strided(first, (end - start,), (1,), writeable=False), offsets


def aligned_empty(size: int) -> np.ndarray:
    """A new `uint8` array of `size` bytes starting at a multiple of `ALIGN`."""
    raw = np.empty(size + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + size]


class _Held:
    """A read-only byte range (`__array_interface__`) and the arrays it lies in (`owners`):
    the array NumPy makes of it keeps them all alive."""

    __slots__ = ("__array_interface__", "owners")

    def __init__(self, address: int, size: int, owners: tuple[Any, ...]) -> None:
        self.__array_interface__ = {"data": (address, True), "shape": (size,), "typestr": "|u1", "version": 3}
        self.owners = owners


def _pieces(region: np.ndarray) -> list[np.ndarray]:
    """A 1-D `uint8` region cut into views of at most `PIECE` bytes, each but the last a
    multiple of `ALIGN` (so that Ray lays them back to back, no gap), none under `SMALL`."""
    n = region.size
    cuts = list(range(0, n, PIECE)) + [n]
    if len(cuts) > 2 and n - cuts[-2] < SMALL:  # a tiny last piece: take some of the one before
        cuts[-2] -= SMALL
    return [region[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


class WeightParcel:
    """A weight set as Ray should carry it (`parcel`): `pieces` (C-contiguous arrays) and the
    `entries` of the `WeightPack` they make laid out as `plan` says (piece i at byte
    `plan[i]`). Unpickled, it is that `WeightPack` (`_unparcel`). `packed`: the buffer its
    small arrays were copied into (None: none), which the caller may reuse once Ray copied it."""

    __slots__ = ("pieces", "plan", "entries", "packed")

    def __init__(self, pieces: tuple[np.ndarray, ...], plan: tuple[int, ...], entries: tuple[Entry, ...],
                 packed: np.ndarray | None = None) -> None:
        self.pieces, self.plan, self.entries, self.packed = pieces, plan, entries, packed

    def __reduce_ex__(self, protocol: int) -> tuple[Any, ...]:  # type: ignore[override]
        # With protocol 5 (Ray), each piece travels out of band as a raw buffer, none copied
        # here: neither side makes an array of it (Ray's pickling of an array and NumPy's
        # rebuilding of it cost ~4 µs a piece, measured: docs/performance.md "session 7").
        # The plan and manifest travel as one pickled bytes object: a replica decodes them only
        # when they differ from the last it saw (`_layout`; a trainer sends the same each time).
        pieces = tuple(map(pickle.PickleBuffer, self.pieces)) if protocol >= 5 else self.pieces
        return _unparcel, (pieces, pickle.dumps((self.plan, self.entries), protocol=4))


def parcel(weights: Mapping[str, np.ndarray], small: int = 0, out: np.ndarray | None = None) -> WeightParcel:
    """`weights` (`packable`; a `WeightPack`: its buffer as it is) as a parcel: the arrays under
    `small` bytes (`SMALL` at least) copied into one pack's buffer (`out` when large enough, as
    `pack_weights` reuses it), every other one a region of its own (not copied); each region
    cut into pieces (`_pieces`) and planned to start at the next multiple of `ALIGN` after
    the one before, as Ray lays out the buffers of one object."""
    pieces: list[np.ndarray] = []
    plan: list[int] = []
    entries: list[Entry] = []
    at = 0

    def add(region: np.ndarray) -> None:  # the next region, cut into pieces
        nonlocal at
        if region.nbytes <= PIECE:  # (most tensors: one piece, the array itself)
            pieces.append(region)
            plan.append(at)
            at += region.nbytes
        else:
            for piece in _pieces(region.reshape(-1).view(np.uint8)):
                pieces.append(piece)
                plan.append(at)
                at += piece.size
        at = -(-at // ALIGN) * ALIGN

    packed = None
    if type(weights) is WeightPack:
        entries += weights.entries
        add(weights.buffer)
        return WeightParcel(tuple(pieces), tuple(plan), tuple(entries))
    bad = next((k for k, a in weights.items() if not _packable(a)), None)
    if bad is not None:
        raise InputError(f"parcel: weight {bad!r} must be a C-contiguous NumPy array of a plain dtype")
    small = max(small, SMALL)
    few = {k: a for k, a in weights.items() if a.nbytes < small}
    if few:
        size = max(packed_size(few), SMALL)  # (no piece under SMALL: see _pieces)
        packed = out if out is not None and out.size >= size else aligned_empty(size)
        entries += pack_weights(few, out=packed).entries
        add(packed[:size])
    codes: dict[np.dtype, str] = {}  # (np.dtype.str makes a new string each time)
    for name, a in weights.items():
        if name not in few:
            entries.append((name, codes.get(a.dtype) or codes.setdefault(a.dtype, a.dtype.str), a.shape, at))
            add(a)
    return WeightParcel(tuple(pieces), tuple(plan), tuple(entries), packed)


class _PyBuffer(ctypes.Structure):
    """CPython's `Py_buffer` (Include/pybuffer.h, in the stable ABI since 3.11)."""

    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes, _get_buffer.restype = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int], ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes, _release_buffer.restype = [ctypes.POINTER(_PyBuffer)], None


def _extents_by_ctypes(pieces: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """`_extents` through `ctypes` (two foreign calls a piece, ~1 µs), where wrc's compiled
    `buffers.extents` cannot be had."""
    view = _PyBuffer()
    ref = ctypes.byref(view)
    addresses: list[int] = []
    sizes: list[int] = []
    for p in pieces:
        _get_buffer(p, ref, 0)  # PyBUF_SIMPLE: contiguous bytes (raises through ctypes.pythonapi)
        addresses.append(view.buf or 0)
        sizes.append(view.len)
        _release_buffer(ref)
    return np.array(addresses, np.int64), np.array(sizes, np.int64)


@functools.cache
def _extents_fn() -> Callable[[Sequence[Any]], tuple[np.ndarray, np.ndarray]]:
    from wrc.backends import native

    module = native.load("buffers")
    return _extents_by_ctypes if module is None else module.extents


def prepare() -> None:
    """Build or load the compiled `buffers.extents` now (~0.6 s once per machine, then an
    import), so that the first parcel to arrive does not wait for it: a fleet's replica calls
    this before it takes requests."""
    _extents_fn()


def _extents(pieces: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The address and the bytes of each contiguous buffer (two `int64` arrays), read through
    the buffer protocol itself, in one call of wrc's compiled `buffers.extents` (~30 ns a
    piece; a replica reads thousands per publish), else through `ctypes`. The exporter's
    error (NumPy: `ValueError`) for a buffer that is not contiguous."""
    return _extents_fn()(pieces)


_arrived: tuple[bytes, np.ndarray, tuple[Entry, ...]] | None = None
"""The last parcel layout this process decoded (`_layout`): its bytes, plan and manifest."""


def _layout(layout: bytes) -> tuple[np.ndarray, tuple[Entry, ...]]:
    """A parcel's plan (as an `int64` array) and manifest from their pickled bytes: the last
    ones decoded again when the bytes are equal (one `memcmp`, where unpickling thousands of
    entries takes milliseconds), so that the manifest is the very tuple `WeightPack` and a
    bundle checked before."""
    global _arrived
    last = _arrived
    if last is not None and last[0] == layout:
        return last[1], last[2]
    plan, entries = pickle.loads(layout)  # (bytes from the parcel being unpickled: its own data)
    _arrived = layout, np.array(plan, np.int64), entries
    return _arrived[1], entries


def _unparcel(pieces: Sequence[Any], layout: bytes) -> WeightPack:
    """The `WeightPack` a parcel makes of its `pieces` (buffers: Ray's, or arrays or bytes
    pickled otherwise) and its `layout` (pickled plan and manifest, `_layout`): over the
    pieces' own memory when each lies where the plan says relative to the first (as Ray
    lays them out in its store: no copy), else over a copy of them laid out so."""
    plan, entries = _layout(layout)
    if not pieces:
        return WeightPack(aligned_empty(0), entries)
    addresses, sizes = _extents(pieces)
    size = int(plan[-1] + sizes[-1])
    base = int(addresses[0])
    if len(addresses) == len(plan) and np.array_equal(addresses - base, plan):
        buffer = np.asarray(_Held(base, size, tuple(pieces)))
    else:
        buffer = aligned_empty(size)
        for p, nbytes, at in zip(pieces, sizes.tolist(), plan.tolist(), strict=True):
            buffer[at:at + nbytes] = np.frombuffer(p, np.uint8, nbytes) if type(p) is not np.ndarray \
                else p.reshape(-1).view(np.uint8)
    return WeightPack(buffer, entries)
