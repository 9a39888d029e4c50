"""`verify`: xDSL's `Operation.verify`, with each op's IRDL constraints checked once per
distinct signature (docs/performance.md, "Issue 12: compile and cold load (session 3)").

A level-3 module repeats a few dozen op signatures tens of thousands of times (every
`linalg.generic` of a chain's relu has the same operand types, maps and iterators), and
xDSL spends most of its verification re-checking the IRDL definition of each op: operand,
result, region-entry, property and attribute constraints (`OpDef.verify`). Those checks read
nothing but the op's class, its operand and result types, its properties and attributes, its
regions' block counts and entry-argument types and its number of successors, and they build
a fresh `VerificationContext` each time: equal signatures give equal outcomes. So they run
once per signature; everything else runs for every op, as in xDSL and in the same order:
the structural checks (parents, terminators, erased operands), nested regions first, the op
definition's traits (they may read the op's context; those that keep `OpTrait.verify`, a
no-op, are skipped), and the op's own `verify_`. A property or attribute whose constraint
only checks the value's class (`BaseAttr`: a global's name, a `get_global`'s symbol) enters
the signature as its class. A `linalg.generic`'s own verifier
(xDSL 0.74's `LinalgStructuredOperation.verify_`: operand types against the indexing maps,
iterators and body argument types) reads nothing but its signature either, so a seen generic
signature skips it too: that is a quarter of a level-3 module's verification.

A module decoded from binary IR (`verify(decoded=True)`) skips the structural checks its
decoder guarantees or makes (parents, successors, erased operands, `IsolatedFromAbove`:
docs/bundle-format.md "What the reader checks"), and its signatures hold types and
attributes by identity.

An op whose class does not have the shape `irdl_op_definition` gives it (its `verify_`
generated around the definition and the class's own verifier), whose signature holds an
unhashable attribute, or which overrides `Operation.verify`, is verified by xDSL itself.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from xdsl.dialects.builtin import SymbolNameConstraint
from xdsl.dialects.linalg.abstract_ops import LinalgStructuredOperation
from xdsl.dialects.linalg.ops import GenericOp
from xdsl.ir import Attribute, Block, Operation, Region
from xdsl.ir.core import ErasedSSAValue, OpTraits
from xdsl.irdl import (
    AnyAttr,
    AnyOf,
    AttrConstraint,
    BaseAttr,
    EqAttrConstraint,
    IRDLOperation,
    OpDef,
    ParamAttrConstraint,
)
from xdsl.traits import IsolatedFromAbove, IsTerminator, NoTerminator, OpTrait
from xdsl.utils.exceptions import VerifyException

from wrc.dialects.ge import ComputeOp

_Parts = tuple[OpDef, Callable[[Operation], None] | None]

# (op class, its own verifier) pairs whose verifier reads only what `_signature` holds
# (audited in xDSL 0.74, which pyproject.toml pins): run once per signature, like `OpDef.verify`.
_SIGNATURE_ONLY_VERIFIERS = frozenset({(GenericOp, LinalgStructuredOperation.verify_)})


def _signature_only(cls: type[Operation], custom_verify: Callable[[Operation], None] | None) -> bool:
    """Whether `custom_verify`, the own verifier of `cls`, reads only what `_signature` holds:
    those of `_SIGNATURE_ONLY_VERIFIERS`, and a ge compute op's shape rule (`ComputeOp.verify_`
    infers the result type from the operand types and the properties, and compares it with the
    result type; its signature holds the properties' values, see `_class_only`)."""
    if (cls, custom_verify) in _SIGNATURE_ONLY_VERIFIERS:
        return True
    return custom_verify is ComputeOp.verify_ and issubclass(cls, ComputeOp)


