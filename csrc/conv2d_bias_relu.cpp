// Argument checks, layout rules and the backward's tail shared by the CPU and
// CUDA kernels. Keep every message in step with torchscope/ops/_fake.py
// (check_args).
#include "conv2d_bias_relu.h"
#include "epilogue.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>

#include <string>

namespace torchscope {
namespace {

constexpr const char* kOp = "torchscope::conv2d_bias_relu";
constexpr const char* kBackwardOp = "torchscope::conv2d_bias_relu_backward";

// The dtype as Python prints it (torch.float32), as _fake.py's messages do.
std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "torch.float32";
    case at::kDouble: return "torch.float64";
    case at::kHalf: return "torch.float16";
    case at::kBFloat16: return "torch.bfloat16";
    case at::kByte: return "torch.uint8";
    case at::kChar: return "torch.int8";
    case at::kShort: return "torch.int16";
    case at::kInt: return "torch.int32";
    case at::kLong: return "torch.int64";
    case at::kBool: return "torch.bool";
    case at::kComplexFloat: return "torch.complex64";
    case at::kComplexDouble: return "torch.complex128";
    default: return std::string("torch.") + c10::toString(t);
  }
}

void check_pair(const char* op, const char* name, c10::IntArrayRef v, int64_t min, const char* what) {
  TORCH_CHECK(
      v.size() == 2 && v[0] >= min && v[1] >= min,
      op, ": expected argument '", name, "' to be 2 ", what, " integers, but got ", v);
}

void check_common(
    const char* op,
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups) {
  TORCH_CHECK(
      input.dim() == 4, op, ": expected argument 'input' to be a 4-D tensor (N, C, H, W), but got a ",
      input.dim(), "-D tensor of shape ", input.sizes());
  TORCH_CHECK(
      weight.dim() == 4, op,
      ": expected argument 'weight' to be a 4-D tensor (C_out, C_in / groups, kH, kW), but got a ",
      weight.dim(), "-D tensor of shape ", weight.sizes());
  TORCH_CHECK(
      input.is_floating_point(), op, ": expected argument 'input' to have a floating-point dtype, but got ",
      dtype_name(input.scalar_type()));
  TORCH_CHECK(
      weight.scalar_type() == input.scalar_type(), op, ": expected argument 'weight' to have the dtype of 'input' (",
      dtype_name(input.scalar_type()), "), but got ", dtype_name(weight.scalar_type()));
  TORCH_CHECK(
      weight.device() == input.device(), op, ": expected argument 'weight' to be on the device of 'input' (",
      input.device(), "), but got ", weight.device());
  TORCH_CHECK(groups > 0, op, ": expected argument 'groups' to be a positive integer, but got ", groups);
  check_pair(op, "stride", stride, 1, "positive");
  check_pair(op, "padding", padding, 0, "non-negative");
  check_pair(op, "dilation", dilation, 1, "positive");
  TORCH_CHECK(
      weight.size(1) * groups == input.size(1), op, ": expected argument 'input' to have weight.size(1) * groups = ",
      weight.size(1), " * ", groups, " = ", weight.size(1) * groups, " channels (dim 1), but got ", input.size(1),
      " channels (input shape ", input.sizes(), ", weight shape ", weight.sizes(), ")");
  TORCH_CHECK(
      weight.size(0) % groups == 0, op, ": expected argument 'weight' to have a number of output channels (dim 0) ",
      "divisible by groups = ", groups, ", but got ", weight.size(0));
  for (int64_t d = 0; d < 2; ++d) {
    const int64_t padded = input.size(d + 2) + 2 * padding[d];
    const int64_t kernel = dilation[d] * (weight.size(d + 2) - 1) + 1;
    TORCH_CHECK(
        padded >= kernel, op, ": expected argument 'input' to be at least as large as the dilated kernel of 'weight' ",
        "after padding, but got padded size ", padded, " < kernel size ", kernel, " in spatial dim ", d,
        " (input shape ", input.sizes(), ", weight shape ", weight.sizes(), ", padding ", padding, ", dilation ",
        dilation, ")");
  }
}

void check_same_shape(const char* op, const char* name, const at::Tensor& t, const std::array<int64_t, 4>& shape,
                      const at::Tensor& input) {
  TORCH_CHECK(
      t.sizes() == c10::IntArrayRef(shape), op, ": expected argument '", name, "' to have the output's shape ",
      c10::IntArrayRef(shape), ", but got ", t.sizes());
  TORCH_CHECK(
      t.scalar_type() == input.scalar_type(), op, ": expected argument '", name, "' to have the dtype of 'input' (",
      dtype_name(input.scalar_type()), "), but got ", dtype_name(t.scalar_type()));
  TORCH_CHECK(
      t.device() == input.device(), op, ": expected argument '", name, "' to be on the device of 'input' (",
      input.device(), "), but got ", t.device());
}

}  // namespace

