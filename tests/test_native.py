"""wrc.backends.native: C kernel modules built once per machine, or None (NumPy forms) when
they cannot be; named by the load cache."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from wrc import load_cache
from wrc.backends import native

PROBE = r"""
#include "native.h"
static PyObject *scale(PyObject *self, PyObject *args) {
  PyObject *x, *out; double k; Py_buffer bx, bo;
  if (!PyArg_ParseTuple(args, "OOd", &x, &out, &k)) return NULL;
  if (wrc_buffer(x, &bx, "f", 4, 0, "x") < 0) return NULL;
  if (wrc_buffer(out, &bo, "f", 4, 1, "out") < 0) { PyBuffer_Release(&bx); return NULL; }
  const float *xs = bx.buf; float *os = bo.buf;
  for (Py_ssize_t i = 0; i < bo.len / 4 && i < bx.len / 4; i++) os[i] = (float)(xs[i] * k);
  PyBuffer_Release(&bx); PyBuffer_Release(&bo);
  Py_RETURN_NONE;
}
static PyMethodDef methods[] = {{"scale", scale, METH_VARARGS, "out = x * k"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_wrc_probe", NULL, -1, methods};
PyMODINIT_FUNC PyInit__wrc_probe(void) { return PyModule_Create(&def); }
"""


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """A kernel directory holding `probe.c` (and wrc's `native.h`), with fresh caches."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "native.h").write_bytes((native.SOURCES / "native.h").read_bytes())
    (src / "probe.c").write_text(PROBE)
    monkeypatch.setattr(native, "SOURCES", src)
    monkeypatch.setenv("WRC_CACHE_DIR", str(tmp_path / "cache"))
    for cached in (native._load, native._build_dir):
        cached.cache_clear()
    yield src
    for cached in (native._load, native._build_dir):
        cached.cache_clear()


def _built(cache: Path) -> list[Path]:
    return sorted((cache / "native-v1").glob("_wrc_probe-*.so"))


def test_builds_once_and_runs(sources, tmp_path):
    mod = native.load("probe")
    assert mod is not None
    x = np.arange(5, dtype=np.float32)
    out = np.empty_like(x)
    mod.scale(x, out, 2.5)
    np.testing.assert_array_equal(out, x * np.float32(2.5))
    built = _built(tmp_path / "cache")
    assert len(built) == 1
    assert os.stat(tmp_path / "cache" / "native-v1").st_mode & 0o077 == 0  # private
    # another process (a fresh cache of loaded modules) reuses the build
    mtime = built[0].stat().st_mtime_ns
    native._load.cache_clear()
    assert native.load("probe") is not None
    assert _built(tmp_path / "cache") == built and built[0].stat().st_mtime_ns == mtime
    # a changed source is another build
    (sources / "probe.c").write_text(PROBE + "\n/* changed */\n")
    native._load.cache_clear()
    assert native.load("probe") is not None
    assert len(_built(tmp_path / "cache")) == 2


def test_buffer_checks_name_the_argument(sources):
    mod = native.load("probe")
    x = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="^x: expected items of format f, got d$"):
        mod.scale(x.astype(np.float64), x, 1.0)
    with pytest.raises(ValueError, match="^out: expected a C-contiguous writable array$"):
        mod.scale(x, np.zeros(8, np.float32)[::2], 1.0)
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="^out: expected a C-contiguous writable array$"):
        mod.scale(x, ro, 1.0)


def test_unavailable_is_none_and_logged_once(sources, monkeypatch, caplog):
    monkeypatch.setenv("WRC_NATIVE", "off")
    assert native.load("probe") is None
    monkeypatch.delenv("WRC_NATIVE")
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with caplog.at_level(logging.WARNING, logger="wrc.native"):
        assert native.load("probe") is None
        assert native.load("probe") is None
    [record] = caplog.records
    assert "native kernels 'probe' unavailable, using NumPy forms: no C compiler (/nonexistent/cc" in record.message


def test_a_failing_build_is_logged_with_the_compiler_message(sources, caplog, tmp_path):
    (sources / "probe.c").write_text(PROBE.replace("Py_RETURN_NONE;", "Py_RETURN_NONE"))
    with caplog.at_level(logging.WARNING, logger="wrc.native"):
        assert native.load("probe") is None
    [record] = caplog.records
    assert "failed on probe.c" in record.message and "error" in record.message
    assert not list((tmp_path / "cache" / "native-v1").iterdir())  # no partial file left


def test_load_cache_names_kernel_functions(sources):
    fn = native.load("probe").scale
    encoded = load_cache._encode(fn)
    assert encoded == [b"nat", "probe", "scale"]
    assert load_cache._decode(encoded) is fn
    with pytest.raises(KeyError):  # an entry naming anything else is a miss
        load_cache._decode([b"nat", "probe", "__class__"])
    with pytest.raises(KeyError):
        load_cache._decode([b"nat", "missing", "scale"])


def test_jit_option_spelling():
    from wrc.backends import get_backend

    assert get_backend("numpy").options.native is True
    assert get_backend("numpy{native=false}").options.native is False


def test_without_a_cache_a_temporary_directory_is_used_and_removed(sources, tmp_path):
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from wrc.backends import native; "
            "native.SOURCES = Path(sys.argv[1]); assert native.load('probe') is not None; "
            "print(native._build_dir())")
    env = {**os.environ, "WRC_CACHE_DIR": "off", "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code, str(sources)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    built = Path(out.stdout.strip())
    assert built.parent == tmp_path and built.name.startswith("wrc-native-")
    assert not built.exists()  # removed at exit


def test_no_folder_to_build_in_is_none(sources, monkeypatch, caplog):
    @functools.cache  # (as the function it replaces: the fixture clears it)
    def no_folder() -> Path:
        raise PermissionError("[Errno 13] Permission denied: '/tmp/wrc-native-x'")

    monkeypatch.setattr(native, "_build_dir", no_folder)
    with caplog.at_level(logging.WARNING, logger="wrc.native"):
        assert native.load("probe") is None
    [record] = caplog.records
    assert "native kernels 'probe' unavailable, using NumPy forms: [Errno 13] Permission denied" in record.message
