"""The model zoo (docs/zoo.md) against onnxruntime: load, infer, update, first calls, memory.

    .venv/bin/python bench/zoo.py [--quick] [--memory] [--models resnet18-torchscript,light_resnet50]
    .venv/bin/python bench/zoo.py --build light_resnet50,vit-b-stack     # peak RSS of building only
    .venv/bin/python bench/run.py --only zoo [--quick]       # the same rows in run.py's table

The models are tests/zoo/*.onnx and onnx's `light` CNNs, loaded as tests/test_zoo.py loads
them (seeded inputs; the light CNNs' weights drawn by role). Per model, one BLAS thread and
`intra_op_num_threads=1`:

* in this process, interleaved: `load_bundle(path)` vs a new onnxruntime session of the
  same model file; steady `infer` vs `session.run`; a full `update` (every weight) vs
  `np.copyto` of the same bytes into touched arrays;
* in fresh subprocesses (a first call is first only there; median of 3 processes): load, `init()`, first and
  steady infer, first, second and steady update (of the values loaded, which the child reads
  before it measures: the caller's arrays, not the bundle's), peak RSS growth (VmHWM over the
  RSS before loading) after each step, × the bundle's stored weight bytes; the same for
  onnxruntime's session; and the peak RSS growth of building the bundle from the ONNX file
  (read, import, compile, save) in another.

`--memory` runs only the fresh processes (no in-process timing); `--build` only the builds.
`--models vit-b-stack` (in either): bench/models.py's ViT-B stack, its fresh processes only.
`--idle S`: each child waits S seconds before its first update; `--pages session6`: the
children map update buffers as before session 7 (wrc/pages.py off, 64 MiB ahead at most);
`--adopt`: they update with `copy=False`; `--map-ahead all`: they call `init(map_ahead="all")`
(the first update's whole buffer set mapped at init, above the memory target on large models).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run.py drops OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE before NumPy loads
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run

import child  # noqa: E402
import numpy as np  # noqa: E402

TESTS = Path(__file__).resolve().parent.parent / "tests"
QUICK = ["resnet18-torchscript", "mobilenet_v3-dynamo", "convnext-torchscript", "vit_timm-dynamo",
         "bert-sdpa_mask-torchscript", "gpt2-sdpa_mask-dynamo", "whisper_encoder-sdpa-torchscript",
         "light_squeezenet", "light_resnet50"]

# Issue 12's targets: peak RSS after load + init + infer, after updates (× weights + bytes);
# and of building.
RSS_INFER, RSS_UPDATE, RSS_SLACK = 1.3, 2.3, 100e6
RSS_BUILD, RSS_BUILD_SLACK = 2.0, 200e6

_CHILD = child.PRELUDE + """
import json, sys, time
import numpy as np
mode, model, feeds_path, steady = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
idle, pages, copy, ahead = float(sys.argv[6]), sys.argv[7], sys.argv[8] == "copy", sys.argv[9]
if mode == "wrc":
    import wrc
    if pages == "session6":  # no madvise, 64 MiB mapped ahead at most: as before session 7
        import wrc.pages, wrc.runtime
        wrc.pages._madvise, wrc.runtime.PREFAULT_BYTES = False, 64 << 20
else:
    import onnxruntime as ort
feeds = dict(np.load(feeds_path))
new = dict(np.load(sys.argv[5])) if mode == "wrc" else {}  # the update's weights: the caller's, before the load
out, box = {}, {}
base = status("VmRSS")
reset_peak()
if mode == "wrc":
    out["load"] = ms(lambda: box.setdefault("b", wrc.load_bundle(model)))
    b = box["b"]
    out["init"] = ms(lambda: b.init(map_ahead=ahead))
    run = lambda: b.infer(feeds)
else:
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    out["load"] = ms(lambda: box.setdefault("s", ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])))
    run = lambda: box["s"].run(None, feeds)
