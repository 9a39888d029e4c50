"""The one xDSL `Context` recipe: every dialect wrc's IR levels use (see docs/internals.md)."""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.affine import Affine
from xdsl.dialects.arith import Arith
from xdsl.dialects.builtin import Builtin
from xdsl.dialects.func import Func
from xdsl.dialects.linalg import Linalg
from xdsl.dialects.math import Math
from xdsl.dialects.memref import MemRef
from xdsl.dialects.scf import Scf
from xdsl.dialects.tensor import Tensor

from wrc.dialects.ge import GE


def make_context() -> Context:
    """A fresh context that parses every level of wrc's IR."""
    ctx = Context()
    for dialect in (Builtin, Func, Arith, Math, Linalg, Tensor, MemRef, Scf, Affine, GE):
        ctx.load_dialect(dialect)
    return ctx
