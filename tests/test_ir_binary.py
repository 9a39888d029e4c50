"""Binary IR (`wrc.ir_binary`, the IR section of bundle format version 2): exact round trips,
sections written by hand from the spec (docs/bundle-format.md), and hostile sections, which
must all give `BundleFormatError` quickly, never another exception.
"""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects import builtin, test
from xdsl.ir import Block, Region

import wrc
from tests.test_bundle_format import WEIGHTS, assert_same, model
from wrc import bundle_format as bf
from wrc import ir_binary as ib
from wrc import ir_verify
from wrc.context import make_context
from wrc.errors import BundleFormatError
from wrc.tools import wrc_fuzz

MODELS = Path(__file__).parent / "models"
CAP = bf.MAX_INLINE_ELEMENTS


def decode(raw: bytes) -> builtin.ModuleOp:
    return ib.decode_module(raw, make_context(), CAP)


def round_trip(module: builtin.ModuleOp) -> bytes:
    raw = ib.encode_module(module)
    back = decode(raw)
    back.verify()
    assert str(back) == str(module)
    assert ib.encode_module(back) == raw  # deterministic, and nothing lost
    return raw


def test_round_trip_of_the_format_test_module() -> None:
    """Every dtype of a global, inline `dense` constants, functions with named arguments."""
    round_trip(model().module)


def test_round_trip_of_hostile_names_and_a_real_model() -> None:
    """Names with quotes, newlines and non-ASCII characters; then a ResNet (convolutions,
    pooling, BatchNorm folded: affine maps, iterator types, fastmath flags, `scf.if`)."""
    round_trip(wrc_fuzz.seed_model(3, ('w "1"\n}', "b.ü")).module)
    from wrc.onnx import import_onnx, weight_names

    g = import_onnx(MODELS / "resnet.onnx")
    with wrc.BuildSession():
        parts = wrc.convert_to_weight_refreshable_graphs(g, weight_names(g))
        mb = wrc.bundle_build_model([parts.infer_graph, parts.var_init_graph, parts.var_update_graph])
    raw = round_trip(mb.module)
    assert len(raw) < 0.8 * len(str(mb.module).encode())
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    outs = []
    for version in (1, 2):
        b = wrc.load_bundle(bf.bundle_bytes(mb, version))
        b.init()
        outs.append(b.infer({"x": x})[0])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_version_1_files_are_still_read() -> None:
    """tests/models/bundle-v1.wrcb was written by the version 1 writer (text IR)."""
    data = (MODELS / "bundle-v1.wrcb").read_bytes()
    assert struct.unpack_from("<I", data, 8)[0] == 1
    loaded = bf.read_bundle(data)
    assert_same(model(), loaded)
    assert_same(model(), bf.read_bundle(bf.bundle_bytes(loaded)))  # and saved as version 2
    b = wrc.load_bundle(data)
    b.init()
    np.testing.assert_array_equal(b.infer({"x": np.arange(4, dtype=np.float32)})[0], np.arange(4))
    assert loaded.weights["const_1"].tobytes() == WEIGHTS["const_1"].tobytes()


def test_attributes_the_format_does_not_hold_are_refused_when_saving(tmp_path: Path) -> None:
    m = model()
    m.module.attributes["odd"] = builtin.OpaqueAttr.from_strings("x", "y")
    with pytest.raises(BundleFormatError, match="attribute kind OpaqueAttr .* is not supported"):
        bf.write_bundle(tmp_path / "m.wrcb", m)
    assert list(tmp_path.iterdir()) == []
    m.module.attributes["odd"] = builtin.IntAttr(1 << 300)
    with pytest.raises(BundleFormatError, match="wider than 256 bits"):
        bf.bundle_bytes(m)
    del m.module.attributes["odd"]
    bf.bundle_bytes(m, version=1)  # the text format holds anything xDSL prints
    with pytest.raises(BundleFormatError, match="cannot write format version 3"):
        bf.bundle_bytes(m, version=3)


