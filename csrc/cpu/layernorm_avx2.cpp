#include "vec_avx2.h"
#define PRUNQ_ISA avx2
#include "layernorm_kernel.h"

namespace prunq::cpu {

void add_norm_avx2(const AddNormArgs& args) { avx2::add_norm(args); }

}  // namespace prunq::cpu
