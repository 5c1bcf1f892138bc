// CPU kernels of torchscope::conv2d_bias_relu and its backward.
//
// Forward, two paths:
//  * float32 / bfloat16: oneDNN's convolution with the bias and the relu as
//    post-ops (ATen's mkldnn::_convolution_pointwise): the relu is applied
//    while the output tile is still in cache, so the epilogue costs ~nothing.
//  * everything else (float64, float16, oneDNN unavailable or refusing the
//    case): at::convolution without bias, then one in-place, parallel pass of
//    the shared bias+relu epilogue (epilogue.h).
// Why oneDNN first: bench/conv.py measures both paths side by side (float32,
// 2 threads). Forward time over the bias-free convolution alone, oneDNN post-op
// vs convolution + our epilogue pass: 1.01 vs 1.02 on (a) 8x32->32 5x5 64x64,
// 1.01 vs 1.03-1.05 on (b) 32x64->64 3x3 56x56, 1.07-1.10 vs 1.16-1.38 on the
// memory-bound (c) 1x3->32 3x3 224x224. A separate pass over the output can
// never be free; a post-op nearly is. oneDNN's relu turns NaN into 0, though
// (torch.relu keeps NaN); ops.py documents it.
// Backward: one parallel pass computes the relu-masked gradient and the bias
// gradient together, then at::convolution_backward computes only the input and
// weight gradients that were asked for.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "conv2d_bias_relu.h"
#include "epilogue.h"

namespace torchscope {
namespace {

// Elements per parallel task: small enough to split the 224x224 planes over
// two threads, large enough that scheduling costs nothing.
constexpr int64_t kGrain = 32768;

// ------------------------------------------------- element-wise loops
// Restrict-qualified, `omp simd` loops over one row (channels_last: the c
// channels of a pixel) or one plane (contiguous: the h*w pixels of a channel).
// The *_impl templates are the loops; the float overloads below are compiled
// for AVX2 and for the baseline, and the loader picks one for this CPU
// (GCC target_clones), since the extension is built for the baseline ISA.

template <typename scalar_t, typename opmath_t>
inline void bias_relu_row_impl(scalar_t* __restrict y, const opmath_t* __restrict b, int64_t len) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    y[i] = static_cast<scalar_t>(epilogue::bias_relu<opmath_t>(static_cast<opmath_t>(y[i]), b[i]));
  }
}

template <typename scalar_t, typename opmath_t>
inline void bias_relu_plane_impl(scalar_t* __restrict y, opmath_t b, int64_t len) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    y[i] = static_cast<scalar_t>(epilogue::bias_relu<opmath_t>(static_cast<opmath_t>(y[i]), b));
  }
}

// gm = relu_grad(g, o); acc += gm (when acc is not null).
template <typename scalar_t, typename opmath_t>
inline void relu_grad_row_impl(
    const scalar_t* __restrict g,
    const scalar_t* __restrict o,
    scalar_t* __restrict gm,
    opmath_t* __restrict acc,
    int64_t len) {
  if (acc == nullptr) {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) {
      gm[i] = static_cast<scalar_t>(
          epilogue::relu_grad<opmath_t>(static_cast<opmath_t>(g[i]), static_cast<opmath_t>(o[i])));
    }
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    const opmath_t v = epilogue::relu_grad<opmath_t>(static_cast<opmath_t>(g[i]), static_cast<opmath_t>(o[i]));
    gm[i] = static_cast<scalar_t>(v);
    acc[i] += v;
  }
}

// gm = relu_grad(g, o); returns the sum of gm.
template <typename scalar_t, typename opmath_t>
inline opmath_t relu_grad_plane_impl(
    const scalar_t* __restrict g,
    const scalar_t* __restrict o,
    scalar_t* __restrict gm,
    int64_t len) {
  opmath_t sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < len; ++i) {
    const opmath_t v = epilogue::relu_grad<opmath_t>(static_cast<opmath_t>(g[i]), static_cast<opmath_t>(o[i]));
    gm[i] = static_cast<scalar_t>(v);
    sum += v;
  }
  return sum;
}

// Whole blocks of rows / planes per call, so that the AVX2-or-baseline choice
// (an indirect call) is made once per parallel task, not once per row.