def test_successors_and_values_used_outside_their_block_are_refused() -> None:
    target = Block()
    op = test.TestOp.create(successors=[target])
    with pytest.raises(BundleFormatError, match="has successors"):
        ib.encode_module(builtin.ModuleOp([op]))
    inner = test.TestOp.create(result_types=[builtin.i32])
    outside = test.TestOp.create(operands=[inner.results[0]])
    module = builtin.ModuleOp([test.TestOp.create(regions=[Region(Block([inner]))]), outside])
    with pytest.raises(BundleFormatError, match="not defined before it in an enclosing block"):
        ib.encode_module(module)


def test_a_value_from_outside_an_isolated_op_is_refused_by_the_decoder() -> None:
    """The decoder checks IsolatedFromAbove as it decodes (the verifier of a decoded module
    relies on it: `wrc.ir_verify.verify(decoded=True)`), refusing what xDSL's verifier refuses;
    values from inside the isolated op, or from outside a non-isolated one, stay fine."""
    ctx = make_context()
    ctx.load_dialect(test.Test)
    outer = test.TestOp.create(result_types=[builtin.i32])
    inner = test.TestOp.create(operands=[outer.results[0]])
    hostile = builtin.ModuleOp([outer, builtin.ModuleOp([inner])])
    with pytest.raises(Exception, match="IsolatedFromAbove"):
        hostile.verify()
    with pytest.raises(BundleFormatError, match="an operand of test.op is defined outside its IsolatedFromAbove "
                                                "parent \\(builtin.module\\)"):
        ib.decode_module(ib.encode_module(hostile), ctx, CAP)
    outer, inside = (test.TestOp.create(result_types=[builtin.i32]) for _ in range(2))
    fine = builtin.ModuleOp([
        outer,
        builtin.ModuleOp([inside, test.TestOp.create(operands=[inside.results[0]])]),
        test.TestOp.create(regions=[Region(Block([test.TestOp.create(operands=[outer.results[0]]),
                                                  test.TestTermOp.create()]))]),
    ])
    fine.verify()
    back = ib.decode_module(ib.encode_module(fine), ctx, CAP)
    ir_verify.verify(back, decoded=True)
    assert str(back) == str(fine)


# --------------------------------------------------------------------------- hand-written sections


def section(strings: list[bytes], words: list[int], *, magic: bytes = ib.MAGIC,
            n_words: int | None = None) -> bytes:
    """A binary IR section written from the spec: the string table, then `words` (the
    attribute table and the ops)."""
    all_words = [len(strings), *map(len, strings), *words]
    blob = b"".join(strings)
    prefix = struct.pack("<8sII", magic, len(all_words) if n_words is None else n_words, len(blob))
    return prefix + struct.pack(f"<{len(all_words)}I", *all_words) + blob


# An empty module: op "builtin.module" (string 0), no results, operands, properties or
# attributes, one region of one block without arguments or ops.
MODULE = [0, 0, 0, 0, 0, 1, 1, 0, 0]


def expect(raw: bytes, message: str) -> None:
    with pytest.raises(BundleFormatError, match=message):
        decode(raw).verify()


