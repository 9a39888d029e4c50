"""The exceptions users can hit: every class wrc raises on bad input or misuse, all `WrcError`s.

The modules that raise them import them from here (and so still export them under the names
they had: `wrc.graph.GraphError`, `wrc.onnx.OnnxImportError`, ...).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Sequence

from xdsl.utils.exceptions import PassFailedException, VerifyException

LISTED = 8
"""How many names a message lists before it says how many more there are (a model may have
thousands of weights: a message stays readable)."""


def listed(names: Iterable[object], limit: int = LISTED) -> str:
    """`names` joined with ", " for a message (each as `str`): the first `limit` of them, then
    how many more."""
    names = [str(n) for n in names]
    more = len(names) - limit
    return ", ".join(names if more <= 0 else [*names[:limit], f"... ({more:,} more)"])


def unknown_names(kind: str, given: Sequence[object], known: Collection[str]) -> str:
    """`unknown <kind> 'a'` (or `unknown <kind>s 'a', 'b'`) for a message: the names given
    that are not among `known`, the closest known name to each of the first few where one is
    close (a typo, a prefix a checkpoint adds), and the known ones (`listed`)."""
    close = {g: m for g in given[:LISTED] if isinstance(g, str) if (m := _closest(g, known))}
    if not close:
        hint = ""
    elif len(given) == 1:
        hint = f"did you mean {close[given[0]]!r}? "
    else:
        hint = f"did you mean {listed(f'{m!r} for {g!r}' for g, m in close.items())}? "
    return (f"unknown {kind}{'s' if len(given) > 1 else ''} {listed(map(repr, given))} "
            f"({hint}{kind}s: {listed(known)})")


def _closest(name: str, known: Collection[str]) -> str | None:
    """The known name `name` most likely meant: the same with a dotted prefix added or taken
    away (a checkpoint's `model.`, DDP's `module.`), else the closest spelling, if close."""
    parts = name.split(".")
    for i in range(1, len(parts)):
        if (tail := ".".join(parts[i:])) in known:
            return tail
    dotted = [k for k in known if k.endswith("." + name)]
    if dotted:
        return min(dotted, key=len)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return close[0] if close else None


class WrcError(Exception):
    """Base class of every error wrc raises on bad input or misuse."""


class ShapeError(WrcError, VerifyException):
    """Operand shapes or dtypes an op cannot accept (names the op and the shapes)."""


class GraphError(WrcError):
    """A graph is built or parsed wrongly (duplicate names, bad arguments, bad IR)."""


class UnsupportedDtypeError(WrcError, TypeError):
    """A NumPy dtype or xDSL element type that wrc does not support."""


class ConversionError(WrcError, PassFailedException):
    """`convert_to_weight_refreshable_graphs` / the conversion passes rejected their input."""


class LoweringError(WrcError, PassFailedException):
    """The compiler cannot lower a graph (e.g. an unsupported dynamic dimension)."""


class BuildError(WrcError):
    """Misuse of the build workflow (no session, bundle conflicts, too few graphs)."""


class BundleFormatError(WrcError):
    """A bundle file is malformed, truncated, tampered with or of an unknown version."""


class UnrunnableBundleError(BundleFormatError, LoweringError):
    """A well-formed bundle file whose IR the chosen backend cannot run (tampered, or using an
    op this backend does not implement): a `BundleFormatError`, and a `LoweringError` too."""


class RuntimeStateError(WrcError):
    """A bundle was asked to run in a state that does not allow it (e.g. uninitialized weights)."""


class VersionError(RuntimeStateError):
    """A weight version that cannot be committed or rolled back to (unknown, no longer staged,
    none retained)."""


class FleetError(WrcError):
    """A fleet call failed on some replica (`wrc.fleet`; names each one and its error)."""


class InputError(WrcError):
    """Inputs or weights given to a bundle have wrong names, shapes or dtypes."""


class WeightFileError(InputError):
    """A weight file cannot be read or written: unknown format, malformed or unreadable content."""


class UnknownBackendError(WrcError, ValueError):
    """`get_backend` was given a name that is not a backend."""


class BackendUnavailableError(WrcError):
    """A known backend that cannot run on this machine (a library or a device is missing)."""


class RenderError(WrcError):
    """A graph cannot be rendered: no Graphviz `dot` for SVG/PNG, or `dot` failed."""


class OnnxImportError(WrcError):
    """An ONNX model that cannot be read or imported (names the file, node or input)."""


class UnsupportedOpError(OnnxImportError):
    """The model uses operators (or operator forms) wrc does not support; lists every one."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(f"{len(problems)} unsupported node(s):\n  " + "\n  ".join(problems))
