"""`wrc`: the command line of the weight-refreshable compiler.

    wrc compile MODEL.onnx -o OUT                 an ONNX model into a weight-refreshable bundle
    wrc run BUNDLE --input x=x.npy                inference on .npy inputs (--update WEIGHTS first)
    wrc inspect BUNDLE [--json]                   format version, graphs, variables, file sections
    wrc graph INPUT [--convert NAMES] [-o OUT]    draw graphs as Graphviz DOT (SVG/PNG with graphviz)
    wrc export-weights BUNDLE OUT                 a bundle's initial weights to .safetensors / .npz
    wrc update BUNDLE WEIGHTS -o OUT              a copy of BUNDLE with new initial weights (no recompiling)
    wrc demo [--out DIR]                          GE's weight-update sample on a small real task

`wrc COMMAND --help` explains each command. Errors are reported as one line on stderr with
exit code 1 (set WRC_DEBUG=1 for a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from wrc.errors import WrcError
from wrc.terminal import printable


def _parser(sub: argparse._SubParsersAction, name: str, help: str, description: str,
            aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description, aliases=list(aliases),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


# ----------------------------------------------------------------------------- inspect


def add_inspect(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "inspect", "describe a bundle file (.wrcb)", aliases=["info"], description="""\
Describe a bundle file: its format version, its graphs with their inputs and outputs, its
variables (name, the weight name that Bundle.update takes, shape, dtype, bytes, and whether
the file holds an initial value or is weight-stripped), its stored weights and how the file's
bytes split into sections. The whole file is validated first (checksums included).
`wrc info` is an alias.""")
    p.add_argument("bundle", help="path of a bundle written by bundle_save_model")
    p.add_argument("--json", action="store_true", help="print the same facts as one JSON object")
    p.set_defaults(run=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    from wrc.bundle_info import describe, format_text

    info = describe(args.bundle)
    print(json.dumps(info, indent=2) if args.json else format_text(info))
    return 0


# ----------------------------------------------------------------------------- graph


def add_graph(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "graph", "draw graphs as Graphviz DOT, SVG or PNG", description="""\
Draw the graphs of INPUT: a .mlir file of ge IR (e.g. from Graph.to_mlir() or wrc-opt), or a
bundle file (.wrcb: its level-3 graphs). With --convert, INPUT must be a ge graph: the picture
shows the original graph next to the three graphs the conversion makes (var_init_graph,
var_update_graph, var_infer_graph), and var_delta_graph with --delta. Variables are orange cylinders shared by the graphs of
one module; writes to them (init / update paths) are red edges, reads blue edges.

DOT text is always available; SVG and PNG need Graphviz's `dot` program. The output format
comes from OUT's suffix (.dot/.gv, .svg, .png) or -T.""")
    p.add_argument("input", help="a .mlir file of ge IR or a .wrcb bundle")
    p.add_argument("--convert", metavar="NAMES",
                   help="comma-separated constant names to make refreshable (e.g. const_1,const_2)")
    p.add_argument("--delta", metavar="NAME=KIND", help="with --convert: also draw var_delta_graph for "
                   "these weights (comma-separated, e.g. const_1=lora:4; docs/passes.md ge-add-delta-graph)")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (default: DOT text on stdout)")
    p.add_argument("-T", "--format", choices=("dot", "svg", "png"), help="output format (default: from OUT)")
    p.set_defaults(run=_graph)


def _graph(args: argparse.Namespace) -> int:
    from wrc.dot import to_dot, write_graph

    if args.delta and not args.convert:
        raise WrcError("--delta needs --convert (a bundle shows its var_delta_graph as it is)")
    modules = _graph_modules(args.input, args.convert, args.delta)
    names = [n.strip() for n in args.convert.split(",")] if args.convert else []
    dot = to_dot(modules, title=Path(args.input).name, highlight=names)
    if args.output is None:
        if args.format not in (None, "dot"):
            raise WrcError(f"-T {args.format} needs -o OUT (only DOT text goes to stdout)")
        sys.stdout.write(dot)
    else:
        fmt = write_graph(dot, args.output, args.format)
        print(f"wrote {args.output} ({fmt})")
    return 0


