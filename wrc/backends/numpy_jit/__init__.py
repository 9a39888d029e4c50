"""The `numpy` backend: each level-3 function becomes Python source that calls NumPy.

A function is compiled once into a Python function (readable with `compiled.source(graph)`,
or `wrc-opt FILE -t numpy`) that does no per-element Python work. Compilation is three
steps, each in its own module:

1. **Access analysis** (`access.py`): every operand of a `linalg.generic` becomes a strided
   view over the loop space, built from its affine map (a result `Σ dim·coef + const` gives
   the view a stride per loop dim and a base offset; dims the operand does not use get
   extent 1, so NumPy broadcasts them).
2. **Plan** (`plan.py`, `kernels.py`, `gemm.py`): before any code is written, a frozen
   `MemoryPlan` fixes how each generic runs — elementwise ufuncs writing with `out=`, a
   `comb.reduce`, one batched GEMM (`np.matmul` on views regrouped as [batch, M, K] x
   [batch, K, N]), one ufunc per point of a small sliding window (pools, depthwise
   convolutions), `np.take` for a gather — and where every buffer lives: global sinks,
   reuse of dead temporaries, zero-filled allocations, fills made useless by the next write.
3. **Emission** (`emit.py`): one emitter per op kind and per kernel, looking those decisions
   up in the plan. `memref.alloc` → `np.empty`/`np.zeros` (per call: no buffer is shared
   between calls or threads) or a planned array; `memref.get_global` → a lookup in the
   caller's `globals_`; `memref.copy` → `np.copyto`; `collapse_shape`/`expand_shape` →
   `reshape` views; `scf.if` → `if`; arith/math ops → the tables of `scalar.py`.

`np` in the generated code is the `ArrayModule.xp` the module was compiled for
(`wrc/backends/arrays.py`): NumPy here, CuPy for a GPU backend; views come from
`ArrayModule.strided` and constants that are arrays are put where that module's arrays live.

Identifiers in the generated code are generated (`a0`, `v1`, `k2`, ...). Every name, shape,
dtype, stride and value comes from a constants namespace, never from IR text spliced in.
Anything unsupported raises a `LoweringError` naming the op when the module is compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import CodeType
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from wrc.backends import check_call
from wrc.backends.arrays import NUMPY, ArrayModule
from wrc.backends.numpy_jit.emit import FuncEmitter
from wrc.backends.numpy_jit.plan import JitOptions, plan_function
from wrc.backends.numpy_jit.source import Source
from wrc.errors import InputError, LoweringError

_Fn = Callable[..., list[np.ndarray]]
DEFAULT_OPTIONS = JitOptions()


def compile_functions(module: ModuleOp, arrays: ArrayModule = NUMPY,
                      options: JitOptions = DEFAULT_OPTIONS) -> Iterator[tuple[func.FuncOp, Source]]:
    """Each function of `module` with its generated source (planned, then emitted)."""
    if not arrays.host:  # native kernels take host memory
        options = replace(options, native=False)
    for op in module.ops:
        if not isinstance(op, func.FuncOp):
            continue
        if not op.body.blocks:
            raise LoweringError(f"numpy backend: function {op.sym_name.data!r} has no body")
        emitter = FuncEmitter(op, plan_function(op, options), arrays)
        emitter.emit()
        yield op, emitter.src


@dataclass(frozen=True)
class GeneratedFunction:
    """One function as generated: its source, the namespace of constants it names, and its
    code object (what the load cache keeps: `wrc.load_cache`)."""

    name: str
    arity: int  # argument count
    source: str
    namespace: Mapping[str, Any]
    code: CodeType


class NumpyCompiledModule:
    """The module's functions as compiled Python functions (see `source`)."""

    def __init__(self, module: ModuleOp | None, arrays: ArrayModule = NUMPY,
                 options: JitOptions = DEFAULT_OPTIONS,
                 functions: Sequence[GeneratedFunction] | None = None) -> None:
        """`functions`: generated before from the same module, arrays and options (then
        `module` is not read)."""
        self.arrays = arrays
        if functions is None:
            assert module is not None
            functions = [GeneratedFunction(op.sym_name.data, len(op.body.block.args), text, src.namespace,
                                           compile(text, "<wrc numpy jit>", "exec"))
                         for op, src in compile_functions(module, arrays, options) for text in [src.text()]]
        self.functions = tuple(functions)
        self._fns: dict[str, tuple[_Fn, int]] = {}
        self._sources: dict[str, str] = {}
        for f in self.functions:
            namespace = dict(f.namespace)
            exec(f.code, namespace)
            self._fns[f.name] = (namespace["graph"], f.arity)
            self._sources[f.name] = f.source

    @property
    def graphs(self) -> tuple[str, ...]:
        return tuple(self._fns)

    def source(self, graph_name: str) -> str:
        """The generated Python source of one function."""
        if graph_name not in self._sources:
            raise InputError(f"the module has no graph {graph_name!r}")
        return self._sources[graph_name]

    def run(self, graph_name: str, globals_: Mapping[str, np.ndarray],
            args: Sequence[np.ndarray | bool]) -> list[np.ndarray]:
        fn, n = self._fns.get(graph_name, (None, None))
        check_call(graph_name, n, args)
        assert fn is not None
        with self.arrays.errstate():
            try:
                return fn(globals_, *args)
            except KeyError as e:
                raise InputError(f"graph {graph_name!r} needs global {e.args[0]!r}") from None


class NumpyBackend:
    """The default backend: level-3 IR → Python/NumPy source, compiled once."""

    name = "numpy"

    def __init__(self, options: JitOptions = DEFAULT_OPTIONS) -> None:
        self.options = options

    def compile(self, module: ModuleOp) -> NumpyCompiledModule:
        return NumpyCompiledModule(module, options=self.options)


__all__ = ["GeneratedFunction", "JitOptions", "NumpyBackend", "NumpyCompiledModule", "compile_functions"]
