// CPU loops over the 1-bit relu mask (layout: csrc/epilogue.h): packing it
// from the output, and the backward's masked gradient with the bias
// gradient's sums. Element e of the output is bit (e % 8) of byte (e / 8).
//
// float32 has AVX2 versions (a compare + movemask packs 8 floats into a byte;
// a table lookup unpacks a byte into 8 lane masks), chosen at run time, since
// the extension is built for the baseline ISA; the templates are the
// definition and serve every other dtype and CPU.
#pragma once

#include <ATen/OpMathType.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define TS_HAVE_AVX2_PATH 1
#define TS_AVX2 __attribute__((target("avx2")))
#else
#define TS_HAVE_AVX2_PATH 0
#endif

#include "epilogue.h"

namespace torchscope {
namespace relu_mask {

// bits[0 .. (n + 7) / 8) from y[0 .. n).
template <typename scalar_t>
void pack_impl(const scalar_t* __restrict y, uint8_t* __restrict bits, int64_t n) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t j = 0; 8 * j < n; ++j) {
    uint8_t byte = 0;
    const int64_t end = std::min<int64_t>(8, n - 8 * j);
    for (int64_t k = 0; k < end; ++k) {
      byte |= static_cast<uint8_t>(epilogue::relu_passed<opmath_t>(static_cast<opmath_t>(y[8 * j + k]))) << k;
    }
    bits[j] = byte;
  }
}

// y = relu(y) in place over [0, n), and bits[0 .. (n + 7) / 8) its mask: the
// training forward's one pass over a convolution output that has its bias.
template <typename scalar_t>
void relu_pack_impl(scalar_t* __restrict y, uint8_t* __restrict bits, int64_t n) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t j = 0; 8 * j < n; ++j) {
    uint8_t byte = 0;
    const int64_t end = std::min<int64_t>(8, n - 8 * j);
    for (int64_t k = 0; k < end; ++k) {
      const opmath_t v = static_cast<opmath_t>(y[8 * j + k]);
      byte |= static_cast<uint8_t>(epilogue::relu_passed<opmath_t>(v)) << k;
      y[8 * j + k] = static_cast<scalar_t>(epilogue::bias_relu<opmath_t>(v, opmath_t(0)));
    }
    bits[j] = byte;
  }
}

// gm[i] = relu_grad(g[i], bit off + i) for i in [0, len); when acc is not
// null, acc[i] += gm[i]. Returns the sum of gm.
template <typename scalar_t, typename opmath_t>
opmath_t masked_grad_impl(
    const scalar_t* __restrict g,
    const uint8_t* __restrict bits,
    int64_t off,
    scalar_t* __restrict gm,
    opmath_t* __restrict acc,
    int64_t len) {
  opmath_t sum = 0;
  for (int64_t i = 0; i < len; ++i) {
    const opmath_t v = epilogue::relu_grad<opmath_t>(static_cast<opmath_t>(g[i]), epilogue::mask_bit(bits, off + i));
    gm[i] = static_cast<scalar_t>(v);
    if (acc != nullptr) acc[i] += v;
    sum += v;
  }
  return sum;
}

#if TS_HAVE_AVX2_PATH
// The 8 lane masks (all ones where the bit is set) of each mask byte, 8 KiB:
// one load per 8 elements instead of a broadcast, an and and a compare.
struct LaneMasks {
  alignas(32) int32_t lanes[256][8];
  LaneMasks() {
    for (int byte = 0; byte < 256; ++byte) {
      for (int k = 0; k < 8; ++k) lanes[byte][k] = ((byte >> k) & 1) ? -1 : 0;
    }
  }
};

inline const LaneMasks& lane_masks() {
  static const LaneMasks table;
  return table;
}

