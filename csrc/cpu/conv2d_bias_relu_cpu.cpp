// CPU kernels of torchscope::conv2d_bias_relu and its backward.
//
// Forward (no graph recorded), three paths:
//  * float32 / bfloat16, outputs of 32768 elements or more that cannot hold a NaN
//    (post_op_is_exact): oneDNN's convolution
//    with the bias and the relu as post-ops (ATen's
//    mkldnn::_convolution_pointwise): the relu is applied while the output tile
//    is still in cache, so the epilogue costs ~nothing.
//  * float32 / bfloat16, the rest: ATen's convolution with its bias, then
//    one in-place relu pass; the post-op variant has a fixed per-call cost that
//    these sizes do not pay back (kPostOpMinElements).
//  * everything else (float64, float16, oneDNN unavailable or refusing the
//    case): at::convolution without bias, then one in-place, parallel pass of
//    the shared bias+relu epilogue (epilogue.h).
// Why oneDNN first: bench/conv.py measures both paths side by side (float32,
// 2 threads). Forward time over the bias-free convolution alone, oneDNN post-op
// vs convolution + our epilogue pass: 1.01 vs 1.02 on (a) 8x32->32 5x5 64x64,
// 1.01 vs 1.03-1.05 on (b) 32x64->64 3x3 56x56, 1.07-1.10 vs 1.16-1.38 on the
// memory-bound (c) 1x3->32 3x3 224x224. A separate pass over the output can
// never be free; a post-op nearly is. oneDNN's relu turns NaN into 0, though
// (torch.relu keeps NaN), so a call whose output could hold a NaN takes the second
// path (post_op_is_exact).
// Training forward (conv2d_bias_relu_with_mask): a pass over the output is
// needed anyway, to pack its 1-bit relu mask (the backward's only need from the
// forward besides input and weight: 1/32 of a float32 output). For float32 /
// bfloat16 the relu goes into that pass, after ATen's convolution with its bias;
// otherwise the generic forward, then the mask pass.
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
#include <cmath>
#include <limits>
#include <vector>

#include "conv2d_bias_relu.h"
#include "epilogue.h"
#include "relu_mask.h"

namespace torchscope {
namespace {

// Elements per parallel task: small enough to split the 224x224 planes over
// two threads, large enough that scheduling costs nothing.
constexpr int64_t kGrain = 32768;

// ------------------------------------------------- element-wise loops
// The forward's epilogue: restrict-qualified, `omp simd` loops over one row
// (channels_last: the c channels of a pixel) or one plane (contiguous: the h*w
// pixels of a channel). The backward's loops over the relu mask are in
// relu_mask.h.
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
void bias_relu_rows(scalar_t* y, const opmath_t* b, int64_t rows, int64_t c) {
  bias_relu_rows_impl(y, b, rows, c);
}
template <typename scalar_t, typename opmath_t>
void bias_relu_planes(scalar_t* y, const opmath_t* b, int64_t p0, int64_t p1, int64_t hw, int64_t c) {
  bias_relu_planes_impl(y, b, p0, p1, hw, c);
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

// at::convolution, then one in-place pass of the epilogue. With bias_in_convolution
// the convolution adds the bias (as ATen's oneDNN convolution does: the numbers of
// the post-op path and of the training forward) and the pass is the relu alone;
// without, the pass adds the bias (the generic path, every dtype).
at::Tensor generic_forward(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups,
    at::MemoryFormat format,
    bool bias_in_convolution = false) {
  at::Tensor out = at::convolution(
      input, weight, bias_in_convolution ? bias : std::nullopt, stride, padding, dilation, false, {0, 0}, groups);
  out = dense_in_format(out, format);
  const at::Tensor b = !bias_in_convolution && bias.has_value() ? *bias : at::Tensor();
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
  // oneDNN reads the bias through its data pointer as a dense vector: a strided
  // bias (a slice b[::2], an expanded scalar) gave wrong sums. Rare, so the common
  // call pays one is_contiguous() test and no copy.
  if (bias.has_value() && bias->defined() && !bias->is_contiguous()) {
    return onednn_forward(input, weight, bias->contiguous(), stride, padding, dilation, groups);
  }
  try {
    return op->call(input, weight, bias, padding, stride, dilation, groups, "relu", c10::List<std::optional<c10::Scalar>>(), std::nullopt);
  } catch (const c10::Error&) {
    if (input.scalar_type() == at::kBFloat16) {
      onednn_refused_bf16.store(true, std::memory_order_relaxed);
    }
    return at::Tensor();
  }
}

// ------------------------------------------------ when the post-op is exact
// oneDNN's relu post-op computes max(v, 0) with an instruction that gives 0 for a
// NaN v, where torch.relu keeps NaN. So the post-op runs only when no
// pre-activation can be NaN: every input, weight and bias element finite, and no
// sum inside the convolution able to overflow into inf - inf. The bound: each
// partial sum of an output element is at most ||x||_2 * ||w||_2 + max|b|
// (Cauchy-Schwarz over its window), and that must stay below the dtype's largest
// value by a wide margin (kOverflowMargin: room for the convolution algorithm's
// own transforms). One read of the input (a sum of squares, which is inf or NaN
// as soon as one element is) decides; the weight and bias are small.

template <typename scalar_t>
inline float sum_of_squares_impl(const scalar_t* __restrict p, int64_t n) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) {
    const float v = static_cast<float>(p[i]);
    acc += v * v;
  }
  return acc;
}
template <typename scalar_t>
float sum_of_squares_block(const scalar_t* p, int64_t n) {
  return sum_of_squares_impl(p, n);
}
TS_CPU_CLONES float sum_of_squares_block(const float* p, int64_t n) {
  return sum_of_squares_impl(p, n);
}

// The sum of squares of a dense tensor's elements, in float (inf or NaN when an
// element is); -1 for a tensor that is not dense.
float sum_of_squares(const at::Tensor& t) {
  if (!t.is_non_overlapping_and_dense()) return -1.f;
  float total = 0.f;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, t.scalar_type(), "sum_of_squares", [&] {
    const scalar_t* p = t.const_data_ptr<scalar_t>();
    total = at::parallel_reduce(
        0, t.numel(), kGrain, 0.f,
        [&](int64_t begin, int64_t end, float acc) { return acc + sum_of_squares_block(p + begin, end - begin); },
        [](float a, float b) { return a + b; });
  });
  return total;
}

