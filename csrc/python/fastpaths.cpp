// torchscope._fastpaths: what the paths every forward call takes spend most on, in C.
//
// Each has a Python twin that gives the same answers (conv2d_bias_relu: the same result
// wherever the C version does not hand the call back with NotImplemented); tests
// compare them, and torch.compile traces the twin in the C version's place.
// torchscope/_fastpath.py picks this module when it was built. It reads tensors through torch's Python bindings (THPVariable), so
// unlike torchscope._C it is not built against the limited API.
//
// same_shape (get_variable's reuse path; twin: torchscope._fastpath.same_shape_py).
// When get_variable is given a shape it must check it against the variable's. In
// Python that is `found.shape == tuple(shape)`: a torch.Size and a tuple built and
// compared on every call, which costs most in a training loop, where backward and the
// optimizer step have just evicted the caches. Here it reads the tensor's sizes in
// place and allocates nothing when the shape is plain ints. A False answer is not an error: get_variable then takes its
// full path, which raises the error that names the variable.
//
// cached_scope (variable_scope's entry; twin: torchscope._fastpath.cached_scope_py).
// Re-entering a scope hands out the VariableScope cached by the last entry, but only
// when nothing else holds it: TensorFlow makes a new scope object on every entry, so
// one that a caller kept (`with variable_scope("a") as s`) or that is open must not
// be handed out again, or `s.reuse_variables()` in one entry would change another.
// The cache's dict then holds the only reference: the refcount is exactly 1 here,
// where no interpreter stack or local of the caller holds one yet.
//
// conv2d_bias_relu (ts.ops.conv2d_bias_relu's eager call; twin:
// torchscope._fastpath.conv2d_bias_relu_py). The op's Python entry point,
// OpOverload.__call__, boxes every argument into an IValue stack and runs Python on
// the way, which a small convolution notices (bench/conv.py's case (s)). Here the arguments go to the op's typed, unboxed kernel call, as torch's
// generated bindings do for F.conv2d, with the GIL released while it runs. Tensor
// subclasses (which may define __torch_function__), an active torch function mode and
// arguments that are not int pairs get NotImplemented back and take the OpOverload
// call, which honours them and raises the usual errors; what the dispatcher does
// (autocast, FakeTensor, __torch_dispatch__ modes, functorch) happens inside it
// either way.
#include <Python.h>

#include <ATen/PythonTorchFunctionTLS.h>
#include <c10/util/Exception.h>
#include <pybind11/pybind11.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <array>
#include <optional>

#include "op_handles.h"

namespace {

// The Python expression itself: for tensor subclasses (which may define `shape`
// their own way), symbolic sizes and dimensions that are not plain ints.
PyObject* compare_in_python(PyObject* tensor, PyObject* shape) {
  PyObject* found = PyObject_GetAttrString(tensor, "shape");
  if (found == nullptr) {
    return nullptr;
  }
  PyObject* wanted = PySequence_Tuple(shape);
  if (wanted == nullptr) {
    Py_DECREF(found);
    return nullptr;
  }
  PyObject* result = PyObject_RichCompare(found, wanted, Py_EQ);
  Py_DECREF(found);
  Py_DECREF(wanted);
  return result;
}

PyObject* same_shape(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_Format(
        PyExc_TypeError, "same_shape(tensor, shape) takes 2 positional arguments, got %zd",
        nargs);
    return nullptr;
  }
  PyObject* tensor = args[0];
  PyObject* shape = args[1];
  const bool is_list = PyList_CheckExact(shape);
  if (!is_list && !PyTuple_CheckExact(shape)) {
    Py_RETURN_FALSE;  // the Python expression: `type(shape) in (list, tuple) and ...`
  }
  for (Py_ssize_t i = 0; i < Py_SIZE(shape); ++i) {
    PyObject* item = is_list ? PyList_GET_ITEM(shape, i) : PyTuple_GET_ITEM(shape, i);
    if (PyBool_Check(item) || PyFloat_Check(item) || PyComplex_Check(item)) {
      Py_RETURN_FALSE;  // the full path refuses these dimensions with a TypeError
    }
  }
  if (!THPVariable_CheckExact(tensor)) {
    // Not a Tensor or Parameter (a subclass may define `shape` its own way; anything
    // else raises as `.shape` would).
    return compare_in_python(tensor, shape);
  }
  try {
    const at::Tensor& value = THPVariable_Unpack(tensor);
    const c10::SymIntArrayRef sizes = value.sym_sizes();
    const auto rank = static_cast<Py_ssize_t>(sizes.size());
    if (Py_SIZE(shape) != rank) {
      Py_RETURN_FALSE;
    }
    for (Py_ssize_t i = 0; i < rank; ++i) {
      PyObject* item = is_list ? PyList_GET_ITEM(shape, i) : PyTuple_GET_ITEM(shape, i);
      const std::optional<int64_t> size = sizes[i].maybe_as_int();
      if (!size.has_value() || !PyLong_CheckExact(item)) {
        // A symbolic size, or a dimension that is not a plain int (a numpy integer, a
        // float, None): Python's comparison decides. Only plain ints are compared here,
        // so no Python code runs before that and the list cannot change under us.
        return compare_in_python(tensor, shape);
      }
      int overflow = 0;
      const long long value = PyLong_AsLongLongAndOverflow(item, &overflow);
      if (overflow != 0 || value != *size) {
        Py_RETURN_FALSE;
      }
    }
  } catch (const std::exception&) {
    // A tensor whose sizes C++ cannot give (a nested tensor, say): ask Python.
    return compare_in_python(tensor, shape);
  }
  Py_RETURN_TRUE;
}

