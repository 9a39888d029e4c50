"""Adapters: the delta graph's contract and the state a bundle keeps for it (issue 16;
docs/api.md "Adapters").

A bundle built with deltas (`ge-add-delta-graph`) has `var_delta_graph`, which sets each
adapted weight to `base + delta` from its inputs alone. The runtime keeps the **base** value
of every weight the live adapter covers (the value the last init / update set) beside the
published variables, so an adapter is always applied to the base, never accumulated: adapter
X, then Y, then X again gives X's weights bit for bit, and removing the adapter publishes the
base arrays themselves. The state is part of each published version (`Snapshot.adapter`), so
stage / commit / rollback switch adapters with the weights.

This module holds what needs no bundle: reading the delta graph's inputs
(`delta_signature`), checking an adapter's arrays (`check_adapter`) and reading a PEFT
safetensors file (`peft_adapter`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wrc.abi import DELTA_GRAPH, DELTA_INPUTS, FunctionPlan, Input, Plan, WeightSignature
from wrc.errors import BundleFormatError, InputError, listed, unknown_names

FACTOR_KEYS = {"dense": ("delta",), "lora": ("A", "B", "scale")}
"""The keys of one weight's entry in `Bundle.apply_adapter`, per kind of delta (`scale` may
be left out: 1)."""
_SUFFIX = {"delta": "_delta", "A": "_lora_a", "B": "_lora_b", "scale": "_lora_scale"}


@dataclass(frozen=True)
class DeltaWeight:
    """One adapted weight: its variable, kind and the delta graph's inputs for it."""

    name: str  # the weight name (`update`'s key)
    variable: str
    kind: str  # "dense" or "lora"
    inputs: Mapping[str, Input]  # "base" and the FACTOR_KEYS of its kind → the graph's input

    @property
    def rank(self) -> int:
        return self.inputs["A"].shape[0] if self.kind == "lora" else 0

    @property
    def kind_text(self) -> str:
        """`dense` or `lora:R`, as `ge-add-delta-graph` spells it."""
        return f"lora:{self.rank}" if self.kind == "lora" else self.kind


def delta_signature(info: FunctionPlan, weights: WeightSignature) -> dict[str, DeltaWeight]:
    """Weight name → its `DeltaWeight`, from the delta graph's inputs and writes; a graph that
    does not follow the contract (docs/passes.md `ge-add-delta-graph`) is a `BundleFormatError`."""
    by_var = {w.variable: w for w in weights}
    inputs = {x.name: x for x in info.inputs}
    out: dict[str, DeltaWeight] = {}
    used = 0
    for write in info.writes:
        w = by_var.get(write.var)
        kind = next((k for k, suffixes in DELTA_INPUTS.items()
                     if all(write.var + s in inputs for s in suffixes)), None)
        if w is None or kind is None or not write.full or write.guards != () or w.name in out:
            raise BundleFormatError(f"bundle: graph {DELTA_GRAPH!r}: its write of @{write.var} is not "
                                    "one whole write of a weight from that weight's inputs")
        keys = ("base", *FACTOR_KEYS[kind])
        mine = {k: inputs[write.var + s] for k, s in zip(keys, DELTA_INPUTS[kind], strict=True)}
        if mine["base"].shape != w.shape or mine["base"].dtype != w.dtype or any(x.optional for x in mine.values()):
            raise BundleFormatError(f"bundle: graph {DELTA_GRAPH!r}: input {mine['base'].name!r} is not "
                                    f"a required {w.dtype}{list(w.shape)} like weight {w.name!r}")
        out[w.name] = DeltaWeight(w.name, write.var, kind, mine)
        used += len(mine)
    if used != len(info.inputs) or info.reads:
        raise BundleFormatError(f"bundle: graph {DELTA_GRAPH!r} has inputs of no adapted weight, or "
                                "reads variables (a delta starts from the base it is given)")
    return out


def adapted_weights(p: Plan) -> dict[str, str]:
    """Weight name → `dense` / `lora:R` for the weights a model's delta graph adapts."""
    info = p.graphs.get(DELTA_GRAPH)
    return {n: d.kind_text for n, d in delta_signature(info, p.weights).items()} if info is not None else {}


@dataclass(frozen=True)
class AdapterState:
    """The live adapter of a version: its name, its checked arrays by weight (`base` left
    out) and the base value of every weight it covers, by variable."""

    name: str
    factors: Mapping[str, Mapping[str, Any]]
    bases: Mapping[str, Any]


