"""`wrc-opt FILE -t numpy`: the source the NumPy JIT generates for each function of a
level-3 module, followed by the constants it names (for FileCheck tests of the JIT)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.target import Target

from wrc.backends.numpy_jit import compile_functions
from wrc.backends.numpy_jit.plan import JitOptions


def _describe(value: Any) -> str:
    """A constant as one short line: arrays by dtype and shape, callables by name."""
    if isinstance(value, np.ndarray):
        return f"array<{value.dtype}{list(value.shape)}>"
    if callable(value) and not isinstance(value, np.dtype | type):
        return f"<function {getattr(value, '__name__', type(value).__name__)}>"
    return repr(value)


@dataclass(frozen=True)
class NumpyTarget(JitOptions, Target):
    """`-t numpy` (options as the backend's: `-t 'numpy{reuse-buffers=false}'`)."""

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        for fn, src in compile_functions(module, options=self):
            output.write(f"# func @{fn.sym_name.data}\n{src.text()}")
            for name, value in src.constants().items():
                output.write(f"#   {name} = {_describe(value)}\n")
