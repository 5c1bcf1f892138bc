// Autocast of torchscope::conv2d_bias_relu, registered at the AutocastCPU and
// AutocastCUDA keys. Under torch.autocast the op follows ATen's conv2d (a
// lower_precision_fp op): its floating tensor arguments on the autocast device,
// float64 excepted, are cast to the autocast dtype (torch.get_autocast_dtype),
// and the op is called again with autocast excluded, so the output has that dtype.
//
// Only the user-facing op needs a kernel here. Autocast sits above Autograd in the
// dispatch order: the autograd kernel's conv2d_bias_relu_with_mask call happens
// below this one, with the tensors already cast, and the backward op runs from the
// autograd engine on the cast tensors (the ops without an autocast kernel fall
// through the key). torchscope._fastpaths calls the op through the dispatcher, so
// it ends up here too.
#include <ATen/autocast_mode.h>
#include <torch/library.h>

#include "op_handles.h"

#include <optional>

namespace torchscope {
namespace {

template <c10::DeviceType device_type>
at::Tensor conv2d_bias_relu_autocast(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(at::autocast::get_autocast_dispatch_key_from_device_type(device_type));
  const at::ScalarType dtype = at::autocast::get_autocast_dtype(device_type);
  return op_handles::forward().call(
      at::autocast::cached_cast(dtype, input, device_type), at::autocast::cached_cast(dtype, weight, device_type),
      at::autocast::cached_cast(dtype, bias, device_type), stride, padding, dilation, groups);
}

}  // namespace

TORCH_LIBRARY_IMPL(torchscope, AutocastCPU, m) {
  m.impl("conv2d_bias_relu", &conv2d_bias_relu_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(torchscope, AutocastCUDA, m) {
  m.impl("conv2d_bias_relu", &conv2d_bias_relu_autocast<c10::DeviceType::CUDA>);
}

}  // namespace torchscope
