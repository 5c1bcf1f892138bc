// CUDA kernels of torchscope::conv2d_bias_relu and its backward.
//
// Forward: cuDNN's convolution (through at::convolution, without bias), then
// one in-place pass of the shared bias+relu epilogue (epilogue.h).
// Training forward: the same epilogue pass also writes the 1-bit relu mask.
// Backward: one pass computes the relu-masked gradient and per-block partial
// sums of the bias gradient (a fixed reduction order: deterministic, no
// atomics); then at::convolution_backward computes only the input and weight
// gradients that were asked for.
//
// Only c10/cuda headers are used (not ATen/cuda/CUDAContext.h, which pulls in
// cuBLAS/cuSPARSE headers), so this file compiles against a CUDA toolkit that
// has just the runtime, as tests/test_cuda_build.py does.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/convolution.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "conv2d_bias_relu.h"
#include "epilogue.h"

namespace torchscope {
namespace {

constexpr int kThreads = 256;
// The most blocks a launch asks for; the kernels loop (grid-stride) over the rest,
// so no grid size is computed from an unbounded count.
constexpr int64_t kMaxBlocks = 65535 * 8;

int64_t blocks_for(int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
}

// ---------------------------------------------------------------- forward

// y = relu(y + bias[channel]) in place. Channel of element i: (i / hw) % c for
// contiguous, i % c for channels_last (hw = 1 there).
template <typename scalar_t>
__global__ void bias_relu_kernel(
    scalar_t* __restrict__ y,
    const scalar_t* __restrict__ bias,
    int64_t numel,
    int64_t c,
    int64_t hw) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const opmath_t b = bias == nullptr ? opmath_t(0) : static_cast<opmath_t>(bias[(i / hw) % c]);
    y[i] = static_cast<scalar_t>(epilogue::bias_relu<opmath_t>(static_cast<opmath_t>(y[i]), b));
  }
}

// As bias_relu_kernel, and writes the relu mask (epilogue.h): each warp packs
// the bits of its 32 consecutive elements with a ballot, and lanes 0-3 store
// its 4 bytes. The loop runs uniformly over the block (all lanes take part in
// the ballot); kThreads is a multiple of 32, so warps start at a multiple of 32.
template <typename scalar_t>
__global__ void bias_relu_mask_kernel(
    scalar_t* __restrict__ y,
    const scalar_t* __restrict__ bias,
    uint8_t* __restrict__ mask,
    int64_t numel,
    int64_t c,
    int64_t hw) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t bytes = epilogue::relu_mask_bytes(numel);
  const int lane = threadIdx.x % 32;
  for (int64_t base = blockIdx.x * static_cast<int64_t>(blockDim.x); base < numel;
       base += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = base + threadIdx.x;
    bool passed = false;
    if (i < numel) {
      const opmath_t b = bias == nullptr ? opmath_t(0) : static_cast<opmath_t>(bias[(i / hw) % c]);
      const opmath_t v = epilogue::bias_relu<opmath_t>(static_cast<opmath_t>(y[i]), b);
      y[i] = static_cast<scalar_t>(v);
      passed = epilogue::relu_passed<opmath_t>(static_cast<opmath_t>(static_cast<scalar_t>(v)));
    }
    const unsigned bits = __ballot_sync(0xffffffffu, passed);
    const int64_t byte = (i - lane) / 8 + lane;
    if (lane < 4 && byte < bytes) mask[byte] = static_cast<uint8_t>(bits >> (8 * lane));
  }
}

