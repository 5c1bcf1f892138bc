// Autograd of torchscope::conv2d_bias_relu, registered at the Autograd key so
// that every backend (CPU, CUDA) gets it. It lives in C++ rather than in
// Python (torch.library.register_autograd) for the per-call cost, which a small
// convolution notices (bench/conv.py's case (s)).
//
// The forward redispatches below autograd to the backend kernel (when a graph
// is recorded: conv2d_bias_relu_with_mask, which also gives the relu mask);
// the backward is the op torchscope::conv2d_bias_relu_backward, called through
// the dispatcher, so that torch.compile and torch.export record the ops.
//
// Double backward: the backward op has no autograd formula of its own. When the
// backward itself is recorded (create_graph=True, so grad mode is on inside it),
// it runs as differentiable ATen ops instead: the relu mask unpacked to a bool
// tensor, where(mask, grad, 0), its sum for the bias, and at::convolution_backward,
// which has its own double-backward formula. The mask is piecewise constant in the
// inputs (relu's second derivative is 0), as eager relu's threshold_backward has it.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "conv2d_bias_relu.h"
#include "op_handles.h"

#include <array>
#include <optional>
#include <tuple>
#include <vector>

namespace torchscope {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The backward op, through the dispatcher: the fused backward that does not record.
std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_backward(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups,
    std::array<bool, 3> output_mask) {
  return op_handles::backward().call(grad_output, mask, input, weight, stride, padding, dilation, groups, output_mask);
}

// The backend kernel (or the fake one), skipping this file's Autograd kernel.
at::Tensor forward_below_autograd(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups) {
  at::AutoDispatchBelowADInplaceOrView below;
  return op_handles::forward().call(input, weight, bias, stride, padding, dilation, groups);
}

// The relu mask (epilogue.h: bit e % 8 of byte e / 8 for output element e, in the
// output's memory order) as a bool tensor of the output's shape, in ATen ops.
at::Tensor unpack_relu_mask(const at::Tensor& mask, const at::Tensor& input, const at::Tensor& weight,
                            c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation) {
  const auto [n, c, h, w] = conv2d_output_size(input, weight, stride, padding, dilation);
  const at::Tensor bit_values =
      at::tensor(std::vector<uint8_t>{1, 2, 4, 8, 16, 32, 64, 128}, mask.options().device(at::kCPU))
          .to(mask.device());
  const at::Tensor bits = at::bitwise_and(mask.unsqueeze(1), bit_values).ne(0).flatten().slice(0, 0, n * c * h * w);
  if (conv2d_output_memory_format(input, weight) == at::MemoryFormat::ChannelsLast) {
    return bits.view({n, h, w, c}).permute({0, 3, 1, 2});
  }
  return bits.view({n, c, h, w});
}

// The backward in differentiable ATen ops, for create_graph=True (see the top of
// the file); the same numbers as conv2d_bias_relu_backward up to summation order.
std::tuple<at::Tensor, at::Tensor, at::Tensor> differentiable_backward(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups,
    std::array<bool, 3> output_mask) {
  check_conv2d_bias_relu_backward_args(grad_output, mask, input, weight, stride, padding, dilation, groups);
  const at::Tensor passed = unpack_relu_mask(mask, input, weight, stride, padding, dilation);
  const at::Tensor grad_masked = at::where(passed, grad_output, 0);
  at::Tensor grad_bias;
  if (output_mask[2]) grad_bias = grad_masked.sum({0, 2, 3});
  auto [grad_input, grad_weight] =
      convolution_input_weight_grads(grad_masked, input, weight, stride, padding, dilation, groups, output_mask);
  return {grad_input, grad_weight, grad_bias};
}

class Conv2dBiasRelu : public torch::autograd::Function<Conv2dBiasRelu> {
 public:
  // Saved for backward: input and weight (for the convolution's gradients)
  // and the 1-bit relu mask (epilogue.h), not the output: 1/32 of its bytes
  // in float32. The bias is not needed.
  static at::Tensor forward(
      AutogradContext* ctx,
      const at::Tensor& input,
      const at::Tensor& weight,
      const std::optional<at::Tensor>& bias,
      c10::IntArrayRef stride,
      c10::IntArrayRef padding,
      c10::IntArrayRef dilation,
      int64_t groups) {
    at::Tensor output, mask;
    {
      at::AutoDispatchBelowADInplaceOrView below;
      std::tie(output, mask) = op_handles::with_mask().call(input, weight, bias, stride, padding, dilation, groups);
    }
    ctx->save_for_backward({input, weight, mask});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    // needs_input_grad counts the tensor arguments that were given: input,
    // weight, then the bias when there was one.
    const std::array<bool, 3> output_mask{
        ctx->needs_input_grad(0), ctx->needs_input_grad(1), has_bias && ctx->needs_input_grad(2)};
    const std::vector<int64_t> stride = ctx->saved_data["stride"].toIntVector();
    const std::vector<int64_t> padding = ctx->saved_data["padding"].toIntVector();
    const std::vector<int64_t> dilation = ctx->saved_data["dilation"].toIntVector();
    const int64_t groups = ctx->saved_data["groups"].toInt();
    // Grad mode is on inside a backward only when it is recorded (create_graph=True).
    auto backward = c10::GradMode::is_enabled() ? &differentiable_backward : &fused_backward;
    auto [grad_input, grad_weight, grad_bias] =
        backward(grad_outputs[0], saved[2], saved[0], saved[1], stride, padding, dilation, groups, output_mask);
    // One gradient per forward argument; none for the integer arguments.
    return {grad_input, grad_weight, grad_bias, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool any_requires_grad(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  return input.requires_grad() || weight.requires_grad() ||
      (bias.has_value() && bias->defined() && bias->requires_grad());
}

at::Tensor conv2d_bias_relu_autograd(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups) {
  // Nothing to record (no_grad, or no argument requires grad): skip building
  // the graph node, as PyTorch's own operators do.
  if (!c10::GradMode::is_enabled() || !any_requires_grad(input, weight, bias)) {
    return forward_below_autograd(input, weight, bias, stride, padding, dilation, groups);
  }
  return Conv2dBiasRelu::apply(input, weight, bias, stride, padding, dilation, groups);
}

}  // namespace

TORCH_LIBRARY_IMPL(torchscope, Autograd, m) {
  m.impl("conv2d_bias_relu", &conv2d_bias_relu_autograd);
}

}  // namespace torchscope
