// What the CUDA kernels share: the three storage types as fp32 and back, a register pack for
// vector accesses, dispatch on the dtype, and the launch error.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../common/dtypes.h"

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

// f(T()) for the storage type T of `dtype`.
template <class F> void with_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: f(float()); break;
    case DType::bf16: f(__nv_bfloat16()); break;
    case DType::f16: f(__half()); break;
  }
}

// nullptr, or the error string of the last launch.
inline const char* last_error() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace prunq::cuda
