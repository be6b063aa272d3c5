#include "cpu_features.h"

#include <atomic>
#include <stdexcept>

namespace prunq {

#if defined(__x86_64__) || defined(_M_X64)
namespace {
// __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0).
bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}
bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
}  // namespace

namespace {
std::atomic<bool> vnni_masked{false};
}  // namespace

bool has_avx512_vnni() { return has_avx512() && __builtin_cpu_supports("avx512vnni") && !vnni_masked.load(); }

void set_avx512_vnni_enabled(bool enabled) { vnni_masked.store(!enabled); }
bool has_avx512_bf16() { return has_avx512() && __builtin_cpu_supports("avx512bf16"); }
bool has_avx512_vpopcntdq() { return has_avx512() && __builtin_cpu_supports("avx512vpopcntdq"); }
#else
namespace {
bool has_avx2() { return false; }
bool has_avx512() { return false; }
}  // namespace

bool has_avx512_vnni() { return false; }
bool has_avx512_bf16() { return false; }
bool has_avx512_vpopcntdq() { return false; }
void set_avx512_vnni_enabled(bool) {}
#endif

namespace {

std::atomic<int>& active() {
  static std::atomic<int> isa{int(best_isa())};
  return isa;
}

}  // namespace

std::vector<std::string> cpu_features() {
  std::vector<std::string> found;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
#define PRUNQ_FEATURE(name) \
  if (__builtin_cpu_supports(#name)) found.emplace_back(#name);
  PRUNQ_FEATURE(avx2)
  PRUNQ_FEATURE(fma)
  PRUNQ_FEATURE(f16c)
  PRUNQ_FEATURE(avx512f)
  PRUNQ_FEATURE(avx512bw)
  PRUNQ_FEATURE(avx512vl)
  PRUNQ_FEATURE(avx512dq)
  PRUNQ_FEATURE(avx512vnni)
  PRUNQ_FEATURE(avx512bf16)
  PRUNQ_FEATURE(avx512vpopcntdq)
#undef PRUNQ_FEATURE
#endif
  return found;
}

Isa best_isa() {
  if (has_avx512()) return Isa::avx512;
  if (has_avx2()) return Isa::avx2;
  return Isa::portable;
}

Isa active_isa() { return Isa(active().load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  if (int(isa) > int(best_isa()))
    throw std::invalid_argument(std::string("this CPU does not support the ") + isa_name(isa) +
                                " path (best available: " + isa_name(best_isa()) + ")");
  active().store(int(isa), std::memory_order_relaxed);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "portable";
  }
}

Isa isa_from_name(const std::string& name) {
  if (name == "avx512") return Isa::avx512;
  if (name == "avx2") return Isa::avx2;
  if (name == "portable") return Isa::portable;
  throw std::invalid_argument("unknown CPU path '" + name + "': expected portable, avx2 or avx512");
}

}  // namespace prunq