out["first infer"] = ms(run)
out["steady infer"] = float(np.median([ms(run) for _ in range(steady)]))
out["rss infer"] = status("VmHWM") - base
if mode == "wrc":
    def update():  # the values loaded (weights() would read what the bundle let go from the file)
        b.update(new, copy=copy)
    time.sleep(idle)  # (memory freed meanwhile may go back to a VM's host: docs/performance.md)
    out["first update"] = ms(update)
    out["rss first update"] = status("VmHWM") - base
    times = [ms(update) for _ in range(max(4, steady))]
    out["second update"] = times[0]
    out["steady update"] = float(np.median(times[1:]))
    out["rss updates"] = status("VmHWM") - base
print(json.dumps(out))
"""


# Building from the ONNX file: the model read, imported, compiled and saved (peak RSS growth).
_BUILD_CHILD = child.PRELUDE + """
import json, sys
import numpy as np
import onnx
import wrc
from wrc.onnx import import_onnx, weight_names
from wrc.workflow import compile_graph
onnx_path, feeds_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
shapes = {k: v.shape for k, v in np.load(feeds_path).items()}
base = status("VmRSS")
reset_peak()
graph = import_onnx(onnx.load(onnx_path), shapes)
names = weight_names(graph)
with wrc.BuildSession():
    wrc.bundle_save_model(out, compile_graph(graph, names))
print(json.dumps({"rss build": status("VmHWM") - base}))
"""

_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


IDLE_S = 0.0
"""Seconds a child waits between its steady infers and its first update (`--idle`)."""
PAGES = "now"
"""How the children map update buffers: "now", or "session6" (`--pages`, for comparison)."""
COPY = True
"""Whether the children update with `copy=True` (else they adopt the arrays: `--adopt`)."""
MAP_AHEAD = "target"
"""The children's `init(map_ahead=...)` (`--map-ahead`)."""


def _child(mode: str, model: Path, feeds: Path, steady: int, weights: Path | None = None,
           repeats: int = 3) -> dict[str, float]:
    """The median of each figure over `repeats` fresh processes (one sample of a first call
    is often a scheduling hiccup on a loaded machine)."""
    runs = [json.loads(subprocess.run([sys.executable, "-c", _CHILD, mode, str(model), str(feeds), str(steady),
                                       str(weights), str(IDLE_S), PAGES, "copy" if COPY else "adopt", MAP_AHEAD], env=_ENV, check=True,
                                      capture_output=True, text=True).stdout)
            for _ in range(repeats)]
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


def _built(onnx_path: Path, feeds: Path, out: Path) -> float:
    """Peak RSS growth of building a zoo model from its ONNX file (`_BUILD_CHILD`), in bytes."""
    return json.loads(subprocess.run([sys.executable, "-c", _BUILD_CHILD, str(onnx_path), str(feeds), str(out)],
                                     env=_ENV, check=True, capture_output=True, text=True).stdout)["rss build"]


def build_rss(case: str, tmp: Path) -> dict[str, float]:
    """Peak RSS growth of building `case` in a fresh process, and its stored weight bytes;
    `vit-b-stack`: bench/models.py's ViT-B stack built with `wrc.Graph` (`run._BUILD_CHILD`)."""
    from test_zoo import load_case

    from wrc.bundle_format import read_bundle

    path = tmp / f"{case}.wrcb"
    if case == "vit-b-stack":
        r = json.loads(subprocess.run([sys.executable, "-c", run._BUILD_CHILD, str(Path(__file__).resolve().parent),
                                       "12", str(path)], env=_ENV, check=True, capture_output=True, text=True).stdout)
    else:
        model, feeds = load_case(case)
        onnx_path, feeds_path = tmp / f"{case}.onnx", tmp / f"{case}.npz"
        onnx_path.write_bytes(model.SerializeToString())
        np.savez(feeds_path, **feeds)
        del model
        r = {"rss build": _built(onnx_path, feeds_path, path),
             "weight bytes": sum(int(a.nbytes) for a in read_bundle(str(path)).weights.values())}
        onnx_path.unlink()
        feeds_path.unlink()
    path.unlink()
    return r


