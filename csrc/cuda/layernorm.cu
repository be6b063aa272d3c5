// One row per group of TPR threads (a warp for short rows, a 256-thread block for long ones),
// fp32 accumulation, two-pass variance. Rows that fit hold their values in registers between
// the passes; other rows are re-read from the `sum` output, which the same thread wrote.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "common.cuh"
#include "layernorm.h"

namespace prunq::cuda {

namespace {

constexpr int kBlock = 256;

// Sum over the TPR threads of a row (TPR is 32 or a multiple of 32 up to kBlock).
template <int TPR> __device__ __forceinline__ float row_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if constexpr (TPR > 32) {
    __shared__ float part[kBlock / 32];
    __syncthreads();  // a previous call may still be reading part
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
    __syncthreads();
    const int first = (threadIdx.x / TPR) * (TPR / 32);
    v = 0.f;
#pragma unroll
    for (int k = 0; k < TPR / 32; ++k) v += part[first + k];
  }
  return v;
}

template <class P> __device__ __forceinline__ float param(const P* p, int64_t i, float absent) {
  return p ? to_f(p[i]) : absent;
}

// Rows of `h` elements, h % VEC == 0 and 16-byte aligned rows; each thread keeps CHUNKS packs.
template <class T, class P, bool RMS, int VEC, int TPR, int CHUNKS>
__global__ void __launch_bounds__(kBlock)
    add_norm_cached(const T* __restrict__ x, const T* __restrict__ r, const P* __restrict__ w,
                    const P* __restrict__ b, T* __restrict__ out, T* __restrict__ sum,
                    int64_t rows, int h, float eps) {
  using V = Pack<T, VEC>;
  const int lane = threadIdx.x % TPR;
  const int64_t row = int64_t(blockIdx.x) * (kBlock / TPR) + threadIdx.x / TPR;
  const bool active = row < rows;
  const int64_t base = row * h;
  float vals[CHUNKS][VEC];
  float acc = 0.f;
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
    const int i = (c * TPR + lane) * VEC;
    const bool in = active && i < h;
#pragma unroll
    for (int k = 0; k < VEC; ++k) vals[c][k] = 0.f;
    if (in) {
      const V xv = *reinterpret_cast<const V*>(x + base + i);
      const V rv = *reinterpret_cast<const V*>(r + base + i);
      V sv;
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        sv.v[k] = from_f<T>(to_f(xv.v[k]) + to_f(rv.v[k]));
        vals[c][k] = to_f(sv.v[k]);
        acc += RMS ? vals[c][k] * vals[c][k] : vals[c][k];
      }
      *reinterpret_cast<V*>(sum + base + i) = sv;
    }
  }
  const float moment = row_sum<TPR>(acc) / float(h);
  const float mean = RMS ? 0.f : moment;
  float var = moment;
  if constexpr (!RMS) {
    float sq = 0.f;
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (active && (c * TPR + lane) * VEC < h) {
#pragma unroll
        for (int k = 0; k < VEC; ++k) {
          const float d = vals[c][k] - mean;
          sq += d * d;
        }
      }
    }
    var = row_sum<TPR>(sq) / float(h);
  }
  const float rstd = rsqrtf(var + eps);
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
    const int i = (c * TPR + lane) * VEC;
    if (active && i < h) {
      V ov;
#pragma unroll
      for (int k = 0; k < VEC; ++k)
        ov.v[k] = from_f<T>((vals[c][k] - mean) * rstd * param(w, i + k, 1.f) + param(b, i + k, 0.f));
      *reinterpret_cast<V*>(out + base + i) = ov;
    }
  }
}

