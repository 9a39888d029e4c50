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
   up in the plan. `memref.alloc` → `np.empty`/`np.zeros` or a planned array;
   `memref.get_global` → a lookup in the caller's `globals_`; `memref.copy` → `np.copyto`;
   `collapse_shape`/`expand_shape` → `reshape` views; `scf.if` → `if`; arith/math ops → the
   tables of `scalar.py`. With `hoist` (the default) the lookups and their views go into
   `bind(G)`, run once per set of globals (`reader`: once per weight version), and the
   temporaries and their views into `scratch()`, an arena reused by one call at a time
   (never shared by two threads; results are allocated per call): `graph(bind(G),
   scratch(), *args)` runs the function.

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
from typing import Any, NamedTuple, Protocol

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
Caller = Callable[[Mapping[str, np.ndarray], Sequence[Any]], list[np.ndarray]]
DEFAULT_OPTIONS = JitOptions()


def _numpy_quiet() -> tuple[Any, Any] | None:
    """`np.errstate(all="ignore")` as (NumPy's context variable, the value it sets): entering
    an `errstate` costs ~1.3 µs a call, setting the variable ~0.1 µs. None where NumPy keeps
    its error state otherwise (before 2.0): generated code then enters `errstate`."""
    try:
        from numpy._core._ufunc_config import _extobj_contextvar, _make_extobj

        return _extobj_contextvar, _make_extobj(all="ignore")
    except (ImportError, TypeError):
        return None


_QUIET = _numpy_quiet()


def compile_functions(module: ModuleOp, arrays: ArrayModule = NUMPY,
                      options: JitOptions = DEFAULT_OPTIONS) -> Iterator[tuple[func.FuncOp, Source]]:
    """Each function of `module` with its generated source (planned, then emitted)."""
    if not arrays.host:  # compiled kernels take host memory only
        options = replace(options, native=False)
    for op in module.ops:
        if isinstance(op, func.FuncOp):
            yield op, _generate(op, arrays, options)


def _generate(op: func.FuncOp, arrays: ArrayModule, options: JitOptions) -> Source:
    if not op.body.blocks:
        raise LoweringError(f"numpy backend: function {op.sym_name.data!r} has no body")
    emitter = FuncEmitter(op, plan_function(op, options), arrays, options.hoist, options.native)
    emitter.emit()
    return emitter.src


def _generated(op: func.FuncOp, src: Source) -> GeneratedFunction:
    text = src.text()
    return GeneratedFunction(op.sym_name.data, len(op.body.block.args), text, src.namespace,
                             compile(text, "<wrc numpy jit>", "exec"))


@dataclass(frozen=True)
class GeneratedFunction:
    """One function as generated: its source, the namespace of constants it names, and its
    code object (what the load cache keeps: `wrc.load_cache`)."""

    name: str
    arity: int  # argument count
    source: str
    namespace: Mapping[str, Any]
    code: CodeType

    def load(self) -> GeneratedFunction:
        """Itself (a `StoredFunction` of the load cache decodes itself here)."""
        return self


class StoredFunction(Protocol):
    """A function known by name and arity whose source, constants and code are decoded on
    first use (`wrc.load_cache.StoredFunction`)."""

    name: str
    arity: int

    def load(self) -> GeneratedFunction: ...


class _Made(NamedTuple):
    """One function made: `graph(bind(G), scratch(), *args)` runs it (`Source`: a function
    generated without hoisting is `graph(G, *args)`, wrapped so)."""

    graph: _Fn
    bind: Callable[[Mapping[str, Any]], Any]  # the globals → what graph reads of them
    scratch: Callable[[], tuple[Any, ...]]  # an arena: temporaries and their views
    arity: int


def _unhoisted(graph: _Fn) -> _Fn:
    return lambda G, S, *args: graph(G, *args)


def _same(globals_: Mapping[str, Any]) -> Mapping[str, Any]:
    return globals_


class _Functions(dict[str, _Made]):
    """Name → the function made (`_Made`), each made (its constants decoded, its code object
    run) when first looked up: a bundle from the load cache pays only for the functions it
    runs. Two threads may both make one: the same function, either kept."""

    def __init__(self, functions: Sequence[GeneratedFunction | StoredFunction],
                 generate: Callable[[str], GeneratedFunction] | None) -> None:
        super().__init__()
        self.stored = {f.name: f for f in functions}
        self.generate = generate  # from the IR, for a stored function that fails to decode

    def __missing__(self, name: str) -> _Made:
        f = self.generated(name)
        namespace = dict(f.namespace)
        exec(f.code, namespace)
        if "bind" in namespace:
            made = _Made(namespace["graph"], namespace["bind"], namespace["scratch"], f.arity)
        else:
            made = _Made(_unhoisted(namespace["graph"]), _same, tuple, f.arity)
        self[name] = made
        return made

    def generated(self, name: str) -> GeneratedFunction:
        try:
            f = self.stored[name].load()
        except Exception:  # a cache entry wrc did not write as it reads it: never in practice
            if self.generate is None:
                raise
            f = self.generate(name)
        self.stored[name] = f
        return f


def _missing(graph_name: str, e: KeyError) -> InputError:
    return InputError(f"graph {graph_name!r} needs global {e.args[0]!r}")