constexpr float kOverflowMargin = 1.0f / (1 << 20);

bool post_op_is_exact(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  const float limit = std::numeric_limits<float>::max() * kOverflowMargin;
  const float xs = sum_of_squares(input), ws = sum_of_squares(weight);
  const float bs = bias.has_value() && bias->defined() ? sum_of_squares(*bias) : 0.f;
  // Written so that a NaN anywhere (or -1: not dense) answers false.
  if (!(xs >= 0.f && ws >= 0.f && bs >= 0.f)) return false;
  const float bound = std::sqrt(xs) * std::sqrt(ws) + std::sqrt(bs);
  return bound < limit;
}

// Below this many output elements oneDNN's post-op convolution costs more than it
// saves: it has a fixed per-call cost that ATen's convolution does not (measured with
// no_grad on 2 threads; the break-even was well above this, and bench/conv.py's shapes
// are all above it).
constexpr int64_t kPostOpMinElements = 32768;
std::atomic<int64_t> post_op_min_elements{kPostOpMinElements};  // tests set it
std::atomic<int64_t> post_op_calls{0};

int64_t output_numel(
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation) {
  const auto size = conv2d_output_size(input, weight, stride, padding, dilation);
  return size[0] * size[1] * size[2] * size[3];
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
    if (output_numel(input, weight, stride, padding, dilation) <
        post_op_min_elements.load(std::memory_order_relaxed)) {
      return generic_forward(input, weight, bias, stride, padding, dilation, groups, format, true);
    }
    if (post_op_is_exact(input, weight, bias)) {
      at::Tensor out = onednn_forward(input, weight, bias, stride, padding, dilation, groups);
      if (out.defined()) {
        post_op_calls.fetch_add(1, std::memory_order_relaxed);
        return dense_in_format(out, format);
      }
    } else {
      // A NaN may appear: the convolution with its bias, then the relu pass.
      return generic_forward(input, weight, bias, stride, padding, dilation, groups, format, true);
    }
  }
  return generic_forward(input, weight, bias, stride, padding, dilation, groups, format);
}

