"""The `interp` backend: xDSL's interpreter on loop-level IR (slow, obviously correct).

`compile` clones the level-3 module and runs `convert-linalg-to-loops` on it (level 4:
`scf.for` nests of `memref.load`/`store` and scalar `arith`/`math`; index arithmetic of
maps with offsets or strides stays `affine.apply`, which the interpreter evaluates).
`run` interprets one function with xDSL's implementations plus `WrcFunctions` below, which
fills what xDSL 0.74 lacks or gets wrong for wrc's IR:

* `memref.get_global` returns the caller's storage for the global (xDSL rebuilds the
  initial value on every call, so stores were lost); globals written during the call are
  copied back into the caller's arrays afterwards;
* `memref.copy`, `collapse_shape`/`expand_shape` (views sharing the buffer);
* `memref.store` of a float too large for its type stores ±inf (NumPy's result) instead of
  failing in `struct.pack`;
* `arith.divf/negf/maxnumf/minnumf/maxsi/minsi/remsi`, float/int casts, IEEE `math.exp/log/sqrt`
  (no Python OverflowError/ValueError), `math.tanh/absf/erf/powf`.

Values are Python floats/ints (double precision inside a body, rounded at each store).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from xdsl.dialects import arith, func, memref
from xdsl.dialects import math as xmath
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, MemRefType, ModuleOp
from xdsl.interpreter import (
    Interpreter,
    InterpreterFunctions,
    PythonValues,
    impl,
    register_impls,
)
from xdsl.interpreters.affine import AffineFunctions
from xdsl.interpreters.arith import ArithFunctions
from xdsl.interpreters.builtin import BuiltinFunctions
from xdsl.interpreters.func import FuncFunctions
from xdsl.interpreters.math import MathFunctions
from xdsl.interpreters.memref import MemRefFunctions
from xdsl.interpreters.scf import ScfFunctions
from xdsl.interpreters.shaped_array import ShapedArray
from xdsl.interpreters.utils.ptr import RawPtr, TypedPtr
from xdsl.transforms.convert_linalg_to_loops import ConvertLinalgToLoopsPass

from wrc.backends import check_call
from wrc.context import make_context
from wrc.dtypes import UnsupportedDtypeError, to_numpy_dtype
from wrc.errors import InputError, LoweringError

# ---------------------------------------------------------------------------- conversions


def to_shaped(array: np.ndarray, element_type: Any) -> ShapedArray[Any]:
    """A ShapedArray over a private copy of `array`'s bytes."""
    data = bytearray(np.ascontiguousarray(array).tobytes())
    return ShapedArray(TypedPtr(RawPtr(data), xtype=element_type), list(array.shape))


def to_numpy(value: ShapedArray[Any], dtype: np.dtype[Any]) -> np.ndarray:
    """A fresh NumPy array holding `value`'s elements."""
    raw = value.data_ptr.raw
    n = math.prod(value.shape)
    if dtype == np.bool_:  # i1 is stored as a signed byte: anything non-zero is true
        flat = np.frombuffer(raw.memory, np.int8, count=n, offset=raw.offset) != 0
    else:
        flat = np.frombuffer(raw.memory, dtype, count=n, offset=raw.offset).copy()
    return flat.reshape(value.shape)


def _store(target: ShapedArray[Any], index: Sequence[int], value: Any) -> None:
    try:
        target.store(index, value)
    except OverflowError:  # struct cannot pack a finite double beyond the float's range
        target.store(index, math.copysign(math.inf, value))


def _ieee(f: Any, x: float) -> float:
    """`f(x)` with IEEE results where Python's math raises (overflow, log(0), sqrt(-1))."""
    try:
        return f(x)
    except OverflowError:
        return math.inf
    except ValueError:
        if f is math.log and x == 0:
            return -math.inf
        return math.nan


# ---------------------------------------------------------------------------- wrc's op impls


