// What one instruction sequence of the GEMM kernels can do here, for the benchmarks.
#pragma once
#include <cstdint>
#include <string>

namespace prunq::cpu {

// Operations per second (2 per multiply-add) of `blocks` blocks of 12 independent chains of `kind`
// on each of num_threads threads at once, or 0 where the CPU lacks the instructions:
//   fma_ymm     vfmadd231ps on 8 fp32 lanes
//   fma_zmm     the same on 16 lanes
//   madd_ymm    vpmaddwd + vpaddd on 16 int16 pairs (the AVX2 INT8 kernel's exact step)
//   maddubs_ymm vpmaddubsw + vpaddw on 32 byte pairs (the AVX2 kernel's step for 4-bit weights)
//   madd_zmm    the same as madd_ymm on 512-bit registers (AVX-512 without VNNI)
//   dpbusd_zmm  vpdpbusd on 64 byte pairs (AVX-512 VNNI)
//   xor_popcnt_zmm  vpxorq + vpopcntq + vpaddq on 512 bits: 512 binary multiply-adds (VPOPCNTDQ)
//   xor_popcnt_ymm  the AVX2 step on 256 bits: vpxor, two vpshufb nibble lookups, vpsadbw, vpaddq
double ceiling_ops_per_second(const std::string& kind, int num_threads, int64_t blocks);

}  // namespace prunq::cpu
