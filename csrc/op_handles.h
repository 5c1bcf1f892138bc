// Typed handles of torchscope's ops in PyTorch's dispatcher, each looked up once
// (on first use: the schemas are registered by torchscope._C's static
// initializers, csrc/torchscope.cpp). For the kernels that call an op again
// through the dispatcher (autograd, autocast) and for torchscope._fastpaths'
// unboxed call (csrc/python/fastpaths.cpp).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/ArrayRef.h>

#include <array>
#include <optional>
#include <tuple>

// Hidden: each library that includes this (torchscope._C, torchscope._fastpaths)
// keeps its own handles, which would otherwise be exported as unique symbols and
// shared between the two by the dynamic linker.
#if defined(__GNUC__)
#define TS_OP_HANDLES_VISIBILITY __attribute__((visibility("hidden")))
#else
#define TS_OP_HANDLES_VISIBILITY
#endif

namespace torchscope {
namespace TS_OP_HANDLES_VISIBILITY op_handles {

// The C++ signatures of the schemas in csrc/torchscope.cpp.
using ForwardFn = at::Tensor(
    const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, c10::IntArrayRef, c10::IntArrayRef,
    c10::IntArrayRef, int64_t);
using WithMaskFn = std::tuple<at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, c10::IntArrayRef, c10::IntArrayRef,
    c10::IntArrayRef, int64_t);
using BackwardFn = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, c10::IntArrayRef, c10::IntArrayRef,
    c10::IntArrayRef, int64_t, std::array<bool, 3>);

template <typename Fn>
c10::TypedOperatorHandle<Fn> find(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Fn>();
}

// torchscope::conv2d_bias_relu.
inline const c10::TypedOperatorHandle<ForwardFn>& forward() {
  static const auto op = find<ForwardFn>("torchscope::conv2d_bias_relu");
  return op;
}

// torchscope::conv2d_bias_relu_with_mask.
inline const c10::TypedOperatorHandle<WithMaskFn>& with_mask() {
  static const auto op = find<WithMaskFn>("torchscope::conv2d_bias_relu_with_mask");
  return op;
}

// torchscope::conv2d_bias_relu_backward.
inline const c10::TypedOperatorHandle<BackwardFn>& backward() {
  static const auto op = find<BackwardFn>("torchscope::conv2d_bias_relu_backward");
  return op;
}

}  // namespace op_handles
}  // namespace torchscope
