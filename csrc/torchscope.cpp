// Operator library of torchscope. The schemas are declared once here; each
// backend registers its kernels in its own file (csrc/cpu, csrc/cuda).
#include <Python.h>
#include <torch/library.h>

extern "C" {
// An empty Python module, so that `import torchscope._C` loads this library
// and runs its static TORCH_LIBRARY registrations. No pybind11 is involved.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(torchscope, m) {}