@functools.cache
def _irdl_parts(cls: type[Operation]) -> _Parts | None:
    """(definition, the class's own verifier or None) of an op class whose `verify_` is the one
    `irdl_op_definition` generated (`op_def.verify(op)` then the own verifier), else None."""
    if not issubclass(cls, IRDLOperation) or cls.verify is not Operation.verify:
        return None
    fn = cls.verify_
    code = getattr(fn, "__code__", None)
    if code is None or fn.__qualname__ != "get_accessors_from_op_def.<locals>.verify_":
        return None
    cells = dict(zip(code.co_freevars, (c.cell_contents for c in fn.__closure__ or ()), strict=True))
    op_def = cells.get("op_def")
    if not isinstance(op_def, OpDef) or set(cells) - {"op_def", "custom_verify"}:
        return None
    return op_def, cells.get("custom_verify")


def _checks_class_only(constr: AttrConstraint) -> bool:
    """The constraint accepts a value by its class alone (`BaseAttr`, a symbol name, or any of
    several `BaseAttr`s), reading no constraint variables."""
    if type(constr) in (BaseAttr, SymbolNameConstraint):
        return True
    return type(constr) is AnyOf and all(type(c) is BaseAttr for c in constr.attr_constrs)


@functools.cache
def _class_only(cls: type[Operation]) -> tuple[frozenset[str], frozenset[str]]:
    """The properties and attributes of `cls` (an op class `_irdl_parts` knows) whose
    constraint reads only the value's class: signatures hold those values' classes, so ops
    differing only in a symbol's name or a global's type share one."""
    parts = _irdl_parts(cls)
    assert parts is not None
    op_def = parts[0]
    if _signature_only(cls, parts[1]) and issubclass(cls, ComputeOp):
        return frozenset(), frozenset()  # a shape rule reads property values (a transpose's perm)
    return (frozenset(n for n, d in op_def.properties.items() if _checks_class_only(d.constr)),
            frozenset(n for n, d in op_def.attributes.items() if _checks_class_only(d.constr)))


@functools.cache
def _by_parameters(cls: type[Operation]) -> dict[str, tuple[bool, ...]]:
    """The properties of `cls` (an op class `_irdl_parts` knows, not `_class_only`) whose
    constraint reads the value's class and its parameters each by class or by value alone
    (`IntegerAttr[I64]`: an `IntAttr`, and `i64`): per parameter, whether by value. Signatures
    hold such a value's class and those parameters (a graph's inputs differ only in their
    index, and would each be a new signature)."""
    parts = _irdl_parts(cls)
    assert parts is not None
    out: dict[str, tuple[bool, ...]] = {}
    if _signature_only(cls, parts[1]):
        return out  # (an own verifier run once per signature may read any property's value)
    for n, d in parts[0].properties.items():
        constr = d.constr
        if type(constr) is ParamAttrConstraint and n not in _class_only(cls)[0] and all(
                type(c) in (BaseAttr, AnyAttr, EqAttrConstraint) for c in constr.param_constrs):
            out[n] = tuple(type(c) is EqAttrConstraint for c in constr.param_constrs)
    return out


def _parameters_key(v: Attribute, by_value: tuple[bool, ...]) -> Any:
    """`v` as `_by_parameters` reads it: its class, and each parameter or its class."""
    params = getattr(v, "parameters", None)
    if not isinstance(params, tuple) or len(params) != len(by_value):
        return v  # (not of the constraint's class: the value itself)
    return type(v), tuple([p if eq else type(p) for p, eq in zip(params, by_value, strict=True)])


def _signature(op: Operation) -> tuple[Any, ...]:
    """All that `op_def.verify(op)` reads of `op` (an op `_irdl_parts` knows), except what
    its traits read."""
    cls = type(op)
    props, attrs = _class_only(cls)
    keyed = _by_parameters(cls)
    properties, attributes, regions = op.properties, op.attributes, op.regions
    return (  # (list comprehensions, and no view objects: this runs for every op)
        cls,
        tuple([v.type for v in op._operands]),
        tuple([r.type for r in op.results]),
        tuple([(k, type(v) if k in props else _parameters_key(v, keyed[k]) if k in keyed else v)
               for k, v in properties.items()]) if properties else (),
        tuple([(k, type(v) if k in attrs else v) for k, v in attributes.items()]) if attributes else (),
        tuple([(len(r.blocks), None if r.first_block is None else r.first_block.arg_types) for r in regions])
        if regions else (),
        len(op._successors),
    )