class NumpyCompiledModule:
    """The module's functions as compiled Python functions (see `source`)."""

    def __init__(self, module: ModuleOp | None, arrays: ArrayModule = NUMPY,
                 options: JitOptions = DEFAULT_OPTIONS,
                 functions: Sequence[GeneratedFunction | StoredFunction] | None = None,
                 module_of: Callable[[], ModuleOp] | None = None) -> None:
        """`functions`: generated before from the same module, arrays and options (then
        `module` is not read), each made into a Python function on first use; a stored one
        that fails to decode is generated again from `module_of()` (the module, made then)."""
        self.arrays = arrays
        self.options = options
        if functions is None:
            assert module is not None
            functions = [_generated(op, src) for op, src in compile_functions(module, arrays, options)]
        self._module_of = module_of
        self._fns = _Functions(functions, self._generate if module_of is not None else None)
        self._arity = {f.name: f.arity for f in functions}
        self._callers: dict[str, Caller] = {}

    def _generate(self, name: str) -> GeneratedFunction:
        assert self._module_of is not None
        (op,) = (op for op in self._module_of().ops if isinstance(op, func.FuncOp) and op.sym_name.data == name)
        return _generated(op, _generate(op, self.arrays, self.options))

    @property
    def functions(self) -> tuple[GeneratedFunction, ...]:
        """Every function as generated (decoded, where it came from the load cache)."""
        return tuple(map(self._fns.generated, self._arity))

    @property
    def graphs(self) -> tuple[str, ...]:
        return tuple(self._arity)

    def source(self, graph_name: str) -> str:
        """The generated Python source of one function."""
        if graph_name not in self._arity:
            raise InputError(f"the module has no graph {graph_name!r}")
        return self._fns.generated(graph_name).source

    def prepare(self, graph_name: str) -> None:
        """Make `graph_name`'s function now (decoded from the load cache, its code run): ~10 ms
        of a first update on ResNet-50 (docs/performance.md, "first update (session 8)")."""
        self._call_of(graph_name)

    def run(self, graph_name: str, globals_: Mapping[str, np.ndarray],
            args: Sequence[np.ndarray | bool]) -> list[np.ndarray]:
        check_call(graph_name, self._arity.get(graph_name), args)
        return self._call_of(graph_name)(globals_, args)

    def _call_of(self, graph_name: str) -> Caller:
        call = self._callers.get(graph_name)
        if call is None:  # (two threads may both make it: the same function)
            call = self._callers[graph_name] = self._caller(graph_name)
        return call

    def _caller(self, graph_name: str) -> Caller:
        """Binds the globals and makes an arena at every call (none is kept: a graph run
        once, as init or an update, keeps no memory between calls)."""
        fns = self._fns
        fns[graph_name]  # noqa: B018 - made now; each call looks it up (a profiler may swap it)

        def run(globals_: Mapping[str, np.ndarray], args: Sequence[Any]) -> list[np.ndarray]:
            f = fns[graph_name]
            try:
                return f.graph(f.bind(globals_), f.scratch(), *args)
            except KeyError as e:
                raise _missing(graph_name, e) from None
        return self._quiet(run)

    def reader(self, graph_name: str
               ) -> tuple[Callable[[Mapping[str, Any]], Any], Callable[[Any, Sequence[Any]], list[np.ndarray]]]:
        """(bind, call) of a graph run many times on the same globals (a read-only graph):
        `bind(globals_)` looks up and views the globals (to be kept while they stay the same:
        one weight version); `call(bound, args)` runs the graph on them, on an arena of
        temporaries made once and reused: taken from this graph's pool for the call and put
        back after it, so concurrent calls never share one. Results are never an arena's
        (`emit.py` allocates returned arrays per call)."""
        fns = self._fns
        fns[graph_name]  # noqa: B018 - made now; each call looks it up (a profiler may swap it)
        pool: list[tuple[Any, ...]] = []

        def run(bound: Any, args: Sequence[Any]) -> list[np.ndarray]:
            f = fns[graph_name]
            try:
                scratch = pool.pop()
            except IndexError:
                scratch = f.scratch()
            outs = f.graph(bound, scratch, *args)
            pool.append(scratch)  # (not after an exception: that arena is dropped)
            return outs
        return self._binder(graph_name), self._quiet(run)

    def _binder(self, graph_name: str) -> Callable[[Mapping[str, Any]], Any]:
        fns = self._fns

        def bind(globals_: Mapping[str, Any]) -> Any:
            try:
                return fns[graph_name].bind(globals_)
            except KeyError as e:
                raise _missing(graph_name, e) from None
        return bind

    def _quiet(self, run: Callable[[Any, Sequence[Any]], list[np.ndarray]]) -> Callable[[Any, Sequence[Any]], list[np.ndarray]]:
        """`run` with floating-point errors ignored."""
        quiet = _QUIET if self.arrays.errstate is NUMPY.errstate else None
        if quiet is None:
            errstate = self.arrays.errstate

            def call(first: Any, args: Sequence[Any]) -> list[np.ndarray]:
                with errstate():
                    return run(first, args)
            return call

        var, ignore = quiet

        def call_quiet(first: Any, args: Sequence[Any]) -> list[np.ndarray]:
            token = var.set(ignore)
            try:
                return run(first, args)
            finally:
                var.reset(token)
        return call_quiet


class NumpyBackend:
    """The default backend: level-3 IR → Python/NumPy source, compiled once."""

    name = "numpy"

    def __init__(self, options: JitOptions = DEFAULT_OPTIONS) -> None:
        self.options = options

    def compile(self, module: ModuleOp) -> NumpyCompiledModule:
        return NumpyCompiledModule(module, options=self.options)


__all__ = ["GeneratedFunction", "JitOptions", "NumpyBackend", "NumpyCompiledModule", "compile_functions"]
