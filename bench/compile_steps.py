"""`bench/run.py --only steps`: CPU seconds of each step from graph to loaded bundle, each
case in a fresh process (docs/performance.md, "Issue 12: compile time of large graphs").

CPU time (`time.process_time`), not wall time: on a shared machine the wall time of a
multi-second compile mostly measures the other processes. Run as a script, it times one case
and prints its steps as JSON: `python bench/compile_steps.py chain2000` or a `tests/test_zoo.py`
case name (`light_densenet121`, `resnet18-dynamo`, ...). "load" is a cold load (`WRC_CACHE_DIR=off`)
and "total" ends with it; then the first load with an empty load cache (which writes its entry)
and a load from that cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CASES = ("chain2000", "light_densenet121", "light_resnet50", "bert-sdpa_mask-dynamo", "resnet18-dynamo")
ROOT = Path(__file__).resolve().parent.parent


def steps(case: str) -> dict[str, float]:
    sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]
    import models

    import wrc
    from wrc import bundle_format, load_cache
    from wrc.onnx import import_onnx, weight_names
    from wrc.workflow import compile_graph

    out: dict[str, float] = {}

    def step(name: str, f: Callable[[], Any]) -> Any:
        t = time.process_time()
        result = f()
        out[name] = time.process_time() - t
        return result

    if case.startswith("chain"):
        g = step("graph", lambda: models.chain(int(case[5:])))
        with wrc.BuildSession():
            gs = step("convert", lambda: wrc.convert_to_weight_refreshable_graphs(g, list(g.constants)))
            mb = step("build", lambda: wrc.bundle_build_model([gs.infer_graph, gs.var_init_graph, gs.var_update_graph]))
    else:
        import test_zoo

        model, feeds = test_zoo.load_case(case)
        g = step("graph", lambda: import_onnx(model, {k: v.shape for k, v in feeds.items()}))
        mb = step("convert + build", lambda: compile_graph(g, weight_names(g)))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.wrcb")
        step("save", lambda: bundle_format.write_bundle(path, mb))
        os.environ[load_cache.ENV] = "off"  # a cold load: decode, verify, analyse, generate code
        step("load", lambda: wrc.load_bundle(path))
        out["total"] = sum(out.values())
        os.environ[load_cache.ENV] = os.path.join(tmp, "cache")  # an empty load cache
        step("first load (fills the cache)", lambda: wrc.load_bundle(path))
        step("load from the cache", lambda: wrc.load_bundle(path))
    out["level-3 ops"] = sum(1 for _ in mb.module.walk())
    return out


def bench_steps(quick: bool, record: Callable[..., None]) -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    for case in CASES[-2:] if quick else CASES:
        runs = [json.loads(subprocess.run([sys.executable, __file__, case], env=env, check=True,
                                          capture_output=True, text=True).stdout) for _ in range(1 if quick else 2)]
        ops = runs[0].pop("level-3 ops")
        for what in runs[0]:
            ts = sorted(r[what] for r in runs)
            record("steps", case, f"{what} (CPU s)", ts[len(ts) // 2], ts[0], unit="s", ops=ops)


if __name__ == "__main__":
    print(json.dumps(steps(sys.argv[1])))
