"""Compiled C kernels for the NumPy JIT, built on first use with the machine's C compiler.

Some work has no fast NumPy form: a depthwise convolution makes one pass over its input
per kernel tap (or copies every window), where a C loop keeps the 9 or 25 products in
registers and runs 4-15x faster. Each `<name>.c` beside this file is a small CPython
extension module, `_wrc_<name>`, that takes NumPy arrays through NumPy's C API (the
buffer protocol for other objects; `native.h`: the checks every module shares).

`load(name)` compiles it once per machine into the user's cache directory (the load
cache's: `WRC_CACHE_DIR`, else `$XDG_CACHE_HOME/wrc`, else `~/.cache/wrc`; a private
directory, or a private temporary one, removed at exit, when the cache is off), keyed by the source, the
compiler and its version, the CPU's flags (the code is built with `-march=native`), the
Python ABI and NumPy's version (its headers), and imports it. It returns None, and the JIT keeps its NumPy forms, when:

* `WRC_NATIVE=off` is set (or the JIT option `numpy{native=false}` is given);
* there is no C compiler or no Python headers (`CC`, else the compiler Python was built
  with, else `cc`), or the build fails (logged once on the `wrc.native` logger, with the
  compiler's message);
* the platform is not POSIX.

Besides the JIT's kernels, `buffers.c` reads where many buffers lie in one call, for
`wrc.weight_pack` (its fallback: ctypes).

Nothing a bundle holds is compiled or loaded here: the sources are wrc's own files.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from types import ModuleType

log = logging.getLogger("wrc.native")

ENV = "WRC_NATIVE"
SOURCES = Path(__file__).parent
FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-std=c11", "-fno-strict-aliasing")
PREFIX = "_wrc_"
"""Extension modules are named `_wrc_<name>` (their functions' `__module__`)."""

_lock = threading.Lock()


def enabled() -> bool:
    """Whether the environment allows native kernels (`WRC_NATIVE=off` does not)."""
    return os.environ.get(ENV, "").strip().lower() not in ("off", "0", "false", "no")


def load(name: str) -> ModuleType | None:
    """The extension module built from `<name>.c`, or None where it cannot be had."""
    if not enabled():
        return None
    with _lock:
        return _load(name)


@functools.cache
def _load(name: str) -> ModuleType | None:
    source = SOURCES / f"{name}.c"
    try:
        return build(source, PREFIX + name, _build_dir())
    except (NativeBuildError, OSError) as e:  # (OSError: no temporary folder to build in)
        log.warning("native kernels %r unavailable, using NumPy forms: %s", name, e)
        return None


class NativeBuildError(Exception):
    """Why a kernel module could not be built or imported (logged, never raised to users)."""


def compiler() -> list[str]:
    """The C compiler command: `CC`, else the one Python was built with, else `cc`."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


@functools.cache
def _compiler_identity(cc: tuple[str, ...]) -> str:
    try:
        out = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeBuildError(f"no C compiler ({shlex.join(cc)}: {e})") from None
    if out.returncode != 0:
        raise NativeBuildError(f"C compiler {shlex.join(cc)} failed: {out.stderr.strip()[:300]}")
    return out.stdout.strip()


@functools.cache
def _cpu_flags() -> str:
    """The CPU's feature flags (the key of `-march=native` code; a cache directory shared by
    machines of different CPUs then holds one build per CPU)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def build(source: Path, module_name: str, directory: Path) -> ModuleType:
    """Compile `source` into `directory` unless a build for the same key is there, and import
    it as `module_name` (`PyInit_<module_name>`)."""
    if os.name != "posix":
        raise NativeBuildError(f"native kernels are built on POSIX systems only, not {os.name!r}")
    cc = tuple(compiler())
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        raise NativeBuildError(f"no Python headers (Python.h) in {include}")
    import numpy as np  # (its C API: native.h)

    np_include = np.get_include()
    try:  # the source and the headers beside it
        text = b"\0".join([source.read_bytes(), *(h.read_bytes() for h in sorted(source.parent.glob("*.h")))])
    except OSError as e:
        raise NativeBuildError(f"cannot read {source}: {e}") from None
    flags = (*FLAGS, *(("-undefined", "dynamic_lookup") if sys.platform == "darwin" else ()))
    key = hashlib.sha256(b"\0".join(s.encode() for s in (
        module_name, _compiler_identity(cc), *cc, *flags, _cpu_flags(), sys.version, np.__version__, np_include,
        sysconfig.get_config_var("EXT_SUFFIX") or "")) + b"\0" + text).hexdigest()[:32]
    target = directory / f"{module_name}-{key}.so"
    if not target.is_file():
        _compile(cc, flags, (include, np_include), source, target)
    spec = importlib.util.spec_from_file_location(
        module_name, target, loader=importlib.machinery.ExtensionFileLoader(module_name, str(target)))
    if spec is None or spec.loader is None:
        raise NativeBuildError(f"cannot import {target}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as e:
        raise NativeBuildError(f"cannot import {target}: {e}") from None
    return module


def _compile(cc: tuple[str, ...], flags: tuple[str, ...], include: tuple[str, ...], source: Path, target: Path) -> None:
    """Build into a temporary file beside `target`, then rename it (concurrent builders of the
    same key each write their own file; the last rename wins, with identical content)."""
    log.info("compiling %s (once per machine and version of wrc)", source.name)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        out = subprocess.run([*cc, *flags, *(f"-I{i}" for i in include), f"-I{source.parent}", str(source), "-o", tmp],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise NativeBuildError(f"{shlex.join(cc)} failed on {source.name}: "
                                   f"{(out.stderr or out.stdout).strip()[-600:]}")
        os.replace(tmp, target)
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeBuildError(f"{shlex.join(cc)} could not build {source.name}: {e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def _build_dir() -> Path:
    """`native-v1` in the load cache's directory when it is usable, else a private temporary
    directory for this process."""
    from wrc import load_cache

    path = load_cache.cache_subdir("native-v1", create=True)
    if path is not None:
        return path
    path = Path(tempfile.mkdtemp(prefix="wrc-native-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)  # (a loaded library stays mapped)
    return path


def function_name(fn: object) -> tuple[str, str] | None:
    """(`name`, attribute) of a function of a kernel module `load(name)` returns, else None
    (how the load cache names such a function in an entry)."""
    module = getattr(fn, "__module__", None)
    attr = getattr(fn, "__name__", None)
    if not isinstance(module, str) or not module.startswith(PREFIX) or not isinstance(attr, str):
        return None
    name = module[len(PREFIX):]
    loaded = load(name)
    return (name, attr) if loaded is not None and getattr(loaded, attr, None) is fn else None


def function(name: str, attr: str) -> object:
    """The function `function_name` named (a `KeyError` when it cannot be had here)."""
    module = load(name)
    if module is None or attr.startswith("_") or not callable(getattr(module, attr, None)):
        raise KeyError(f"{name}.{attr}")
    return getattr(module, attr)