@register_impls
class WrcFunctions(InterpreterFunctions):
    """What xDSL 0.74's interpreter lacks or gets wrong for wrc's level-4 IR."""

    def __init__(self, globals_: Mapping[str, np.ndarray]) -> None:
        self.globals_ = globals_
        # name -> (storage, bytes at first access): written ones are copied back after a run.
        self.storage: dict[str, tuple[ShapedArray[Any], bytes]] = {}

    def write_back(self) -> None:
        for name, (shaped, before) in self.storage.items():
            raw = shaped.data_ptr.raw
            if bytes(raw.memory) != before:
                target = self.globals_[name]
                np.copyto(target, to_numpy(shaped, target.dtype))

    # -- memref

    @impl(memref.GetGlobalOp)
    def run_get_global(self, interpreter: Interpreter, op: memref.GetGlobalOp,
                       args: PythonValues) -> PythonValues:
        name = op.name_.string_value()
        if name not in self.storage:
            if name not in self.globals_:
                raise InputError(f"the graph needs global {name!r}")
            array = self.globals_[name]
            t = op.memref.type
            assert isinstance(t, MemRefType)
            expected = (tuple(t.get_shape()), to_numpy_dtype(t.get_element_type()))
            if (array.shape, array.dtype) != expected:
                raise InputError(f"global {name!r} is {array.dtype}{list(array.shape)}, "
                                 f"the IR needs {expected[1]}{list(expected[0])}")
            shaped = to_shaped(array, t.get_element_type())
            self.storage[name] = (shaped, bytes(shaped.data_ptr.raw.memory))
        return (self.storage[name][0],)

    @impl(memref.CopyOp)
    def run_copy(self, interpreter: Interpreter, op: memref.CopyOp,
                 args: PythonValues) -> PythonValues:
        src, dst = args
        size = math.prod(src.shape) * src.data_ptr.size
        s, d = src.data_ptr.raw, dst.data_ptr.raw
        d.memory[d.offset:d.offset + size] = s.memory[s.offset:s.offset + size]
        return ()

    @impl(memref.CollapseShapeOp)
    def run_collapse(self, interpreter: Interpreter, op: memref.CollapseShapeOp,
                     args: PythonValues) -> PythonValues:
        assert isinstance(op.result.type, MemRefType)
        return (ShapedArray(args[0].data_ptr, list(op.result.type.get_shape())),)

    @impl(memref.ExpandShapeOp)
    def run_expand(self, interpreter: Interpreter, op: memref.ExpandShapeOp,
                   args: PythonValues) -> PythonValues:
        assert isinstance(op.result.type, MemRefType)
        return (ShapedArray(args[0].data_ptr, list(op.result.type.get_shape())),)

    @impl(memref.StoreOp)
    def run_store(self, interpreter: Interpreter, op: memref.StoreOp,
                  args: PythonValues) -> PythonValues:
        value, target, *indices = args
        _store(target, indices, value)
        return ()

    # -- arith

    @impl(arith.ConstantOp)
    def run_constant(self, interpreter: Interpreter, op: arith.ConstantOp,
                     args: PythonValues) -> PythonValues:
        if isinstance(op.value, DenseIntOrFPElementsAttr):
            v = op.value
            ptr = TypedPtr[Any].new(v.get_values(), xtype=v.get_element_type())
            return (ShapedArray(ptr, list(v.get_shape() or ())),)
        # xDSL's own (wrapped by @impl, hence `.values`) for scalars.
        return ArithFunctions.run_constant(ArithFunctions(), interpreter, op, args).values

    @impl(arith.DivfOp)
    def run_divf(self, interpreter: Interpreter, op: arith.DivfOp, args: PythonValues) -> PythonValues:
        a, b = args
        if b == 0:
            return (math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1, b),)
        return (a / b,)

    @impl(arith.NegfOp)
    def run_negf(self, interpreter: Interpreter, op: arith.NegfOp, args: PythonValues) -> PythonValues:
        return (-args[0],)

    @impl(arith.MaxnumfOp)
    def run_maxnumf(self, interpreter: Interpreter, op: arith.MaxnumfOp, args: PythonValues) -> PythonValues:
        a, b = args
        return (b if math.isnan(a) else a if math.isnan(b) else max(a, b),)

    @impl(arith.MinnumfOp)
    def run_minnumf(self, interpreter: Interpreter, op: arith.MinnumfOp, args: PythonValues) -> PythonValues:
        a, b = args
        return (b if math.isnan(a) else a if math.isnan(b) else min(a, b),)

    @impl(arith.MaxSIOp)
    def run_maxsi(self, interpreter: Interpreter, op: arith.MaxSIOp, args: PythonValues) -> PythonValues:
        return (max(args),)

    @impl(arith.MinSIOp)
    def run_minsi(self, interpreter: Interpreter, op: arith.MinSIOp, args: PythonValues) -> PythonValues:
        return (min(args),)

    @impl(arith.RemSIOp)
    def run_remsi(self, interpreter: Interpreter, op: arith.RemSIOp, args: PythonValues) -> PythonValues:
        a, b = args  # C's remainder: the sign of a; 0 for b = 0 as NumPy's fmod (xDSL asserts)
        r = abs(a) % abs(b) if b else 0
        return (r if a >= 0 else -r,)

    @impl(arith.ExtFOp)
    def run_extf(self, interpreter: Interpreter, op: arith.ExtFOp, args: PythonValues) -> PythonValues:
        return (float(args[0]),)

    @impl(arith.TruncFOp)
    def run_truncf(self, interpreter: Interpreter, op: arith.TruncFOp, args: PythonValues) -> PythonValues:
        dtype = to_numpy_dtype(op.result.type)
        with np.errstate(over="ignore"):
            return (float(dtype.type(args[0])),)

    @impl(arith.SIToFPOp)
    def run_sitofp(self, interpreter: Interpreter, op: arith.SIToFPOp, args: PythonValues) -> PythonValues:
        return (float(args[0]),)

    @impl(arith.FPToSIOp)
    def run_fptosi(self, interpreter: Interpreter, op: arith.FPToSIOp, args: PythonValues) -> PythonValues:
        return (int(args[0]),)

    @impl(arith.ExtSIOp)
    def run_extsi(self, interpreter: Interpreter, op: arith.ExtSIOp, args: PythonValues) -> PythonValues:
        return (int(args[0]),)  # values are already signed Python ints

    @impl(arith.TruncIOp)
    def run_trunci(self, interpreter: Interpreter, op: arith.TruncIOp, args: PythonValues) -> PythonValues:
        bits = to_numpy_dtype(op.result.type).itemsize * 8
        v = int(args[0]) & ((1 << bits) - 1)
        return (v - (1 << bits) if v >> (bits - 1) else v,)

    # -- math

    @impl(xmath.ExpOp)
    def run_exp(self, interpreter: Interpreter, op: xmath.ExpOp, args: PythonValues) -> PythonValues:
        return (_ieee(math.exp, args[0]),)

    @impl(xmath.LogOp)
    def run_log(self, interpreter: Interpreter, op: xmath.LogOp, args: PythonValues) -> PythonValues:
        return (_ieee(math.log, args[0]),)

    @impl(xmath.SqrtOp)
    def run_sqrt(self, interpreter: Interpreter, op: xmath.SqrtOp, args: PythonValues) -> PythonValues:
        return (_ieee(math.sqrt, args[0]),)

    @impl(xmath.TanhOp)
    def run_tanh(self, interpreter: Interpreter, op: xmath.TanhOp, args: PythonValues) -> PythonValues:
        return (math.tanh(args[0]),)

    @impl(xmath.AbsFOp)
    def run_absf(self, interpreter: Interpreter, op: xmath.AbsFOp, args: PythonValues) -> PythonValues:
        return (abs(args[0]),)

    @impl(xmath.ErfOp)
    def run_erf(self, interpreter: Interpreter, op: xmath.ErfOp, args: PythonValues) -> PythonValues:
        return (math.erf(args[0]),)

    @impl(xmath.PowFOp)
    def run_powf(self, interpreter: Interpreter, op: xmath.PowFOp, args: PythonValues) -> PythonValues:
        a, b = args
        try:
            return (a ** b if a >= 0 or float(b).is_integer() else math.nan,)
        except (OverflowError, ZeroDivisionError):  # IEEE results, as NumPy's power
            return (math.inf if a == 0 or abs(a) > 1 else 0.0,)


