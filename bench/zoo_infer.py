"""The zoo's inference (tests/zoo exports and onnx's `light` CNNs, as tests/test_zoo.py loads
them) against onnxruntime, one thread each, interleaved; and where wrc's time goes.

    .venv/bin/python bench/zoo_infer.py [--quick] [--models cnn|transformer|NAME,...] [--profile]

Wall time (median, min) and the calling thread's CPU time of the same calls (`times`): on a
shared machine the second is the steadier figure.

As a section of bench/run.py: `--only zoo-infer` (every model). `--profile` adds, per model,
wrc's time by kind of generated statement (`profile`): `matmul` is BLAS, the rest is
what wrc's kernels cost around it.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from threadpoolctl import threadpool_limits

TESTS = Path(__file__).resolve().parent.parent / "tests"

CNN = ["resnet18", "mobilenet_v3", "efficientnet", "squeezenet", "convnext"]
"""The convolutional exports of tests/zoo (both exporters each); with the `light` models."""


def cases(which: str) -> list[str]:
    """The zoo cases named by `which`: cnn, transformer, all, or a comma-separated list."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from test_zoo import CASES, LIGHT_CASES

    cnn = [c for c in CASES if c.rsplit("-", 1)[0] in CNN] + LIGHT_CASES
    if which == "cnn":
        return cnn
    if which == "transformer":
        return [c for c in CASES if c not in cnn]
    if which == "all":
        return list(CASES)
    return which.split(",")


def build(case: str) -> tuple[Any, ort.InferenceSession, dict[str, np.ndarray]]:
    """wrc's bundle (every weight refreshable, initialised), a one-thread onnxruntime session,
    and the inputs."""
    from test_zoo import load_case

    import wrc
    from wrc.onnx import import_onnx, weight_names
    from wrc.workflow import compile_graph

    model, feeds = load_case(case)
    graph = import_onnx(model, {k: v.shape for k, v in feeds.items()})
    bundle = wrc.load_bundle(compile_graph(graph, weight_names(graph)))
    bundle.init()
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return bundle, sess, feeds


def kind(line: str) -> str:
    """What one statement of generated code does, for `profile`."""
    if re.match(r"k\d+\(", line):  # a constant called: a compiled kernel (wrc.backends.native)
        return "native"
    calls = re.findall(r"np\.(\w+)\(|\.(fill|reshape)\(|(_nd)\(", line)
    names = [next(n for n in c if n) for c in calls]
    if not names or names[0] in ("reshape", "_nd", "asarray"):
        return "python (views, checks)"
    if names[0] == "ascontiguousarray":
        return "im2col copy"
    return names[0]


IM2COL = re.compile(r"np\.matmul\((\w+), (np\.ascontiguousarray\(\w+\)\.reshape\(\w+\)), out=(\w+)\)")
"""A GEMM of an im2col copy (`emit.py`, Gemm): profiled as two statements, the copy then
BLAS."""


def profile(bundle: Any, feeds: dict[str, np.ndarray], calls: int) -> dict[str, float]:
    """ms per `infer` by kind of statement of the generated code (`kind`), largest first:
    each top-level statement of `var_infer_graph` timed on its own (this thread's CPU time)
    over `calls` calls, its minimum kept (the timer's own ~0.2 µs counted in)."""
    compiled = bundle._compiled
    made = compiled._fns["var_infer_graph"]
    lines = compiled.source("var_infer_graph").splitlines()
    keys, out, in_graph = [], [], False
    for line in lines:
        body = line.lstrip()
        ind = line[:len(line) - len(body)]
        in_graph = in_graph or line.startswith("def graph(")  # (not bind's and scratch's, made once)
        if (in_graph and len(ind) == 4 and not body.endswith(":")
                and not body.startswith(("return", "_bad_arg")) and not body.endswith(("= W", "= S"))):
            m = IM2COL.fullmatch(body)
            for stmt in ([f"_col = {m[2]}", f"np.matmul({m[1]}, _col, out={m[3]})"] if m else [body]):
                out += [f"{ind}_t = _pc()", ind + stmt, f"{ind}_T[{len(keys)}] = min(_T[{len(keys)}], _pc() - _t)"]
                keys.append(kind(stmt))
        else:
            out.append(line)
    ns = dict(made.graph.__globals__, _pc=time.thread_time, _T=[float("inf")] * len(keys))
    exec(compile("\n".join(out), "<profiled>", "exec"), ns)
    compiled._fns["var_infer_graph"] = made._replace(graph=ns["graph"])
    try:
        with threadpool_limits(1):
            bundle.infer(feeds)
            ns["_T"][:] = [float("inf")] * len(keys)
            for _ in range(calls):
                bundle.infer(feeds)
    finally:
        compiled._fns["var_infer_graph"] = made
    by: dict[str, float] = {}
    for k, t in zip(keys, ns["_T"], strict=True):
        by[k] = by.get(k, 0.0) + 1e3 * t
    return dict(sorted(by.items(), key=lambda kv: -kv[1]))


