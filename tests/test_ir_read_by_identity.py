"""`wrc.ir_read.ByIdentity`: a derivation memoized by the attribute object it is asked about."""

from xdsl.dialects.builtin import MemRefType, f32

from wrc.abi import memref_spec
from wrc.ir_read import ByIdentity


def test_derived_once_per_object_and_anew_for_an_equal_one() -> None:
    calls: list[object] = []
    derive = ByIdentity(lambda t: calls.append(t) or t.get_shape(), limit=2)
    a, b = MemRefType(f32, [2, 3]), MemRefType(f32, [2, 3])
    assert a == b and a is not b
    assert derive(a) == derive(a) == (2, 3)
    assert calls == [a]
    assert derive(b) == (2, 3)
    assert calls == [a, b]  # equal, but another object: derived again (no hash taken)
    c = MemRefType(f32, [4])
    assert derive(c) == (4,)  # a third entry: the table was full and starts over
    assert derive(a) == (2, 3) and calls == [a, b, c, a]


def test_memref_spec_by_identity_matches_the_type() -> None:
    t = MemRefType(f32, [5, 7])
    assert memref_spec(t) == memref_spec(MemRefType(f32, [5, 7])) == ((5, 7), memref_spec(t)[1])
    assert memref_spec(t)[1].name == "float32"
    assert memref_spec(MemRefType(f32, [-1, 7])) is None
    assert memref_spec(f32) is None
