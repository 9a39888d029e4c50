"""The in-memory bundle (GE's `ModelBufferData`).

A bundle is a level-3 module (docs/internals.md) plus the bytes of the constants whose
values are not inline: `memref.global ... constant, initial_value` (a `UnitAttr`) takes its
value from `weights[sym_name]`. Non-constant globals are the variables; the runtime holds
their storage. What the module means is `wrc.abi`'s; its file form is `wrc.bundle_format`'s
(`bundle_bytes`, `write_bundle`, `read_bundle`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import ModuleOp


def c_array(a: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
    """`a` as a C-contiguous array of `dtype`, copied only if needed.

    Unlike `np.ascontiguousarray`, keeps 0-d arrays 0-d (scalar weights are shape `()`).
    """
    dtype = a.dtype if dtype is None else dtype
    if a.flags.c_contiguous and a.dtype == dtype:
        return a
    return np.array(a, dtype=dtype, order="C")


@dataclass(frozen=True)
class ModelBuffer:
    """A built bundle in memory: what `bundle_build_model` returns and a bundle file holds.

    * `module`: the level-3 IR of every graph (and the globals they share),
    * `graphs`: names of the bundle's graphs (its `func.func`s) in build order,
    * `weights`: the values of the stored constants, by global symbol name.
    """

    module: ModuleOp
    graphs: tuple[str, ...]
    weights: Mapping[str, np.ndarray]


class LazyModelBuffer(ModelBuffer):
    """A `ModelBuffer` whose module is made by `load()` on first use: a bundle loaded from the
    load cache (`wrc.load_cache`) runs without its IR, which only `wrc inspect`, the `interp`
    backend and other readers of the module need."""

    def __init__(self, load: Callable[[], ModuleOp], graphs: tuple[str, ...],
                 weights: Mapping[str, np.ndarray]) -> None:
        object.__setattr__(self, "_load", load)
        object.__setattr__(self, "graphs", graphs)
        object.__setattr__(self, "weights", weights)

    @functools.cached_property
    def module(self) -> ModuleOp:  # type: ignore[override]
        return self._load()  # type: ignore[attr-defined]
