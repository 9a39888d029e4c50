"""`ge-bufferize`: tensors to memrefs, variables and constants to globals (docs/internals.md, level 3).

xDSL 0.74 has no bufferization pass, and wrc only needs to bufferize the IR that
`convert-ge-to-linalg` produces, so this is a small one:

* `ge.variable` → public `memref.global {ge.variable}` without initial value;
  `ge.const` → private constant `memref.global {ge.constant}` (inline value kept) read with
  `memref.get_global`; `ge.read_variable` → `memref.get_global`; `ge.assign` → `memref.copy`
  into the global; `ge.assign_if_nonempty` → the same under `scf.if %flag`.
* `ge.data` → function arguments in index order (arg attr `ge.name`); an input feeding
  `ge.assign_if_nonempty` gets the variable's memref type, `ge.optional`, and an `i1` flag
  argument right after it.
* `tensor.empty` → `memref.alloc`; linalg ops write their `outs` buffers (destination-passing
  style, no results); `tensor.collapse_shape`/`expand_shape` → the memref views.
* Function results that alias an argument, a global or another result are copied.

In-place rule for a linalg `outs` tensor `t` (decided on the tensor IR before rewriting):
write into `t`'s buffer when `t` comes from `tensor.empty` or from a linalg op and has no
other use; a `tensor.empty` with other uses gets a fresh buffer; anything else (an input, a
global, a view, a value read again later) is copied into a fresh buffer first.

Each op's pattern runs once, in program order, so the values an op uses are memrefs by then.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

from xdsl.context import Context
from xdsl.dialects import func, memref, scf, tensor
from xdsl.dialects.builtin import (
    UNKNOWN_LOC,
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    UnitAttr,
    UnrankedTensorType,
    i1,
    i32,
)
from xdsl.dialects.linalg.abstract_ops import LinalgStructuredOperation
from xdsl.dialects.linalg.ops import FillOp, GenericOp
from xdsl.ir import Attribute, Block, BlockArgument, Operation, Region, SSAValue, SSAValues
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint, Rewriter

from wrc.abi import CONSTANT_ATTR, NAME_ATTR, OPTIONAL_ATTR, VARIABLE_ATTR
from wrc.dialects import ge
from wrc.errors import LoweringError
from wrc.ir_read import ByIdentity, first_base, inputs, new_op, outputs, walk
from wrc.passes._rewriter import OnePassRewriter

Mode = Literal["reuse", "fresh", "copy"]
"""How a linalg op gets its output buffer: "reuse", "fresh" (new alloc) or "copy"."""


def memref_of(t: TensorType, what: str) -> MemRefType:
    m = _memref_types(t)
    if m is None:
        raise LoweringError(f"{what}: dynamic dimension in {t} not supported; give the graph inputs static shapes")
    return m


@functools.lru_cache(maxsize=4096)
def _memref_type(t: TensorType) -> MemRefType | None:
    """Attributes are immutable values: build each memref type once (xDSL's constructor checks
    its parameters against their constraints, a large part of this pass's time); None for a
    dynamic shape."""
    shape = t.get_shape()
    return None if ge.DYNAMIC in shape else MemRefType(t.element_type, shape)


_memref_types = ByIdentity(_memref_type)  # (the same type object is looked up again per use: by id, not hash)


def _is_buffer(value: SSAValue) -> bool:
    return first_base(type(value.type), _TENSOR_TYPES) is None  # (read per operand and value)


_TENSOR_TYPES = (TensorType, UnrankedTensorType)


def _ready(op: Operation) -> bool:
    """Every operand is already bufferized (its producer was rewritten)."""
    return all(_is_buffer(v) for v in op.operands)


def _parent_func(op: Operation) -> func.FuncOp | None:
    parent = op.parent_op()
    while parent is not None and not isinstance(parent, func.FuncOp):
        parent = parent.parent_op()
    return parent


# This pass creates tens of thousands of ops; `new_op` (`Op.create` in one call) with their
# properties as xDSL's builders would set them skips the IRDL builder's argument
# normalisation, half of the pass's time. The properties are those of `memref.AllocOp((), (), t)`,
# `memref.GetGlobalOp(name, t)`, `memref.CopyOp(src, dst)` and `memref.GlobalOp.get(...)`;
# `new_op` gives the location (xDSL looks its default up by an import per op).
_NO_OPERAND_SEGMENTS = DenseArrayBase.from_list(i32, (0, 0))
_UNIT = UnitAttr()  # (attributes are values: one made once serves every op)
_NO_ATTRS = DictionaryAttr({})


def _new_alloc(t: Attribute) -> memref.AllocOp:
    assert isinstance(t, MemRefType)
    return new_op(memref.AllocOp, result_types=(t,), properties={"operandSegmentSizes": _NO_OPERAND_SEGMENTS})


@functools.lru_cache(maxsize=4096)
def _symbol(name: str) -> SymbolRefAttr:
    return SymbolRefAttr(name)


def _new_get_global(name: str, t: Attribute) -> memref.GetGlobalOp:
    return new_op(memref.GetGlobalOp, result_types=(t,), properties={"name": _symbol(name)})


def _new_copy(source: SSAValue, target: SSAValue) -> memref.CopyOp:
    return new_op(memref.CopyOp, operands=(source, target))


def _new_global(name: str, t: MemRefType, initial_value: Attribute, visibility: str,
                constant: UnitAttr | None, marker: str) -> memref.GlobalOp:
    """`memref.GlobalOp.get(name, t, initial_value, visibility, constant)` marked `{marker}`."""
    properties = {"sym_name": StringAttr(name), "type": t, "initial_value": initial_value,
                  "sym_visibility": _visibility(visibility)}
    if constant is not None:
        properties["constant"] = constant
    return new_op(memref.GlobalOp, properties=properties, attributes={marker: _UNIT})


@functools.cache
def _visibility(name: str) -> StringAttr:
    return StringAttr(name)


def _alloc(b: PatternRewriter, t: Attribute) -> SSAValue:
    return b.insert(_new_alloc(t)).memref


def _copy_to_alloc(b: PatternRewriter, value: SSAValue) -> SSAValue:
    fresh = _alloc(b, value.type)
    b.insert(_new_copy(value, fresh))
    return fresh


@dataclass
class _State:
    """Facts gathered on the tensor IR before rewriting, shared by the patterns."""

    out_mode: dict[tuple[Operation, int], Mode] = field(default_factory=dict)
    data_args: dict[Operation, BlockArgument] = field(default_factory=dict)
    flags: dict[BlockArgument, BlockArgument] = field(default_factory=dict)
    written: set[tuple[Operation, str]] = field(default_factory=set)
    """(function, variable) pairs: reads of a variable its function also writes are snapshotted."""


# --------------------------------------------------------------------------- module-level


class VariableToGlobal(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.VariableOp, rewriter: PatternRewriter) -> None:
        name = op.sym_name.data
        t = memref_of(op.type, f"ge.variable @{name}")
        rewriter.replace(op, _new_global(name, t, _UNIT, "public", None, VARIABLE_ATTR))


def _const_globals(module: ModuleOp, ops: list[Operation]) -> list[memref.GlobalOp]:
    """One constant global per distinct `ge.const` name; conflicting names are errors."""
    symbols: dict[str, Operation] = {}
    for op in module.ops:
        sym = op.properties.get("sym_name")
        if isinstance(sym, StringAttr):
            symbols[sym.data] = op
    consts: dict[str, ge.ConstOp] = {}
    for op in ops:
        if not isinstance(op, ge.ConstOp):
            continue
        name = op.const_name.data
        if isinstance(symbols.get(name), ge.VariableOp):
            raise LoweringError(f'ge.const "{name}": a ge.variable of the same name exists')
        if name in symbols:
            raise LoweringError(f'ge.const "{name}": the name is already a symbol of the module ({symbols[name].name})')
        first = consts.setdefault(name, op)
        if first.output.type != op.output.type:
            raise LoweringError(
                f'ge.const "{name}": defined with two types, {first.output.type} and {op.output.type}'
            )
        if first.value is None:
            consts[name] = op
        elif op.value is not None and op.value != first.value:
            raise LoweringError(f'ge.const "{name}": defined with two different inline values')
    globals_: list[memref.GlobalOp] = []
    for name, op in consts.items():
        t = memref_of(op.output.type, f'ge.const "{name}"')
        value = op.value if op.value is not None else _UNIT
        globals_.append(_new_global(name, t, value, "private", _UNIT, CONSTANT_ATTR))
    return globals_


# --------------------------------------------------------------------------- graph ops


@dataclass
class DataToArgument(RewritePattern):
    state: _State

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.DataOp, rewriter: PatternRewriter) -> None:
        rewriter.replace(op, [], [self.state.data_args[op]])


class ConstToGetGlobal(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.ConstOp, rewriter: PatternRewriter) -> None:
        rewriter.replace(op, _new_get_global(op.const_name.data, memref_of(op.output.type, op.name)))


@dataclass
class ReadVariableToGetGlobal(RewritePattern):
    state: _State

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.ReadVariableOp, rewriter: PatternRewriter) -> None:
        name = op.variable.string_value()
        value = rewriter.insert(_new_get_global(name, memref_of(op.output.type, op.name))).memref
        if (_parent_func(op), name) in self.state.written:
            value = _copy_to_alloc(rewriter, value)  # keep the value read, not a later write
        rewriter.replace(op, [], [value])


def _assign(b: PatternRewriter, variable: str, value: SSAValue) -> None:
    target = b.insert(_new_get_global(variable, value.type)).memref
    b.insert(_new_copy(value, target))


class AssignToCopy(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.AssignOp, rewriter: PatternRewriter) -> None:
        if not _ready(op):
            return
        _assign(rewriter, op.variable.string_value(), op.value)
        rewriter.erase(op)


@dataclass
class AssignIfNonEmptyToIf(RewritePattern):
    """`scf.if %flag { copy }` for an optional input; a static operand is non-empty unless size 0."""

    state: _State

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ge.AssignIfNonEmptyOp, rewriter: PatternRewriter) -> None:
        if not _ready(op):
            return
        variable = op.variable.string_value()
        flag = self.state.flags.get(op.value) if isinstance(op.value, BlockArgument) else None
        if flag is not None:
            target = _new_get_global(variable, op.value.type)
            body = Block([target, _new_copy(op.value, target.memref), new_op(scf.YieldOp)])
            rewriter.insert(new_op(scf.IfOp, operands=(flag,), regions=(Region(body), Region())))  # no else
        else:
            assert isinstance(op.value.type, MemRefType)
            if 0 not in op.value.type.get_shape():
                _assign(rewriter, variable, op.value)
        rewriter.erase(op)


# --------------------------------------------------------------------------- tensor and linalg ops


class EmptyToAlloc(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.EmptyOp, rewriter: PatternRewriter) -> None:
        rewriter.replace(op, _new_alloc(memref_of(op.tensor.type, op.name)))


def _out_buffers(b: PatternRewriter, op: LinalgStructuredOperation, state: _State) -> list[SSAValue]:
    buffers: list[SSAValue] = []
    for i, out in enumerate(outputs(op)):
        mode = state.out_mode.get((op, i), "copy")
        if mode == "fresh":
            out = _alloc(b, out.type)
        elif mode == "copy":
            out = _copy_to_alloc(b, out)
        buffers.append(out)
    return buffers


def _to_buffers(b: PatternRewriter, op: LinalgStructuredOperation, state: _State) -> None:
    """`op` (a `linalg.generic` or `linalg.fill` on tensors) made, in place, to write its
    `outs` buffers: the buffers replace its `outs` operands and its results, which it drops.

    What `replace` with a new op of the same class, properties, attributes and (moved) body
    would make, without creating that op and erasing this one, half of these rewrites' time
    on large graphs (docs/performance.md, "compile and save (session 7)")."""
    outs = _out_buffers(b, op, state)
    op.operands = (*inputs(op), *outs)
    for old, new in zip(op.results, outs, strict=True):
        old.replace_all_uses_with(new)
        if not new.name_hint:
            new.name_hint = old.name_hint
    op.results = SSAValues()
    b.has_done_action = True


@dataclass
class GenericOnBuffers(RewritePattern):
    state: _State

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: GenericOp, rewriter: PatternRewriter) -> None:
        if not op.res or not _ready(op):
            return
        _to_buffers(rewriter, op, self.state)


@dataclass
class FillOnBuffers(RewritePattern):
    state: _State

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: FillOp, rewriter: PatternRewriter) -> None:
        if not op.res or not _ready(op):
            return
        _to_buffers(rewriter, op, self.state)


class CollapseShapeToView(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.CollapseShapeOp, rewriter: PatternRewriter) -> None:
        if not _ready(op):
            return
        view = memref.CollapseShapeOp(
            operands=[op.src], result_types=[memref_of(op.result.type, op.name)],
            properties={"reassociation": op.reassociation},
        )
        rewriter.replace(op, view)


class ExpandShapeToView(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tensor.ExpandShapeOp, rewriter: PatternRewriter) -> None:
        if not _ready(op):
            return
        view = memref.ExpandShapeOp(
            operands=[op.src, []], result_types=[memref_of(op.result.type, op.name)],
            properties={"reassociation": op.reassociation, "static_output_shape": op.static_output_shape},
        )
        rewriter.replace(op, view)


def _root(value: SSAValue) -> SSAValue:
    """The buffer a view was taken of."""
    while isinstance(value.owner, memref.CollapseShapeOp | memref.ExpandShapeOp):
        value = value.owner.src
    return value


class CopyAliasedResults(RewritePattern):
    """Outputs never alias inputs, weights, or each other: copy those that would."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.ReturnOp, rewriter: PatternRewriter) -> None:
        if not _ready(op):
            return
        seen: set[SSAValue] = set()
        results: list[SSAValue] = []
        for value in op.arguments:
            root = _root(value)
            if isinstance(root, BlockArgument) or isinstance(root.owner, memref.GetGlobalOp) or root in seen:
                value = _copy_to_alloc(rewriter, value)
            seen.add(root)
            results.append(value)
        if results != list(op.arguments):
            rewriter.replace(op, func.ReturnOp(*results))


# --------------------------------------------------------------------------- analysis and driver


def _plan_outputs(ops: list[Operation], state: _State) -> None:
    """Decide, on the tensor IR, which linalg `outs` can be written in place (see module doc)."""
    for op in ops:
        if not isinstance(op, LinalgStructuredOperation) or not op.res:
            continue
        for i, out in enumerate(outputs(op)):
            single = out.has_one_use()
            if isinstance(out.owner, tensor.EmptyOp):
                state.out_mode[(op, i)] = "reuse" if single else "fresh"
            elif isinstance(out.owner, LinalgStructuredOperation) and single:
                state.out_mode[(op, i)] = "reuse"
            else:
                state.out_mode[(op, i)] = "copy"


def _arg_attrs(fn: func.FuncOp) -> list[dict[str, Attribute]]:
    if fn.arg_attrs is None:
        return [{} for _ in fn.args]
    return [dict(d.data) for d in fn.arg_attrs.data]


def _make_arguments(fn: func.FuncOp, state: _State) -> None:
    """Turn the `ge.data` ops of `fn` into block arguments (plus flags for optional inputs)."""
    block = fn.body.blocks[0]
    attrs = _arg_attrs(fn)
    for arg in list(fn.args):  # a level-2 function normally has none; convert any tensor ones
        if isinstance(arg.type, TensorType):
            Rewriter.replace_value_with_new_type(arg, memref_of(arg.type, f"func @{fn.sym_name.data}"))
    datas = sorted((op for op in block.ops if isinstance(op, ge.DataOp)), key=lambda d: d.index.value.data)
    indices = [d.index.value.data for d in datas]
    if indices != list(range(len(datas))):
        raise LoweringError(
            f"func @{fn.sym_name.data}: ge.data indices {indices} must be 0..{len(datas) - 1}, each once"
        )
    types: list[Attribute] = []  # of the new arguments, in order
    optionals: list[bool] = []  # per ge.data: an optional input, with a flag argument after it
    for data in datas:
        what = f'ge.data "{data.data_name.data}"'
        users = [use.operation for use in data.output.uses]
        assigns = [u for u in users if isinstance(u, ge.AssignIfNonEmptyOp)]
        entry: dict[str, Attribute] = {NAME_ATTR: data.data_name}
        if assigns:
            if len(assigns) != len(users):
                raise LoweringError(f"{what}: an input of ge.assign_if_nonempty may be empty and has no other use")
            first, *others = (ge.lookup_variable(a, a.variable).type for a in assigns)
            if any(t != first for t in others):
                types_ = {first, *others}
                raise LoweringError(f"{what}: assigned to variables of different types {sorted(map(str, types_))}")
            types += [memref_of(first, what), i1]
            optionals.append(True)
            entry[OPTIONAL_ATTR] = _UNIT
            attrs += [entry, {}]
        else:
            t = data.output.type
            if not isinstance(t, TensorType):
                raise LoweringError(f"{what}: unranked input {t} only allowed as an input of ge.assign_if_nonempty")
            types.append(memref_of(t, what))
            optionals.append(False)
            attrs.append(entry)
    args = iter(_append_args(block, types))
    for data, optional in zip(datas, optionals, strict=True):
        arg = state.data_args[data] = next(args)
        if optional:
            flag = state.flags[arg] = next(args)
            if data.output.name_hint:
                flag.name_hint = f"{data.output.name_hint}_nonempty"
    if any(attrs):
        fn.arg_attrs = ArrayAttr([DictionaryAttr(a) if a else _NO_ATTRS for a in attrs])


def _append_args(block: Block, types: list[Attribute]) -> list[BlockArgument]:
    """`[block.insert_arg(t, len(block.args)) for t in types]` in one update of the argument
    tuple, which `insert_arg` rebuilds per argument (quadratic in a graph of thousands of inputs)."""
    n = len(block.args)
    new = [BlockArgument(t, block, n + i, UNKNOWN_LOC) for i, t in enumerate(types)]
    block._args = (*block.args, *new)
    return new


def _check_lowered(ops: list[Operation]) -> None:
    for op in ops:
        if isinstance(op, ge.ComputeOp):
            raise LoweringError(f"{op.name}: not lowered; run convert-ge-to-linalg before ge-bufferize")


def _check_bufferized(ops: list[Operation]) -> None:
    # Every operand is some op's result or block argument, so these are all the values.
    for op in ops:
        for value in op.results:
            if not _is_buffer(value):
                raise LoweringError(f"{op.name}: cannot bufferize a value of type {value.type}")
        for region in op.regions:
            for block in region.blocks:
                for value in block.args:
                    if not _is_buffer(value):
                        raise LoweringError(f"{op.name}: cannot bufferize a value of type {value.type}")


@dataclass(frozen=True)
class GeBufferizePass(ModulePass):
    """Level 2 → level 3: linalg on memrefs, globals for variables and constants, inputs as arguments."""

    name = "ge-bufferize"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        ops = walk(op)  # the module's ops before rewriting, walked once for the checks below
        _check_lowered(ops)
        state = _State()
        consts = _const_globals(op, ops)
        funcs = [f for f in op.ops if isinstance(f, func.FuncOp) and not f.is_declaration]
        for fn in funcs:
            _make_arguments(fn, state)
            for inner in walk(fn):
                if isinstance(inner, ge.AssignOp | ge.AssignIfNonEmptyOp):
                    state.written.add((fn, inner.variable.string_value()))
        for data in ops:  # e.g. inside a nested builtin.module or an scf.if region
            if isinstance(data, ge.DataOp) and data not in state.data_args:
                raise LoweringError(f'ge.data "{data.data_name.data}": a graph input must be in the body of a '
                                    "func.func at the top level of the module")
        _plan_outputs(ops, state)
        if consts and funcs:
            op.body.block.insert_ops_before(consts, funcs[0])
        elif consts:
            op.body.block.add_ops(consts)
        patterns: dict[type[Operation], RewritePattern] = {
            ge.VariableOp: VariableToGlobal(), ge.DataOp: DataToArgument(state), ge.ConstOp: ConstToGetGlobal(),
            ge.ReadVariableOp: ReadVariableToGetGlobal(state), ge.AssignOp: AssignToCopy(),
            ge.AssignIfNonEmptyOp: AssignIfNonEmptyToIf(state), tensor.EmptyOp: EmptyToAlloc(),
            GenericOp: GenericOnBuffers(state), FillOp: FillOnBuffers(state),
            tensor.CollapseShapeOp: CollapseShapeToView(), tensor.ExpandShapeOp: ExpandShapeToView(),
            func.ReturnOp: CopyAliasedResults(),
        }
        # Each op once, in program order, so the producers of its operands are rewritten
        # before it: xDSL's greedy worklist driver found nothing more and added ~10 % to the
        # pass on large graphs (an op left unready would be reported by _check_bufferized).
        rewriter = OnePassRewriter(InsertPoint.at_end(op.body.block))
        for inner in ops:
            pattern = patterns.get(type(inner))
            if pattern is not None:
                rewriter.start(inner)
                pattern.match_and_rewrite(inner, rewriter)
        for fn in funcs:
            fn.update_function_type()
        ops = walk(op)
        for dead in [o for o in ops if isinstance(o, memref.AllocOp) and not o.memref.uses]:
            dead.detach()  # e.g. a tensor.empty whose every user got a fresh buffer
            dead.erase()
        _check_bufferized(ops)

