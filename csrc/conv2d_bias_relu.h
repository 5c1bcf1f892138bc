// Argument checks, layout rules and the backward's tail of
// torchscope::conv2d_bias_relu, shared by every backend. torchscope/ops/_fake.py
// mirrors each check (same message) in the fake kernel, so eager, torch.compile
// and torch.export fail the same way.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <array>
#include <optional>
#include <tuple>

namespace torchscope {

// Checks the forward arguments; every failure names the op, the argument,
// what was found and what was expected.
void check_conv2d_bias_relu_args(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups);

// Checks the backward arguments (the forward's, plus grad_output and the
// relu mask).
void check_conv2d_bias_relu_backward_args(
    const at::Tensor& grad_output,
    const at::Tensor& mask,
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups);

// (N, C_out, H_out, W_out) of the convolution.
std::array<int64_t, 4> conv2d_output_size(
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation);

// The output layout: channels_last when the input or the weight is laid out
// channels_last (as torch.nn.functional.conv2d on CPU), else contiguous.
at::MemoryFormat conv2d_output_memory_format(const at::Tensor& input, const at::Tensor& weight);

// `t` itself when its strides are exactly the dense strides of `format`,
// else a dense copy in `format`. Keeps the kernels' output strides equal to
// the fake kernel's (torch.empty(..., memory_format=format)).
at::Tensor dense_in_format(const at::Tensor& t, at::MemoryFormat format);

// at::convolution_backward for the input and weight gradients output_mask asks
// for (output_mask[2], the bias's, is not its job: the backends sum it in their
// masked-gradient pass), from the relu-masked gradient. Gradients not asked for
// come back undefined. Differentiable: the create_graph backward uses it too.
std::tuple<at::Tensor, at::Tensor> convolution_input_weight_grads(
    const at::Tensor& grad_masked,
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups,
    std::array<bool, 3> output_mask);

// What every backend's conv2d_bias_relu_backward does after its masked-gradient
// pass: convolution_input_weight_grads, each gradient dense in the suggested
// layout of its tensor (the fake kernel's strides), and the three results
// packed with grad_bias (undefined when not asked for).
std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_bias_relu_backward_tail(
    const at::Tensor& grad_masked,
    const at::Tensor& grad_bias,
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups,
    std::array<bool, 3> output_mask);

// The CPU kernel's path switches, for tests and benchmarks: torchscope._C's
// functions _set_cpu_onednn and _set_cpu_post_op_min_elements (torchscope.cpp;
// in Python, torchscope/ops/_knobs.py's cpu_path).

// Whether the CPU forward may take oneDNN's fused path (default true). Returns
// the previous value. For benchmarks and tests of the generic path.
bool set_cpu_onednn_enabled(bool enabled);

// The smallest output (in elements) for which the CPU forward takes oneDNN's
// post-op path (smaller ones: ATen's convolution, then a relu pass). Negative:
// back to the default, 32768. Returns the previous value. For tests.
int64_t set_cpu_post_op_min_elements(int64_t elements);

// How many calls oneDNN's post-op path has served since the library loaded (the
// tests tell it from the relu pass this way: both give the same numbers).
int64_t cpu_post_op_calls();

}  // namespace torchscope
