// The element-wise epilogue of torchscope::conv2d_bias_relu, shared by the CPU
// and CUDA kernels so that both compute exactly the same numbers.
//
// Forward:  y = relu(x + b)          (x: convolution output, b: its channel's bias)
// Backward: g_x = out > 0 ? g : 0    (relu mask from the saved output), and the
//           bias gradient is the sum of g_x over batch and space.
//
// NaN follows torch.relu and torch's threshold_backward: relu(NaN) = NaN and a
// NaN output lets the gradient through.
#pragma once

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

// The gradient through the relu, given the relu's output.
template <typename T>
TS_HOST_DEVICE T relu_grad(T grad, T out) {
  return out <= T(0) ? T(0) : grad;
}

}  // namespace epilogue
}  // namespace torchscope
