"""The bundle contract: what wrc's level-3 IR means, in one module (docs/internals.md "Level 3").

The passes write these facts; the runtime (`Bundle`), `wrc inspect`, `wrc graph`, the
backends, weight files and the build workflow read them, and all import them from here. The
module sits just above `wrc.dtypes`, `wrc.errors` and `wrc.ir_read` (xDSL reads only) and
imports no pass, runtime, bundle-file or backend code.

* Names and keys: the three graphs, the `ge.*` attributes, the library calls.
* Readers of one function: `arguments` (each optional update input is followed by its `i1`
  "non-empty" flag), `signature` (the inputs a caller gives) and `effects` (globals read and
  written, under which flags, which input each variable is copied from).
* Readers of a model: `plan(module, graphs)`, validated (`BundleFormatError` otherwise): the
  signature and effects of every graph and derive function, the derived variables, and the
  `WeightSignature` (weight name → variable, shape, dtype, initial value) whose `check` is
  the one validation of new weight values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.dialects import func, memref, scf
from xdsl.dialects.builtin import MemRefType, ModuleOp, StringAttr, UnitAttr, i1
from xdsl.ir import Attribute, Operation, SSAValue

from wrc.dtypes import to_numpy_dtype
from wrc.errors import BundleFormatError, InputError, UnsupportedDtypeError, unknown_names
from wrc.ir_read import ByIdentity, first_base, walk

# --------------------------------------------------------------------------- names and keys

INIT_GRAPH = "var_init_graph"
"""Sets every variable to its original value; absent from a weight-stripped bundle."""
UPDATE_GRAPH = "var_update_graph"
"""One optional input per weight; copies each non-empty one into its variable."""
INFER_GRAPH = "var_infer_graph"
"""The original graph, reading variables where it read the named constants."""
DELTA_GRAPH = "var_delta_graph"
"""Optional (`ge-add-delta-graph`): sets each adapted weight to its base value plus a delta,
dense or low-rank, from inputs only (the runtime passes the base; docs/passes.md)."""

VARIABLE_SUFFIX = "_var"
"""Weight (constant) `c` becomes the variable `c_var` (docs/spec.md §2)."""
UPDATE_INPUT_SUFFIX = "_data"
"""The update graph's input for the variable `v` is named `v_data` (docs/spec.md §2)."""
ASSIGN_SUFFIX = "_assign"
"""The init graph's assign of constant `c` is named `c_assign` (docs/spec.md §2)."""
DELTA_INPUTS = {"dense": ("_base", "_delta"), "lora": ("_base", "_lora_a", "_lora_b", "_lora_scale")}
"""The delta graph's inputs for the variable `v`, per kind of delta: `v_base` (the weight's
base value) and `v_delta` (dense ΔW), or `v_lora_a` [r, in], `v_lora_b` [out, r] and the
scalar `v_lora_scale` (low rank: W = base + scale · B @ A, PEFT's layout)."""

NAME_ATTR = "ge.name"
"""Argument attribute: the name of the input (the `ge.data` the argument was)."""
OPTIONAL_ATTR = "ge.optional"
"""Argument attribute of an update input that may be left out (empty = keep); the next
argument is its `i1` flag, true when the input is non-empty."""
VARIABLE_ATTR = "ge.variable"
"""Marks the `memref.global` of a `ge.variable` (storage the runtime owns)."""
CONSTANT_ATTR = "ge.constant"
"""Marks the constant `memref.global` of a `ge.const`."""
DERIVE_ATTR = "ge.derive"
"""Marks a function of `ge-hoist-weight-only` that computes derived variables from weights;
the runtime runs it when one of the variables it reads changed (not a graph of the bundle)."""
DERIVE_PREFIX = "wrc.derive."
"""Derive functions are named `wrc.derive.<k>`."""

GATHER_CALL, GATHER_AXIS = "wrc_gather", "wrc.gather_axis"
"""`library_call` and axis attribute of the `linalg.generic` a `ge.gather` becomes: the
generic's body is a one-hot reduction (what the interpreter runs), the NumPy JIT takes rows."""