def _calls(f: Callable[[], object], budget_s: float = 0.05) -> int:
    """Calls per round so that a round of `f` takes about `budget_s`."""
    t = time.perf_counter()
    f()
    return int(min(20, max(1, budget_s / max(time.perf_counter() - t, 1e-6))))


def _in_process(case: str, model: Any, feeds: dict[str, np.ndarray], names: list[str], path: Path,
                onnx_path: Path, rounds: int, interleaved: Callable[..., dict[str, tuple[float, float]]]
                ) -> dict[str, Any]:
    """Load, infer and update timed side by side with onnxruntime / np.copyto in this process."""
    import onnxruntime as ort
    from test_zoo import assert_matches, new_weights, seed

    import wrc

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    box: dict[str, Any] = {}
    r: dict[str, Any] = {}
    r["load"] = interleaved({"wrc": lambda: box.__setitem__("b", wrc.load_bundle(path)),
                            "ort": lambda: box.__setitem__("s", ort.InferenceSession(
                                str(onnx_path), so, providers=["CPUExecutionProvider"]))}, rounds, 1)
    b, sess = box.pop("b"), box.pop("s")
    b.init()
    assert_matches(b.infer(feeds), sess.run(None, feeds), f"{case} (bench)")  # time only what agrees
    wrc_run, ort_run = (lambda: b.infer(feeds)), (lambda: sess.run(None, feeds))
    r["infer"] = interleaved({"wrc": wrc_run, "ort": ort_run}, rounds, min(_calls(wrc_run), _calls(ort_run)))
    new = new_weights(model, names, seed(case + "/update"))
    targets = {k: np.empty_like(v) for k, v in new.items()}
    for v in targets.values():
        v.fill(0)  # touched, as the bundle's buffers are after a few updates

    def copy() -> None:
        for k, v in new.items():
            np.copyto(targets[k], v)

    r["update"] = interleaved({"wrc": lambda: b.update(new), "np.copyto": copy}, rounds, _calls(copy))
    return r


def bench_model(case: str, tmp: Path, quick: bool, interleaved: Callable[..., dict[str, tuple[float, float]]],
                memory: bool = False) -> dict[str, Any]:
    """Every figure of one model (ms, bytes); `memory`: the fresh processes' only."""
    from test_zoo import load_case

    import wrc

    if case == "vit-b-stack":
        return vit_memory(tmp)
    from wrc.onnx import import_onnx, weight_names
    from wrc.workflow import compile_graph

    model, feeds = load_case(case)
    onnx_path, path, feeds_path = tmp / f"{case}.onnx", tmp / f"{case}.wrcb", tmp / f"{case}.npz"
    onnx_path.write_bytes(model.SerializeToString())
    np.savez(feeds_path, **feeds)
    t = time.perf_counter()
    graph = import_onnx(model, {k: v.shape for k, v in feeds.items()})
    names = weight_names(graph)
    with wrc.BuildSession():
        mb = compile_graph(graph, names)
        wrc.bundle_save_model(str(path), mb)
    r: dict[str, Any] = {"case": case, "compile s": time.perf_counter() - t,
                         "weight bytes": sum(int(a.nbytes) for a in mb.weights.values())}
    del graph, mb
    gc.collect()

    if not memory:
        r.update(_in_process(case, model, feeds, names, path, onnx_path, 3 if quick else 5, interleaved))
        gc.collect()
    steady = 5 if memory or r["infer"]["wrc"][0] > 200 else 20
    weights_path = tmp / f"{case}-weights.npz"  # the values loaded, for the children's updates
    b = wrc.load_bundle(path)
    b.init()
    np.savez(weights_path, **b.weights())
    del b
    r["wrc child"] = _child("wrc", path, feeds_path, steady, weights_path)
    r["ort child"] = _child("ort", onnx_path, feeds_path, steady)
    r["rss build"] = _built(onnx_path, feeds_path, tmp / f"{case}-built.wrcb")
    for p in (path, weights_path, tmp / f"{case}-built.wrcb"):
        p.unlink()
    return r