// rows x c elements (channels_last), bias b[0..c).
template <typename scalar_t, typename opmath_t>
inline void bias_relu_rows_impl(scalar_t* y, const opmath_t* b, int64_t rows, int64_t c) {
  for (int64_t r = 0; r < rows; ++r) bias_relu_row_impl(y + r * c, b, c);
}
// Planes [p0, p1) of hw elements (contiguous), plane p has bias b[p % c].
template <typename scalar_t, typename opmath_t>
inline void bias_relu_planes_impl(scalar_t* y, const opmath_t* b, int64_t p0, int64_t p1, int64_t hw, int64_t c) {
  for (int64_t p = p0; p < p1; ++p) bias_relu_plane_impl(y + p * hw, b[p % c], hw);
}
template <typename scalar_t, typename opmath_t>
inline void relu_grad_rows_impl(
    const scalar_t* g, const scalar_t* o, scalar_t* gm, opmath_t* acc, int64_t rows, int64_t c) {
  for (int64_t r = 0; r < rows; ++r) relu_grad_row_impl(g + r * c, o + r * c, gm + r * c, acc, c);
}
// Planes [p0, p1); sums[p] = the sum of plane p's masked gradient.
template <typename scalar_t, typename opmath_t>
inline void relu_grad_planes_impl(
    const scalar_t* g, const scalar_t* o, scalar_t* gm, opmath_t* sums, int64_t p0, int64_t p1, int64_t hw) {
  for (int64_t p = p0; p < p1; ++p) {
    sums[p] = relu_grad_plane_impl<scalar_t, opmath_t>(g + p * hw, o + p * hw, gm + p * hw, hw);
  }
}

template <typename scalar_t, typename opmath_t>
void bias_relu_rows(scalar_t* y, const opmath_t* b, int64_t rows, int64_t c) {
  bias_relu_rows_impl(y, b, rows, c);
}
template <typename scalar_t, typename opmath_t>
void bias_relu_planes(scalar_t* y, const opmath_t* b, int64_t p0, int64_t p1, int64_t hw, int64_t c) {
  bias_relu_planes_impl(y, b, p0, p1, hw, c);
}
template <typename scalar_t, typename opmath_t>
void relu_grad_rows(const scalar_t* g, const scalar_t* o, scalar_t* gm, opmath_t* acc, int64_t rows, int64_t c) {
  relu_grad_rows_impl(g, o, gm, acc, rows, c);
}
template <typename scalar_t, typename opmath_t>
void relu_grad_planes(
    const scalar_t* g, const scalar_t* o, scalar_t* gm, opmath_t* sums, int64_t p0, int64_t p1, int64_t hw) {
  relu_grad_planes_impl(g, o, gm, sums, p0, p1, hw);
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define TS_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TS_CPU_CLONES
#endif

TS_CPU_CLONES void bias_relu_rows(float* y, const float* b, int64_t rows, int64_t c) {
  bias_relu_rows_impl(y, b, rows, c);
}
TS_CPU_CLONES void bias_relu_planes(float* y, const float* b, int64_t p0, int64_t p1, int64_t hw, int64_t c) {
  bias_relu_planes_impl(y, b, p0, p1, hw, c);
}
TS_CPU_CLONES void relu_grad_rows(const float* g, const float* o, float* gm, float* acc, int64_t rows, int64_t c) {
  relu_grad_rows_impl(g, o, gm, acc, rows, c);
}
TS_CPU_CLONES void relu_grad_planes(
    const float* g, const float* o, float* gm, float* sums, int64_t p0, int64_t p1, int64_t hw) {
  relu_grad_planes_impl(g, o, gm, sums, p0, p1, hw);
}

// ---------------------------------------------------------------- forward

// out = relu(out + bias) in place; `out` is dense in `format`.
template <typename scalar_t>
void bias_relu_inplace(at::Tensor& out, const at::Tensor& bias, at::MemoryFormat format) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t n = out.size(0), c = out.size(1), hw = out.size(2) * out.size(3);
  scalar_t* data = out.data_ptr<scalar_t>();
  std::vector<opmath_t> b(c, opmath_t(0));
  if (bias.defined()) {
    const at::Tensor bc = bias.contiguous();
    const scalar_t* bp = bc.const_data_ptr<scalar_t>();
    for (int64_t i = 0; i < c; ++i) b[i] = static_cast<opmath_t>(bp[i]);
  }
  if (format == at::MemoryFormat::ChannelsLast) {
    // Rows of c channels.
    at::parallel_for(0, n * hw, std::max<int64_t>(1, kGrain / std::max<int64_t>(c, 1)), [&](int64_t begin, int64_t end) {
      bias_relu_rows(data + begin * c, b.data(), end - begin, c);
    });
  } else {
    // Planes of hw elements, one channel each.
    at::parallel_for(0, n * c, std::max<int64_t>(1, kGrain / std::max<int64_t>(hw, 1)), [&](int64_t begin, int64_t end) {
      bias_relu_planes(data, b.data(), begin, end, hw, c);
    });
  }
}