def variable_name(weight: str) -> str:
    """The variable that holds the weight `weight`."""
    return weight + VARIABLE_SUFFIX


def weight_name(variable: str) -> str:
    """The weight (the original constant's name, the key `Bundle.update` takes) of a variable."""
    return variable.removesuffix(VARIABLE_SUFFIX)


# --------------------------------------------------------------------------- globals

Spec = tuple[tuple[int, ...], np.dtype]
"""(shape, dtype) of a tensor."""


def element_dtype(t: Attribute) -> np.dtype | None:
    """The NumPy dtype of an xDSL element type, or None when wrc does not support it."""
    try:
        return to_numpy_dtype(t)
    except UnsupportedDtypeError:
        return None


def memref_spec(t: Attribute) -> Spec | None:
    """(shape, dtype) of a memref type, or None if it is not one with static dims and a
    supported dtype."""
    return _memref_specs(t) if isinstance(t, MemRefType) else None


def _memref_spec_of(t: MemRefType) -> Spec | None:
    try:
        return _memref_spec(t)
    except TypeError:  # an unhashable parameter (text IR may hold any attribute)
        return _memref_spec.__wrapped__(t)


@functools.lru_cache(maxsize=4096)
def _memref_spec(t: MemRefType) -> Spec | None:
    """`memref_spec`, derived once per type (types are values; a bundle's checks ask for each
    global's several times)."""
    shape, dtype = tuple(t.get_shape()), element_dtype(t.element_type)
    return None if dtype is None or any(d < 0 for d in shape) else (shape, dtype)


_memref_specs = ByIdentity(_memref_spec_of)  # (a module's values share a few type objects: by id, not hash)


def global_spec(op: memref.GlobalOp) -> Spec | None:
    """(shape, dtype) of a global, or None if its type has dynamic dims or an unsupported dtype."""
    return memref_spec(op.type)


def module_globals(module: ModuleOp) -> dict[str, memref.GlobalOp]:
    """The module's `memref.global` ops by symbol name, in order."""
    return {op.sym_name.data: op for op in module.ops if isinstance(op, memref.GlobalOp)}


def module_funcs(module: ModuleOp) -> dict[str, func.FuncOp]:
    """The module's functions by symbol name, in order."""
    return {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}


def is_variable(op: memref.GlobalOp) -> bool:
    """Non-constant globals are variables: storage the runtime owns (docs/spec.md §2 `<const>_var`)."""
    return op.constant is None


def stored_weight_names(module: ModuleOp) -> list[str]:
    """Constants whose value is not inline: their bytes live in the weight table."""
    return [name for name, op in module_globals(module).items()
            if not is_variable(op) and isinstance(op.initial_value, UnitAttr)]


def derive_funcs(module: ModuleOp, graphs: Sequence[str]) -> list[func.FuncOp]:
    """The module's derive functions, in module order (a graph is never one)."""
    return [f for name, f in module_funcs(module).items() if DERIVE_ATTR in f.attributes and name not in graphs]


# --------------------------------------------------------------------------- writes to globals

_VIEW_OPS = frozenset({"memref.collapse_shape", "memref.expand_shape", "memref.subview", "memref.cast",
                      "memref.reinterpret_cast"})
"""Ops whose result aliases their memref operand: a write through them writes the global."""


def global_name(value: SSAValue) -> str | None:
    """The global a memref value is (a `memref.get_global` result), else None."""
    owner = value.owner
    return owner.name_.root_reference.data if isinstance(owner, memref.GetGlobalOp) else None


def copy_into_global(op: Operation) -> str | None:
    """The global `op` overwrites whole: a `memref.copy` into a `memref.get_global` result
    (not a view of one), else None."""
    return global_name(op.destination) if isinstance(op, memref.CopyOp) else None


