"""The exceptions users can hit: every class wrc raises on bad input or misuse, all `WrcError`s.

The modules that raise them import them from here (and so still export them under the names
they had: `wrc.graph.GraphError`, `wrc.onnx.OnnxImportError`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.utils.exceptions import PassFailedException, VerifyException


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
