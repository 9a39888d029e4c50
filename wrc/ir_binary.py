"""A compact binary encoding of the level-3 IR: the IR section of bundle format version 2.

xDSL's text parser spends tens of microseconds per op (a 2,000-op graph's 25,000 level-3 ops
took seconds to parse); decoding this format creates each op directly, as the parser's generic
path does with `Operation.create` (`wrc.ir_read.new_op`: the same op in one call), and each
distinct attribute once. The encoding is
specified in docs/bundle-format.md ("The binary IR section"):

    magic (8 B) | u32 word count W | u32 blob bytes B | W u32 words | B bytes of strings

The words hold, in order, the string table (its byte lengths; the bytes are the blob), the
attribute table (each entry refers only to entries before it, so decoding needs no
recursion and shares each attribute), then the ops in pre-order starting with the
`builtin.module`. An operand refers to a value by its position in the stack of values in
scope (block arguments and results of earlier ops of enclosing blocks), so a value used
outside its block cannot even be expressed.

The decoder trusts nothing: every index is checked against what was decoded before it, every
count against the words left, nesting against `MAX_OP_NESTING` / `MAX_AFFINE_DEPTH`, op names
against the context's registered dialects, attribute kinds against `PARAMETRIZED` and the
data kinds below, inline constants against an element cap, and operands inside an
`IsolatedFromAbove` op against the values from outside it. The caller verifies the module
afterwards (`wrc.ir_verify.verify(decoded=True)`: what the decoder guarantees by
construction is not checked again). Any failure is a `BundleFormatError` naming the byte offset.
"""

from __future__ import annotations

import functools
import gc
import struct
import sys
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any

from xdsl.context import Context
from xdsl.dialects import arith, builtin
from xdsl.dialects.builtin import (
    UNKNOWN_LOC,
    AffineMapAttr,
    ArrayAttr,
    BytesAttr,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    FloatData,
    IntAttr,
    IntegerType,
    MemRefType,
    ModuleOp,
    Signedness,
    SignednessAttr,
    StringAttr,
    TensorType,
    VectorType,
)
from xdsl.dialects.linalg.attrs import IteratorTypeAttr
from xdsl.dialects.utils.bit_enum_attribute import BitEnumAttribute
from xdsl.dialects.utils.enum_attribute import EnumAttribute
from xdsl.ir import Attribute, Block, Operation, ParametrizedAttribute, Region, SSAValue
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineExpr,
    AffineMap,
    AffineSymExpr,
)
from xdsl.ir.core import BlockArgument
from xdsl.traits import IsolatedFromAbove

from wrc.errors import BundleFormatError
from wrc.ir_read import new_op

MAGIC = b"\x89WRC-IR\n"
_PREFIX = struct.Struct("<8sII")  # magic, word count, blob bytes
PREFIX_SIZE = _PREFIX.size  # 16

MAX_OP_NESTING = 64
"""Deepest op nesting (an op inside a region of an op ...); level-3 IR nests about 4 deep.
Decoding, verifying and printing recurse per level: the cap keeps them far from Python's
recursion limit."""
MAX_AFFINE_DEPTH = 64
"""Deepest affine expression tree (xDSL prints and simplifies them recursively)."""
MAX_INT_LIMBS = 8
"""Integers are stored as 1-8 32-bit two's-complement limbs (up to 256 bits)."""
MAX_AFFINE_DIMS = 256
"""Most dims or symbols of an affine map: xDSL makes a name for each when it prints one (in
verifier messages too), so 2^32 of them took all memory (found by the bundle fuzzer)."""
MAX_INT_WIDTH = 128
"""Widest integer type (level-3 IR uses i1 to i64 and index); xDSL computes value ranges as
`1 << width`."""