def constant_copies(fn: func.FuncOp, globals_: Mapping[str, memref.GlobalOp]) -> dict[str, str] | None:
    """{variable: constant} when `fn` does nothing but copy whole constants into variables
    (an init graph), else None: running it may then publish the constants' own (read-only)
    arrays as the variables' values, without a copy or a second copy's memory."""
    block = fn.body.blocks[0] if fn.body.blocks else None
    if block is None or block.args or fn.function_type.outputs.data:
        return None
    copies: dict[str, str] = {}
    for op in block.ops:
        if isinstance(op, memref.GetGlobalOp) or (isinstance(op, func.ReturnOp) and not op.operands):
            continue
        var = copy_into_global(op)
        const = global_name(op.source) if isinstance(op, memref.CopyOp) else None
        if var is None or const is None or op.source.type != op.destination.type:
            return None
        if is_variable(globals_[const]) or not is_variable(globals_[var]) or var in copies:
            return None
        copies[var] = const
    return copies or None


def writes_operand(op: Operation, index: int) -> bool:
    """Whether operand `index` of `op` is written: a `memref.copy` destination, a linalg
    `outs` or a `memref.store` target."""
    if isinstance(op, memref.CopyOp) or op.name == "memref.store":
        return index == 1
    outputs = getattr(op, "outputs", None)
    if outputs is None:
        return False
    value = op.operands[index]
    return any(v is value for v in outputs)


def _uses(value: SSAValue, direct: bool = True) -> Iterator[tuple[Operation, int, bool]]:
    """(op, operand index, through no view) for every use of a memref, following views and
    the results an `scf.yield` makes it (both alias it)."""
    for use in list(value.uses):
        op = use.operation
        if op.name in _VIEW_OPS:
            for r in op.results:
                yield from _uses(r, False)
        elif isinstance(op, scf.YieldOp) and (parent := op.parent_op()) is not None \
                and use.index < len(parent.results):
            yield from _uses(parent.results[use.index], False)
        else:
            yield op, use.index, direct


# --------------------------------------------------------------------------- one function


def _bad(function: str, message: str) -> BundleFormatError:
    """The error of a function that breaks the contract."""
    return BundleFormatError(f"bundle: graph {function!r}: {message}")


@dataclass(frozen=True)
class Argument:
    """One argument of a level-3 function, as its attributes and the flag rule describe it."""

    name: str | None  # its `ge.name`
    optional: bool  # `ge.optional`: an update input that may be left out
    flag: int | None  # an optional input's `i1` flag: the index of the next argument
    flag_of: int | None  # a flag: the index of the optional input it describes


def _arg_attrs(fn: func.FuncOp, count: int) -> list[Mapping[str, Attribute]]:
    attrs = [a.data for a in fn.arg_attrs.data] if fn.arg_attrs is not None else []
    return (attrs + [{}] * count)[:count]


def _args(fn: func.FuncOp) -> tuple[SSAValue, ...]:
    return tuple(fn.body.blocks[0].args) if fn.body.blocks else ()


def arguments(fn: func.FuncOp) -> tuple[Argument, ...]:
    """Every argument of `fn`, unvalidated (what a drawing or a code generator needs; see
    `signature` for the checked inputs)."""
    args = _args(fn)
    attrs = _arg_attrs(fn, len(args))
    out: list[Argument] = []
    for i, d in enumerate(attrs):
        label = d.get(NAME_ATTR)
        name = label.data if isinstance(label, StringAttr) else None
        if out and out[-1].flag == i:
            out.append(Argument(name, False, None, i - 1))
            continue
        optional = OPTIONAL_ATTR in d
        has_flag = optional and i + 1 < len(args) and args[i + 1].type == i1
        out.append(Argument(name, optional, i + 1 if has_flag else None, None))
    return tuple(out)


