/* Where many buffers lie, in one call: `wrc.weight_pack` reads the address and size of each
 * piece of a parcel (thousands per publish, in every replica) to find whether they lie back
 * to back as planned. Through ctypes each piece costs two foreign calls (~1 us); here one
 * PyObject_GetBuffer (~30 ns). */
#include "native.h"

/* extents(pieces): (addresses, sizes), two int64 arrays; BufferError for a piece that is not
 * contiguous (PyBUF_SIMPLE), TypeError for one that is not a buffer. */
static PyObject *extents(PyObject *self, PyObject *arg) {
  (void)self;
  PyObject *seq = PySequence_Fast(arg, "extents: expected a sequence of buffers");
  if (seq == NULL) return NULL;
  npy_intp n = PySequence_Fast_GET_SIZE(seq);
  PyObject *addresses = PyArray_SimpleNew(1, &n, NPY_INT64);
  PyObject *sizes = addresses == NULL ? NULL : PyArray_SimpleNew(1, &n, NPY_INT64);
  if (sizes == NULL) goto fail;
  npy_int64 *a = PyArray_DATA((PyArrayObject *)addresses), *s = PyArray_DATA((PyArrayObject *)sizes);
  PyObject **items = PySequence_Fast_ITEMS(seq);
  for (npy_intp i = 0; i < n; i++) {
    Py_buffer view;
    if (PyObject_GetBuffer(items[i], &view, PyBUF_SIMPLE) != 0) goto fail;
    a[i] = (npy_int64)(Py_intptr_t)view.buf;
    s[i] = (npy_int64)view.len;
    PyBuffer_Release(&view);
  }
  Py_DECREF(seq);
  return Py_BuildValue("(NN)", addresses, sizes);
fail:
  Py_XDECREF(addresses);
  Py_XDECREF(sizes);
  Py_DECREF(seq);
  return NULL;
}

static PyMethodDef methods[] = {
    {"extents", extents, METH_O,
     "extents(pieces): the address and the size in bytes of each contiguous buffer, as two int64 "
     "arrays"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_wrc_buffers", NULL, -1, methods, NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit__wrc_buffers(void) { return wrc_import_numpy() < 0 ? NULL : PyModule_Create(&def); }