def test_hand_written_sections() -> None:
    s = [b"builtin.module"]
    assert str(decode(section(s, [0, *MODULE]))) == "builtin.module {\n}"
    # A module with attributes {a = 5 : i32, b = [1.5, "\xe9"]} and an affine map.
    strings = [b"builtin.module", b"integer_type", b"a", b"b", "é".encode(), b"builtin.signedness",
               b"SIGNLESS", b"integer", b"m"]
    attrs = [
        1, 1, 32,                  # 0: IntAttr 32
        8, 5, 1, 6,                # 1: signedness signless
        0, 1, 2, 0, 1,             # 2: i32
        1, 1, 5,                   # 3: IntAttr 5
        0, 7, 2, 3, 2,             # 4: 5 : i32 (IntegerAttr: value, type)
        4, *struct.unpack("<II", struct.pack("<d", 1.5)),  # 5: FloatData 1.5
        2, 4,                      # 6: "é"
        5, 2, 5, 6,                # 7: [FloatData, "é"]
        7, 2, 1, 1, 3, 0, 1, 1, 0, 3,  # 8: (d0, d1)[s0] -> (d1 + s0): dim 1, sym 0, add
        6, 3, 2, 4, 3, 7, 8, 8,    # 9: {a = 4, b = 7, m = 8}
    ]
    module = decode(section(strings, [10, *attrs, 0, 0, 0, 0, 3, 2, 4, 3, 7, 8, 8, 1, 1, 0, 0]))
    assert module.attributes["a"] == builtin.IntegerAttr(5, 32)
    assert str(module.attributes["m"]) == "affine_map<(d0, d1)[s0] -> ((d1 + s0))>"
    assert module.attributes["b"] == builtin.ArrayAttr([builtin.FloatData(1.5), builtin.StringAttr("é")])


@pytest.mark.parametrize(
    ("strings", "words", "message"),
    [
        ([b"builtin.module"], [0, *MODULE, 0], "1 words after the module"),
        ([b"builtin.module"], [0, *MODULE[:3]], "truncated"),
        ([b"test.op"], [0, *MODULE], "op 'test.op' is not in a registered dialect"),
        ([b"func.return"], [0, 0, 0, 0, 0, 0, 0], "root op is func.return"),
        ([b"builtin.module\xff"], [0, *MODULE], "string 0 is not UTF-8"),
        ([b"builtin.module"], [0, 0, 0, 0, 0, 0, 10**6, 1, 0, 0], "region count 1000000 exceeds"),
        ([b"builtin.module"], [0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0], "index is out of range"),  # operand
        ([b"builtin.module"], [1, 5, 1, 0, *MODULE], "index is out of range"),  # a forward reference
        ([b"builtin.module", b"opaque"], [1, 0, 1, 0, *MODULE], "kind 'opaque' is not one the binary IR holds"),
        ([b"builtin.module"], [1, 99, *MODULE], "unknown attribute entry kind 99"),
        ([b"builtin.module"], [1, 1, 9, *[0] * 9, *MODULE], "integer of 9 limbs"),
        ([b"builtin.module", b"a"], [1, 2, 1, 0, 0, 0, 2, 1, 0, 1, 0, 0, 1, 1, 0, 0], "duplicate property 'a'"),
        ([b"builtin.module"], [1, 7, 1, 0, 1, 1, 0, 5, *MODULE], "affine dimension 5 of a map with 1"),
        ([b"builtin.module"], [1, 7, 0, 0, 2, 1, 2, 1, 1, *MODULE], "declares 2 results but its nodes make 1"),
        ([b"builtin.module"], [1, 7, 0, 0, 1, 1, 9, *MODULE], "bad affine expression node 9"),
        # Found by the fuzzer: xDSL names every symbol when it prints a map (2^32 took all memory).
        ([b"builtin.module"], [1, 7, 0, 2**32 - 1, 0, 0, *MODULE], "0 dims and 4294967295 symbols"),
        ([b"builtin.module", b"integer_type", b"builtin.signedness", b"SIGNLESS"],
         [3, 1, 1, 4096, 8, 2, 1, 3, 0, 1, 2, 0, 1, *MODULE], "integer type of 4096 bits"),
        ([b"builtin.module", b"builtin.signedness", b"SIGNISH"], [1, 8, 1, 1, 2, *MODULE],
         "'SIGNISH' is not a member of builtin.signedness"),
    ],
)
def test_malformed_sections(strings: list[bytes], words: list[int], message: str) -> None:
    expect(section(strings, words), message)