def _id_signature(op: Operation) -> tuple[Any, ...]:
    """`_signature` with each type and attribute by identity (a decoded module's attributes
    are each made once, `wrc.ir_binary`): equal identities are equal values, and an int hashes
    in no time where a type's hash walks its parameters."""
    cls = type(op)
    props, attrs = _class_only(cls)
    properties, attributes, regions = op.properties, op.attributes, op.regions
    return (
        cls,
        tuple([id(v._type) for v in op._operands]),
        tuple([id(r._type) for r in op.results]),
        tuple([(k, type(v) if k in props else id(v)) for k, v in properties.items()]) if properties else (),
        tuple([(k, type(v) if k in attrs else id(v)) for k, v in attributes.items()]) if attributes else (),
        tuple([(len(r.blocks), None if r.first_block is None else tuple([id(a._type) for a in r.first_block._args]))
               for r in regions]) if regions else (),
        len(op._successors),
    )


@functools.cache
def _without_isolation(cls: type[Operation]) -> tuple[OpDef, Callable[[Operation], None] | None] | None:
    """`cls`'s (definition without its `IsolatedFromAbove` trait, own verifier), for a decoded
    module (its decoder checks that trait: `wrc.ir_binary`), or None if `cls` lacks the trait."""
    parts = _irdl_parts(cls)
    assert parts is not None
    op_def, custom_verify = parts
    traits = tuple(t for t in op_def.traits if not isinstance(t, IsolatedFromAbove))
    if len(traits) == len(tuple(op_def.traits)):
        return None
    return dataclasses.replace(op_def, traits=OpTraits(lambda: traits)), custom_verify


def _seen_checks(cls: type[Operation]) -> tuple[tuple[OpTrait, ...], Callable[[Operation], None] | None]:
    """What `verify_` still checks of an op of `cls` (a class `_irdl_parts` knows) whose
    signature was seen: its definition's traits whose `verify` checks something, in order
    (most, as `Pure` or a memory effect, keep `OpTrait.verify`, which does nothing), and its
    own verifier unless that reads only the signature."""
    parts = _irdl_parts(cls)
    assert parts is not None
    op_def, custom_verify = parts
    traits = tuple(t for t in op_def.traits if type(t).verify is not OpTrait.verify)
    return traits, None if custom_verify is None or _signature_only(cls, custom_verify) else custom_verify


@functools.cache
def _has(cls: type[Operation], trait: type[OpTrait]) -> bool:
    """`op.has_trait(trait)` of a registered op class (traits are fixed per class)."""
    return cls.has_trait(trait)