def check_adapter(factors: Any, deltas: Mapping[str, DeltaWeight],
                  as_array: Callable[[Any, str], Any]) -> dict[str, dict[str, Any]]:
    """`factors` ({weight: {"A", "B"[, "scale"]} or {"delta"}}) checked against the delta
    graph: every problem (unknown weight, missing or unknown key, not an array, dtype, shape)
    in one `InputError`; a scale given as a number becomes a 0-d array of the weight's dtype
    (a 0-d array must have it)."""
    if not isinstance(factors, Mapping):
        raise InputError(f"apply_adapter() takes a mapping from weight name to its factors, got "
                         f"{type(factors).__name__}")
    problems: list[str] = []
    unknown: list[Any] = []
    out: dict[str, dict[str, Any]] = {}
    for name, entry in factors.items():
        d = deltas.get(name) if isinstance(name, str) else None
        if d is None:
            unknown.append(name)
            continue
        keys = FACTOR_KEYS[d.kind]
        if not isinstance(entry, Mapping) or not set(entry) <= set(keys) or not set(keys) - {"scale"} <= set(entry):
            got = sorted(map(str, entry)) if isinstance(entry, Mapping) else type(entry).__name__
            problems.append(f"weight {name!r} ({d.kind}{f' rank {d.rank}' if d.rank else ''}) takes "
                            f"{{{', '.join(map(repr, keys))}}}{' (scale optional)' if 'scale' in keys else ''}, got {got}")
            continue
        checked: dict[str, Any] = {}
        for key in keys:
            x = d.inputs[key]
            value = entry.get(key, 1.0)
            if key == "scale" and isinstance(value, int | float | np.integer | np.floating) \
                    and not isinstance(value, bool):  # a number (PEFT's scaling is a float), not an array
                value = np.asarray(value, x.dtype)
            what = f"weight {name!r}: {key}"
            try:
                arr = as_array(value, what)
            except InputError as e:
                problems.append(str(e))
                continue
            problem = x.problem(arr, what)
            if problem is not None and d.kind == "lora" and key in ("A", "B"):
                problem += f" (rank {d.rank}: A is [rank, in], B is [out, rank])"
            if problem:
                problems.append(problem)
            checked[key] = arr
        out[name] = checked
    if unknown:  # (first: listed together, as `WeightSignature.check` lists unknown weights)
        problems.insert(0, unknown_names("adapted weight", unknown, deltas))
    if problems:
        raise InputError("apply_adapter() changed nothing: " + "; ".join(problems))
    return out


LORA_A, LORA_B = ".lora_A.weight", ".lora_B.weight"
"""PEFT's key suffixes in `adapter_model.safetensors`: `<module>.lora_A.weight` [r, in] and
`<module>.lora_B.weight` [out, r]."""
PEFT_PREFIX = "base_model.model."
"""The prefix PEFT puts before the base model's module names."""


def peft_adapter(path: str | os.PathLike[str], deltas: Mapping[str, DeltaWeight],
                 weights: Mapping[str, str] | None = None, scale: float | None = None,
                 alpha: float | None = None) -> dict[str, dict[str, Any]]:
    """The factors of a PEFT LoRA safetensors file, by wrc weight name (unchecked: `check_adapter`).

    Module `m` (keys `m.lora_A.weight`, `m.lora_B.weight`) is the weight `weights[m]`, else the
    adapted weight named `m.weight` or `m` (with or without PEFT's `base_model.model.`). The
    scale is `scale`, else `alpha / r`, else `lora_alpha / r` (or `/ sqrt(r)` with
    `use_rslora`) of the `adapter_config.json` beside the file.
    """
    from wrc.weight_files import read_weights

    arrays = read_weights(path, "safetensors")
    modules = sorted({k[: -len(s)] for k in arrays for s in (LORA_A, LORA_B) if k.endswith(s)})
    other = [k for k in arrays if not k.endswith((LORA_A, LORA_B))]
    problems = [f"{k!r} is not a LoRA factor (<module>{LORA_A} / <module>{LORA_B})" for k in other[:5]]
    config = _peft_config(path) if scale is None and alpha is None else None
    out: dict[str, dict[str, Any]] = {}
    for m in modules:
        a, b = arrays.get(m + LORA_A), arrays.get(m + LORA_B)
        if a is None or b is None:
            problems.append(f"module {m!r} has {'lora_A' if b is None else 'lora_B'} but not "
                            f"{'lora_B' if b is None else 'lora_A'}")
            continue
        name = _weight_for(m, deltas, weights)
        if name is None:
            problems.append(f"module {m!r} is no adapted weight (adapted: {listed(deltas)}); "
                            "map it with weights={module: weight}")
            continue
        r = a.shape[0] if a.ndim else 0
        if scale is not None:
            s = scale
        elif alpha is not None:
            s = alpha / r if r else 0.0
        elif config is not None:
            s = config[0] / (r ** 0.5 if config[1] else r) if r else 0.0
        else:
            raise InputError(f"{path}: the LoRA scale is unknown: give scale= or alpha=, or put PEFT's "
                             "adapter_config.json beside the file")
        out[name] = {"A": a, "B": b, "scale": float(s)}
    if problems:
        raise InputError(f"{path}: " + "; ".join(problems))
    if not out:
        raise InputError(f"{path}: no LoRA factors (<module>{LORA_A} / <module>{LORA_B}) in the file")
    return out


def _weight_for(module: str, deltas: Mapping[str, DeltaWeight], weights: Mapping[str, str] | None) -> str | None:
    if weights is not None and module in weights:
        return weights[module]
    for m in (module, module.removeprefix(PEFT_PREFIX)):
        for name in (m + ".weight", m):
            if name in deltas:
                return name
    return None


def _peft_config(path: str | os.PathLike[str]) -> tuple[float, bool] | None:
    """(lora_alpha, use_rslora) of the `adapter_config.json` beside `path`, if there is one."""
    config = Path(path).parent / "adapter_config.json"
    if not config.is_file():
        return None
    try:
        doc = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{config}: cannot read it: {e}") from None
    alpha = doc.get("lora_alpha") if isinstance(doc, dict) else None
    if not isinstance(alpha, int | float) or isinstance(alpha, bool):
        raise InputError(f"{config}: no numeric lora_alpha")
    if doc.get("alpha_pattern") or doc.get("rank_pattern"):
        raise InputError(f"{config}: per-module alpha_pattern / rank_pattern are not supported; give scale=")
    return float(alpha), bool(doc.get("use_rslora"))