PyObject* cached_scope(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_Format(
        PyExc_TypeError, "cached_scope(cache, key) takes 2 positional arguments, got %zd",
        nargs);
    return nullptr;
  }
  PyObject* cache = args[0];
  if (!PyDict_CheckExact(cache)) {
    PyErr_Format(
        PyExc_TypeError, "cached_scope's cache must be a dict, got %s", Py_TYPE(cache)->tp_name);
    return nullptr;
  }
  PyObject* scope = PyDict_GetItemWithError(cache, args[1]);  // borrowed
  if (scope == nullptr) {
    if (PyErr_Occurred()) {
      return nullptr;
    }
    Py_RETURN_NONE;
  }
  if (Py_REFCNT(scope) != 1) {
    Py_RETURN_NONE;  // held elsewhere: the caller makes a new one
  }
  Py_INCREF(scope);
  return scope;
}

// A list or tuple of two plain ints; false (no error set) for anything else.
bool int_pair(PyObject* obj, std::array<int64_t, 2>& out) {
  const bool is_list = PyList_CheckExact(obj);
  if ((!is_list && !PyTuple_CheckExact(obj)) || Py_SIZE(obj) != 2) {
    return false;
  }
  for (Py_ssize_t i = 0; i < 2; ++i) {
    PyObject* item = is_list ? PyList_GET_ITEM(obj, i) : PyTuple_GET_ITEM(obj, i);
    if (!PyLong_CheckExact(item)) {
      return false;
    }
    int overflow = 0;
    out[i] = PyLong_AsLongLongAndOverflow(item, &overflow);
    if (overflow != 0) {
      return false;
    }
  }
  return true;
}

// A torch.Tensor or nn.Parameter, not a subclass (which may define __torch_function__).
bool plain_tensor(PyObject* obj) {
  return THPVariable_CheckExact(obj);
}

PyObject* conv2d_bias_relu(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (nargs != 7) {
    PyErr_Format(
        PyExc_TypeError,
        "conv2d_bias_relu(input, weight, bias, stride, padding, dilation, groups) takes 7 "
        "positional arguments, got %zd",
        nargs);
    return nullptr;
  }
  PyObject* bias_obj = args[2];
  std::array<int64_t, 2> stride{}, padding{}, dilation{};
  // Anything but plain tensors, int pairs and an int: the OpOverload call decides
  // (it honours __torch_function__ and raises the usual errors).
  if (at::impl::torch_function_mode_enabled() || !plain_tensor(args[0]) || !plain_tensor(args[1]) ||
      (bias_obj != Py_None && !plain_tensor(bias_obj)) || !int_pair(args[3], stride) ||
      !int_pair(args[4], padding) || !int_pair(args[5], dilation) || !PyLong_CheckExact(args[6])) {
    Py_RETURN_NOTIMPLEMENTED;
  }
  int overflow = 0;
  const int64_t groups = PyLong_AsLongLongAndOverflow(args[6], &overflow);
  if (overflow != 0) {
    Py_RETURN_NOTIMPLEMENTED;
  }
  const auto& op = torchscope::op_handles::forward();
  // Copies (a reference count each), not references into the Python objects: another
  // thread may rebind `x.data` while the GIL is released.
  const at::Tensor input = THPVariable_Unpack(args[0]);
  const at::Tensor weight = THPVariable_Unpack(args[1]);
  std::optional<at::Tensor> bias;
  if (bias_obj != Py_None) {
    bias = THPVariable_Unpack(bias_obj);
  }
  at::Tensor out;
  {
    pybind11::gil_scoped_release no_gil;
    out = op.call(input, weight, bias, stride, padding, dilation, groups);
  }
  return THPVariable_Wrap(std::move(out));
  END_HANDLE_TH_ERRORS
}

PyMethodDef methods[] = {
    {"same_shape", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(same_shape)),
     METH_FASTCALL,
     "same_shape($module, tensor, shape, /)\n--\n\n"
     "Whether ``type(shape) in (list, tuple) and tensor.shape == tuple(shape)``, without "
     "building either tuple."},
    {"cached_scope",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(cached_scope)),
     METH_FASTCALL,
     "cached_scope($module, cache, key, /)\n--\n\n"
     "``cache[key]`` if the dict ``cache`` holds the only reference to it, else None."},
    {"conv2d_bias_relu",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(conv2d_bias_relu)),
     METH_FASTCALL,
     "conv2d_bias_relu($module, input, weight, bias, stride, padding, dilation, groups, /)\n--\n\n"
     "``torch.ops.torchscope.conv2d_bias_relu.default(...)`` through the op's unboxed call; "
     "NotImplemented for arguments it leaves to that call (``__torch_function__``, "
     "anything but int pairs)."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fastpaths", nullptr, -1, methods,
};

}  // namespace

PyMODINIT_FUNC PyInit__fastpaths(void) {
  return PyModule_Create(&module_def);
}