// Any h and alignment: one element at a time, the row re-read from `sum` between passes.
template <class T, class P, bool RMS, int TPR>
__global__ void __launch_bounds__(kBlock)
    add_norm_generic(const T* __restrict__ x, const T* __restrict__ r, const P* __restrict__ w,
                     const P* __restrict__ b, T* __restrict__ out, T* __restrict__ sum,
                     int64_t rows, int h, float eps) {
  const int lane = threadIdx.x % TPR;
  const int64_t row = int64_t(blockIdx.x) * (kBlock / TPR) + threadIdx.x / TPR;
  const bool active = row < rows;
  const int64_t base = row * h;
  float acc = 0.f;
  for (int i = lane; active && i < h; i += TPR) {
    const T s = from_f<T>(to_f(x[base + i]) + to_f(r[base + i]));
    sum[base + i] = s;
    acc += RMS ? to_f(s) * to_f(s) : to_f(s);
  }
  const float moment = row_sum<TPR>(acc) / float(h);
  const float mean = RMS ? 0.f : moment;
  float var = moment;
  if constexpr (!RMS) {
    float sq = 0.f;
    for (int i = lane; active && i < h; i += TPR) {
      const float d = to_f(sum[base + i]) - mean;
      sq += d * d;
    }
    var = row_sum<TPR>(sq) / float(h);
  }
  const float rstd = rsqrtf(var + eps);
  for (int i = lane; active && i < h; i += TPR)
    out[base + i] =
        from_f<T>((to_f(sum[base + i]) - mean) * rstd * param(w, i, 1.f) + param(b, i, 0.f));
}

template <class T, class P, bool RMS>
void launch(const AddNormArgs& a) {
  const auto* x = static_cast<const T*>(a.x);
  const auto* r = static_cast<const T*>(a.residual);
  const auto* w = static_cast<const P*>(a.weight);
  const auto* b = static_cast<const P*>(a.bias);
  auto* out = static_cast<T*>(a.out);
  auto* sum = static_cast<T*>(a.sum);
  const int h = int(a.hidden);
  auto stream = static_cast<cudaStream_t>(a.stream);
  auto grid = [&](int tpr) { return unsigned((a.rows + kBlock / tpr - 1) / (kBlock / tpr)); };

  constexpr int VEC = 16 / sizeof(T);
  const bool aligned = h % VEC == 0 &&
                       ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(r) |
                         reinterpret_cast<uintptr_t>(out) | reinterpret_cast<uintptr_t>(sum)) %
                        16) == 0;
  const int packs = h / VEC;
#define PRUNQ_CACHED(TPR, CHUNKS)                                                  \
  return add_norm_cached<T, P, RMS, VEC, TPR, CHUNKS>                              \
      <<<grid(TPR), kBlock, 0, stream>>>(x, r, w, b, out, sum, a.rows, h, a.eps)
  if (aligned) {
    if (packs <= 32 * 2) PRUNQ_CACHED(32, 2);
    if (packs <= 32 * 8) PRUNQ_CACHED(32, 8);
    if (packs <= kBlock * 2) PRUNQ_CACHED(kBlock, 2);
    if (packs <= kBlock * 8) PRUNQ_CACHED(kBlock, 8);
  }
#undef PRUNQ_CACHED
  if (h <= 1024)
    add_norm_generic<T, P, RMS, 32><<<grid(32), kBlock, 0, stream>>>(x, r, w, b, out, sum, a.rows, h, a.eps);
  else
    add_norm_generic<T, P, RMS, kBlock>
        <<<grid(kBlock), kBlock, 0, stream>>>(x, r, w, b, out, sum, a.rows, h, a.eps);
}

template <class T, class P>
void launch_params(const AddNormArgs& a) {
  if (a.rms) launch<T, P, true>(a); else launch<T, P, false>(a);
}

template <class T>
void launch_dtype(const AddNormArgs& a) {
  if (a.param_dtype == DType::f32) launch_params<T, float>(a); else launch_params<T, T>(a);
}

}  // namespace

const char* add_norm(const AddNormArgs& a) {
  if (a.rows == 0) return nullptr;
  with_dtype(a.dtype, [&](auto t) { launch_dtype<decltype(t)>(a); });
  return last_error();
}

}  // namespace prunq::cuda