PARAMETRIZED: dict[str, type[ParametrizedAttribute]] = {
    cls.name: cls
    for cls in (
        builtin.IntegerType, builtin.IndexType, builtin.BFloat16Type, builtin.Float16Type,
        builtin.Float32Type, builtin.Float64Type, builtin.MemRefType, builtin.TensorType,
        builtin.VectorType, builtin.FunctionType, builtin.NoneAttr, builtin.UnitAttr,
        builtin.IntegerAttr, builtin.FloatAttr, builtin.DenseArrayBase,
        builtin.DenseIntOrFPElementsAttr, builtin.SymbolRefAttr, builtin.StridedLayoutAttr,
    )
}
"""The parametrized attributes and types the format holds (what level-3 IR uses), by name;
they are rebuilt with `cls.new(parameters)`, which runs their IRDL verifier."""

ENUMS: dict[str, tuple[type[Attribute], type[Enum]]] = {
    cls.name: (cls, enum)
    for cls, enum in (
        (SignednessAttr, Signedness),
        (IteratorTypeAttr, IteratorTypeAttr.enum_type),
        (arith.FastMathFlagsAttr, arith.FastMathFlagsAttr.enum_type),
        (arith.IntegerOverflowAttr, arith.IntegerOverflowAttr.enum_type),
    )
}
"""Enum-valued attributes (one member, or a set of members for bit enums), stored by member name."""

# Attribute entry kinds (the first word of an entry).
_PARAM, _INT, _STRING, _BYTES, _FLOAT, _ARRAY, _DICT, _AFFINE_MAP, _ENUM = range(9)
# Affine expression nodes, in postfix order; binary kinds follow from _BINARY on.
_DIM, _SYM, _CONST, _BINARY = range(4)
_AFFINE_KINDS = list(AffineBinaryOpKind)

assert array("I").itemsize == 4


def _fail(message: str) -> BundleFormatError:
    return BundleFormatError(f"bundle: {message}")


# --------------------------------------------------------------------------- encoding


