// Which instruction-set path the CPU kernels take, chosen once from what the CPU supports and
// lowered on request (tests run every path on one machine; PRUNQ_CPU_ISA caps it for users).
#pragma once
#include <string>
#include <vector>

namespace prunq {

enum class Isa : int { portable = 0, avx2 = 1, avx512 = 2 };

// Feature names the CPU reports that the kernels can use (e.g. "avx2", "avx512_vnni").
std::vector<std::string> cpu_features();
Isa best_isa();
bool has_avx512_vnni();
// false: the kernels act as on a CPU without AVX-512 VNNI (as Intel Skylake-SP), so that those
// paths run and are measured on any AVX-512 machine; true: back to what the CPU has.
void set_avx512_vnni_enabled(bool enabled);
bool has_avx512_bf16();
bool has_avx512_vpopcntdq();
Isa active_isa();
// Selects `isa`; throws std::invalid_argument when the CPU lacks it.
void set_active_isa(Isa isa);
const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);

}  // namespace prunq
