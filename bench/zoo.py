"""The model zoo (docs/zoo.md) against onnxruntime: load, infer, update, first calls, memory.

    .venv/bin/python bench/zoo.py [--quick] [--models resnet18-torchscript,light_resnet50]
    .venv/bin/python bench/run.py --only zoo [--quick]       # the same rows in run.py's table

The models are tests/zoo/*.onnx and onnx's `light` CNNs, loaded as tests/test_zoo.py loads
them (seeded inputs; the light CNNs' weights drawn by role). Per model, one BLAS thread and
`intra_op_num_threads=1`:

* in this process, interleaved: `load_bundle(path)` vs a new onnxruntime session of the
  same model file; steady `infer` vs `session.run`; a full `update` (every weight) vs
  `np.copyto` of the same bytes into touched arrays;
* in fresh subprocesses (a first call is first only there; median of 3 processes): load, `init()`, first and
  steady infer, first, second and steady update (of the current values, so the child holds
  no second copy of the weights), peak RSS growth (VmHWM over the RSS before loading) after
  each step, × the bundle's stored weight bytes; and the same for onnxruntime's session.
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

# Issue 12's targets: peak RSS after load + init + infer, after updates (× weights + bytes).
RSS_INFER, RSS_UPDATE, RSS_SLACK = 1.3, 2.3, 100e6

_CHILD = child.PRELUDE + """
import json, sys, time
import numpy as np
mode, model, feeds_path, steady = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "wrc":
    import wrc
else:
    import onnxruntime as ort
feeds = dict(np.load(feeds_path))
out, box = {}, {}
base = status("VmRSS")
reset_peak()
if mode == "wrc":
    out["load"] = ms(lambda: box.setdefault("b", wrc.load_bundle(model)))
    b = box["b"]
    out["init"] = ms(b.init)
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
    def update():  # the current values, as views: the caller holds no copy of the weights
        b.update(b.weights())
    out["first update"] = ms(update)
    out["rss first update"] = status("VmHWM") - base
    times = [ms(update) for _ in range(max(4, steady))]
    out["second update"] = times[0]
    out["steady update"] = float(np.median(times[1:]))
    out["rss updates"] = status("VmHWM") - base
print(json.dumps(out))
"""


def _child(mode: str, model: Path, feeds: Path, steady: int, repeats: int = 3) -> dict[str, float]:
    """The median of each figure over `repeats` fresh processes (one sample of a first call
    is often a scheduling hiccup on a loaded machine)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    runs = [json.loads(subprocess.run([sys.executable, "-c", _CHILD, mode, str(model), str(feeds), str(steady)],
                                      env=env, check=True, capture_output=True, text=True).stdout)
            for _ in range(repeats)]
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


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


def bench_model(case: str, tmp: Path, quick: bool, interleaved: Callable[..., dict[str, tuple[float, float]]]
                ) -> dict[str, Any]:
    """Every figure of one model (ms, bytes)."""
    from test_zoo import load_case

    import wrc
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

    r.update(_in_process(case, model, feeds, names, path, onnx_path, 3 if quick else 5, interleaved))
    gc.collect()
    steady = 5 if r["infer"]["wrc"][0] > 200 else 20
    r["wrc child"] = _child("wrc", path, feeds_path, steady)
    r["ort child"] = _child("ort", onnx_path, feeds_path, steady)
    path.unlink()
    return r


def bench_zoo(quick: bool, record: Callable[..., None], interleaved: Callable[..., Any],
              cases: list[str] | None = None) -> list[dict[str, Any]]:
    """Every model's figures, each also `record`ed as bench/run.py's rows."""
    from threadpoolctl import threadpool_limits

    sys.path.insert(0, str(TESTS))
    from test_zoo import CASES

    results = []
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        for case in cases or (QUICK if quick else CASES):
            r = bench_model(case, Path(tmp), quick, interleaved)
            results.append(r)
            for what in ("load", "infer", "update"):
                for who, (med, mn) in r[what].items():
                    record("zoo", case, f"{what}: {who}", med, mn)
            wb = r["weight bytes"]
            for who in ("wrc", "ort"):
                for what, v in r[f"{who} child"].items():
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
           "updates | target | ort session + run |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        wb, w, o = r["weight bytes"], r["wrc child"], r["ort child"]
        li, lo = r["load"]["wrc"][0], r["load"]["ort"][0]
        (im, imin), (om, omin) = r["infer"]["wrc"], r["infer"]["ort"]
        um, cm = r["update"]["wrc"][0], r["update"]["np.copyto"][0]
        mb = f"{wb / 1e6:.2f}" if wb < 1e7 else f"{wb / 1e6:.0f}"
        speed.append(f"| {r['case']} | {mb} | {li:.1f} / {lo:.1f} ({_ratio(li, lo)}) | {im:.3g} / {om:.3g} "
                     f"({_ratio(im, om)}) | {_ratio(imin, omin)} | {um:.3g} / {cm:.3g} ({_ratio(um, cm)}) |")
        first.append(f"| {r['case']} | {w['load']:.0f} | {w['init']:.1f} | {w['first infer']:.3g} / "
                     f"{w['steady infer']:.3g} ({_ratio(w['first infer'], w['steady infer'])}) | "
                     f"{w['first update']:.3g} / {w['second update']:.3g} / {w['steady update']:.3g} "
                     f"({_ratio(w['first update'], w['steady update'])}) | {o['load']:.0f}, "
                     f"{o['first infer']:.3g} / {o['steady infer']:.3g} ({_ratio(o['first infer'], o['steady infer'])}) |")

        rss.append(f"| {r['case']} | {mb} | {_mb(w['rss infer'], wb)} | {(RSS_INFER * wb + RSS_SLACK) / 1e6:.0f} MB "
                   f"| {_mb(w['rss first update'], wb)} | {_mb(w['rss updates'], wb)} | "
                   f"{(RSS_UPDATE * wb + RSS_SLACK) / 1e6:.0f} MB | {_mb(o['rss infer'], wb)} |")
    return "\n".join(["\n".join(t) for t in (speed, first, rss)]).replace("\n| model", "\n\n| model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}; 3 rounds")
    ap.add_argument("--models", help="comma-separated cases (tests/test_zoo.py's names)")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    results = bench_zoo(args.quick, run.record, run.interleaved, args.models.split(",") if args.models else None)
    if args.json:
        args.json.write_text(json.dumps({"command": sys.argv, "blas": run.blas(), "results": results}, indent=1))
    print(markdown(results))


if __name__ == "__main__":
    main()