class _Encoder:
    def __init__(self) -> None:
        self.strings: dict[bytes, int] = {}
        self.attr_words: list[int] = []
        self.attrs: dict[tuple[int, ...], int] = {}  # encoded entry -> index: equal entries are one
        self.by_id: dict[int, tuple[Attribute, int]] = {}  # id(attr) -> (attr kept alive, index)
        self.by_value: dict[Attribute, int] = {}
        self.ops: list[int] = []
        self.stack: list[SSAValue] = []  # the values in scope, as the decoder will stack them
        self.scope: dict[int, int] = {}  # id(value) -> its position in `stack` (which keeps it alive)
        self.depth = 0

    def string(self, s: str | bytes) -> int:
        raw = s.encode("utf-8") if isinstance(s, str) else s
        return self.strings.setdefault(raw, len(self.strings))

    def attr(self, a: Attribute) -> int:
        known = self.by_id.get(id(a))
        if known is not None:
            return known[1]
        # Passes build equal attributes apart (an affine map per op); attributes compare by
        # value (floats by their bits), so an equal one's entry is this one's. Not containers:
        # dictionaries compare equal whatever their order, which the entry keeps.
        by_value = not isinstance(a, ArrayAttr | DictionaryAttr)
        index = self.by_value.get(a) if by_value else None
        if index is None:
            entry = tuple(self._entry(a))
            index = self.attrs.get(entry)
            if index is None:
                index = self.attrs[entry] = len(self.attrs)
                self.attr_words += entry
            if by_value:
                self.by_value[a] = index
        self.by_id[id(a)] = (a, index)
        return index

    def _entry(self, a: Attribute) -> list[int]:
        t = type(a)
        if isinstance(a, ParametrizedAttribute) and PARAMETRIZED.get(a.name) is t:
            params = [self.attr(p) for p in a.parameters]
            return [_PARAM, self.string(a.name), len(params), *params]
        if t is IntAttr:
            return [_INT, *_limbs(a.data)]
        if t is StringAttr:
            return [_STRING, self.string(a.data)]
        if t is BytesAttr:
            return [_BYTES, self.string(a.data)]
        if t is FloatData:
            lo, hi = struct.unpack("<II", struct.pack("<d", a.data))
            return [_FLOAT, lo, hi]
        if t is ArrayAttr:
            items = [self.attr(x) for x in a.data]
            return [_ARRAY, len(items), *items]
        if t is DictionaryAttr:
            return [_DICT, *self._named(a.data)]
        if t is AffineMapAttr:
            return [_AFFINE_MAP, *self._affine_map(a.data)]
        if isinstance(a, EnumAttribute | BitEnumAttribute | SignednessAttr) and ENUMS.get(a.name, (None,))[0] is t:
            members = sorted(a.data) if isinstance(a, BitEnumAttribute) else [a.data]
            return [_ENUM, self.string(a.name), len(members), *(self.string(m.name) for m in members)]
        raise _fail(f"cannot encode the IR: attribute kind {t.__name__} ({str(a)[:100]}) is not "
                    f"supported by the binary IR format (wrc.ir_binary)")

    def _named(self, items: Any) -> list[int]:
        out = [len(items)]
        for k, v in items.items():
            out += [self.string(k), self.attr(v)]
        return out

    def _affine_map(self, m: AffineMap) -> list[int]:
        nodes: list[int] = []
        count = 0
        for result in m.results:
            for e in result.post_order():
                count += 1
                if isinstance(e, AffineDimExpr):
                    nodes += [_DIM, e.position]
                elif isinstance(e, AffineSymExpr):
                    nodes += [_SYM, e.position]
                elif isinstance(e, AffineConstantExpr):
                    nodes += [_CONST, *_limbs(e.value)]
                elif isinstance(e, AffineBinaryOpExpr):
                    nodes.append(_BINARY + _AFFINE_KINDS.index(e.kind))
                else:
                    raise _fail(f"cannot encode the IR: affine expression {e} is not supported")
        return [m.num_dims, m.num_symbols, len(m.results), count, *nodes]

    def op(self, op: Operation) -> None:
        # (runs for every op: xDSL's tuples are read directly, values are keyed by id and
        # empty dictionaries take no lookups: the same words as through the accessors)
        if op._successors:
            raise _fail(f"cannot encode the IR: {op.name} has successors (the binary IR format "
                        f"holds structured control flow only)")
        w, attr, hint = self.ops, self.attr, self._hint
        results = op.results
        w += [self.string(op.name), len(results)]
        for r in results:
            w += [attr(r.type), hint(r)]
        operands = op._operands
        w.append(len(operands))
        scope = self.scope
        for v in operands:
            pos = scope.get(id(v))
            if pos is None:
                raise _fail(f"cannot encode the IR: an operand of {op.name} is not defined before "
                            f"it in an enclosing block")
            w.append(pos)
        w += self._named(op.properties) if op.properties else _NONE
        w += self._named(op.attributes) if op.attributes else _NONE
        regions = op.regions
        w.append(len(regions))
        if regions:
            self.depth += 1
            if self.depth > MAX_OP_NESTING:
                raise _fail(f"cannot encode the IR: ops nest more than {MAX_OP_NESTING} deep")
            for region in regions:
                blocks = list(region.blocks)
                w.append(len(blocks))
                for block in blocks:
                    self.block(block)
            self.depth -= 1
        for r in results:
            self.push(r)

    def push(self, v: SSAValue) -> None:
        self.scope[id(v)] = len(self.stack)
        self.stack.append(v)

    def block(self, block: Block) -> None:
        outer = len(self.stack)
        w = self.ops
        args = block._args
        w.append(len(args))
        for a in args:
            w += [self.attr(a.type), self._hint(a)]
            self.push(a)
        ops = list(block.ops)
        w.append(len(ops))
        for op in ops:
            self.op(op)
        scope = self.scope
        for v in self.stack[outer:]:
            del scope[id(v)]
        del self.stack[outer:]

    def _hint(self, v: SSAValue) -> int:
        return 0 if v.name_hint is None else 1 + self.string(v.name_hint)


