/* Shared by the kernel modules of wrc.backends.native: taking NumPy arrays, read through
 * NumPy's C API where the object is an ndarray (its flags, type and data: ~10 ns) and
 * through the buffer protocol otherwise (~150-250 ns an array, which was most of a small
 * kernel call's cost: docs/performance.md "CNN inference (session 7)"). The generated code
 * passes arrays it allocated or checked itself; these checks are the last line against a
 * wrong call, and they name the argument at fault. Each module calls `wrc_import_numpy`
 * in its init function. */
#ifndef WRC_NATIVE_H
#define WRC_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

/* import_array, as a function returning 0 or -1 with a Python error set. */
static int wrc_import_numpy(void) {
  import_array1(-1);
  return 0;
}

/* The NumPy type of items of format "f", "d" or "q" (int64), else -1. */
static int wrc_type_of(const char *format) {
  return format[0] == 'f' ? NPY_FLOAT32 : format[0] == 'd' ? NPY_FLOAT64 : format[0] == 'q' ? NPY_INT64 : -1;
}

/* A C-contiguous buffer of `itemsize`-byte items of format `format` ("f": float32, "d":
 * float64), writable if asked; 0 on success, -1 with a Python error set. Release with
 * PyBuffer_Release. */
static int wrc_buffer(PyObject *obj, Py_buffer *view, const char *format, Py_ssize_t itemsize,
                      int writable, const char *what) {
  if (PyArray_API && PyArray_Check(obj)) { /* fast path (after wrc_import_numpy): no export, view->obj NULL */
    PyArrayObject *a = (PyArrayObject *)obj;
    int type = wrc_type_of(format);
    if (!PyArray_IS_C_CONTIGUOUS(a) || (writable && !PyArray_ISWRITEABLE(a))) {
      PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous%s array", what, writable ? " writable" : "");
      return -1;
    }
    if (type < 0 || PyArray_TYPE(a) != type || !PyArray_ISNOTSWAPPED(a) || PyArray_ITEMSIZE(a) != itemsize) {
      PyErr_Format(PyExc_ValueError, "%s: expected items of format %s, got %c", what, format,
                   PyArray_DESCR(a)->type);
      return -1;
    }
    memset(view, 0, sizeof(*view));
    view->buf = PyArray_DATA(a);
    view->len = PyArray_NBYTES(a);
    view->itemsize = itemsize;
    view->readonly = !PyArray_ISWRITEABLE(a);
    return 0;
  }
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
