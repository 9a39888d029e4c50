"""Reads of xDSL IR that compiling and loading repeat for every op, made cheaper than xDSL's
own accessors (same results):

* `walk(op)`: the ops `op.walk()` yields, in its order (pre-order: an op, then the ops of its
  regions' blocks), as a list;
* `inputs(op)` / `outputs(op)`: a linalg structured op's (a generic's, a fill's) `inputs` and
  `outputs`;
* `first_base(cls, bases)`: which of `bases` a class derives from, tested once per class;
* `ByIdentity(derive)`: `derive(attribute)` memoized by the attribute object;
* `clone(op)`: `op.clone()` (the same IR, name hints included) in one pass; `clone_body(region)`
  the same for a self-contained one-block region (a linalg body);
* `new_op(cls, ...)`: `cls.create(...)`, what xDSL's `Operation.__init__` and IRDL's
  `__post_init__` make, without a call per field (compiles and loads make ~80,000 ops for a
  2,000-op graph: docs/performance.md, "Issue 12: compile and cold load (session 8)").

xDSL 0.74's `Operation.walk` yields each op through a chain of generators, one per op, region
and block it is nested in; on a 25,000-op module this takes half the time of a walk: the
planner, the bundle checks, the load analysis and the lowering passes walk such modules
several times each (docs/performance.md, "Issue 12: compile and cold load (session 6)").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from xdsl.dialects.builtin import UNKNOWN_LOC, LocationAttr
from xdsl.dialects.linalg import ops as linalg
from xdsl.ir import Attribute, Block, BlockArgument, Operation, Region, SSAValue
from xdsl.ir.core import OpResult, SSAValues, Use
from xdsl.irdl import IRDLOperation, OptionalDef


@functools.cache
def first_base(cls: type, bases: tuple[type, ...]) -> type | None:
    """The first of `bases` that `cls` derives from, else None: an op's or a type's kind
    tested once per class (an `isinstance` against xDSL's ABCs costs that per object, and
    compiles and loads test every op and value)."""
    return next((b for b in bases if issubclass(cls, b)), None)


def walk(op: Operation) -> list[Operation]:
    """`list(op.walk())`: `op` and every op nested in it, in pre-order."""
    out: list[Operation] = []
    append = out.append

    def visit(o: Operation) -> None:
        append(o)
        for region in o.regions:
            for block in region.blocks:
                child = block.first_op
                while child is not None:
                    visit(child)
                    child = child.next_op

    visit(op)
    return out


K = TypeVar("K")
V = TypeVar("V")


class ByIdentity(Generic[K, V]):
    """`derive(x)` memoized by `x`'s identity, for attributes (values whose hash walks their
    parameters, each call): IR shares few such objects among many ops. Each entry keeps `x`
    alive, so its id is not reused meanwhile; cleared when `limit` entries are held."""

    def __init__(self, derive: Callable[[K], V], limit: int = 4096) -> None:
        self._derive, self._limit = derive, limit
        self._known: dict[int, tuple[K, V]] = {}

    def __call__(self, x: K) -> V:
        known = self._known.get(id(x))
        if known is None or known[0] is not x:
            if len(self._known) >= self._limit:
                self._known.clear()
            known = self._known[id(x)] = (x, self._derive(x))
        return known[1]


_segment_values = ByIdentity(lambda attr: tuple(attr.get_values()))  # type: ignore[attr-defined]


def _segments(op: Operation) -> tuple[int, ...] | None:
    """The operand segment sizes of a linalg structured op, decoded once per attribute object
    (xDSL's `inputs` and `outputs` decode them at each read, ~4 µs; the JIT's planner reads
    them a dozen times per op). None for an op sized otherwise (`linalg.transpose`:
    same-size variadic operands)."""
    attr = op.properties.get("operandSegmentSizes")
    return None if attr is None else _segment_values(attr)


def inputs(op: linalg.GenericOp | linalg.FillOp) -> Sequence[SSAValue]:
    """`op.inputs`."""
    sizes = _segments(op)
    return op.inputs if sizes is None else op._operands[:sizes[0]]


def outputs(op: linalg.GenericOp | linalg.FillOp) -> Sequence[SSAValue]:
    """`op.outputs`."""
    sizes = _segments(op)
    return op.outputs if sizes is None else op._operands[sizes[0]:sizes[0] + sizes[1]]


OpT = TypeVar("OpT", bound=Operation)

Defaults = tuple[tuple[tuple[str, Attribute], ...], tuple[tuple[str, Attribute], ...]]


@functools.cache
def op_defaults(cls: type[Operation]) -> Defaults | None:
    """The default properties and attributes IRDL's `__post_init__` fills in an op of `cls`
    (those not optional and with a default value, in definition order), or None where
    `Operation.create` must make the op (a class not made by `irdl_op_definition` alone)."""
    if (not issubclass(cls, IRDLOperation) or cls.__post_init__ is not IRDLOperation.__post_init__
            or cls.__new__ is not object.__new__):
        return None
    op_def = cls.get_irdl_definition()
    return (tuple((k, d.default_value) for k, d in op_def.properties.items()
                  if not isinstance(d, OptionalDef) and d.default_value is not None),
            tuple((k, d.default_value) for k, d in op_def.attributes.items()
                  if not isinstance(d, OptionalDef) and d.default_value is not None))


_POST_INIT = Operation.__post_init__  # (an implicit builder replaces it while it is active)


def new_op(cls: type[OpT], operands: Sequence[SSAValue] = (), result_types: Sequence[Attribute] = (),
           properties: Mapping[str, Attribute] = {}, attributes: Mapping[str, Attribute] = {},  # noqa: B006
           regions: Sequence[Region] = (), location: LocationAttr = UNKNOWN_LOC) -> OpT:
    """`cls.create(operands=..., ...)` (no successors): the same op, made ~2× faster (`init_op`)."""
    op = cls.__new__(cls)
    init_op(op, operands, result_types, properties, attributes, regions, location)
    return op


def init_op(op: Operation, operands: Sequence[SSAValue] = (), result_types: Sequence[Attribute] = (),
            properties: Mapping[str, Attribute] = {}, attributes: Mapping[str, Attribute] = {},  # noqa: B006
            regions: Sequence[Region] = (), location: LocationAttr = UNKNOWN_LOC) -> None:
    """`Operation.__init__(op, ...)` (no successors), which ends with IRDL's `__post_init__`:
    what they set (operands and their uses, results, the definition's default properties and
    attributes, the regions' parent) set in one call instead of a call per field. Inside an
    implicit builder (which inserts each new op), or for a class with its own `__post_init__`
    or `__new__`, it is `Operation.__init__`."""
    defaults = op_defaults(type(op))
    if defaults is None or Operation.__post_init__ is not _POST_INIT:
        Operation.__init__(op, operands=operands, result_types=result_types, properties=properties,
                           attributes=attributes, regions=regions, location=location)
        return
    uses = []
    for i, v in enumerate(operands):  # IRWithUses.add_use
        first = v.first_use
        u = Use(op, i, None, first)
        if first is not None:
            first._prev_use = u
        v.first_use = u
        uses.append(u)
    op._operands = SSAValues(operands)
    op._operand_uses = tuple(uses)
    op.results = SSAValues([OpResult(t, op, i) for i, t in enumerate(result_types)])
    props, attrs = dict(properties), dict(attributes)
    for k, a in defaults[0]:
        if k not in props:
            props[k] = a
    for k, a in defaults[1]:
        if k not in attrs:
            attrs[k] = a
    op.properties = props
    op.attributes = attrs
    op.location = location
    op._successors = op._successor_uses = ()
    for r in regions:  # Operation.add_region
        if r.parent is not None:
            raise ValueError("Cannot add region that is already attached on an operation.")
        r.parent = op
    op.regions = tuple(regions)


class _ForwardUse(Exception):
    """An operand defined later in the op being cloned (a graph region) or a successor."""


def clone(root: OpT) -> OpT:
    """`root.clone()`: xDSL 0.74 creates each op without operands and then walks the clone
    again to set them all (graph regions may use a value before its definition); here each
    op is created with its operands, a third less time on the functions that compiles
    clone. An operand defined inside `root` but not yet cloned, or a successor, falls back to
    xDSL's clone (what was made is unlinked from the values it used)."""
    mapper: dict[SSAValue, SSAValue] = {}
    made: list[Operation] = []

    def one(op: Operation) -> Operation:
        if op._successors:
            raise _ForwardUse
        operands = []
        for v in op._operands:
            new = mapper.get(v)
            if new is None:
                if root.is_ancestor(v.owner):
                    raise _ForwardUse
                new = v  # defined outside `root`: the clone uses it too
            operands.append(new)
        regions = []
        for region in op.regions:
            copy = Region()
            for block in region.blocks:
                b = Block()  # (its arguments made at once: `insert_arg` rebuilds the tuple per argument)
                b._args = tuple(BlockArgument(a.type, b, i, a.location) for i, a in enumerate(block._args))
                for a, new_arg in zip(block._args, b._args):
                    mapper[a] = new_arg
                    new_arg.name_hint = a.name_hint
                copy.add_block(b)
                for child in block.ops:
                    b.add_op(one(child))
            regions.append(copy)
        made_op = new_op(type(op), operands, [r.type for r in op.results], op.properties, op.attributes, regions,
                         op.location)
        made.append(made_op)
        for r, new_r in zip(op.results, made_op.results):
            mapper[r] = new_r
            new_r.name_hint = r.name_hint
        return made_op

    try:
        return one(root)
    except _ForwardUse:
        for op in made:
            op.drop_all_references()
        return root.clone()


def clone_body(region: Region) -> Region | None:
    """`region.clone()` for a region of one block whose ops have no regions or successors and
    use only values defined in it (its block's arguments, earlier ops' results): a linalg
    body. None for any other region."""
    blocks = region.blocks
    if len(blocks) != 1:
        return None
    block = blocks[0]
    copy = Block()
    copy._args = tuple(BlockArgument(a.type, copy, i, a.location) for i, a in enumerate(block._args))
    mapper: dict[SSAValue, SSAValue] = {}
    for a, new_arg in zip(block._args, copy._args):
        mapper[a] = new_arg
        new_arg.name_hint = a.name_hint
    ops = []
    for op in block.ops:
        operands = [mapper.get(v) for v in op._operands]
        if op.regions or op._successors or None in operands:
            for made in ops:
                made.drop_all_references()
            return None
        made = new_op(type(op), operands, [r.type for r in op.results], op.properties, op.attributes, (), op.location)
        for r, new_r in zip(op.results, made.results):
            mapper[r] = new_r
            new_r.name_hint = r.name_hint
        ops.append(made)
    copy.add_ops(ops)
    return Region(copy)
