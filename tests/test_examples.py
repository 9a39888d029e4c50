"""Every script in examples/ runs (as a user would run it: a subprocess) and says OK."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

CASES = {
    "mlp_builder.py": ["matches NumPy with the new weights"],
    "finetune_loop.py": ["hour 3: train loss", "every answer came from exactly one version"],
    "onnx_cnn.py": ["infer matches onnx.reference", "after update_from_file(retrained.safetensors)"],
    "fleet_training.py": ["published version 1", "rolled back to version 5",
                          "every response came from exactly the version it names"],
    "adapter_swap.py": ["before the base weights: RuntimeStateError", "var_delta_graph",
                        "9 adapter switches", "each from one adapter",
                        "back to an adapter and remove_adapter() are bit for bit"],
}


def test_every_example_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(script: str, tmp_path) -> None:
    args = [sys.executable, str(EXAMPLES / script)]
    if script in ("mlp_builder.py", "onnx_cnn.py"):
        args += ["--out", str(tmp_path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert lines and lines[-1] == "OK", done.stdout
    for expected in CASES[script]:
        assert expected in done.stdout, f"{script}: {expected!r} not in its output:\n{done.stdout}"