def _graph_modules(path: str, convert: str | None, deltas: str | None = None) -> list:
    from wrc import pipeline
    from wrc.bundle_format import MAGIC, read_bundle
    from wrc.context import make_context
    from wrc.files import open_regular
    from wrc.graph import GraphError
    from wrc.ir_text import parse_module

    with open_regular(path) as f:  # a FIFO would block
        is_bundle = f.read(len(MAGIC)) == MAGIC
    if is_bundle:
        if convert:
            raise WrcError(f"{path}: --convert takes a ge graph (.mlir), not a bundle: a bundle is "
                           "already converted")
        return [("", read_bundle(path).module)]
    try:
        module = parse_module(make_context(), Path(path).read_text(encoding="utf-8"), name=path)
        module.verify()
    except (UnicodeDecodeError, Exception) as e:  # xDSL reports bad IR with several exception types
        if isinstance(e, WrcError):
            raise
        raise GraphError(f"{path}: not a bundle, and not valid ge IR: {type(e).__name__}: {str(e)[:1000]}") from None
    if not convert:
        return [("", module)]
    names = [n.strip() for n in convert.split(",")]
    from wrc.workflow import delta_entries

    converted = pipeline.apply(module.clone(), pipeline.conversion_passes(names, delta_entries(deltas, "--delta")))
    return [("original", module), ("converted", converted)]


# ----------------------------------------------------------------------------- weights


def add_export_weights(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "export-weights", "write a bundle's initial weights to .safetensors / .npz",
                description="""\
Write the initial values of a bundle's refreshable weights (what its var_init_graph sets) to a
weight file, keyed by weight name (the original constant names, e.g. const_1). Edit or
retrain them, then load them with Bundle.update_from_file or bake them in with `wrc update`.
A weight-stripped bundle holds no values: there is nothing to export.""")
    p.add_argument("bundle", help="a .wrcb bundle with a var_init_graph")
    p.add_argument("output", help="the weight file to write: NAME.safetensors or NAME.npz")
    p.set_defaults(run=_export_weights)


def _export_weights(args: argparse.Namespace) -> int:
    from wrc.abi import INIT_GRAPH
    from wrc.runtime import load_bundle

    bundle = load_bundle(args.bundle)
    if INIT_GRAPH not in bundle.graphs:
        raise WrcError(f"{args.bundle} is weight-stripped (no {INIT_GRAPH}): it holds no weight "
                       "values to export")
    bundle.init()
    bundle.export_weights(args.output)
    print(f"wrote {len(bundle.weights())} weight(s) to {args.output}")
    return 0


def add_update(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "update", "copy a bundle with new initial weights (no recompiling)", description="""\
Write OUT: a copy of BUNDLE whose var_init_graph sets the weights of the file WEIGHTS
(.safetensors or .npz, keyed by weight name) instead of the old ones. Weights not in the file
keep their old values. Nothing is recompiled; every entry is checked (unknown name, shape,
dtype) before anything is written. BUNDLE itself is untouched unless OUT is BUNDLE (the file
is replaced atomically). A weight-stripped bundle stores no initial values: give it its
weights at run time with Bundle.update_from_file instead.""")
    p.add_argument("bundle", help="a .wrcb bundle with a var_init_graph")
    p.add_argument("weights", help="a .safetensors or .npz file of weights, by weight name")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the bundle file to write")
    p.set_defaults(run=_update)


def _update(args: argparse.Namespace) -> int:
    from wrc.bundle_format import read_bundle, write_bundle
    from wrc.weight_files import bake_weights

    model = bake_weights(read_bundle(args.bundle), args.weights, what=args.bundle)
    write_bundle(args.output, model)
    print(f"wrote {args.output}")
    return 0


# ----------------------------------------------------------------------------- demo


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the weight-update demo (needs scikit-learn)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(run=_demo)


def _demo(args: argparse.Namespace) -> int:
    from wrc import demo

    return demo.main(args.rest)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_inspect, add_graph, add_export_weights, add_update, add_demo,
    *__import__("wrc.cli_onnx", fromlist=["COMMANDS"]).COMMANDS,  # wrc compile, wrc run (ONNX)
]
"""One function per subcommand: it adds its parser and sets `run` (add new commands here)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wrc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (WrcError, OSError) as e:
        if os.environ.get("WRC_DEBUG"):
            raise
        print(f"wrc: error: {printable(str(e), keep=chr(10))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
