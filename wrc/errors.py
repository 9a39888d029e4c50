"""The exceptions users can hit. Every one is a `WrcError`."""

from __future__ import annotations

from xdsl.utils.exceptions import DiagnosticException, VerifyException


class WrcError(Exception):
    """Base class of every error wrc raises on bad input or misuse."""


class ShapeError(WrcError, VerifyException):
    """Operand shapes or dtypes an op cannot accept (names the op and the shapes)."""


class ConversionError(WrcError, DiagnosticException):
    """`convert_to_weight_refreshable_graphs` / the conversion passes rejected their input."""


class LoweringError(WrcError, DiagnosticException):
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


class InputError(WrcError):
    """Inputs or weights given to a bundle have wrong names, shapes or dtypes."""