TS_AVX2 inline void pack_avx2(const float* __restrict y, uint8_t* __restrict bits, int64_t n) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t j = 0;
  // Four vectors per step, their four mask bytes stored at once.
  for (; 8 * j + 32 <= n; j += 4) {
    uint32_t word = 0;
    for (int k = 0; k < 4; ++k) {
      const __m256 passed = _mm256_cmp_ps(_mm256_loadu_ps(y + 8 * (j + k)), zero, _CMP_NLE_UQ);
      word |= static_cast<uint32_t>(_mm256_movemask_ps(passed)) << (8 * k);
    }
    std::memcpy(bits + j, &word, sizeof(word));
  }
  for (; 8 * j + 8 <= n; ++j) {
    // Not (y <= 0), unordered: set for y > 0 and for NaN (relu_passed).
    const __m256 passed = _mm256_cmp_ps(_mm256_loadu_ps(y + 8 * j), zero, _CMP_NLE_UQ);
    bits[j] = static_cast<uint8_t>(_mm256_movemask_ps(passed));
  }
  if (8 * j < n) pack_impl(y + 8 * j, bits + j, n - 8 * j);
}

TS_AVX2 inline void relu_pack_avx2(float* __restrict y, uint8_t* __restrict bits, int64_t n) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t j = 0;
  // As pack_avx2, and each vector is stored back through max(0, y), which keeps a NaN
  // (maxps returns its second operand when either is NaN), as bias_relu does.
  for (; 8 * j + 32 <= n; j += 4) {
    uint32_t word = 0;
    for (int k = 0; k < 4; ++k) {
      const __m256 v = _mm256_loadu_ps(y + 8 * (j + k));
      const __m256 passed = _mm256_cmp_ps(v, zero, _CMP_NLE_UQ);
      word |= static_cast<uint32_t>(_mm256_movemask_ps(passed)) << (8 * k);
      _mm256_storeu_ps(y + 8 * (j + k), _mm256_max_ps(zero, v));
    }
    std::memcpy(bits + j, &word, sizeof(word));
  }
  if (8 * j < n) relu_pack_impl(y + 8 * j, bits + j, n - 8 * j);
}

TS_AVX2 inline float masked_grad_avx2(
    const float* __restrict g,
    const uint8_t* __restrict bits,
    int64_t off,
    float* __restrict gm,
    float* __restrict acc,
    int64_t len) {
  // Up to the next whole byte of the mask, element by element.
  int64_t head = std::min<int64_t>(len, (8 - (off & 7)) & 7);
  float sum = masked_grad_impl<float, float>(g, bits, off, gm, acc, head);
  const auto& table = lane_masks().lanes;
  __m256 vsum = _mm256_setzero_ps();
  int64_t i = head;
  if (acc == nullptr) {
    // Four vectors per step into four sums: no add-latency chain.
    __m256 part[4] = {vsum, vsum, vsum, vsum};
    for (; i + 32 <= len; i += 32) {
      const uint8_t* b = bits + ((off + i) >> 3);
      for (int k = 0; k < 4; ++k) {
        const __m256 on = _mm256_load_ps(reinterpret_cast<const float*>(table[b[k]]));
        const __m256 v = _mm256_and_ps(_mm256_loadu_ps(g + i + 8 * k), on);
        _mm256_storeu_ps(gm + i + 8 * k, v);
        part[k] = _mm256_add_ps(part[k], v);
      }
    }
    vsum = _mm256_add_ps(_mm256_add_ps(part[0], part[1]), _mm256_add_ps(part[2], part[3]));
  }
  for (; i + 8 <= len; i += 8) {
    const __m256 on = _mm256_load_ps(reinterpret_cast<const float*>(table[bits[(off + i) >> 3]]));
    const __m256 v = _mm256_and_ps(_mm256_loadu_ps(g + i), on);
    _mm256_storeu_ps(gm + i, v);
    if (acc != nullptr) _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), v));
    vsum = _mm256_add_ps(vsum, v);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vsum);
  for (float l : lanes) sum += l;
  return sum + masked_grad_impl<float, float>(g + i, bits, off + i, gm + i, acc == nullptr ? nullptr : acc + i, len - i);
}

