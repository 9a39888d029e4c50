"""Backends: run level-3 IR (linalg on memrefs + memref globals; see docs/internals.md).

```python
backend = get_backend("numpy")          # or "interp", "cupy" (GPU); default: "numpy"
compiled = backend.compile(module)      # level-3 ModuleOp, not modified
outs = compiled.run("var_infer_graph", globals_, args)
```
* `globals_`: name -> C-contiguous array for every global the graph touches; writes to
  globals (`memref.copy` into a `memref.get_global`) go into these arrays in place.
* `args`: one per function argument, in order: an array for a memref, a `bool` for an `i1`.
  Inputs are never written.
* `run` returns fresh arrays, one per function result.
* optional `warm_up` (default true): whether `Bundle` runs the infer graph once on zeros
  when its weights are first set, so that the first real call is not the slow one.
* optional `prepare(graph_name)`: make a function ready to run without running it (`init()`
  prepares the update graph, so that the first update is not the one that makes it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.arg_spec import parse_spec
from xdsl.utils.exceptions import ArgSpecParseError

from wrc.errors import BackendUnavailableError, UnknownBackendError

DEFAULT_BACKEND = "numpy"


class CompiledModule(Protocol):
    """A compiled level-3 module: its functions can be run by name, from several threads."""

    @property
    def graphs(self) -> tuple[str, ...]:
        """Names of the module's functions, in module order."""
        ...

    def run(
        self,
        graph_name: str,
        globals_: Mapping[str, np.ndarray],
        args: Sequence[np.ndarray | bool],
    ) -> list[np.ndarray]: ...


class Backend(Protocol):
    name: str

    def compile(self, module: ModuleOp) -> CompiledModule: ...


def _numpy() -> Backend:
    from wrc.backends.numpy_jit import NumpyBackend

    return NumpyBackend()


def _interp() -> Backend:
    from wrc.backends.interp import InterpBackend

    return InterpBackend()


def _cupy() -> Backend:
    from wrc.backends.cupy_backend import CupyBackend

    return CupyBackend()


BACKENDS: dict[str, Callable[[], Backend]] = {"numpy": _numpy, "interp": _interp, "cupy": _cupy}
"""Backend name -> factory (imports are lazy: the interpreter pulls in more of xDSL)."""


def get_backend(name: str = DEFAULT_BACKEND) -> Backend:
    """The backend called `name`, with options spelled like pass options
    (`"numpy{reuse-buffers=false}"`: see `numpy_jit.JitOptions`); an `UnknownBackendError`
    listing the choices otherwise."""
    try:
        spec = parse_spec(name) if isinstance(name, str) else None
    except ArgSpecParseError:
        spec = None
    factory = BACKENDS.get(spec.name) if spec is not None else None
    if spec is None or factory is None:
        raise UnknownBackendError(
            f"unknown backend {name!r}; choose one of: {', '.join(sorted(BACKENDS))}"
        )
    if not spec.parameters:
        return factory()
    if spec.name != "numpy":
        raise UnknownBackendError(f"backend {spec.name!r} takes no options ({name!r} given)")
    from wrc.backends.numpy_jit import JitOptions, NumpyBackend

    try:
        return NumpyBackend(JitOptions.from_spec(spec))
    except ValueError as e:
        raise UnknownBackendError(f"backend {name!r}: {e}") from None


def check_call(graph_name: str, n_params: int | None, args: Sequence[Any]) -> None:
    """Shared argument checks of `CompiledModule.run` (unknown graph, wrong arity)."""
    from wrc.errors import InputError

    if n_params is None:
        raise InputError(f"the module has no graph {graph_name!r}")
    if len(args) != n_params:
        raise InputError(
            f"graph {graph_name!r} takes {n_params} arguments, {len(args)} given"
        )


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "BackendUnavailableError",
    "Backend",
    "CompiledModule",
    "UnknownBackendError",
    "check_call",
    "get_backend",
]
