"""The generated source of one function and the namespace of constants it refers to."""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np

from wrc.backends.arrays import ArrayModule
from wrc.errors import InputError


def _bad_arg(index: int, value: np.ndarray, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    raise InputError(f"argument {index} is {value.dtype}{list(value.shape)}, the graph takes {dtype}{list(shape)}")


_NAME = re.compile(r"\b[a-z]\d+\b")
_GLOBALS = re.compile(r"\bG\[")

ONCE = {"bind": ("def bind(G):", "W"), "scratch": ("def scratch():", "S")}
"""The functions of statements made once, and the parameter of `graph` that passes their
values: `bind(G)` looks up and views the globals (once per set of them: one weight version),
`scratch()` allocates the temporaries and views them (once per arena)."""


class Source:
    """Generated lines plus the namespace of constants they refer to (k0, k1, ...).

    `once` (hoisting on): statements moved out of `graph` into `bind` and `scratch` (`ONCE`);
    `lines[0]` is then the header `def graph(W, S, ...)`, and `text()` writes the two
    functions before it, each returning what `graph` reads of theirs, and the unpacking of
    those values at the top of `graph`."""

    def __init__(self, arrays: ArrayModule, once: bool = False) -> None:
        self.lines: list[str] = []
        self.once: dict[str, list[tuple[str, str]]] | None = {k: [] for k in ONCE} if once else None
        self.namespace: dict[str, Any] = {"np": arrays.xp, "_nd": arrays.strided, "_bad_arg": _bad_arg}
        self._keys: dict[tuple[str, str], str] = {}
        self._n = itertools.count()

    def const(self, value: Any) -> str:
        """A generated name bound to `value` in the namespace (simple values are shared)."""
        key = None
        if isinstance(value, int | str | tuple | np.dtype) and not isinstance(value, bool):
            key = (type(value).__name__, repr(value))
            if key in self._keys:
                return self._keys[key]
        name = f"k{len(self.namespace) - 3}"
        self.namespace[name] = value
        if key is not None:
            self._keys[key] = name
        return name

    def var(self, prefix: str = "v") -> str:
        return f"{prefix}{next(self._n)}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def hoist(self, phase: str, name: str, expr: str) -> None:
        """`name = expr` in the function of `phase` (a key of `ONCE`) instead of `graph`."""
        assert self.once is not None
        self.once[phase].append((name, expr))

    def text(self) -> str:
        if self.once is None:
            return "\n".join(self.lines) + "\n"
        body = "\n".join(self.lines[1:])
        used = set(_NAME.findall(body))
        out, unpack = [], []
        for phase, (header, param) in ONCE.items():
            made = self.once[phase]
            names = [n for n, _ in made if n in used]
            if phase == "bind" and _GLOBALS.search(body):  # lookups made per call (in branches)
                names.append("G")
            out += [header, *(f"    {n} = {e}" for n, e in made), f"    return ({''.join(n + ', ' for n in names)})"]
            if names:
                unpack.append(f"    {', '.join(names)}, = {param}")
        return "\n".join([*out, self.lines[0], *unpack, body]) + "\n"

    def constants(self) -> dict[str, Any]:
        """The generated names (k0, k1, ...) and their values."""
        return {k: v for k, v in self.namespace.items() if k[0] == "k" and k[1:].isdigit()}
