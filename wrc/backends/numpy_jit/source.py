"""The generated source of one function and the namespace of constants it refers to."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from wrc.backends.arrays import ArrayModule
from wrc.errors import InputError


def _bad_arg(index: int, value: np.ndarray, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    raise InputError(f"argument {index} is {value.dtype}{list(value.shape)}, the graph takes {dtype}{list(shape)}")


class Source:
    """Generated lines plus the namespace of constants they refer to (k0, k1, ...)."""

    def __init__(self, arrays: ArrayModule) -> None:
        self.lines: list[str] = []
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

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def constants(self) -> dict[str, Any]:
        """The generated names (k0, k1, ...) and their values."""
        return {k: v for k, v in self.namespace.items() if k[0] == "k" and k[1:].isdigit()}