at::Tensor generic_forward(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups,
    at::MemoryFormat format) {
  at::Tensor out = at::convolution(input, weight, std::nullopt, stride, padding, dilation, false, {0, 0}, groups);
  out = dense_in_format(out, format);
  const at::Tensor b = bias.has_value() ? *bias : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, out.scalar_type(), "conv2d_bias_relu_cpu", [&] {
    bias_relu_inplace<scalar_t>(out, b, format);
  });
  return out;
}

// oneDNN's fused path, when it exists and takes this dtype. A dtype that
// oneDNN refused once (for example bfloat16 on a CPU without the
// instructions) goes the generic way from then on.
std::atomic<bool> onednn_refused_bf16{false};
std::atomic<bool> onednn_enabled{true};

bool onednn_applies(const at::Tensor& input) {
  if (!onednn_enabled.load(std::memory_order_relaxed)) return false;
  if (!at::hasMKLDNN() || !at::globalContext().userEnabledMkldnn()) return false;
  if (input.numel() == 0) return false;
  switch (input.scalar_type()) {
    case at::kFloat: return true;
    case at::kBFloat16: return !onednn_refused_bf16.load(std::memory_order_relaxed);
    default: return false;
  }
}

using PointwiseFn = at::Tensor(
    const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, c10::IntArrayRef, c10::IntArrayRef,
    c10::IntArrayRef, int64_t, c10::string_view, c10::List<std::optional<c10::Scalar>>,
    std::optional<c10::string_view>);

const c10::TypedOperatorHandle<PointwiseFn>* pointwise_op() {
  static const c10::TypedOperatorHandle<PointwiseFn>* op = []() -> const c10::TypedOperatorHandle<PointwiseFn>* {
    auto handle = c10::Dispatcher::singleton().findSchema({"mkldnn::_convolution_pointwise", ""});
    if (!handle.has_value()) return nullptr;
    return new c10::TypedOperatorHandle<PointwiseFn>(handle->typed<PointwiseFn>());
  }();
  return op;
}

at::Tensor onednn_forward(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups) {
  const auto* op = pointwise_op();
  if (op == nullptr) return at::Tensor();
  try {
    return op->call(input, weight, bias, padding, stride, dilation, groups, "relu", c10::List<std::optional<c10::Scalar>>(), std::nullopt);
  } catch (const c10::Error&) {
    if (input.scalar_type() == at::kBFloat16) {
      onednn_refused_bf16.store(true, std::memory_order_relaxed);
    }
    return at::Tensor();
  }
}

at::Tensor conv2d_bias_relu_cpu(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups) {
  check_conv2d_bias_relu_args(input, weight, bias, stride, padding, dilation, groups);
  const at::MemoryFormat format = conv2d_output_memory_format(input, weight);
  if (onednn_applies(input)) {
    at::Tensor out = onednn_forward(input, weight, bias, stride, padding, dilation, groups);
    if (out.defined()) return dense_in_format(out, format);
  }
  return generic_forward(input, weight, bias, stride, padding, dilation, groups, format);
}

// --------------------------------------------------------------- backward