_STOCK: tuple[type[InterpreterFunctions], ...] = (
    ArithFunctions, BuiltinFunctions, FuncFunctions, MemRefFunctions, ScfFunctions,
    MathFunctions, AffineFunctions,
)

# Op types some implementation covers: checked when compiling, not deep inside a run.
_SUPPORTED: frozenset[type] = frozenset(
    t for cls in (*_STOCK, WrcFunctions) for t, _ in cls._impls()  # noqa: SLF001
)


# ---------------------------------------------------------------------------- backend


class InterpCompiledModule:
    """The module lowered to loops; each `run` interprets one function."""

    warm_up = False
    """No first-call costs worth a warm-up run (`Bundle` reads it; seconds per run here)."""

    def __init__(self, module: ModuleOp) -> None:
        self._module = module.clone()
        ConvertLinalgToLoopsPass().apply(make_context(), self._module)
        self._signatures: dict[str, tuple[list[Any], list[np.dtype[Any]]]] = {}
        for op in self._module.walk():
            if type(op) not in _SUPPORTED and not isinstance(op, ModuleOp | func.FuncOp | memref.GlobalOp):
                raise LoweringError(f"interp backend: unsupported operation {op.name}")
        for op in self._module.ops:
            if isinstance(op, func.FuncOp):
                try:
                    outs = [to_numpy_dtype(t.get_element_type() if isinstance(t, MemRefType) else t)
                            for t in op.function_type.outputs]
                except UnsupportedDtypeError as e:
                    raise LoweringError(f"interp backend: {op.sym_name.data}: {e}") from None
                self._signatures[op.sym_name.data] = (list(op.function_type.inputs), outs)

    @property
    def graphs(self) -> tuple[str, ...]:
        return tuple(self._signatures)

    @property
    def loop_module(self) -> ModuleOp:
        """The level-4 (loops) module that is interpreted."""
        return self._module

    def run(self, graph_name: str, globals_: Mapping[str, np.ndarray],
            args: Sequence[np.ndarray | bool]) -> list[np.ndarray]:
        sig = self._signatures.get(graph_name)
        check_call(graph_name, None if sig is None else len(sig[0]), args)
        assert sig is not None
        in_types, out_dtypes = sig
        interpreter = Interpreter(self._module)
        for cls in _STOCK:
            interpreter.register_implementations(cls())
        state = WrcFunctions(globals_)  # per run: runs on several threads share nothing
        interpreter.register_implementations(state, override=True)
        values = []
        for i, (a, t) in enumerate(zip(args, in_types, strict=True)):
            if isinstance(t, MemRefType):
                a = np.asarray(a)
                shape, dtype = tuple(t.get_shape()), to_numpy_dtype(t.get_element_type())
                if (a.shape, a.dtype) != (shape, dtype):
                    raise InputError(f"argument {i} is {a.dtype}{list(a.shape)}, the graph takes {dtype}{list(shape)}")
                values.append(to_shaped(a, t.get_element_type()))
            else:
                values.append(a)
        results = interpreter.call_op(graph_name, tuple(values))
        state.write_back()
        return [
            to_numpy(r, dt) if isinstance(r, ShapedArray) else np.array(r, dt)
            for r, dt in zip(results, out_dtypes, strict=True)
        ]


class InterpBackend:
    """xDSL's interpreter on loop-level IR: the reference the other backends are tested against."""

    name = "interp"

    def compile(self, module: ModuleOp) -> InterpCompiledModule:
        return InterpCompiledModule(module)