def test_malformed_prefix() -> None:
    good = section([b"builtin.module"], [0, *MODULE])
    expect(good[:10], "too short for binary IR")
    expect(section([b"builtin.module"], [0, *MODULE], magic=b"builtin."), "is not binary IR: bad magic")
    expect(section([b"builtin.module"], [0, *MODULE], n_words=2**32 - 1), "do not make its")
    expect(good + b"x", "do not make its")
    expect(section([b"builtin.module"], [0, *MODULE])[:-1] + b"e!", "do not make its")
    raw = bytearray(good)
    struct.pack_into("<I", raw, ib.PREFIX_SIZE + 4, 13)  # the string's length
    expect(bytes(raw), "string lengths add up to 13 bytes but the string blob holds 14")


def _dense(shape: list[int], data: bytes) -> bytes:
    """A module whose attribute `c` is `dense<...> : tensor<shape x i8>` holding `data`."""
    strings = [b"builtin.module", b"integer_type", b"builtin.signedness", b"SIGNLESS", b"tensor",
               b"dense", b"none", b"c", data]
    dims = [w for d in shape for w in (1, 1, d & 0xFFFFFFFF)]  # one-limb IntAttrs
    n = len(shape)
    attrs = [*dims,                                   # 0..n-1: IntAttr dims
             1, 1, 8, 8, 2, 1, 3, 0, 1, 2, n, n + 1,  # n: 8, n+1: signless, n+2: i8
             5, n, *range(n),                         # n+3: shape array
             0, 6, 0,                                 # n+4: none
             0, 4, 3, n + 3, n + 2, n + 4,            # n+5: tensor<shape x i8>
             3, 8,                                    # n+6: bytes
             0, 5, 2, n + 5, n + 6]                   # n+7: dense
    return section(strings, [n + 8, *attrs, 0, 0, 0, 0, 1, 7, n + 7, 1, 1, 0, 0])


def test_inline_constants_are_bounded_and_complete() -> None:
    assert str(decode(_dense([2, 2], b"\1\2\3\4")).attributes["c"]) == "dense<[[1, 2], [3, 4]]> : tensor<2x2xi8>"
    start = time.monotonic()
    expect(_dense([2**20, 2**20], b"\0"), f"more than {CAP} elements")  # a splat is never expanded
    expect(_dense([4], b"\0"), "inline constant of 4 elements holds 1 bytes, not 4")
    expect(_dense([-1], b"\0"), "dynamic dimension|negative dimension")
    expect(_dense([-7], b"\0"), "negative dimension")
    assert time.monotonic() - start < 5


def test_nesting_is_bounded() -> None:
    def nested(levels: int) -> builtin.ModuleOp:  # `levels` ops with regions, one in another
        op = test.TestOp.create()
        for _ in range(levels - 1):
            op = test.TestOp.create(regions=[Region(Block([op]))])
        return builtin.ModuleOp([op])

    ok = nested(ib.MAX_OP_NESTING)
    ctx = make_context()
    ctx.load_dialect(test.Test)
    assert str(ib.decode_module(ib.encode_module(ok), ctx, CAP)) == str(ok)
    deep = nested(ib.MAX_OP_NESTING + 1)
    with pytest.raises(BundleFormatError, match="nest more than 64 deep"):
        ib.encode_module(deep)
    # The same section written by hand: the decoder checks it too.
    strings = [b"builtin.module", b"test.op"]
    words = [0, *MODULE[:-1], 1]
    for _ in range(ib.MAX_OP_NESTING):
        words += [1, 0, 0, 0, 0, 1, 1, 0, 1]
    words += [1, 0, 0, 0, 0, 0]
    with pytest.raises(BundleFormatError, match="nest more than 64 deep"):
        ib.decode_module(section(strings, words), ctx, CAP)


# --------------------------------------------------------------------------- mutation fuzzing


