// Per-token quantization: one block per row, two passes over it (absmax, then quantize; the
// second pass finds the row in cache).
//
// Weight-only GEMM for few rows of x, the decode case, where the weights' bytes set the time:
// a GEMV-style kernel. Each warp owns kChannels output channels and walks K in chunks of 8 per
// lane, so a warp reads 256 contiguous bytes of each channel's row per step; the up to kMaxRows
// rows of x a block handles share every weight it converts. int8 becomes fp32 by the 2^23
// trick (one byte permute and one subtraction; conversion from int runs at a quarter of the FMA
// rate). The lanes' partial sums are reduced across the warp at the end. More rows than
// kMaxRows take more passes over w.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common.cuh"
#include "int8_gemm.h"

namespace prunq::cuda {

namespace {

// --- quantize_per_token --------------------------------------------------------------------

constexpr int kQuantizeBlock = 256;

// max that keeps a NaN, as the reference's amax does.
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || a > b) ? a : b; }

template <class T, int VEC>
__global__ void __launch_bounds__(kQuantizeBlock)
    quantize_rows(const T* __restrict__ x, int8_t* __restrict__ q, float* __restrict__ scale, int64_t cols) {
  using In = Pack<T, VEC>;
  using Out = Pack<int8_t, VEC>;
  const T* xr = x + int64_t(blockIdx.x) * cols;
  int8_t* qr = q + int64_t(blockIdx.x) * cols;
  float m = 0.f;
  for (int64_t i = int64_t(threadIdx.x) * VEC; i < cols; i += kQuantizeBlock * VEC) {
    const In p = *reinterpret_cast<const In*>(xr + i);
#pragma unroll
    for (int j = 0; j < VEC; ++j) m = nan_max(m, fabsf(to_f(p.v[j])));
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = nan_max(m, __shfl_xor_sync(0xffffffffu, m, o));
  __shared__ float part[kQuantizeBlock / 32];
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = m;
  __syncthreads();
  m = part[0];
#pragma unroll
  for (int w = 1; w < kQuantizeBlock / 32; ++w) m = nan_max(m, part[w]);
  if (threadIdx.x == 0) scale[blockIdx.x] = m / 127.f;
  // A row holding inf or NaN quantizes to zeros; its scale (inf or NaN) makes its outputs NaN.
  const bool finite = isfinite(m);
  const float inv = finite && m > 0.f ? 127.f / m : 0.f;  // true divisions, as in the reference
  for (int64_t i = int64_t(threadIdx.x) * VEC; i < cols; i += kQuantizeBlock * VEC) {
    const In p = *reinterpret_cast<const In*>(xr + i);
    Out o;
#pragma unroll
    for (int j = 0; j < VEC; ++j)
      o.v[j] = finite ? int8_t(fminf(fmaxf(rintf(__fmul_rn(to_f(p.v[j]), inv)), -127.f), 127.f)) : int8_t(0);
    *reinterpret_cast<Out*>(qr + i) = o;
  }
}

template <class T>
void launch_quantize(const QuantizeArgs& a) {
  constexpr int VEC = 16 / sizeof(T);
  const auto* x = static_cast<const T*>(a.x);
  auto stream = static_cast<cudaStream_t>(a.stream);
  const bool aligned = a.cols % VEC == 0 && (reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(a.q)) % 16 == 0;
  if (aligned)
    quantize_rows<T, VEC><<<unsigned(a.rows), kQuantizeBlock, 0, stream>>>(x, a.q, a.scale, a.cols);
  else
    quantize_rows<T, 1><<<unsigned(a.rows), kQuantizeBlock, 0, stream>>>(x, a.q, a.scale, a.cols);
}

// --- weight-only GEMM ----------------------------------------------------------------------

constexpr int kWarps = 4;      // per block
constexpr int kChannels = 2;   // per warp
constexpr int kChunk = 8;      // k per lane per step
constexpr int kMaxRows = 16;   // rows of x per block

// Four int8 in a word as fp32: (2^23 + (v + 128)) - (2^23 + 128), exact.
__device__ __forceinline__ void int8x4_to_f32(uint32_t word, float* f) {
  const uint32_t biased = word ^ 0x80808080u;  // each byte v + 128, unsigned
#pragma unroll
  for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7440 + i)) - 8388736.f;
}

// Eight consecutive elements (16-byte aligned) as fp32.
__device__ __forceinline__ void load8(const float* p, float* f) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float* f) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}
__device__ __forceinline__ void load8(const __half* p, float* f) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}