_NONE = (0,)  # an empty dictionary's words


def _limbs(value: int) -> list[int]:
    n = max(1, (value.bit_length() + 1 + 31) // 32)  # + 1: room for the sign bit
    if n > MAX_INT_LIMBS:
        raise _fail(f"cannot encode the IR: integer {str(value)[:50]} is wider than {32 * MAX_INT_LIMBS} bits")
    u = value & ((1 << (32 * n)) - 1)
    return [n, *((u >> (32 * i)) & 0xFFFFFFFF for i in range(n))]


def encode_module(module: ModuleOp) -> bytes:
    """The binary IR section for `module` (raises `BundleFormatError` naming the attribute
    kind, op or integer it cannot hold)."""
    enc = _Encoder()
    enc.op(module)
    strings = list(enc.strings)
    words = array("I", [len(strings), *(len(s) for s in strings), len(enc.attrs), *enc.attr_words, *enc.ops])
    if sys.byteorder == "big":  # pragma: no cover - the format is little-endian
        words.byteswap()
    blob = b"".join(strings)
    return _PREFIX.pack(MAGIC, len(words), len(blob)) + words.tobytes() + blob


# --------------------------------------------------------------------------- decoding


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building and verifying a large module makes
    millions of objects (and little garbage), and each full collection would walk them all
    again (about 40 % of decoding and verifying a 25,000-op module)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()



class _Malformed(Exception):
    """A defect found by a check of the decoder (its message is the user's)."""


class _Decoder:
    def __init__(self, words: list[int], blob: bytes, ctx: Context, max_inline_elements: int) -> None:
        self.w, self.pos, self.blob = words, 0, blob
        self.ctx, self.max_inline_elements = ctx, max_inline_elements
        self.raw: list[bytes] = []
        self.text: dict[int, str] = {}
        self.attrs: list[Attribute] = []
        self.op_kinds: dict[int, type[Operation]] = {}
        self.hints: dict[int, str] = {}
        self.values: list[SSAValue] = []  # the stack of values in scope
        # The IsolatedFromAbove ops being decoded, and the stack height at each one's regions:
        # an operand below the innermost height would come from outside it.
        self.isolated: list[type[Operation]] = []
        self.isolated_floor: list[int] = []
        self.depth = 0

    def next(self) -> int:
        v = self.w[self.pos]
        self.pos += 1
        return v

    def count(self, what: str, per_item: int = 1) -> int:
        n = self.next()
        if n * per_item > len(self.w) - self.pos:
            raise _Malformed(f"{what} count {n} exceeds the words left ({len(self.w) - self.pos})")
        return n

    def string(self, i: int) -> str:
        s = self.text.get(i)
        if s is None:
            try:
                s = self.text[i] = self.raw[i].decode("utf-8")
            except UnicodeDecodeError:
                raise _Malformed(f"string {i} is not UTF-8") from None
        return s

    def strings(self) -> None:
        lengths = [self.next() for _ in range(self.count("string"))]
        if sum(lengths) != len(self.blob):
            raise _Malformed(f"string lengths add up to {sum(lengths)} bytes but the string blob "
                             f"holds {len(self.blob)}")
        pos = 0
        for n in lengths:
            self.raw.append(self.blob[pos : pos + n])
            pos += n

    def attr_table(self) -> None:
        for _ in range(self.count("attribute")):
            self.attrs.append(self.attr_entry())

    def attr_entry(self) -> Attribute:
        kind = self.next()
        if kind == _PARAM:
            name = self.string(self.next())
            cls = PARAMETRIZED.get(name)
            if cls is None:
                raise _Malformed(f"attribute kind {name[:100]!r} is not one the binary IR holds")
            params = [self.attrs[self.next()] for _ in range(self.count("parameter"))]
            a = cls.new(params)
            self.check_param_attr(a)
            return a
        if kind == _INT:
            return IntAttr(self.integer())
        if kind == _STRING:
            return StringAttr(self.string(self.next()))
        if kind == _BYTES:
            return BytesAttr(self.raw[self.next()])
        if kind == _FLOAT:
            return FloatData(struct.unpack("<d", struct.pack("<II", self.next(), self.next()))[0])
        if kind == _ARRAY:
            return ArrayAttr([self.attrs[self.next()] for _ in range(self.count("array item"))])
        if kind == _DICT:
            return DictionaryAttr(self.named("dictionary entry"))
        if kind == _AFFINE_MAP:
            return AffineMapAttr(self.affine_map())
        if kind == _ENUM:
            name = self.string(self.next())
            if name not in ENUMS:
                raise _Malformed(f"enum attribute kind {name[:100]!r} is not one the binary IR holds")
            cls, enum = ENUMS[name]
            members = []
            for _ in range(self.count("enum member")):
                member = self.string(self.next())
                if member not in enum.__members__:
                    raise _Malformed(f"{member[:100]!r} is not a member of {name}")
                members.append(enum[member])
            if issubclass(cls, BitEnumAttribute):
                return cls(members)
            if len(members) != 1:
                raise _Malformed(f"{name} holds one member, not {len(members)}")
            return cls(members[0])  # type: ignore[call-arg]
        raise _Malformed(f"unknown attribute entry kind {kind}")

    def check_param_attr(self, a: Attribute) -> None:
        """What the text grammar guarantees and IRDL does not verify."""
        if isinstance(a, IntegerType) and a.width.data > MAX_INT_WIDTH:
            raise _Malformed(f"integer type of {a.width.data} bits (at most {MAX_INT_WIDTH})")
        if isinstance(a, MemRefType | TensorType | VectorType):
            if any(d < -1 for d in a.get_shape()):
                raise _Malformed(f"{a} has a negative dimension")
        elif isinstance(a, DenseIntOrFPElementsAttr):
            count = 1
            for d in a.get_shape():
                if d < 0:
                    raise _Malformed("an inline constant's type has a dynamic dimension")
                count *= d
                if count > self.max_inline_elements:
                    raise _Malformed(f"an inline constant has more than {self.max_inline_elements} elements")
            width = a.get_element_type().compile_time_size
            if len(a.data.data) != count * width:
                raise _Malformed(f"an inline constant of {count} elements holds {len(a.data.data)} "
                                 f"bytes, not {count * width}")

    def integer(self) -> int:
        n = self.next()
        if not 1 <= n <= MAX_INT_LIMBS:
            raise _Malformed(f"integer of {n} limbs (1 to {MAX_INT_LIMBS})")
        u = 0
        for i in range(n):
            u |= self.next() << (32 * i)
        return u - (1 << (32 * n)) if u >> (32 * n - 1) else u

    def named(self, what: str) -> dict[str, Attribute]:
        n = self.count(what, 2)
        pos, w, attrs = self.pos, self.w, self.attrs
        out: dict[str, Attribute] = {}
        for i in range(pos, pos + 2 * n, 2):
            self.pos = i
            key = self.string(w[i])
            if key in out:
                raise _Malformed(f"duplicate {what} {key[:100]!r}")
            self.pos = i + 1
            out[key] = attrs[w[i + 1]]
        self.pos = pos + 2 * n
        return out

    def affine_map(self) -> AffineMap:
        dims, syms, n_results = self.next(), self.next(), self.next()
        if dims > MAX_AFFINE_DIMS or syms > MAX_AFFINE_DIMS:
            raise _Malformed(f"affine map of {dims} dims and {syms} symbols (at most {MAX_AFFINE_DIMS} each)")
        stack: list[tuple[AffineExpr, int]] = []  # (expression, depth)
        for _ in range(self.count("affine node")):
            tag = self.next()
            if tag in (_DIM, _SYM):
                position, bound = self.next(), dims if tag == _DIM else syms
                if position >= bound:
                    raise _Malformed(f"affine {'dimension' if tag == _DIM else 'symbol'} {position} "
                                     f"of a map with {bound}")
                stack.append((AffineDimExpr(position) if tag == _DIM else AffineSymExpr(position), 1))
            elif tag == _CONST:
                stack.append((AffineConstantExpr(self.integer()), 1))
            elif _BINARY <= tag < _BINARY + len(_AFFINE_KINDS) and len(stack) >= 2:
                (rhs, dr), (lhs, dl) = stack.pop(), stack.pop()
                depth = max(dl, dr) + 1
                if depth > MAX_AFFINE_DEPTH:
                    raise _Malformed(f"affine expression deeper than {MAX_AFFINE_DEPTH}")
                stack.append((AffineBinaryOpExpr(_AFFINE_KINDS[tag - _BINARY], lhs, rhs), depth))
            else:
                raise _Malformed(f"bad affine expression node {tag}")
        if len(stack) != n_results:
            raise _Malformed(f"affine map declares {n_results} results but its nodes make {len(stack)}")
        return AffineMap(dims, syms, tuple(e for e, _ in stack))

    def op(self) -> Operation:
        # Words are read inline (this runs for every op); `self.pos` is kept at the word
        # being read wherever a check or an index can fail, for the error's byte offset.
        w, attrs, values = self.w, self.attrs, self.values
        pos = self.pos
        name_index = w[pos]
        op_type = self.op_kinds.get(name_index)
        if op_type is None:
            op_type = self.op_kind(name_index)
        self.pos = pos = pos + 1
        n = w[pos]
        if 2 * n > len(w) - pos - 1:
            self.count("result", 2)  # raises, naming the count
        self.pos = pos = pos + 1
        result_types = [attrs[i] for i in w[pos : pos + 2 * n : 2]]
        hints = w[pos + 1 : pos + 2 * n : 2]
        self.pos = pos = pos + 2 * n
        n = w[pos]
        if n > len(w) - pos - 1:
            self.count("operand")
        self.pos = pos = pos + 1
        operands = [values[i] for i in w[pos : pos + n]]
        if self.isolated_floor and n and min(w[pos : pos + n]) < self.isolated_floor[-1]:
            raise _Malformed(f"an operand of {op_type.name} is defined outside its IsolatedFromAbove parent "
                             f"({self.isolated[-1].name})")
        self.pos = pos = pos + n
        if w[pos]:
            properties = self.named("property")
        else:
            properties = {}
            self.pos = pos = pos + 1
        if w[self.pos]:
            attributes = self.named("attribute")
        else:
            attributes = {}
            self.pos += 1
        regions = []
        if w[self.pos]:
            n_regions = self.count("region")
        else:  # (most ops: no regions)
            n_regions = 0
            self.pos += 1
        if n_regions:
            self.depth += 1
            if self.depth > MAX_OP_NESTING:
                raise _Malformed(f"ops nest more than {MAX_OP_NESTING} deep")
            isolated = _isolated(op_type)
            if isolated:  # operands inside may refer to values from here on only
                self.isolated.append(op_type)
                self.isolated_floor.append(len(values))
            for _ in range(n_regions):
                regions.append(Region([self.block() for _ in range(self.count("block", 2))]))
            if isolated:
                self.isolated.pop()
                self.isolated_floor.pop()
            self.depth -= 1
        op = new_op(op_type, operands, result_types, properties, attributes, regions)
        results = op.results
        if any(hints):
            for r, hint in zip(results, hints, strict=True):
                if hint:
                    r._name = self.hint(hint - 1)
        values += results
        return op

    def op_kind(self, name_index: int) -> type[Operation]:
        name = self.string(name_index)
        op_type = self.ctx.get_optional_op(name)
        if op_type is None:
            raise _Malformed(f"op {name[:100]!r} is not in a registered dialect")
        self.op_kinds[name_index] = op_type
        return op_type

    def hint(self, i: int) -> str:
        """String `i` as a value's name hint, checked (and its `_N` suffix dropped) as xDSL's
        `name_hint` setter does, once per string."""
        h = self.hints.get(i)
        if h is None:
            h = self.hints[i] = SSAValue.extract_valid_name(self.string(i))
        return h

    def block(self) -> Block:
        values, w = self.values, self.w
        outer = len(values)
        if w[self.pos]:
            n = self.count("block argument", 2)
        else:
            n = 0
            self.pos += 1
        pos = self.pos
        block = Block()
        arg_types = [self.attrs[i] for i in w[pos : pos + 2 * n : 2]]
        self.pos = pos + 2 * n
        args = block._args = tuple([BlockArgument(t, block, i, UNKNOWN_LOC) for i, t in enumerate(arg_types)])
        for a, hint in zip(args, w[pos + 1 : pos + 2 * n : 2], strict=True):
            if hint:
                a._name = self.hint(hint - 1)
        values += args
        prev = None
        for _ in range(self.count("op", 2)):  # Block.add_op, without its checks: each op is new
            op = self.op()
            op.parent = block
            if prev is None:
                block._first_op = op
            else:
                prev._next_op = op
                op._prev_op = prev
            prev = op
        block._last_op = prev
        del self.values[outer:]
        return block


@functools.cache
def _isolated(cls: type[Operation]) -> bool:
    return cls.has_trait(IsolatedFromAbove)


def decode_module(raw: bytes, ctx: Context, max_inline_elements: int, offset: int = 0) -> ModuleOp:
    """The module of a binary IR section (not verified: the caller verifies it).

    `offset` is the section's offset in the file, for messages. Raises `BundleFormatError`.
    """
    if len(raw) < PREFIX_SIZE:
        raise _fail(f"IR section (offset {offset}) is {len(raw)} bytes, too short for binary IR")
    magic, n_words, n_blob = _PREFIX.unpack_from(raw)
    if magic != MAGIC:
        raise _fail(f"IR section (offset {offset}) is not binary IR: bad magic {magic!r}")
    if PREFIX_SIZE + 4 * n_words + n_blob != len(raw):
        raise _fail(f"IR section (offset {offset}): {n_words} words and {n_blob} string bytes do "
                    f"not make its {len(raw)} bytes")
    words = array("I")
    words.frombytes(raw[PREFIX_SIZE : PREFIX_SIZE + 4 * n_words])
    if sys.byteorder == "big":  # pragma: no cover
        words.byteswap()
    d = _Decoder(words.tolist(), raw[PREFIX_SIZE + 4 * n_words :], ctx, max_inline_elements)
    try:
        with gc_paused():
            d.strings()
            d.attr_table()
            module = d.op()
        if not isinstance(module, ModuleOp):
            raise _Malformed(f"the root op is {module.name}, not builtin.module")
        if d.pos != len(d.w):
            raise _Malformed(f"{len(d.w) - d.pos} words after the module")
    except _Malformed as e:
        raise _fail(f"IR section: {e} (at byte {offset + PREFIX_SIZE + 4 * d.pos})") from None
    except IndexError:
        what = "truncated" if d.pos >= len(d.w) else "an index is out of range"
        raise _fail(f"IR section: {what} (at byte {offset + PREFIX_SIZE + 4 * d.pos})") from None
    except Exception as e:  # xDSL's checks (IRDL verifiers, name hints) on hostile input
        raise _fail(f"IR section: {type(e).__name__}: {str(e)[:500]} (at byte "
                    f"{offset + PREFIX_SIZE + 4 * d.pos})") from None
    return module
