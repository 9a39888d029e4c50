"""`wrc compile` and `wrc run`: ONNX models in, bundles out, bundles run (registered by wrc/cli.py).

    wrc compile model.onnx -o model.wrcb [--weights a,b | --all-weights] [--no-init] [--input-shape x=1,3,224,224]
                 [--delta 'NAME=lora:16,...']
    wrc run model.wrcb --input x=x.npy [--update weights.safetensors] [--adapter lora.safetensors] [--output out.npz]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from wrc.errors import InputError


class _Progress:
    """One line per compile stage on stderr, with its time (silenced by --quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def stage(self, what: str, fn: Callable[[], Any]) -> Any:
        if not self.quiet:
            print(f"wrc: {what} ...", end="", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            result = fn()
        except BaseException:
            if not self.quiet:  # end the progress line before the error is printed
                print(" failed", file=sys.stderr, flush=True)
            raise
        if not self.quiet:
            print(f" {time.monotonic() - start:.2f}s", file=sys.stderr, flush=True)
        return result


def _shape_arg(text: str) -> tuple[str, tuple[int | None, ...]]:
    name, sep, dims = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=D0,D1,... (e.g. x=1,3,224,224), got {text!r}")
    try:
        return name, tuple(None if d in ("?", "-1") else int(d) for d in dims.split(",") if d)
    except ValueError:
        raise argparse.ArgumentTypeError(f"dimensions must be integers (or ?) in {text!r}") from None


def add_compile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile an ONNX model into a weight-refreshable bundle",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
Import MODEL (ONNX, opsets 13-21, 7-12 upgraded to 13; docs/onnx.md), make its weights
refreshable and write the bundle OUT. By default the weights are the float initializers with
more than one element, not mask fills (--all-weights); --weights picks constants by their ONNX
names. --no-init leaves out the init graph: a weight-stripped bundle
whose weights must be set with `wrc run --update` (or Bundle.update) before inference.
Symbolic input dims must be pinned with --input-shape NAME=D0,D1,... to compile. --delta adds
var_delta_graph, through which adapters (LoRA factors, dense deltas) are applied at run time
(Bundle.apply_adapter, `wrc run --adapter`; docs/api.md "Adapters").""")
    p.add_argument("model", help="an .onnx file (external data is read from its folder)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the bundle file to write (.wrcb)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--weights", metavar="NAMES", help="comma-separated initializer names to make refreshable")
    which.add_argument("--all-weights", action="store_true",
                       help="every weight: float initializers of 2+ elements, |x| < 1e30 (the default)")
    p.add_argument("--no-init", action="store_true", help="write a weight-stripped bundle (no var_init_graph)")
    p.add_argument("--input-shape", type=_shape_arg, action="append", default=[], metavar="NAME=DIMS",
                   help="pin an input's shape, e.g. x=1,3,224,224 (repeatable)")
    p.add_argument("--delta", action="append", default=[], metavar="NAME=KIND",
                   help="weights adapters may change, comma-separated NAME=KIND (KIND: dense, lora:R, "
                        "lora:R:out_in|in_out; NAME may be a glob: '*=lora:16'); repeatable")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(run=_compile)


def _compile(args: argparse.Namespace) -> int:
    from wrc.abi import plan
    from wrc.adapters import adapted_weights
    from wrc.onnx import import_onnx, weight_names
    from wrc.workflow import BuildSession, bundle_save_model, compile_graph

    unpinned = _unpinned_inputs(args.model, {name for name, _ in args.input_shape})
    if unpinned:
        raise InputError(f"{args.model}: compiling needs static shapes; pin the dynamic input dims with "
                         + " ".join(f"--input-shape {spec}" for spec in unpinned) + " (numbers for the <...>)")
    progress = _Progress(args.quiet)
    graph = progress.stage(f"importing {args.model}", lambda: import_onnx(args.model, dict(args.input_shape)))
    names = weight_names(graph)
    if args.weights:
        chosen = [n.strip() for n in args.weights.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in graph.constants]
        if unknown:
            raise InputError(f"--weights: {', '.join(map(repr, unknown))} not initializer(s) of {args.model} "
                             f"(it has {len(names)}: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
        names = chosen
    with BuildSession():
        deltas = ",".join(args.delta) or None
        model = progress.stage(f"compiling ({len(names)} refreshable weights)",
                               lambda: compile_graph(graph, names, init=not args.no_init, deltas=deltas))
        progress.stage(f"writing {args.output}", lambda: bundle_save_model(args.output, model))
    adapted = len(adapted_weights(plan(model.module, model.graphs)))
    print(f"wrote {args.output}: {len(names)} refreshable weight(s)"
          + (", weight-stripped" if args.no_init else "") + (f", {adapted} adapted" if adapted else ""))
    return 0


def _unpinned_inputs(path: str, pinned: set[str]) -> list[str]:
    """`NAME=D0,D1,...` for each input of the ONNX file with a dynamic dim that --input-shape does
    not pin (a symbolic dim as <its name>, an unknown one as <?>)."""
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001 - import_onnx reports an unreadable file with its reason
        return []
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for inp in model.graph.input:
        tt = inp.type.tensor_type
        if inp.name in inits or inp.name in pinned:
            continue
        dims = [str(d.dim_value) if d.HasField("dim_value") else f"<{d.dim_param or '?'}>" for d in tt.shape.dim]
        if not tt.HasField("shape"):
            specs.append(f"{inp.name}=<D0>,<D1>,...")
        elif any(d.startswith("<") for d in dims):
            specs.append(f"{inp.name}={','.join(dims)}")
    return specs


def _input_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE.npy, got {text!r}")
    return name, path


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a bundle's inference on .npy inputs",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description="""\
Load BUNDLE, set its weights (the init graph when it has one, then --update FILE: a
.safetensors or .npz file of weights by name, then --adapter FILE: a PEFT LoRA file), run inference on the --input arrays (.npy, by
input name) and write the outputs to --output (.npz: output_0, output_1, ...) or print them (large outputs
elided).""")
    p.add_argument("bundle", help="a .wrcb bundle")
    p.add_argument("--input", type=_input_arg, action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input array (repeat for each input)")
    p.add_argument("--update", metavar="WEIGHTS", help="a .safetensors or .npz file of new weights by name")
    p.add_argument("--adapter", metavar="LORA.safetensors",
                   help="then apply a PEFT LoRA file (a bundle compiled with --delta; scale from "
                        "--adapter-scale or the adapter_config.json beside it)")
    p.add_argument("--adapter-scale", type=float, metavar="S", help="the LoRA scale (default: lora_alpha / r)")
    p.add_argument("--output", metavar="OUT.npz", help="write the outputs here")
    p.add_argument("--backend", default="numpy", choices=("numpy", "interp", "cupy"),
                   help="numpy (default), interp (the reference interpreter) or cupy (a CUDA GPU, needs CuPy)")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from wrc.abi import INIT_GRAPH
    from wrc.runtime import load_bundle
    from wrc.weight_files import read_npy, write_weights

    bundle = load_bundle(args.bundle, backend=args.backend)
    inputs: dict[str, np.ndarray] = {}
    for name, path in args.input:  # sizes checked against the file before allocating
        try:
            inputs[name] = read_npy(path)
        except InputError as e:
            raise InputError(f"--input {name}: cannot read a .npy array: {e}") from None
    if INIT_GRAPH in bundle.graphs:
        bundle.init()
    if args.update:
        bundle.update_from_file(args.update)
    if args.adapter:
        bundle.apply_adapter_file(args.adapter, scale=args.adapter_scale)
    elif args.adapter_scale is not None:
        raise InputError("--adapter-scale needs --adapter")
    outputs = bundle.infer(inputs)
    if args.output:  # under exactly that name (np.savez would append .npz to a name without it)
        write_weights(args.output, {f"output_{i}": y for i, y in enumerate(outputs)}, format="npz")
        print(f"wrote {len(outputs)} output(s) to {args.output}")
    for i, y in enumerate(outputs):
        # Values in full for small outputs, NumPy's elided form (first/last items) for large ones.
        values = np.array2string(y, threshold=64, edgeitems=3, precision=5, separator=", ")
        print(f"output_{i}: {y.dtype}{list(y.shape)}\n{values}")
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_compile, add_run]
"""Added to `wrc`'s subcommands by wrc/cli.py."""
