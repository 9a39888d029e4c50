"""Parsing IR text that may be hostile (bundle files, `wrc-opt` input): xDSL's parser with two
of its xDSL 0.74 flaws fixed for wrc's use. Use `parse_module` (or `SafeParser`) instead of
`xdsl.parser.Parser` for text that did not come from this process.

1. **Exponential string lexing.** xDSL lexes a string literal with
   `"(?:[^"\\\n\v\f]+|\\(?:...))*"`: a `+` inside a `*`, so a literal that never closes (a
   quote followed by a few dozen characters and a newline) backtracks exponentially — a
   40-character line hangs the parser for hours. `_STRING` accepts the same language with
   one character per repetition, which backtracks linearly.
2. **Non-ASCII strings do not round-trip.** xDSL prints a non-ASCII string as escaped UTF-8
   bytes (`"\\C3\\A9"` for "é") but lexes an escaped literal that is not pure ASCII as a
   *bytes* literal, so a `sym_name` or `ge.name` holding such a name comes back as a
   `BytesAttr` and fails to verify. Here a literal whose bytes are valid UTF-8 is a string,
   as MLIR reads it.
3. **Non-finite floats in `dense<...>` do not round-trip.** xDSL prints inf and NaN elements as
   their bit patterns in hex (`dense<0xff800000> : tensor<f32>`, MLIR's form) but reads a hex
   element back as the integer 4286578688. Here a hex element of a float tensor is its bits.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import AnyFloat, Float16Type, Float32Type, Float64Type, ModuleOp
from xdsl.parser import Parser
from xdsl.parser.generic_parser import ParserState
from xdsl.utils.lexer import Input
from xdsl.utils.mlir_lexer import MLIRLexer, MLIRTokenKind, StringLiteral

_STRING = re.compile(r'"(?:[^"\\\n\v\f]|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*"')
"""xDSL's string-literal grammar, one character (or escape) per repetition: linear time."""


class _Lexer(MLIRLexer):
    _unescaped_characters_regex = _STRING


_FLOAT_BITS: dict[type, tuple[str, str]] = {Float16Type: ("<u2", "<f2"), Float32Type: ("<u4", "<f4"),
                                             Float64Type: ("<u8", "<f8")}


class _HexElement(Parser._TensorLiteralElement):
    """A `0x...` element of a dense literal: for a float element type, the value's bits."""

    def to_type(self, parser: Any, type: Any) -> Any:
        kinds = _FLOAT_BITS.get(type.__class__) if isinstance(type, AnyFloat) else None
        if kinds is None:
            return super().to_type(parser, type)
        bits, value = kinds
        if not 0 <= int(self.value) < 1 << (8 * np.dtype(bits).itemsize):
            parser.raise_error(f"hexadecimal literal does not fit {type}", at_position=self.span)
        return float(np.array(int(self.value), bits).view(value))


class SafeParser(Parser):
    """`xdsl.parser.Parser` with a linear-time string lexer that reads non-ASCII strings back."""

    def __init__(self, ctx: Context, input: str | bytes, name: str = "<unknown>") -> None:
        super().__init__(ctx, "", name)  # sets up the parser's tables; the lexer is replaced:
        text = input.decode("utf-8") if isinstance(input, bytes) else input
        self._parser_state = ParserState(_Lexer(Input(text, name)))

    def parse_module(self, allow_implicit_module: bool = True) -> ModuleOp:
        """xDSL's op and attribute parsers convert some tokens with `int()` or an enum's
        constructor (e.g. a linalg iterator type): a bad one raises `ValueError`, not a
        `ParseError`. Report it as a parse error at the token reached."""
        try:
            return super().parse_module(allow_implicit_module)
        except (ValueError, OverflowError) as e:
            self.raise_error(str(e))

    def parse_optional_str_literal(self) -> str | None:
        token = self._current_token
        if token.kind == MLIRTokenKind.BYTES_LIT:
            try:
                value = StringLiteral.from_span(token.span).bytes_contents.decode("utf-8")
            except UnicodeDecodeError:
                return None
            self._consume_token(MLIRTokenKind.BYTES_LIT)
            return value
        return super().parse_optional_str_literal()

    def _parse_tensor_literal_element(self) -> Parser._TensorLiteralElement:
        token = self._current_token
        element = super()._parse_tensor_literal_element()
        if token.kind == MLIRTokenKind.INTEGER_LIT and token.text[:2] in ("0x", "0X"):
            return _HexElement(element.is_negative, element.value, element.span)
        return element


def parse_module(ctx: Context, text: str | bytes, name: str = "<unknown>") -> ModuleOp:
    """Parse a module (not verified) with `SafeParser`."""
    return SafeParser(ctx, text, name).parse_module()