def _decodes_or_format_error(raw: bytes) -> str:
    """What decoding and verifying `raw` gives; the cold load's verifier of decoded modules
    (`ir_verify.verify(decoded=True)`) must refuse exactly what xDSL's verifier refuses."""
    try:
        module = decode(raw)
    except BundleFormatError as e:
        return str(e).split(" (at byte")[0]
    outcomes = []
    for check in (module.verify, lambda: ir_verify.verify(module, decoded=True)):
        try:
            check()
            outcomes.append("decoded")
        except Exception as e:  # a verifier failure: read_bundle reports it as a format error
            outcomes.append(f"verifier: {type(e).__name__}")
    assert outcomes[0] == outcomes[1], outcomes
    return outcomes[0]


def test_every_word_of_a_real_section_tampered() -> None:
    """Each word of the seed model's section set to absurd values and moved by one, and the
    section truncated after every word (prefix kept consistent, so the decoder is reached):
    every case decodes or raises BundleFormatError (or fails to verify)."""
    raw = ib.encode_module(wrc_fuzz.seed_model().module)
    n = (len(raw) - ib.PREFIX_SIZE) // 4
    blob = raw[ib.PREFIX_SIZE + 4 * n :]
    words = list(struct.unpack_from(f"<{n}I", raw, ib.PREFIX_SIZE))
    outcomes: dict[str, int] = {}
    start = time.monotonic()
    for i in range(n):
        for value in {0, 1, words[i] + 1, words[i] - 1, 2**32 - 1} - {-1, 2**32}:
            w = [*words[:i], value, *words[i + 1 :]]
            out = _decodes_or_format_error(ib._PREFIX.pack(ib.MAGIC, n, len(blob)) + struct.pack(f"<{n}I", *w) + blob)
            outcomes[out] = outcomes.get(out, 0) + 1
        cut = ib._PREFIX.pack(ib.MAGIC, i, len(blob)) + struct.pack(f"<{i}I", *words[:i]) + blob
        assert _decodes_or_format_error(cut) != "decoded"
    assert time.monotonic() - start < 60
    assert len(outcomes) > 12, outcomes  # many different checks reached


def test_bundle_level_mutations_of_binary_ir() -> None:
    """`wrc_fuzz.mutate_binary_ir` through `read_bundle` and a run: format errors only."""
    rng = random.Random(5)
    seeds = wrc_fuzz.seed_bundles()[:2]
    outcomes: set[str] = set()
    for i in range(150):
        data = seeds[i % 2]
        doc, ir, blobs = wrc_fuzz._split(data)  # type: ignore[misc]
        mutated = wrc_fuzz.relayout(doc, wrc_fuzz.mutate_binary_ir(rng, ir), blobs)
        outcomes.add(wrc_fuzz.check_bundle_bytes(mutated)[:40])
    assert len(outcomes) > 8, outcomes


def test_a_generic_yielding_the_wrong_type_is_a_format_error() -> None:
    """Found by the bundle fuzzer: a value index moved by one made a `linalg.yield` yield a
    whole buffer; xDSL verifies no yield types, and the NumPy JIT failed at run time."""
    from xdsl.dialects.linalg.ops import GenericOp

    data = wrc_fuzz.seed_bundles()[0]
    doc, _, blobs = wrc_fuzz._split(data)  # type: ignore[misc]
    mb = bf.read_bundle(data)
    generic = next(op for op in mb.module.walk() if isinstance(op, GenericOp))
    term = generic.body.block.last_op
    assert term is not None
    term.operands = [generic.outputs[0]]
    message = r"body takes \['f32'.*and yields \['memref<"
    with pytest.raises(BundleFormatError, match=message):
        bf.bundle_bytes(mb)
    for version, ir in ((2, ib.encode_module(mb.module)), (1, str(mb.module).encode())):
        with pytest.raises(BundleFormatError, match=message):
            bf.read_bundle(wrc_fuzz.relayout(doc, ir, blobs, version))
