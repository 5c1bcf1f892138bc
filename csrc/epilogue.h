// The element-wise epilogue of torchscope::conv2d_bias_relu, shared by the CPU
// and CUDA kernels so that both compute exactly the same numbers.
//
// Forward:  y = relu(x + b)          (x: convolution output, b: its channel's bias)
// Backward: g_x = passed ? g : 0     (passed: the bit of the relu mask saved by
//           the forward), and the bias gradient is the sum of g_x over batch
//           and space.
//
// The relu mask holds 1 bit per output element, in the output's memory order:
// bit (i % 8) of byte (i / 8) is set when element i of the output is > 0 or
// NaN. It is all the backward needs from the forward besides the convolution's
// input and weight: 1/32 of the float32 output.
//
// NaN follows torch.relu and torch's threshold_backward: relu(NaN) = NaN and a
// NaN output lets the gradient through.
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define TS_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define TS_HOST_DEVICE inline
#endif

namespace torchscope {
namespace epilogue {

// relu(x + b), computed in T (the op-math type: float for bfloat16/half).
template <typename T>
TS_HOST_DEVICE T bias_relu(T x, T b) {
  const T v = x + b;
  return !(v <= T(0)) ? v : T(0);
}

// The relu mask's bit for one output element.
template <typename T>
TS_HOST_DEVICE bool relu_passed(T out) {
  return !(out <= T(0));
}

// The gradient through the relu, given the element's mask bit.
template <typename T>
TS_HOST_DEVICE T relu_grad(T grad, bool passed) {
  return passed ? grad : T(0);
}

// Bytes of the relu mask of a tensor of `numel` elements.
TS_HOST_DEVICE constexpr long long relu_mask_bytes(long long numel) {
  return (numel + 7) / 8;
}

// The relu mask's bit for output element e (in the output's memory order):
// bit e % 8 of byte e / 8.
TS_HOST_DEVICE bool mask_bit(const uint8_t* bits, int64_t e) {
  return (bits[e >> 3] >> (e & 7)) & 1;
}

}  // namespace epilogue
}  // namespace torchscope