// The output and its relu mask (epilogue.h), for the autograd forward.
//
// Training needs one pass over the output anyway, for the mask. The relu goes into
// that pass (it costs a store there), so the convolution can be ATen's own, bias
// included, instead of oneDNN's post-op variant plus a separate packing pass: one
// pass fewer, and no post-op fixed cost (see kPostOpMinElements). bench/conv.py's
// training ratios did not move on (a) and (b) and went down on (c) NCHW, all within
// its process-to-process spread.
std::tuple<at::Tensor, at::Tensor> conv2d_bias_relu_with_mask_cpu(
    const at::Tensor& input,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups) {
  check_conv2d_bias_relu_args(input, weight, bias, stride, padding, dilation, groups);
  const at::MemoryFormat format = conv2d_output_memory_format(input, weight);
  // Where the forward would be oneDNN's (which adds the bias inside the convolution,
  // as ATen's oneDNN convolution does: the same numbers), the relu goes into the mask
  // pass; elsewhere the generic forward, then the mask pass.
  const bool relu_in_pass = onednn_applies(input);
  at::Tensor out;
  if (relu_in_pass) {
    out = at::convolution(input, weight, bias, stride, padding, dilation, false, {0, 0}, groups);
    out = dense_in_format(out, format);
  } else {
    out = generic_forward(input, weight, bias, stride, padding, dilation, groups, format);
  }
  const int64_t numel = out.numel();
  const int64_t bytes = epilogue::relu_mask_bytes(numel);
  at::Tensor mask = at::empty({bytes}, out.options().dtype(at::kByte));
  uint8_t* bits = mask.data_ptr<uint8_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, out.scalar_type(), "conv2d_bias_relu_mask_cpu", [&] {
    scalar_t* y = out.data_ptr<scalar_t>();
    // Whole bytes per task; the output is dense, so memory order is index order.
    at::parallel_for(0, bytes, kGrain / 8, [&](int64_t b0, int64_t b1) {
      const int64_t len = std::min(numel, 8 * b1) - 8 * b0;
      if (relu_in_pass) {
        relu_mask::relu_pack(y + 8 * b0, bits + b0, len);
      } else {
        relu_mask::pack(y + 8 * b0, bits + b0, len);
      }
    });
  });
  return {out, mask};
}

// --------------------------------------------------------------- backward

// grad_masked = relu_grad(grad, mask); if want_bias, grad_bias[k] = sum of
// grad_masked over batch and space (accumulated in opmath, in a fixed order,
// so the result does not depend on the number of threads).
template <typename scalar_t>
void relu_grad_and_bias_grad(
    const at::Tensor& grad,
    const at::Tensor& mask,
    at::Tensor& grad_masked,
    at::Tensor& grad_bias,
    at::MemoryFormat format) {
  using opmath_t = at::opmath_type<scalar_t>;
  const bool want_bias = grad_bias.defined();
  const int64_t n = grad.size(0), c = grad.size(1), hw = grad.size(2) * grad.size(3);
  const scalar_t* g = grad.const_data_ptr<scalar_t>();
  const uint8_t* bits = mask.const_data_ptr<uint8_t>();
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
        relu_mask::masked_grad_rows(g, bits, gm, acc, r0, r1, c);
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
    relu_mask::masked_grad_planes(g, bits, gm, plane_sum.data(), begin, end, hw);
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
    const at::Tensor& mask,
    const at::Tensor& input,
    const at::Tensor& weight,
    c10::IntArrayRef stride,
    c10::IntArrayRef padding,
    c10::IntArrayRef dilation,
    int64_t groups,
    std::array<bool, 3> output_mask) {
  check_conv2d_bias_relu_backward_args(grad_output, mask, input, weight, stride, padding, dilation, groups);
  const at::MemoryFormat format = conv2d_output_memory_format(input, weight);
  const at::Tensor grad = dense_in_format(grad_output, format);
  const at::Tensor bits = mask.contiguous();
  at::Tensor grad_masked = at::empty(grad.sizes(), grad.options().memory_format(format));
  at::Tensor grad_bias;
  if (output_mask[2]) grad_bias = at::empty({grad.size(1)}, grad.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad.scalar_type(), "conv2d_bias_relu_backward_cpu", [&] {
    relu_grad_and_bias_grad<scalar_t>(grad, bits, grad_masked, grad_bias, format);
  });
  return conv2d_bias_relu_backward_tail(
      grad_masked, grad_bias, input, weight, stride, padding, dilation, groups, output_mask);
}

}  // namespace

bool set_cpu_onednn_enabled(bool enabled) {
  return onednn_enabled.exchange(enabled);
}

int64_t cpu_post_op_calls() {
  return post_op_calls.load(std::memory_order_relaxed);
}

int64_t set_cpu_post_op_min_elements(int64_t elements) {
  return post_op_min_elements.exchange(elements < 0 ? kPostOpMinElements : elements);
}

TORCH_LIBRARY_IMPL(torchscope, CPU, m) {
  m.impl("conv2d_bias_relu", &conv2d_bias_relu_cpu);
  m.impl("conv2d_bias_relu_with_mask", &conv2d_bias_relu_with_mask_cpu);
  m.impl("conv2d_bias_relu_backward", &conv2d_bias_relu_backward_cpu);
}

}  // namespace torchscope