@dataclass(frozen=True)
class Input:
    """An input a caller gives a function (flags are not inputs: the runtime sets them)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    optional: bool  # an update input: empty = keep; the IR takes an i1 "non-empty" flag after it
    argument: int  # its argument index

    def takes(self, value: Any) -> bool:
        """A host array that passes every check as it is, and is not an empty "keep": the
        common case, accepted without building check messages."""
        return (type(value) is np.ndarray and value.dtype == self.dtype and value.shape == self.shape
                and (value.size > 0 or not self.optional))

    def problem(self, value: Any, what: str) -> str | None:
        """Strict checks of an array (no silent casts): the problem as text, or None."""
        if value.dtype != self.dtype:
            return f"{what}: expected dtype {self.dtype}, got {value.dtype}"
        if value.shape != self.shape:
            return f"{what}: expected shape {list(self.shape)}, got {list(value.shape)}"
        return None


def signature(fn: func.FuncOp) -> tuple[Input, ...]:
    """The inputs of `fn`: every argument is a static memref with a `ge.name`, or the `i1`
    flag right after an optional one; names are unique."""
    name = fn.sym_name.data
    args = _args(fn)
    if fn.arg_attrs is not None and len(fn.arg_attrs.data) != len(args):
        raise _bad(name, f"has {len(args)} arguments but {len(fn.arg_attrs.data)} argument attributes")
    inputs: list[Input] = []
    for i, a in enumerate(arguments(fn)):
        if a.flag_of is not None:
            continue
        spec = memref_spec(args[i].type)
        if spec is None or a.name is None:
            raise _bad(name, f"argument {i} ({args[i].type}) is not a static memref with a {NAME_ATTR}")
        if a.optional and a.flag is None:
            raise _bad(name, f"optional input {a.name!r} is not followed by its i1 flag")
        inputs.append(Input(a.name, spec[0], spec[1], a.optional, i))
    if len({x.name for x in inputs}) != len(inputs):
        raise _bad(name, f"input names are not unique: {[x.name for x in inputs]}")
    return tuple(inputs)


@dataclass(frozen=True)
class Write:
    """A write of a function into a variable."""

    var: str
    full: bool  # a whole-buffer memref.copy into the global itself (else: partial, via a view)
    guards: tuple[tuple[int, bool], ...] | None  # (input index, non-empty?) that enable it; None: unknown
    source: str | None  # a whole copy of a global: that global's name


@dataclass(frozen=True)
class FunctionPlan:  # not slotted: `names` is cached in the instance dict
    """The signature and effects of one level-3 function."""

    name: str
    inputs: tuple[Input, ...]
    reads: frozenset[str]  # variables whose value the function reads
    writes: tuple[Write, ...]
    constants: tuple[str, ...]  # constants it touches
    targets: Mapping[int, str]  # optional input index → variable it is copied into

    @functools.cached_property
    def names(self) -> frozenset[str]:
        return frozenset(x.name for x in self.inputs)


def effects(fn: func.FuncOp, globals_: Mapping[str, memref.GlobalOp]) -> FunctionPlan:
    """`fn`'s signature and the globals it reads and writes: every global exists with the
    type it is used as, constants and arguments are never written (through views and
    `scf.yield` too), and no function is called (its accesses would escape this analysis)."""
    name = fn.sym_name.data
    inputs = signature(fn)
    args = _args(fn)
    arg_input = {args[x.argument]: idx for idx, x in enumerate(inputs)}
    for value, idx in arg_input.items():
        # Arguments are the caller's arrays, handed to generated code without a copy.
        if any(writes_operand(op, index) for op, index, _ in _uses(value)):
            raise _bad(name, f"writes its input {inputs[idx].name!r}; inputs are read-only")
    flag_input = {args[x.argument + 1]: idx for idx, x in enumerate(inputs) if x.optional}
    reads: set[str] = set()
    writes: list[Write] = []
    constants: set[str] = set()
    targets: dict[int, str] = {}
    for op in walk(fn):  # (a list, not xDSL's generators; a class test per op class)
        kind = first_base(type(op), _EFFECT_KINDS)
        if kind is None:
            continue
        if kind is func.CallOp:
            raise _bad(name, f"calls @{op.callee.root_reference.data}; bundle graphs are flat")
        assert isinstance(op, memref.GetGlobalOp)
        sym = op.name_.root_reference.data
        g = globals_.get(sym)
        if g is None:
            raise _bad(name, f"reads global @{sym}, which the bundle does not define")
        if g.type != op.memref.type:
            raise _bad(name, f"uses @{sym} as {op.memref.type} but it is {g.type}")
        for use_op, index, direct in _uses(op.memref):
            if isinstance(use_op, memref.CopyOp) and index == 1:
                src = use_op.source
                writes.append(Write(sym, direct, _guards(use_op, fn, flag_input),
                                    global_name(src) if direct else None))
                if direct and src in arg_input and inputs[arg_input[src]].optional:
                    targets[arg_input[src]] = sym
            elif writes_operand(use_op, index):  # a linalg op writing into (part of) the global
                writes.append(Write(sym, False, None, None))
            else:
                reads.add(sym)
        if not is_variable(g):
            constants.add(sym)
    for w in writes:
        if not is_variable(globals_[w.var]):
            raise _bad(name, f"writes the constant @{w.var}")
        if not w.full:
            reads.add(w.var)  # the part not written keeps the old value
    variables_read = frozenset(r for r in reads if is_variable(globals_[r]))
    return FunctionPlan(name, inputs, variables_read, tuple(writes), tuple(sorted(constants)), targets)


_EFFECT_KINDS = (func.CallOp, memref.GetGlobalOp)
"""The ops `effects` looks for (`first_base`: by class, once)."""


def _guards(op: Operation, fn: func.FuncOp, flags: Mapping[SSAValue, int]) -> tuple[tuple[int, bool], ...] | None:
    """The flag conditions under which `op` runs, or None if anything else decides."""
    guards = []
    child, parent = op, op.parent_op()
    while parent is not None and parent is not fn:
        if isinstance(parent, scf.IfOp) and parent.cond in flags:
            guards.append((flags[parent.cond], child.parent_region() is parent.true_region))
        else:  # a loop, or a condition computed in the graph: cannot tell before running
            return None
        child, parent = parent, parent.parent_op()
    return tuple(guards)


# --------------------------------------------------------------------------- a model


def _host_array(value: Any, what: str) -> np.ndarray:
    """`value` as a NumPy array (a NumPy scalar becomes one), else an `InputError`."""
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise InputError(f"{what} must be a numpy array, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Weight:
    """A refreshable weight: what `Bundle.update` takes under `name`."""

    name: str  # the original constant's name
    variable: str  # the variable that holds it
    input: Input  # its input of the update graph (index `index`)
    index: int
    initial: str | None  # the global `var_init_graph` copies into the variable, if any

    @property
    def shape(self) -> tuple[int, ...]:
        return self.input.shape

    @property
    def dtype(self) -> np.dtype:
        return self.input.dtype


@dataclass(frozen=True)
class WeightSignature:
    """The refreshable weights of a model by name, in update-graph input order."""

    weights: Mapping[str, Weight]

    def __iter__(self) -> Iterator[Weight]:
        return iter(self.weights.values())

    def __len__(self) -> int:
        return len(self.weights)

    def check(self, values: Mapping[str, Any],
              as_array: Callable[[Any, str], Any] = _host_array) -> list[tuple[Weight, Any]]:
        """The entries of `values` to apply (empty arrays mean "keep" and are left out), after
        checking every one: unknown name, not an array (`as_array` converts or raises
        `InputError`), wrong dtype or shape; a "keep" is an empty array of the weight's dtype
        and shape [0] (or the weight's own shape, when that is empty). Any problem raises one
        `InputError` naming all."""
        problems, out, unknown = [], [], []
        for key, value in values.items():
            w = self.weights.get(key) if isinstance(key, str) else None
            if w is None:
                unknown.append(key)
                continue
            if w.input.takes(value):
                out.append((w, value))
                continue
            try:
                arr = as_array(value, f"weight {key!r}")
            except InputError as e:
                problems.append(str(e))
                continue
            if arr.size == 0 and arr.dtype == w.dtype and arr.shape in ((0,), w.shape):
                continue  # empty = keep (docs/spec.md §2)
            if arr.size == 0:  # e.g. a [0, 8] checkpoint tensor for an [8, 8] weight: a mistake
                problems.append(f"weight {key!r}: an empty array keeps the weight only with shape [0] "
                                f"and dtype {w.dtype}, got {arr.dtype}{list(arr.shape)}")
                continue
            problem = w.input.problem(arr, f"weight {key!r}")
            if problem:
                problems.append(problem)
            out.append((w, arr))
        if unknown:
            problems.append(unknown_names("weight", unknown, self.weights))
        if problems:
            raise InputError("update() changed nothing: " + "; ".join(problems))
        return out


def _initial_values(graphs: Mapping[str, FunctionPlan]) -> dict[str, str | None]:
    """Variable → the global `var_init_graph` copies into it whole (None: a computed value)."""
    init = graphs.get(INIT_GRAPH)
    return {w.var: w.source for w in init.writes if w.full} if init is not None else {}


def _weight_signature(graphs: Mapping[str, FunctionPlan], initial: Mapping[str, str | None]) -> WeightSignature:
    """Weight name → its variable, spec and initial value, from the update and init graphs.
    The name is that of the variable each optional input is copied into (the input's name as
    a fallback)."""
    upd = graphs.get(UPDATE_GRAPH)
    weights: dict[str, Weight] = {}
    for idx, x in enumerate(upd.inputs if upd is not None else ()):
        if not x.optional:
            continue
        var = upd.targets.get(idx)  # type: ignore[union-attr]
        key = weight_name(var if var is not None else x.name.removesuffix(UPDATE_INPUT_SUFFIX))
        if key in weights:
            raise _bad(UPDATE_GRAPH, f"two inputs update the weight {key!r}")
        var = var if var is not None else variable_name(key)
        weights[key] = Weight(key, var, x, idx, initial.get(var))
    return WeightSignature(weights)


def _derived_sources(derives: Sequence[FunctionPlan]) -> dict[str, frozenset[str]]:
    """Derived variable → the variables it is computed from; checks the derive functions'
    shape: no inputs, whole writes of variables no graph may write, sources not derived."""
    derived: dict[str, frozenset[str]] = {}
    for d in derives:
        if d.inputs:
            raise _bad(d.name, "a derive function takes no inputs")
        for w in d.writes:
            if not w.full or w.guards != () or w.var in derived:
                raise _bad(d.name, f"derived variable @{w.var} must be written whole, once, by one derive function")
            derived[w.var] = d.reads
    for d in derives:
        if not d.reads.isdisjoint(derived):
            raise _bad(d.name, "a derive function must read weights only (not derived variables)")
    return derived


@dataclass(frozen=True)
class Plan:
    """A validated level-3 model: what every reader of a bundle derives from its IR."""

    graphs: Mapping[str, FunctionPlan]  # by name, in the model's order
    derives: tuple[FunctionPlan, ...]  # the derive functions, in module order
    derived: Mapping[str, frozenset[str]]  # derived variable → the variables it is computed from
    specs: Mapping[str, Spec]  # every global
    variables: tuple[str, ...]  # the variables callers see (not derived), in module order
    initial: Mapping[str, str | None]  # variable → the global var_init_graph copies into it whole
    weights: WeightSignature


def plan(module: ModuleOp, graphs: Sequence[str]) -> Plan:
    """The plan of the model whose graphs are the functions `graphs` of `module`; any break
    of the contract is a `BundleFormatError` naming the function or global."""
    globals_, funcs = module_globals(module), module_funcs(module)
    for g in graphs:
        if g not in funcs:
            raise BundleFormatError(f"bundle: graph {g!r} is not a function of the IR")
    infos = {g: effects(funcs[g], globals_) for g in graphs}
    derives = tuple(effects(f, globals_) for f in derive_funcs(module, graphs))
    derived = _derived_sources(derives)
    for info in infos.values():
        clash = sorted({w.var for w in info.writes} & derived.keys())
        if clash:
            raise _bad(info.name, f"writes the derived variable(s) {', '.join(clash)}")
    specs: dict[str, Spec] = {}
    for name, op in globals_.items():
        spec = global_spec(op)
        if spec is None:
            raise BundleFormatError(f"bundle: global @{name} has unsupported type {op.type}")
        specs[name] = spec
    variables = tuple(n for n, op in globals_.items() if is_variable(op) and n not in derived)
    initial = _initial_values(infos)
    return Plan(infos, derives, derived, specs, variables, initial, _weight_signature(infos, initial))
