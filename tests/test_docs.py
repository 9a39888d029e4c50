"""The docs agree with the tools: `wrc-opt --help`'s passes and docs/passes.md, the CLI and README."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from xdsl.transforms import get_all_passes

from wrc import cli

ROOT = Path(__file__).resolve().parents[1]


def help_passes() -> list[str]:
    """The pass names `wrc-opt --help` lists (unwrapped: a very wide terminal)."""
    env = {**os.environ, "COLUMNS": "100000"}
    done = subprocess.run([sys.executable, "-m", "wrc.tools.wrc_opt", "--help"], capture_output=True,
                          text=True, env=env, timeout=120, check=True)
    m = re.search(r"Available passes are: (\S+)", done.stdout)
    assert m, f"no pass list in wrc-opt --help:\n{done.stdout[:2000]}"
    return m.group(1).split(",")


def test_wrc_opt_help_and_passes_md_agree() -> None:
    listed = help_passes()
    wrc_passes = {p for p in listed if p not in get_all_passes()}
    documented = set(re.findall(r"^## `([a-z0-9-]+)", (ROOT / "docs/passes.md").read_text(), re.M))
    assert wrc_passes, "wrc-opt --help lists none of wrc's passes"
    assert wrc_passes - documented == set(), "passes in wrc-opt --help but not in docs/passes.md"
    assert documented - wrc_passes == set(), "passes in docs/passes.md but not in wrc-opt --help"


def test_cli_commands_are_documented() -> None:
    commands = set()
    for add in cli.COMMANDS:
        commands.add(add.__name__.removeprefix("add_").replace("_", "-"))
    readme, api = (ROOT / "README.md").read_text(), (ROOT / "docs/api.md").read_text()
    for command in commands:
        assert f"`wrc {command}" in readme, f"README's command-line section lacks `wrc {command}`"
        assert f"`wrc {command}" in api, f"docs/api.md lacks `wrc {command}`"


def test_ge_porting_code_blocks_run(tmp_path) -> None:
    """Each ```python block of docs/ge-porting.md runs as it is (in a scratch folder)."""
    text = (ROOT / "docs/ge-porting.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) == 2
    for i, block in enumerate(blocks):
        script = tmp_path / f"block{i}.py"
        script.write_text(block)
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120, check=False)
        assert done.returncode == 0, f"block {i} failed:\n{done.stdout}\n{done.stderr}"
        assert "[[24. 24.]]" in done.stdout, done.stdout


def test_security_md_names_only_tests_that_exist() -> None:
    """docs/SECURITY.md proves each promise (and each of issue 13's rows) by naming tests:
    every `test_...` it names is defined in tests/, and every issue 13 row names one."""
    text = (ROOT / "docs" / "SECURITY.md").read_text()
    defined = set(re.findall(r"^\s*def (test_\w+)", "\n".join(
        p.read_text() for p in (ROOT / "tests").glob("test_*.py")), re.M))
    named = set(re.findall(r"\b(test_\w*[^\W_])\b(?!\.py|_\*)", text))  # not the test modules
    missing = sorted(n for n in named if n not in defined)
    assert not missing, f"docs/SECURITY.md names tests that do not exist: {missing}"
    rows = re.findall(r"^\| (\d+) \| [^|]+ \| \d+ \| ([^|]*) \|$", text.split("### Issue 13's rows")[1], re.M)
    assert [int(r) for r, _ in rows] == list(range(1, 15)) and all("test_" in t for _, t in rows), rows
