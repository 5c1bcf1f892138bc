// Operator library of torchscope. The schemas are declared once here; each
// backend registers its kernels in its own file (csrc/cpu, csrc/cuda).
#include <Python.h>
#include <torch/library.h>

#include <vector>

#include "conv2d_bias_relu.h"

namespace {

// torchscope._C._set_cpu_onednn(enabled, /): whether the CPU kernel may use
// oneDNN's fused post-op path (default True); returns the previous value.
PyObject* set_cpu_onednn(PyObject* /*module*/, PyObject* enabled) {
  if (!PyBool_Check(enabled)) {
    PyErr_Format(
        PyExc_TypeError, "torchscope._C._set_cpu_onednn: expected argument 'enabled' to be a bool, but got %R",
        enabled);
    return nullptr;
  }
  return PyBool_FromLong(torchscope::set_cpu_onednn_enabled(enabled == Py_True));
}

// torchscope._C._set_cpu_post_op_min_elements(elements, /): the smallest output
// (elements) that takes that path (default 32768; negative: the default); returns
// the previous value.
PyObject* set_cpu_post_op_min_elements(PyObject* /*module*/, PyObject* elements) {
  if (!PyLong_Check(elements) || PyBool_Check(elements)) {
    PyErr_Format(
        PyExc_TypeError,
        "torchscope._C._set_cpu_post_op_min_elements: expected argument 'elements' to be an int, but got %R",
        elements);
    return nullptr;
  }
  const long long value = PyLong_AsLongLong(elements);
  if (value == -1 && PyErr_Occurred()) {
    return nullptr;  // OverflowError
  }
  return PyLong_FromLongLong(torchscope::set_cpu_post_op_min_elements(value));
}

// torchscope._C._post_op_calls(): how many calls oneDNN's post-op path has served.
PyObject* post_op_calls(PyObject* /*module*/, PyObject* /*unused*/) {
  return PyLong_FromLongLong(torchscope::cpu_post_op_calls());
}

// Private switches for the tests and bench/conv.py (torchscope/ops/_knobs.py wraps
// them in a context manager). Plain functions of this module, not ops: they are
// not part of the operator library.
PyMethodDef methods[] = {
    {"_set_cpu_onednn", set_cpu_onednn, METH_O,
     "_set_cpu_onednn($module, enabled, /)\n--\n\n"
     "Whether the CPU kernel may use oneDNN's fused post-op path; returns the previous value."},
    {"_set_cpu_post_op_min_elements", set_cpu_post_op_min_elements, METH_O,
     "_set_cpu_post_op_min_elements($module, elements, /)\n--\n\n"
     "The smallest output (elements) that takes oneDNN's post-op path (negative: the default, "
     "32768); returns the previous value."},
    {"_post_op_calls", post_op_calls, METH_NOARGS,
     "_post_op_calls($module, /)\n--\n\n"
     "How many calls oneDNN's post-op path has served since the library loaded."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

extern "C" {
// `import torchscope._C` loads this library and runs its static TORCH_LIBRARY
// registrations; the module itself holds the switches above. Limited API, no
// pybind11.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
  return PyModule_Create(&module_def);
}
}

// Changing a schema or the autograd formula: torch.compile's on-disk caches
// (AOTAutograd, FX graph; $TORCHINDUCTOR_CACHE_DIR, default
// /tmp/torchinductor_$USER) are keyed on the traced forward graph, which names
// the forward op only, so graphs compiled with the previous build replay the
// previous backward. Clear them after such a change.
TORCH_LIBRARY(torchscope, m) {
  // The fake kernels live in Python: point PyTorch at the module that
  // registers them, so that a missing import is reported clearly. The autograd
  // formula is in conv2d_bias_relu_autograd.cpp.
  m.set_python_module("torchscope.ops._fake");
  // Each op carries pt2_compliant_tag: it works under torch.compile and
  // torch.export (fake kernels, autograd and autocast registered; tests/test_ops.py
  // runs torch.library.opcheck on all three).
  const std::vector<at::Tag> pt2 = {at::Tag::pt2_compliant_tag};
  // relu(conv2d(input, weight, bias)) in one op. Output layout: channels_last
  // when input or weight is channels_last, else contiguous.
  m.def(
      "conv2d_bias_relu(Tensor input, Tensor weight, Tensor? bias, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups) -> Tensor",
      pt2);
  // The forward for training: the output, and the relu mask its backward
  // takes (csrc/epilogue.h: 1 bit per output element, in the output's memory
  // order; uint8, (numel + 7) / 8 bytes).
  m.def(
      "conv2d_bias_relu_with_mask(Tensor input, Tensor weight, Tensor? bias, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups) -> (Tensor, Tensor)",
      pt2);
  // Its backward: the relu mask applied to grad_output fused with the bias
  // gradient, then the convolution's backward for the requested gradients.
  // Gradients not asked for by output_mask come back undefined (None).
  m.def(
      "conv2d_bias_relu_backward(Tensor grad_output, Tensor mask, Tensor input, "
      "Tensor weight, int[2] stride, int[2] padding, int[2] dilation, int groups, "
      "bool[3] output_mask) -> (Tensor, Tensor, Tensor)",
      pt2);
}