// Rows [r0, r1) of c channels (channels_last), acc[k] += the masked gradient
// of channel k when acc is not null. With c a multiple of 8 every row starts
// on a mask byte: whole vectors, no per-row sum (the rows' sums are unused).
TS_AVX2 inline void masked_grad_rows_avx2(
    const float* __restrict g,
    const uint8_t* __restrict bits,
    float* __restrict gm,
    float* __restrict acc,
    int64_t r0,
    int64_t r1,
    int64_t c) {
  if (c % 8 != 0) {
    for (int64_t r = r0; r < r1; ++r) masked_grad_avx2(g + r * c, bits, r * c, gm + r * c, acc, c);
    return;
  }
  const auto& table = lane_masks().lanes;
  for (int64_t r = r0; r < r1; ++r) {
    const float* gr = g + r * c;
    const uint8_t* br = bits + r * c / 8;
    float* gmr = gm + r * c;
    for (int64_t j = 0; j < c / 8; ++j) {
      const __m256 on = _mm256_load_ps(reinterpret_cast<const float*>(table[br[j]]));
      const __m256 v = _mm256_and_ps(_mm256_loadu_ps(gr + 8 * j), on);
      _mm256_storeu_ps(gmr + 8 * j, v);
      if (acc != nullptr) _mm256_storeu_ps(acc + 8 * j, _mm256_add_ps(_mm256_loadu_ps(acc + 8 * j), v));
    }
  }
}

inline bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

template <typename scalar_t>
void pack(const scalar_t* y, uint8_t* bits, int64_t n) {
  pack_impl(y, bits, n);
}

inline void pack(const float* y, uint8_t* bits, int64_t n) {
#if TS_HAVE_AVX2_PATH
  if (cpu_has_avx2()) return pack_avx2(y, bits, n);
#endif
  pack_impl(y, bits, n);
}

template <typename scalar_t>
void relu_pack(scalar_t* y, uint8_t* bits, int64_t n) {
  relu_pack_impl(y, bits, n);
}

inline void relu_pack(float* y, uint8_t* bits, int64_t n) {
#if TS_HAVE_AVX2_PATH
  if (cpu_has_avx2()) return relu_pack_avx2(y, bits, n);
#endif
  relu_pack_impl(y, bits, n);
}

// Rows [r0, r1) of c channels (channels_last): acc[k] += masked gradient of
// channel k, when acc is not null.
template <typename scalar_t, typename opmath_t>
void masked_grad_rows(
    const scalar_t* g, const uint8_t* bits, scalar_t* gm, opmath_t* acc, int64_t r0, int64_t r1, int64_t c) {
  for (int64_t r = r0; r < r1; ++r) masked_grad_impl(g + r * c, bits, r * c, gm + r * c, acc, c);
}

// Planes [p0, p1) of hw elements (contiguous): sums[p] = the sum of plane p's
// masked gradient.
template <typename scalar_t, typename opmath_t>
void masked_grad_planes(
    const scalar_t* g, const uint8_t* bits, scalar_t* gm, opmath_t* sums, int64_t p0, int64_t p1, int64_t hw) {
  for (int64_t p = p0; p < p1; ++p) {
    sums[p] = masked_grad_impl<scalar_t, opmath_t>(g + p * hw, bits, p * hw, gm + p * hw, nullptr, hw);
  }
}

inline void masked_grad_rows(
    const float* g, const uint8_t* bits, float* gm, float* acc, int64_t r0, int64_t r1, int64_t c) {
#if TS_HAVE_AVX2_PATH
  if (cpu_has_avx2()) return masked_grad_rows_avx2(g, bits, gm, acc, r0, r1, c);
#endif
  masked_grad_rows<float, float>(g, bits, gm, acc, r0, r1, c);
}

inline void masked_grad_planes(
    const float* g, const uint8_t* bits, float* gm, float* sums, int64_t p0, int64_t p1, int64_t hw) {
#if TS_HAVE_AVX2_PATH
  if (cpu_has_avx2()) {
    for (int64_t p = p0; p < p1; ++p) {
      sums[p] = masked_grad_avx2(g + p * hw, bits, p * hw, gm + p * hw, nullptr, hw);
    }
    return;
  }
#endif
  masked_grad_planes<float, float>(g, bits, gm, sums, p0, p1, hw);
}

}  // namespace relu_mask
}  // namespace torchscope