// The output and, when `mask` is given, its relu mask.
at::Tensor forward_cuda(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups,
    at::Tensor* mask) {
  check_conv2d_bias_relu_args(input, weight, bias, stride, padding, dilation, groups);
  c10::cuda::CUDAGuard guard(input.device());
  const at::MemoryFormat format = conv2d_output_memory_format(input, weight);
  at::Tensor out = at::convolution(input, weight, std::nullopt, stride, padding, dilation, false, {0, 0}, groups);
  out = dense_in_format(out, format);
  const int64_t numel = out.numel();
  if (mask != nullptr) *mask = at::empty({epilogue::relu_mask_bytes(numel)}, out.options().dtype(at::kByte));
  if (numel == 0) return out;
  const at::Tensor b = (bias.has_value() && bias->defined()) ? bias->contiguous() : at::Tensor();
  const int64_t c = out.size(1);
  const int64_t hw = format == at::MemoryFormat::ChannelsLast ? 1 : out.size(2) * out.size(3);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, out.scalar_type(), "conv2d_bias_relu_cuda", [&] {
    const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    if (mask == nullptr) {
      bias_relu_kernel<scalar_t><<<blocks_for(numel), kThreads, 0, stream>>>(out.data_ptr<scalar_t>(), bp, numel, c, hw);
    } else {
      bias_relu_mask_kernel<scalar_t><<<blocks_for(numel), kThreads, 0, stream>>>(
          out.data_ptr<scalar_t>(), bp, mask->data_ptr<uint8_t>(), numel, c, hw);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor conv2d_bias_relu_cuda(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups) {
  return forward_cuda(input, weight, bias, stride, padding, dilation, groups, nullptr);
}

std::tuple<at::Tensor, at::Tensor> conv2d_bias_relu_with_mask_cuda(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups) {
  at::Tensor mask;
  at::Tensor out = forward_cuda(input, weight, bias, stride, padding, dilation, groups, &mask);
  return {out, mask};
}

// --------------------------------------------------------------- backward

template <typename T>
__device__ T block_sum(T v, T* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  const T total = shared[0];
  __syncthreads();
  return total;
}

// Contiguous layout: block b takes the (n, c) planes b, b + gridDim.x, ... of hw
// elements (a grid-stride loop: n * c may pass gridDim.x's limit); each plane's
// sum goes to partial[plane]. The loop's bounds are the same for the whole block,
// so every thread reaches block_sum's barriers.

template <typename scalar_t, typename opmath_t>
__global__ void relu_grad_planes_kernel(
    const scalar_t* __restrict__ g,
    const uint8_t* __restrict__ mask,
    scalar_t* __restrict__ gm,
    opmath_t* __restrict__ partial,
    int64_t planes,
    int64_t hw) {
  __shared__ opmath_t shared[kThreads];
  for (int64_t plane = blockIdx.x; plane < planes; plane += gridDim.x) {
    const int64_t base = plane * hw;
    opmath_t sum = 0;
    for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) {
      const opmath_t v =
          epilogue::relu_grad<opmath_t>(static_cast<opmath_t>(g[base + i]), epilogue::mask_bit(mask, base + i));
      gm[base + i] = static_cast<scalar_t>(v);
      sum += v;
    }
    sum = block_sum(sum, shared);
    if (partial != nullptr && threadIdx.x == 0) partial[plane] = sum;
  }
}

// channels_last: block b takes rows [b * rows_per_block, ...) of c channels;
// thread t sums channels t, t + blockDim, ... over those rows (adjacent
// threads read adjacent channels: coalesced) into partial[b, channel].
template <typename scalar_t, typename opmath_t>
__global__ void relu_grad_rows_kernel(
    const scalar_t* __restrict__ g,
    const uint8_t* __restrict__ mask,
    scalar_t* __restrict__ gm,
    opmath_t* __restrict__ partial,
    int64_t rows,
    int64_t c,
    int64_t rows_per_block) {
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * rows_per_block;
  const int64_t r1 = min(rows, r0 + rows_per_block);
  for (int64_t k = threadIdx.x; k < c; k += blockDim.x) {
    opmath_t sum = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r * c + k;
      const opmath_t v = epilogue::relu_grad<opmath_t>(static_cast<opmath_t>(g[i]), epilogue::mask_bit(mask, i));
      gm[i] = static_cast<scalar_t>(v);
      sum += v;
    }
    if (partial != nullptr) partial[blockIdx.x * c + k] = sum;
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_bias_relu_backward_cuda(
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
  c10::cuda::CUDAGuard guard(input.device());
  const at::MemoryFormat format = conv2d_output_memory_format(input, weight);
  const at::Tensor grad = dense_in_format(grad_output, format);
  const at::Tensor bits = mask.contiguous();
  at::Tensor grad_masked = at::empty(grad.sizes(), grad.options().memory_format(format));
  at::Tensor grad_bias;
  const int64_t n = grad.size(0), c = grad.size(1), hw = grad.size(2) * grad.size(3);
  const auto acc_type = at::toOpMathType(grad.scalar_type());
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (grad.numel() == 0) {
    grad_masked.zero_();
    if (output_mask[2]) grad_bias = at::zeros({c}, grad.options());
  } else {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad.scalar_type(), "conv2d_bias_relu_backward_cuda", [&] {
      using opmath_t = at::opmath_type<scalar_t>;
      at::Tensor partial;
      if (format == at::MemoryFormat::ChannelsLast) {
        const int64_t rows = n * hw;
        const int64_t rows_per_block = std::max<int64_t>(1, std::min<int64_t>(256, rows / 1024));
        const int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
        if (output_mask[2]) partial = at::empty({blocks, c}, grad.options().dtype(acc_type));
        const int threads = static_cast<int>(std::min<int64_t>(kThreads, ((c + 31) / 32) * 32));
        relu_grad_rows_kernel<scalar_t, opmath_t><<<blocks, threads, 0, stream>>>(
            grad.const_data_ptr<scalar_t>(), bits.const_data_ptr<uint8_t>(), grad_masked.data_ptr<scalar_t>(),
            partial.defined() ? partial.data_ptr<opmath_t>() : nullptr, rows, c, rows_per_block);
      } else {
        if (output_mask[2]) partial = at::empty({n, c}, grad.options().dtype(acc_type));
        const int64_t planes = n * c;
        relu_grad_planes_kernel<scalar_t, opmath_t><<<std::min(planes, kMaxBlocks), kThreads, 0, stream>>>(
            grad.const_data_ptr<scalar_t>(), bits.const_data_ptr<uint8_t>(), grad_masked.data_ptr<scalar_t>(),
            partial.defined() ? partial.data_ptr<opmath_t>() : nullptr, planes, hw);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (partial.defined()) grad_bias = partial.sum(0).to(grad.scalar_type());
    });
  }
  return conv2d_bias_relu_backward_tail(
      grad_masked, grad_bias, input, weight, stride, padding, dilation, groups, output_mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(torchscope, CUDA, m) {
  m.impl("conv2d_bias_relu", &conv2d_bias_relu_cuda);
  m.impl("conv2d_bias_relu_with_mask", &conv2d_bias_relu_with_mask_cuda);
  m.impl("conv2d_bias_relu_backward", &conv2d_bias_relu_backward_cuda);
}

}  // namespace torchscope