def vit_memory(tmp: Path) -> dict[str, Any]:
    """The fresh processes' figures of bench/models.py's ViT-B stack (12 layers, 340 MB, built
    with `wrc.Graph` as `--build` builds it: no ONNX model, so no onnxruntime figures)."""
    import wrc

    path, feeds_path, weights_path = tmp / "vit.wrcb", tmp / "vit-feeds.npz", tmp / "vit-weights.npz"
    r: dict[str, Any] = {"case": "vit-b-stack", "ort child": None}
    r.update(json.loads(subprocess.run([sys.executable, "-c", run._BUILD_CHILD, str(Path(__file__).resolve().parent),
                                        "12", str(path)], env=_ENV, check=True, capture_output=True, text=True).stdout))
    b = wrc.load_bundle(path)
    b.init()
    rng = np.random.default_rng(0)
    np.savez(feeds_path, **{n: rng.standard_normal(s).astype(d) for n, s, d in b.inputs("var_infer_graph")})
    np.savez(weights_path, **b.weights())
    del b
    r["wrc child"] = _child("wrc", path, feeds_path, 5, weights_path)
    for p in (path, feeds_path, weights_path):
        p.unlink()
    return r


def bench_zoo(quick: bool, record: Callable[..., None], interleaved: Callable[..., Any],
              cases: list[str] | None = None, memory: bool = False) -> list[dict[str, Any]]:
    """Every model's figures, each also `record`ed as bench/run.py's rows."""
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(TESTS))
    from test_zoo import CASES

    results = []
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        for case in cases or (QUICK if quick else CASES):
            r = bench_model(case, Path(tmp), quick, interleaved, memory)
            results.append(r)
            for what in ("load", "infer", "update") if "infer" in r else ():
                for who, (med, mn) in r[what].items():
                    record("zoo", case, f"{what}: {who}", med, mn)
            wb = r["weight bytes"]
            record("zoo", case, "peak RSS growth of building", r["rss build"] / 1e6, unit="MB",
                   ratio_to_weights=r["rss build"] / wb)
            for who in ("wrc", "ort"):
                for what, v in (r[f"{who} child"] or {}).items():
                    if what.startswith("rss"):
                        record("zoo", case, f"{who}, fresh process: peak RSS growth after {what[4:]}", v / 1e6,
                               unit="MB", ratio_to_weights=v / wb)
                    else:
                        record("zoo", case, f"{who}, fresh process: {what}", v)
            print(f"# zoo: {case} done", file=sys.stderr, flush=True)
    return results


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "-"


def _mb(v: float, weight_bytes: float) -> str:
    return f"{v / 1e6:.0f} MB ({v / weight_bytes:.2f}×)"