def times(fns: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, dict[str, tuple[float, float]]]:
    """{name: {"wall" | "cpu" | "off": (median ms, min ms)}}, interleaved as `run.interleaved`
    does, wall time and the calling thread's CPU time (`time.thread_time`) of the *same*
    calls: onnxruntime with one intra-op thread runs on the calling thread, so the two differ
    only by the time the thread was off the CPU ("off": wall - CPU per call; on a machine
    shared with other jobs, the time slices they take). A median of wall times grows faster
    than the calls' length there: a longer call is more likely to span a preemption (a 1.7x
    longer call may have a median that includes one where the shorter call's does not), so
    the wall ratio of two unequal calls reads above their CPU ratio; the CPU figure is the
    steadier one."""
    samples: dict[str, list[tuple[float, float]]] = {n: [] for n in fns}
    names = list(fns)
    for f in fns.values():  # warm-up
        f()
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            for _ in range(calls):
                w, t = time.perf_counter(), time.thread_time()
                fns[n]()
                t, w = time.thread_time() - t, time.perf_counter() - w
                samples[n].append((w, t))
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for n, s in samples.items():
        a = 1e3 * np.array(s)
        cols = {"wall": a[:, 0], "cpu": a[:, 1], "off": a[:, 0] - a[:, 1]}
        out[n] = {k: (float(np.median(v)), float(v.min())) for k, v in cols.items()}
    return out


def bench(quick: bool, record: Callable[..., None], which: str = "all", prof: bool = False) -> None:
    """Record wrc vs onnxruntime (median, min ms) and their ratio for each case of `which`."""
    rounds, calls = (3, 3) if quick else (5, 10)
    for case in cases(which):
        bundle, sess, feeds = build(case)
        ref, got = sess.run(None, feeds)[0], bundle.infer(feeds)[0]
        err = float(np.abs(got - ref).max() / (np.abs(ref).max() + 1e-30))
        if not err <= 1e-4:  # (NaN too)
            raise SystemExit(f"{case}: wrc differs from onnxruntime (relative error {err:.2e})")
        fns = {"wrc": lambda b=bundle, f=feeds: b.infer(f), "ort": lambda s=sess, f=feeds: s.run(None, f)}
        with threadpool_limits(1):
            got = times(fns, rounds, calls)
        res, cpu = ({n: got[n][k] for n in fns} for k in ("wall", "cpu"))
        for what in fns:
            record("zoo-infer", case, what, *got[what]["wall"])
            record("zoo-infer", case, f"{what} (CPU time)", *got[what]["cpu"])
            record("zoo-infer", case, f"{what} off the CPU (wall - CPU)", *got[what]["off"])
        (wm, wn), (om, on) = res["wrc"], res["ort"]
        record("zoo-infer", case, "ratio wrc/ort", wm / om, wn / on, unit="x")
        (wm, wn), (om, on) = cpu["wrc"], cpu["ort"]
        record("zoo-infer", case, "ratio wrc/ort (CPU time)", wm / om, wn / on, unit="x")
        if prof:
            top = profile(bundle, feeds, calls)
            print(f"# {case}: sum {sum(top.values()):.2f} ms: " + ", ".join(f"{k} {v:.2f}" for k, v in list(top.items())[:8]), flush=True)
            for k, v in top.items():
                record("zoo-infer", case, f"profile: {k}", v)


def main() -> None:
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--models", default="all", help="cnn, transformer, all, or case names, comma-separated")
    ap.add_argument("--profile", action="store_true", help="also print wrc's time by NumPy function")
    args = ap.parse_args()
    bench(args.quick, run.record, args.models, args.profile)
    print(run.table())
    for what in ("ratio wrc/ort", "ratio wrc/ort (CPU time)"):
        ratios = [r["median"] for r in run.ROWS if r["what"] == what]
        if ratios:
            print(f"# {what}: median {float(np.median(ratios)):.2f}x, max {max(ratios):.2f}x over {len(ratios)} models")


if __name__ == "__main__":
    main()
