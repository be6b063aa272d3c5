// Loads and stores of the three storage types as fp32, and a register pack for vector accesses.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace prunq::cuda {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

template <class T, int VEC> struct alignas(sizeof(T) * VEC) Pack { T v[VEC]; };

}  // namespace prunq::cuda
