"""`wrc`: the command line of the weight-refreshable compiler.

    wrc demo [--out DIR]           GE's weight-update sample on a small real task
    wrc info BUNDLE                graphs, variables, weights and sizes of a bundle file

Errors are reported as one line on stderr with exit code 1 (set WRC_DEBUG=1 for a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from wrc.errors import WrcError


def _info(args: argparse.Namespace) -> int:
    from wrc.bundle_format import read_bundle
    from wrc.runtime import Bundle

    model = read_bundle(args.bundle)
    bundle = Bundle(model, backend=args.backend)
    size = Path(args.bundle).stat().st_size
    weight_bytes = sum(w.nbytes for w in model.weights.values())
    print(f"bundle {args.bundle}: {size:,} bytes ({weight_bytes:,} bytes of stored weights)")
    print(f"graphs ({len(bundle.graphs)}): {', '.join(bundle.graphs)}")
    print(f"variables ({len(bundle.variables)}):")
    for name, info in bundle.variables.items():
        state = "initialized" if info.initialized else "uninitialized"
        print(f"  {name}: {info.dtype}{list(info.shape)} ({state})")
    print(f"stored constants ({len(model.weights)}):")
    for name, value in model.weights.items():
        print(f"  {name}: {value.dtype}{list(value.shape)} ({value.nbytes:,} bytes)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from wrc import demo

    return demo.main(args.rest)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wrc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="describe a bundle file (.wrcb)")
    info.add_argument("bundle", help="path of a bundle written by bundle_save_model")
    info.add_argument("--backend", default="numpy", help="backend used to load it (default: numpy)")
    info.set_defaults(run=_info)
    demo = sub.add_parser("demo", help="run the weight-update demo (needs scikit-learn)", add_help=False)
    demo.add_argument("rest", nargs=argparse.REMAINDER)
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (WrcError, OSError) as e:
        if os.environ.get("WRC_DEBUG"):
            raise
        print(f"wrc: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