// grad_masked = relu_grad(grad, out); if want_bias, grad_bias[k] = sum of
// grad_masked over batch and space (accumulated in opmath, in a fixed order,
// so the result does not depend on the number of threads).
template <typename scalar_t>
void relu_grad_and_bias_grad(
    const at::Tensor& grad,
    const at::Tensor& out,
    at::Tensor& grad_masked,
    at::Tensor& grad_bias,
    at::MemoryFormat format) {
  using opmath_t = at::opmath_type<scalar_t>;
  const bool want_bias = grad_bias.defined();
  const int64_t n = out.size(0), c = out.size(1), hw = out.size(2) * out.size(3);
  const scalar_t* g = grad.const_data_ptr<scalar_t>();
  const scalar_t* o = out.const_data_ptr<scalar_t>();
  scalar_t* gm = grad_masked.data_ptr<scalar_t>();

  if (format == at::MemoryFormat::ChannelsLast) {
    const int64_t rows = n * hw;
    const int64_t chunk = std::max<int64_t>(1, kGrain / std::max<int64_t>(c, 1));
    const int64_t chunks = (rows + chunk - 1) / chunk;
    std::vector<opmath_t> partial(want_bias ? chunks * c : 0, opmath_t(0));
    at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t ch = cb; ch < ce; ++ch) {
        opmath_t* acc = want_bias ? partial.data() + ch * c : nullptr;
        const int64_t r0 = ch * chunk, r1 = std::min(rows, r0 + chunk);
        relu_grad_rows(g + r0 * c, o + r0 * c, gm + r0 * c, acc, r1 - r0, c);
      }
    });
    if (want_bias) {
      std::vector<opmath_t> total(c, opmath_t(0));
      for (int64_t ch = 0; ch < chunks; ++ch) {
        for (int64_t k = 0; k < c; ++k) total[k] += partial[ch * c + k];
      }
      scalar_t* gb = grad_bias.data_ptr<scalar_t>();
      for (int64_t k = 0; k < c; ++k) gb[k] = static_cast<scalar_t>(total[k]);
    }
    return;
  }

  // Contiguous: planes of hw elements; each plane's sum goes to its own slot.
  std::vector<opmath_t> plane_sum(n * c, opmath_t(0));
  at::parallel_for(0, n * c, std::max<int64_t>(1, kGrain / std::max<int64_t>(hw, 1)), [&](int64_t begin, int64_t end) {
    relu_grad_planes(g, o, gm, plane_sum.data(), begin, end, hw);
  });
  if (want_bias) {
    scalar_t* gb = grad_bias.data_ptr<scalar_t>();
    for (int64_t k = 0; k < c; ++k) {
      opmath_t s = 0;
      for (int64_t b = 0; b < n; ++b) s += plane_sum[b * c + k];
      gb[k] = static_cast<scalar_t>(s);
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_bias_relu_backward_cpu(
    const at::Tensor& grad_output,
    const at::Tensor& output,
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups,
    std::array<bool, 3> output_mask) {
  check_conv2d_bias_relu_backward_args(grad_output, output, input, weight, stride, padding, dilation, groups);
  const at::MemoryFormat format = conv2d_output_memory_format(input, weight);
  const at::Tensor grad = dense_in_format(grad_output, format);
  const at::Tensor out = dense_in_format(output, format);
  at::Tensor grad_masked = at::empty(out.sizes(), out.options().memory_format(format));
  at::Tensor grad_bias;
  if (output_mask[2]) grad_bias = at::empty({out.size(1)}, out.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, out.scalar_type(), "conv2d_bias_relu_backward_cpu", [&] {
    relu_grad_and_bias_grad<scalar_t>(grad, out, grad_masked, grad_bias, format);
  });
  at::Tensor grad_input, grad_weight;
  if (output_mask[0] || output_mask[1]) {
    std::tie(grad_input, grad_weight, std::ignore) = at::convolution_backward(
        grad_masked, input, weight, std::nullopt, stride, padding, dilation, false, {0, 0}, groups,
        {output_mask[0], output_mask[1], false});
  }
  if (grad_input.defined()) grad_input = dense_in_format(grad_input, input.suggest_memory_format());
  if (grad_weight.defined()) grad_weight = dense_in_format(grad_weight, weight.suggest_memory_format());
  return {grad_input, grad_weight, grad_bias};
}

}  // namespace

bool set_cpu_onednn_enabled(bool enabled) {
  return onednn_enabled.exchange(enabled);
}

TORCH_LIBRARY_IMPL(torchscope, CPU, m) {
  m.impl("conv2d_bias_relu", &conv2d_bias_relu_cpu);
  m.impl("conv2d_bias_relu_backward", &conv2d_bias_relu_backward_cpu);
}

}  // namespace torchscope