class _Verifier:
    def __init__(self, decoded: bool) -> None:
        self.decoded = decoded
        self.signature = _id_signature if decoded else _signature
        self.seen: set[tuple[Any, ...]] = set()
        self.seen_checks: dict[type[Operation], tuple[tuple[OpTrait, ...], Callable[[Operation], None] | None]] = {}

    def op(self, op: Operation) -> None:
        if type(op).verify is not Operation.verify:
            op.verify()
            return
        if not self.decoded:
            self._structure(op)
        elif op._next_op is None:  # (a decoded op has no successors and no erased operands)
            self._terminator(op)
        for region in op.regions:
            self.region(region)
        try:
            self._own(op)
        except VerifyException as err:
            op.emit_error(f"Operation does not verify: {err}", err)

    def region(self, region: Region) -> None:  # Region.verify
        for block in region.blocks:
            self.block(block)
            if not self.decoded and block.parent != region:
                raise ValueError("Parent pointer of block does not refer to containing region")

    def block(self, block: Block) -> None:  # Block.verify
        operation = block._first_op
        while operation is not None:
            if not self.decoded and operation.parent != block:
                raise ValueError("Parent pointer of operation does not refer to containing region")
            self.op(operation)
            operation = operation._next_op
        if block.first_op is None and (region := block.parent) is not None and (parent := region.parent) is not None:
            if len(region.blocks) == 1 and not parent.has_trait(NoTerminator):
                raise VerifyException(
                    f"Operation {parent.name} contains empty block in "
                    "single-block region that expects at least a terminator"
                )

    def _own(self, op: Operation) -> None:
        """`op.verify_()`, its definition's checks skipped for a signature seen before."""
        parts = _irdl_parts(type(op))
        if parts is None:
            op.verify_()
            return
        try:
            key = self.signature(op)
            seen = key in self.seen
        except TypeError:  # an unhashable attribute
            op.verify_()
            return
        if not seen:
            unisolated = _without_isolation(type(op)) if self.decoded else None
            if unisolated is None:
                op.verify_()
            else:  # verify_ without the trait the decoder checked
                unisolated[0].verify(op)
                if unisolated[1] is not None:
                    unisolated[1](op)
            self.seen.add(key)
            return
        checks = self.seen_checks.get(type(op))
        if checks is None:
            checks = _seen_checks(type(op))
            if self.decoded:  # (the decoder checked IsolatedFromAbove)
                checks = (tuple(t for t in checks[0] if not isinstance(t, IsolatedFromAbove)), checks[1])
            self.seen_checks[type(op)] = checks
        traits, custom_verify = checks
        for trait in traits:
            trait.verify(op)
        if custom_verify is not None:
            custom_verify(op)

    @staticmethod
    def _structure(op: Operation) -> None:
        """The checks of `Operation.verify` before its regions and `verify_`."""
        for operand in op._operands:
            if isinstance(operand, ErasedSSAValue):
                raise ValueError("Erased SSA value is used by the operation")
        parent_block = op.parent
        parent_region = None if parent_block is None else parent_block.parent
        if op._successors:
            if parent_block is None or parent_region is None:
                raise VerifyException(
                    f"Operation {op.name} with block successors does not belong to a block or a region"
                )
            if parent_block.last_op is not op:
                raise VerifyException(f"Operation {op.name} with block successors must terminate its parent block")
            for succ in op.successors:
                if succ.parent != parent_block.parent:
                    raise VerifyException(f"Operation {op.name} is branching to a block of a different region")
        if parent_block is not None and parent_region is not None and parent_block.last_op == op:
            _Verifier._terminator(op)

    @staticmethod
    def _terminator(op: Operation) -> None:
        """The terminator checks of `Operation.verify`, for the last op of a block."""
        parent_block = op.parent
        if parent_block is None or (parent_region := parent_block.parent) is None:
            return
        if len(parent_region.blocks) == 1:
            if (parent_op := parent_region.parent) is not None and not _has(type(parent_op), NoTerminator):
                if not _has(type(op), IsTerminator):
                    raise VerifyException(
                        f"Operation {op.name} terminates block in single-block region but is not a terminator"
                    )
        elif len(parent_region.blocks) > 1 and not _has(type(op), IsTerminator):
            raise VerifyException(
                f"Operation {op.name} terminates block in multi-block region but is not a terminator"
            )


def verify(op: Operation, decoded: bool = False) -> None:
    """Verify `op` and everything nested in it: the checks and errors of `op.verify()`.

    `decoded`: `op` is a module just made by `wrc.ir_binary.decode_module`, whose decoder
    guarantees what the structural checks of each op would check (ops and blocks are in their
    parents, nothing has successors or erased operands, IsolatedFromAbove ops use no value from
    outside: docs/SECURITY.md, row 1), so those are not checked again; ops then share their
    attribute objects, so signatures compare them by identity."""
    _Verifier(decoded).op(op)
