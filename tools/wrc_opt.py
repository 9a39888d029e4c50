"""`wrc-opt`: xDSL's opt driver with the `ge` dialect and wrc's passes registered.

It behaves like `mlir-opt`/`xdsl-opt` (`-p`, `-o`, `--split-input-file`,
`--verify-diagnostics`, ...). Bad input is reported as a diagnostic on stderr with exit
code 1, never as a Python traceback (set `WRC_DEBUG=1` to see one).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, cast

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.arg_spec import parse_spec
from xdsl.utils.exceptions import ArgSpecParseError
from xdsl.utils.target import Target
from xdsl.xdsl_opt_main import xDSLOptMain

from wrc.dialects.ge import GE
from wrc.ir_text import SafeParser
from wrc.passes import PASSES


class CommandLineError(Exception):
    """A bad `-p` pipeline: xDSL reports it as ArgSpecParseError or a bare ValueError."""


class WrcOptMain(xDSLOptMain):
    def register_all_dialects(self) -> None:
        super().register_all_dialects()
        if "ge" not in self.ctx.registered_dialect_names:
            self.ctx.register_dialect("ge", lambda: GE)

    def register_all_passes(self) -> None:
        super().register_all_passes()
        for name, factory in PASSES.items():
            self.register_pass(name, factory)

    def register_all_targets(self) -> None:
        """xDSL's targets, plus `numpy`: the NumPy JIT's generated source of each function."""
        super().register_all_targets()

        def numpy_target() -> type[Target]:
            from wrc.backends.numpy_jit.target import NumpyTarget

            return NumpyTarget

        self.available_targets["numpy"] = numpy_target

    def check_target_options(self) -> None:
        """Options of `-t` checked up front: a bad one is a command-line error (xDSL would
        only find it after running the passes)."""
        spec = parse_spec(self.args.target)
        factory = self.available_targets[spec.name]
        if not inspect.signature(factory).parameters:
            cast(Callable[[], type[Target]], factory)().from_spec(spec)

    def register_all_frontends(self) -> None:
        """xDSL's MLIR frontend, with the parser of `wrc.ir_text` (linear-time string lexing;
        non-ASCII names read back)."""
        super().register_all_frontends()

        def parse_mlir(io: IO[bytes]) -> ModuleOp:
            return SafeParser(self.ctx, io.read(), self.get_input_name()).parse_module(
                not self.args.no_implicit_module)

        self.available_frontends["mlir"] = parse_mlir


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:  # the constructor parses the arguments and the pass pipeline
            opt = WrcOptMain(
                description="wrc-opt: run wrc's passes (ge-const-to-var, ge-split-weight-refreshable, "
                "convert-ge-to-linalg, ge-bufferize, and all of xDSL's) over MLIR files.",
                args=argv,
            )
            opt.check_target_options()
        except (ArgSpecParseError, ValueError) as e:
            raise CommandLineError(str(e)) from e
        opt.run()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        return 130
    except BaseException as e:  # report every failure as a diagnostic, like mlir-opt
        if os.environ.get("WRC_DEBUG"):
            raise
        message = str(e).strip() or type(e).__name__
        user_error = isinstance(e, OSError)  # e.g. an input file that does not exist
        if not user_error and (not isinstance(e, Exception) or type(e).__module__.startswith("builtins")):
            message = f"internal error: {type(e).__name__}: {message}"
        print(f"wrc-opt: error: {message}", file=sys.stderr)
        for note in getattr(e, "__notes__", ()):  # xDSL attaches the IR around a verifier error
            print(note, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