// VEC: k % 8 == 0 and x, w 16-byte aligned, so every chunk is whole and aligned.
template <class T, int MT, bool VEC>
__global__ void __launch_bounds__(kWarps * 32)
    weight_only_rows(const T* __restrict__ x, const int8_t* __restrict__ w, const float* __restrict__ w_scale,
                     const float* __restrict__ bias, T* __restrict__ out, int64_t m, int64_t n, int64_t k) {
  const int lane = threadIdx.x % 32;
  const int64_t n0 = (int64_t(blockIdx.x) * kWarps + threadIdx.x / 32) * kChannels;
  if (n0 >= n) return;  // the whole warp
  const int64_t m0 = int64_t(blockIdx.y) * MT;
  const int rows = m - m0 < MT ? int(m - m0) : MT;
  const T* xr = x + m0 * k;
  const int8_t* wr[kChannels];  // channels past n repeat the last one (computed, never stored)
#pragma unroll
  for (int c = 0; c < kChannels; ++c) wr[c] = w + (n0 + c < n ? n0 + c : n - 1) * k;

  float acc[MT][kChannels] = {};
  if constexpr (VEC) {
#pragma unroll 4
    for (int64_t kk = int64_t(lane) * kChunk; kk < k; kk += 32 * kChunk) {
      float wf[kChannels][kChunk];
#pragma unroll
      for (int c = 0; c < kChannels; ++c) {
        const uint2 bytes = *reinterpret_cast<const uint2*>(wr[c] + kk);
        int8x4_to_f32(bytes.x, wf[c]);
        int8x4_to_f32(bytes.y, wf[c] + 4);
      }
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        if (i >= rows) break;
        float xf[kChunk];
        load8(xr + i * k + kk, xf);
#pragma unroll
        for (int c = 0; c < kChannels; ++c)
#pragma unroll
          for (int j = 0; j < kChunk; ++j) acc[i][c] = fmaf(xf[j], wf[c][j], acc[i][c]);
      }
    }
  } else {
    for (int64_t kk = lane; kk < k; kk += 32) {
      float wf[kChannels];
#pragma unroll
      for (int c = 0; c < kChannels; ++c) wf[c] = float(wr[c][kk]);
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        if (i >= rows) break;
        const float xf = to_f(xr[i * k + kk]);
#pragma unroll
        for (int c = 0; c < kChannels; ++c) acc[i][c] = fmaf(xf, wf[c], acc[i][c]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int c = 0; c < kChannels; ++c)
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc[i][c] += __shfl_xor_sync(0xffffffffu, acc[i][c], o);
  // Every lane now holds every sum; lane (i * kChannels + c) % 32 writes out[i, c].
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int c = 0; c < kChannels; ++c) {
      const int64_t col = n0 + c;
      if (i < rows && col < n && lane == (i * kChannels + c) % 32)
        out[(m0 + i) * n + col] = from_f<T>(acc[i][c] * w_scale[col] + (bias ? bias[col] : 0.f));
    }
}

template <class T, int MT>
void launch_weight_only_rows(const WeightOnlyArgs& a, bool vec) {
  constexpr int64_t kMaxGridY = 65535;
  const auto* x = static_cast<const T*>(a.x);
  auto* out = static_cast<T*>(a.out);
  auto stream = static_cast<cudaStream_t>(a.stream);
  const unsigned blocks_n = unsigned((a.n + kWarps * kChannels - 1) / (kWarps * kChannels));
  for (int64_t r = 0; r < a.m; r += kMaxGridY * MT) {  // the grid's y extent is limited
    const int64_t rows = std::min(a.m - r, kMaxGridY * MT);
    const dim3 grid(blocks_n, unsigned((rows + MT - 1) / MT));
    if (vec)
      weight_only_rows<T, MT, true><<<grid, kWarps * 32, 0, stream>>>(x + r * a.k, a.w, a.w_scale, a.bias,
                                                                         out + r * a.n, rows, a.n, a.k);
    else
      weight_only_rows<T, MT, false><<<grid, kWarps * 32, 0, stream>>>(x + r * a.k, a.w, a.w_scale, a.bias,
                                                                          out + r * a.n, rows, a.n, a.k);
  }
}

template <class T>
void launch_weight_only(const WeightOnlyArgs& a) {
  const bool vec = a.k % kChunk == 0 && (reinterpret_cast<uintptr_t>(a.x) | reinterpret_cast<uintptr_t>(a.w)) % 16 == 0;
  if (a.m <= 1) return launch_weight_only_rows<T, 1>(a, vec);
  if (a.m <= 2) return launch_weight_only_rows<T, 2>(a, vec);
  if (a.m <= 4) return launch_weight_only_rows<T, 4>(a, vec);
  if (a.m <= 8) return launch_weight_only_rows<T, 8>(a, vec);
  launch_weight_only_rows<T, kMaxRows>(a, vec);
}

}  // namespace

const char* quantize_per_token(const QuantizeArgs& a) {
  if (a.rows == 0) return nullptr;
  with_dtype(a.dtype, [&](auto t) { launch_quantize<decltype(t)>(a); });
  return last_error();
}

const char* int8_weight_only_gemm(const WeightOnlyArgs& a) {
  if (a.m == 0 || a.n == 0) return nullptr;
  with_dtype(a.dtype, [&](auto t) { launch_weight_only<decltype(t)>(a); });
  return last_error();
}

}  // namespace prunq::cuda
