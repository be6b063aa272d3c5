#include "layernorm.h"

#include "../common/cpu_features.h"
#include "vec_portable.h"
#define PRUNQ_ISA portable
#include "layernorm_kernel.h"

namespace prunq::cpu {

void add_norm_portable(const AddNormArgs& args) { portable::add_norm(args); }

void add_norm(const AddNormArgs& args) {
#if PRUNQ_X86
  switch (active_isa()) {
    case Isa::avx512: return add_norm_avx512(args);
    case Isa::avx2: return add_norm_avx2(args);
    case Isa::portable: break;
  }
#endif
  add_norm_portable(args);
}

}  // namespace prunq::cpu
