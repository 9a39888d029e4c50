"""The layers hold: every user-facing exception lives in wrc/errors.py, no module of wrc is
in an import circle, and the product contract cited in code is a document of the repository."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

from xdsl.utils.exceptions import PassFailedException

import wrc
from wrc import errors
from wrc.errors import ConversionError, LoweringError, UnrunnableBundleError, WrcError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("wrc", "wrc.backends", "wrc.dialects", "wrc.passes", "wrc.tools")


def wrc_modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        names.append(pkg)
        path = importlib.import_module(pkg).__path__
        names += [f"{pkg}.{m.name}" for m in pkgutil.iter_modules(path) if not m.ispkg]
    return names


def imports(name: str) -> set[str]:
    """The wrc modules `name` imports, at the top or inside a function (lazy imports too)."""
    module = importlib.import_module(name)
    is_package = hasattr(module, "__path__")
    known = set(wrc_modules())
    out = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = ".".join(base[: len(base) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module or ""
            targets = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            # A package may import its own modules (re-exports, registries): it includes them.
            if target and target != name and not (is_package and target.startswith(name + ".")):
                out.add(target)
    return out


def test_no_import_circle() -> None:
    graph = {name: imports(name) for name in wrc_modules()}
    assert "wrc.abi" in graph["wrc.runtime"] and "wrc.abi" in graph["wrc.passes.ge_bufferize"]
    circles = []

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            circles.append(path[path.index(name):] + [name])
            return
        for dep in sorted(graph[name]):
            if dep not in done:
                visit(dep, path + [name])
        done.add(name)

    done: set[str] = set()
    for name in graph:
        visit(name, [])
    assert circles == []


def test_passes_and_the_contract_import_no_bundle_code() -> None:
    assert imports("wrc.abi") <= {"wrc.dtypes", "wrc.errors", "wrc.ir_read"}
    assert imports("wrc.ir_read") == set()
    for name in wrc_modules():
        if name.startswith("wrc.passes"):
            assert not imports(name) & {"wrc.model_buffer", "wrc.bundle_format", "wrc.runtime"}, name


def test_every_wrc_error_is_defined_in_errors() -> None:
    homes = {}
    for name in wrc_modules():
        for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass):
            if issubclass(cls, WrcError):
                homes[cls.__name__] = cls.__module__
    assert {"GraphError", "OnnxImportError", "UnsupportedOpError", "WeightFileError"} <= homes.keys()
    assert {n: m for n, m in homes.items() if m != "wrc.errors"} == {}
    # The public names where they were raised first still work.
    assert wrc.GraphError is errors.GraphError
    assert wrc.onnx.OnnxImportError is errors.OnnxImportError
    assert wrc.onnx.UnsupportedOpError is errors.UnsupportedOpError


def test_pass_errors_are_xdsl_pass_failures() -> None:
    for cls in (ConversionError, LoweringError, UnrunnableBundleError):
        assert issubclass(cls, PassFailedException) and issubclass(cls, WrcError)


def test_spec_references_name_the_document() -> None:
    spec = (ROOT / "docs/spec.md").read_text()
    sections = set(re.findall(r"^## (\d+)\.", spec, re.M))
    assert sections == {"1", "2", "3", "4"}
    files = [p for d in ("wrc", "passes", "dialects", "tools", "tests", "docs", "bench")
             for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".md", ".mlir")]
    cited = set()
    for path in files + [ROOT / "README.md"]:
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\bSPEC\b", text), f"{path}: cite docs/spec.md, not SPEC"
        cited |= set(re.findall(r"spec\.md(?:\]\(spec\.md\))? §(\d)", text))
    assert cited and cited <= sections
