// Register-only loops that measure what the GEMM kernels' instructions can do on this machine,
// for the benchmarks to report the fraction of it a kernel reaches. Written in assembly, so that
// the compiler cannot reshape them (a compiled C++ loop once measured a wrong ceiling), and so
// that this file needs no instruction-set flags; a kind runs only where the CPU has it.
#include "ceilings.h"

#include <chrono>
#include <stdexcept>

namespace prunq::cpu {
namespace {

#if PRUNQ_X86
#define PRUNQ_CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define PRUNQ_CLOBBER_XMM \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm14"

// 12 independent chains per block; the sources (12, 13) are never written.
void fma_ymm(int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i)
    asm volatile(
#define PRUNQ_STEP(n) "vfmadd231ps %%ymm12, %%ymm13, %%ymm" #n "\n"
        PRUNQ_CHAINS(PRUNQ_STEP)
#undef PRUNQ_STEP
        ::: PRUNQ_CLOBBER_XMM);
}

void fma_zmm(int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i)
    asm volatile(
#define PRUNQ_STEP(n) "vfmadd231ps %%zmm12, %%zmm13, %%zmm" #n "\n"
        PRUNQ_CHAINS(PRUNQ_STEP)
#undef PRUNQ_STEP
        ::: PRUNQ_CLOBBER_XMM);
}

void madd_ymm(int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i)
    asm volatile(
#define PRUNQ_STEP(n) "vpmaddwd %%ymm12, %%ymm13, %%ymm14\n vpaddd %%ymm14, %%ymm" #n ", %%ymm" #n "\n"
        PRUNQ_CHAINS(PRUNQ_STEP)
#undef PRUNQ_STEP
        ::: PRUNQ_CLOBBER_XMM);
}

// The 4-bit AVX2 kernel's step (int8_gemm_narrow_kernel.h): unsigned x bytes times signed w bytes,
// pairs added into int16, then into the int16 sums.
void maddubs_ymm(int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i)
    asm volatile(
#define PRUNQ_STEP(n) "vpmaddubsw %%ymm12, %%ymm13, %%ymm14\n vpaddw %%ymm14, %%ymm" #n ", %%ymm" #n "\n"
        PRUNQ_CHAINS(PRUNQ_STEP)
#undef PRUNQ_STEP
        ::: PRUNQ_CLOBBER_XMM);
}

void madd_zmm(int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i)
    asm volatile(
#define PRUNQ_STEP(n) "vpmaddwd %%zmm12, %%zmm13, %%zmm14\n vpaddd %%zmm14, %%zmm" #n ", %%zmm" #n "\n"
        PRUNQ_CHAINS(PRUNQ_STEP)
#undef PRUNQ_STEP
        ::: PRUNQ_CLOBBER_XMM);
}

void dpbusd_zmm(int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i)
    asm volatile(
#define PRUNQ_STEP(n) "vpdpbusd %%zmm12, %%zmm13, %%zmm" #n "\n"
        PRUNQ_CHAINS(PRUNQ_STEP)
#undef PRUNQ_STEP
        ::: PRUNQ_CLOBBER_XMM);
}
// The binary GEMM's step: xor, popcount, add, on 512 bits (AVX-512 VPOPCNTDQ).
void xor_popcnt_zmm(int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i)
    asm volatile(
#define PRUNQ_STEP(n) "vpxorq %%zmm12, %%zmm13, %%zmm14\n vpopcntq %%zmm14, %%zmm14\n vpaddq %%zmm14, %%zmm" #n ", %%zmm" #n "\n"
        PRUNQ_CHAINS(PRUNQ_STEP)
#undef PRUNQ_STEP
        ::: PRUNQ_CLOBBER_XMM);
}

// The AVX2 step on 256 bits: xor, a nibble table looked up twice (vpshufb), bytes summed per
// 64-bit lane (vpsadbw). Eight chains (ymm0-7): the table, mask and zero take ymm8, 9 and 15.
void xor_popcnt_ymm(int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i)
    asm volatile(
#define PRUNQ_STEP(n)                                                                               \
  "vpxor %%ymm12, %%ymm13, %%ymm14\n vpand %%ymm9, %%ymm14, %%ymm10\n vpsrlw $4, %%ymm14, %%ymm11\n" \
  "vpand %%ymm9, %%ymm11, %%ymm11\n vpshufb %%ymm10, %%ymm8, %%ymm10\n vpshufb %%ymm11, %%ymm8, %%ymm11\n" \
  "vpaddb %%ymm10, %%ymm11, %%ymm10\n vpsadbw %%ymm15, %%ymm10, %%ymm10\n vpaddq %%ymm10, %%ymm" #n ", %%ymm" #n "\n"
        PRUNQ_STEP(0) PRUNQ_STEP(1) PRUNQ_STEP(2) PRUNQ_STEP(3) PRUNQ_STEP(4) PRUNQ_STEP(5) PRUNQ_STEP(6)
        PRUNQ_STEP(7)
#undef PRUNQ_STEP
        ::: PRUNQ_CLOBBER_XMM, "xmm15");
}
#undef PRUNQ_CHAINS
#undef PRUNQ_CLOBBER_XMM
#endif

struct Kind {
  const char* name;
  void (*loop)(int64_t blocks);
  double ops_per_block;  // 2 per multiply-add
  bool (*supported)();
};

const Kind* find(const std::string& name) {
#if PRUNQ_X86
  static const Kind kinds[] = {
      {"fma_ymm", fma_ymm, 12 * 8 * 2, [] { return bool(__builtin_cpu_supports("fma")); }},
      {"fma_zmm", fma_zmm, 12 * 16 * 2, [] { return bool(__builtin_cpu_supports("avx512f")); }},
      {"madd_ymm", madd_ymm, 12 * 16 * 2, [] { return bool(__builtin_cpu_supports("avx2")); }},
      {"maddubs_ymm", maddubs_ymm, 12 * 32 * 2, [] { return bool(__builtin_cpu_supports("avx2")); }},
      {"madd_zmm", madd_zmm, 12 * 32 * 2, [] { return bool(__builtin_cpu_supports("avx512bw")); }},
      {"dpbusd_zmm", dpbusd_zmm, 12 * 64 * 2, [] { return bool(__builtin_cpu_supports("avx512vnni")); }},
      {"xor_popcnt_zmm", xor_popcnt_zmm, 12 * 512 * 2, [] { return bool(__builtin_cpu_supports("avx512vpopcntdq")); }},
      {"xor_popcnt_ymm", xor_popcnt_ymm, 8 * 256 * 2, [] { return bool(__builtin_cpu_supports("avx2")); }},
  };
  for (const Kind& kind : kinds)
    if (name == kind.name) return kind.supported() ? &kind : nullptr;
#endif
  throw std::invalid_argument("unknown ceiling kind '" + name + "': expected fma_ymm, fma_zmm, madd_ymm, maddubs_ymm, madd_zmm, dpbusd_zmm, xor_popcnt_zmm or xor_popcnt_ymm");
}

}  // namespace

double ceiling_ops_per_second(const std::string& name, int num_threads, int64_t blocks) {
  const Kind* kind = find(name);
  if (!kind) return 0.0;
  kind->loop(blocks / 10);  // warm-up: clocks and wide units up
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(num_threads)
  kind->loop(blocks);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return kind->ops_per_block * double(blocks) * num_threads / seconds;
}

}  // namespace prunq::cpu
