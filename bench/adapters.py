"""Section `adapters` (issue 16): switching LoRA adapters through `var_delta_graph` vs shipping
full weights, one thread.

For the encoder block (`encoder_ln_gelu`, d=256: 4 projections 256², FFN 256×1024 and back)
and a ViT-B/16-sized stack (`vit_stack`: 12 layers of 768² ×4 and 768×3072 ×2; 2 layers with
--quick), compiled with a rank-r delta (`lora:r`, r = 8, 16, 64) on every projection, each
call switches between two adapters X and Y covering every projection:

* `apply_adapter`: the factors A [r, in], B [out, r] and a scale per weight;
* `update`: the full adapted weights (W0 + s·B@A computed once, before timing);
* `numpy + update`: what a caller does without deltas: W0 + s·(B @ A)ᵀ in NumPy (written
  carefully: Aᵀ @ Bᵀ, then in place), then `update`.

The bytes each call passes are reported (`note`): ∝ r for adapters, the weights' size for
updates; `ratio_to_update` is each median over `update`'s. Before timing, the adapter's weights are checked against NumPy's formula.
"""

from __future__ import annotations

from collections.abc import Callable

import models
import numpy as np
from threadpoolctl import threadpool_limits

import wrc

Record = Callable[..., None]
Interleaved = Callable[[dict[str, Callable[[], object]], int, int], dict[str, tuple[float, float]]]
RANKS = (8, 16, 64)


def _factors(weights: dict[str, np.ndarray], r: int, seed: int) -> dict[str, dict[str, object]]:
    """A rank-r adapter in PEFT's layout; the weights are stored [in, out] (x @ W)."""
    rng = np.random.default_rng(seed)
    out = {}
    for n, w in weights.items():
        d_in, d_out = w.shape
        out[n] = {"A": (rng.standard_normal((r, d_in)) * d_in ** -0.5).astype(np.float32),
                  "B": (rng.standard_normal((d_out, r)) * 0.01).astype(np.float32), "scale": 16.0 / r}
    return out


def _by_numpy(base: dict[str, np.ndarray], factors: dict[str, dict[str, object]]) -> dict[str, np.ndarray]:
    """W0 + s·(B @ A)ᵀ as a careful caller writes it: one GEMM into [in, out] order
    (Aᵀ @ Bᵀ, no strided pass) and two in-place passes."""
    out = {}
    for n, f in factors.items():
        d = f["A"].T @ f["B"].T
        d *= np.float32(f["scale"])
        d += base[n]
        out[n] = d
    return out


def _alternate(fn: Callable[[object], object], a: object, b: object) -> Callable[[], object]:
    """A call that switches between `a` and `b` (each call is a real change)."""
    state = [False]

    def call() -> object:
        state[0] = not state[0]
        return fn(a if state[0] else b)

    return call


def _time(graph: object, weights: dict[str, np.ndarray], names: list[str], r: int, rounds: int, calls: int,
          interleaved: Interleaved) -> tuple[dict[str, tuple[float, float]], dict[str, int]]:
    """{contender: (median, min) ms} and the bytes each passes per call, for rank `r`."""
    m_weights = {n: weights[n] for n in names}
    model = wrc.compile_graph(graph, list(weights), deltas={n: f"lora:{r}" for n in names})
    b = wrc.load_bundle(model)
    b.init()
    x, y = _factors(m_weights, r, 1), _factors(m_weights, r, 2)
    full = []
    for f in (x, y):  # the adapter's weights are NumPy's formula's (and what update gets)
        b.apply_adapter(f)
        got = b.weights()
        want = {n: m_weights[n] + np.float32(f[n]["scale"]) * (f[n]["B"] @ f[n]["A"]).T for n in names}
        for n in names:
            np.testing.assert_allclose(got[n], want[n], rtol=1e-5, atol=1e-5)
        full.append({n: got[n].copy() for n in names})
    b.remove_adapter()
    res = interleaved({
        "apply_adapter": _alternate(b.apply_adapter, x, y),
        "update": _alternate(b.update, *full),
        "numpy + update": _alternate(lambda f: b.update(_by_numpy(m_weights, f)), x, y),
    }, rounds, calls)
    factor_bytes = sum(f["A"].nbytes + f["B"].nbytes + 4 for f in x.values())
    weight_bytes = sum(w.nbytes for w in m_weights.values())
    return res, {"apply_adapter": factor_bytes, "update": weight_bytes, "numpy + update": factor_bytes}


def bench(quick: bool, record: Record, interleaved: Interleaved) -> None:
    rounds = 3 if quick else 5
    layers = 2 if quick else 12
    cases = [("encoder", models.encoder_ln_gelu(), 5), (f"vit-b {layers}L", models.vit_stack(layers=layers), 1)]
    with threadpool_limits(1):
        for case, m, calls in cases:
            graph = m.build(m.weights)
            names = [n for n, w in m.weights.items() if w.ndim == 2]  # every projection
            for r in RANKS:
                res, passed = _time(graph, m.weights, names, r, rounds, calls, interleaved)
                for what, (med, mn) in res.items():
                    note = f"{passed[what] / 1e6:.2f} MB passed" + (" (to NumPy)" if what == "numpy + update" else "")
                    record("adapters", f"{case} r{r}", f"{what} ({len(names)} weights)", med, mn,
                           note=f"{note}; {med / res['update'][0]:.2f}x update", bytes=passed[what],
                           ratio_to_update=med / res["update"][0])