void check_conv2d_bias_relu_args(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups) {
  check_common(kOp, input, weight, stride, padding, dilation, groups);
  if (bias.has_value() && bias->defined()) {
    const at::Tensor& b = *bias;
    TORCH_CHECK(
        b.dim() == 1 && b.size(0) == weight.size(0), kOp, ": expected argument 'bias' to be a 1-D tensor of ",
        weight.size(0), " elements (one per output channel of 'weight'), but got a tensor of shape ", b.sizes());
    TORCH_CHECK(
        b.scalar_type() == input.scalar_type(), kOp, ": expected argument 'bias' to have the dtype of 'input' (",
        dtype_name(input.scalar_type()), "), but got ", dtype_name(b.scalar_type()));
    TORCH_CHECK(
        b.device() == input.device(), kOp, ": expected argument 'bias' to be on the device of 'input' (",
        input.device(), "), but got ", b.device());
  }
}

void check_conv2d_bias_relu_backward_args(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups) {
  check_common(kBackwardOp, input, weight, stride, padding, dilation, groups);
  const auto shape = conv2d_output_size(input, weight, stride, padding, dilation);
  check_same_shape(kBackwardOp, "grad_output", grad_output, shape, input);
  const int64_t bytes = epilogue::relu_mask_bytes(shape[0] * shape[1] * shape[2] * shape[3]);
  TORCH_CHECK(
      mask.dim() == 1 && mask.size(0) == bytes && mask.scalar_type() == at::kByte, kBackwardOp,
      ": expected argument 'mask' to be the relu mask of the output (1-D, torch.uint8, ", bytes,
      " bytes), but got a ", dtype_name(mask.scalar_type()), " tensor of shape ", mask.sizes());
  TORCH_CHECK(
      mask.device() == input.device(), kBackwardOp, ": expected argument 'mask' to be on the device of 'input' (",
      input.device(), "), but got ", mask.device());
}

std::array<int64_t, 4> conv2d_output_size(
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation) {
  std::array<int64_t, 4> out{input.size(0), weight.size(0), 0, 0};
  for (int64_t d = 0; d < 2; ++d) {
    const int64_t kernel = dilation[d] * (weight.size(d + 2) - 1) + 1;
    out[d + 2] = (input.size(d + 2) + 2 * padding[d] - kernel) / stride[d] + 1;
  }
  return out;
}

at::MemoryFormat conv2d_output_memory_format(const at::Tensor& input, const at::Tensor& weight) {
  if (input.suggest_memory_format() == at::MemoryFormat::ChannelsLast ||
      weight.suggest_memory_format() == at::MemoryFormat::ChannelsLast) {
    return at::MemoryFormat::ChannelsLast;
  }
  return at::MemoryFormat::Contiguous;
}

at::Tensor dense_in_format(const at::Tensor& t, at::MemoryFormat format) {
  // The strides at::empty(sizes, format) gives (size-0 dims count as 1).
  std::array<int64_t, 4> size1{};
  for (int64_t d = 0; d < 4; ++d) size1[d] = std::max<int64_t>(t.size(d), 1);
  std::array<int64_t, 4> strides{};
  if (format == at::MemoryFormat::ChannelsLast) {
    strides[1] = 1;
    strides[3] = size1[1];
    strides[2] = strides[3] * size1[3];
    strides[0] = strides[2] * size1[2];
  } else {
    strides[3] = 1;
    strides[2] = size1[3];
    strides[1] = strides[2] * size1[2];
    strides[0] = strides[1] * size1[1];
  }
  if (t.strides() == c10::IntArrayRef(strides)) {
    return t;
  }
  at::Tensor out = at::empty(t.sizes(), t.options().memory_format(format));
  out.copy_(t);
  return out;
}

std::tuple<at::Tensor, at::Tensor> convolution_input_weight_grads(
    const at::Tensor& grad_masked,
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups,
    std::array<bool, 3> output_mask) {
  at::Tensor grad_input, grad_weight;
  if (output_mask[0] || output_mask[1]) {
    std::tie(grad_input, grad_weight, std::ignore) = at::convolution_backward(
        grad_masked, input, weight, std::nullopt, stride, padding, dilation, false, {0, 0}, groups,
        {output_mask[0], output_mask[1], false});
  }
  return {grad_input, grad_weight};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_bias_relu_backward_tail(
    const at::Tensor& grad_masked,
    const at::Tensor& grad_bias,
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups,
    std::array<bool, 3> output_mask) {
  auto [grad_input, grad_weight] =
      convolution_input_weight_grads(grad_masked, input, weight, stride, padding, dilation, groups, output_mask);
  if (grad_input.defined()) grad_input = dense_in_format(grad_input, input.suggest_memory_format());
  if (grad_weight.defined()) grad_weight = dense_in_format(grad_weight, weight.suggest_memory_format());
  return {grad_input, grad_weight, grad_bias};
}

}  // namespace torchscope