def markdown(results: list[dict[str, Any]]) -> str:
    """The tables of docs/performance.md ("Issue 12: the zoo")."""
    speed = ["| model | weights MB | load ms wrc / ort (×) | infer ms wrc / ort, median (×) | by min (×) "
             "| update ms wrc / np.copyto (×) |", "|---|---|---|---|---|---|"]
    first = ["| model | wrc load ms | init ms | first / steady infer (×) | first / second / steady update "
             "(first ×) | ort: session ms, first / steady run (×) |", "|---|---|---|---|---|---|"]
    rss = ["| model | weights MB | load + init + infer | target | after the first update | after more "
           "updates | target | ort session + run | building | target |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        wb, w, o = r["weight bytes"], r["wrc child"], r["ort child"]
        o = o or dict.fromkeys(("rss infer", "load", "first infer", "steady infer"), float("nan"))  # (vit-b-stack)
        mb = f"{wb / 1e6:.2f}" if wb < 1e7 else f"{wb / 1e6:.0f}"
        rss.append(f"| {r['case']} | {mb} | {_mb(w['rss infer'], wb)} | {(RSS_INFER * wb + RSS_SLACK) / 1e6:.0f} MB "
                   f"| {_mb(w['rss first update'], wb)} | {_mb(w['rss updates'], wb)} | "
                   f"{(RSS_UPDATE * wb + RSS_SLACK) / 1e6:.0f} MB | {_mb(o['rss infer'], wb)} | "
                   f"{_mb(r['rss build'], wb)} | {(RSS_BUILD * wb + RSS_BUILD_SLACK) / 1e6:.0f} MB |")
        first.append(f"| {r['case']} | {w['load']:.0f} | {w['init']:.1f} | {w['first infer']:.3g} / "
                     f"{w['steady infer']:.3g} ({_ratio(w['first infer'], w['steady infer'])}) | "
                     f"{w['first update']:.3g} / {w['second update']:.3g} / {w['steady update']:.3g} "
                     f"({_ratio(w['first update'], w['steady update'])}) | {o['load']:.0f}, "
                     f"{o['first infer']:.3g} / {o['steady infer']:.3g} ({_ratio(o['first infer'], o['steady infer'])}) |")
        if "infer" not in r:  # (--memory: the fresh processes' figures only)
            continue
        li, lo = r["load"]["wrc"][0], r["load"]["ort"][0]
        (im, imin), (om, omin) = r["infer"]["wrc"], r["infer"]["ort"]
        um, cm = r["update"]["wrc"][0], r["update"]["np.copyto"][0]
        speed.append(f"| {r['case']} | {mb} | {li:.1f} / {lo:.1f} ({_ratio(li, lo)}) | {im:.3g} / {om:.3g} "
                     f"({_ratio(im, om)}) | {_ratio(imin, omin)} | {um:.3g} / {cm:.3g} ({_ratio(um, cm)}) |")
    tables = (speed, first, rss) if len(speed) > 2 else (first, rss)
    return "\n".join(["\n".join(t) for t in tables]).replace("\n| model", "\n\n| model")


def build_table(cases: list[str]) -> str:
    """Peak RSS growth of building each model (`--build`), against the target."""
    sys.path.insert(0, str(TESTS))
    rows = ["| model | weights MB | building | target |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            r = build_rss(case, Path(tmp))
            wb = r["weight bytes"]
            rows.append(f"| {case} | {wb / 1e6:.1f} | {_mb(r['rss build'], wb)} | "
                        f"{(RSS_BUILD * wb + RSS_BUILD_SLACK) / 1e6:.0f} MB |")
            print(f"# zoo: {case} built", file=sys.stderr, flush=True)
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}; 3 rounds")
    ap.add_argument("--models", help="comma-separated cases (tests/test_zoo.py's names)")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--memory", action="store_true", help="only the fresh processes' figures and peak RSS")
    ap.add_argument("--build", help="only the peak RSS of building these models, comma-separated "
                    "(zoo cases, or vit-b-stack: bench/models.py's ViT-B stack)")
    ap.add_argument("--idle", type=float, default=0.0, help="seconds each child waits before its first "
                    "update (as a server's first update comes long after init)")
    ap.add_argument("--pages", choices=["now", "session6"], default="now", help="session6: the children map "
                    "update buffers as before session 7 (no madvise, 64 MiB ahead at most), for comparison")
    ap.add_argument("--adopt", action="store_true", help="the children update with copy=False")
    ap.add_argument("--map-ahead", choices=["target", "all"], default="target", help="the children's "
                    "init(map_ahead=...): what the memory target leaves, or the first update's whole buffers")
    args = ap.parse_args()
    global IDLE_S, PAGES, COPY, MAP_AHEAD
    IDLE_S, PAGES, COPY, MAP_AHEAD = args.idle, args.pages, not args.adopt, args.map_ahead
    if args.build:
        print(build_table(args.build.split(",")))
        return
    results = bench_zoo(args.quick, run.record, run.interleaved, args.models.split(",") if args.models else None,
                        args.memory)
    if args.json:
        args.json.write_text(json.dumps({"command": sys.argv, "blas": run.blas(), "results": results}, indent=1))
    print(markdown(results))


if __name__ == "__main__":
    main()
