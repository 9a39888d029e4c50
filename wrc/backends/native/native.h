/* Shared by the kernel modules of wrc.backends.native: taking NumPy arrays through the
 * buffer protocol. The generated code passes arrays it allocated or checked itself; these
 * checks are the last line against a wrong call, and they name the argument at fault. */
#ifndef WRC_NATIVE_H
#define WRC_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* A C-contiguous buffer of `itemsize`-byte items of format `format` ("f": float32, "d":
 * float64), writable if asked; 0 on success, -1 with a Python error set. Release with
 * PyBuffer_Release. */
static int wrc_buffer(PyObject *obj, Py_buffer *view, const char *format, Py_ssize_t itemsize,
                      int writable, const char *what) {
  int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
  if (PyObject_GetBuffer(obj, view, flags) != 0) {
    PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous%s array", what,
                 writable ? " writable" : "");
    return -1;
  }
  const char *f = view->format ? view->format : "B";
  if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
  if (view->itemsize != itemsize || strcmp(f, format) != 0) {
    PyErr_Format(PyExc_ValueError, "%s: expected items of format %s, got %s", what, format,
                 view->format ? view->format : "B");
    PyBuffer_Release(view);
    return -1;
  }
  return 0;
}

#endif
