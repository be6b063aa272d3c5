#include "vec_avx512.h"
#define PRUNQ_ISA avx512
#include "layernorm_kernel.h"

namespace prunq::cpu {

void add_norm_avx512(const AddNormArgs& args) { avx512::add_norm(args); }

}  // namespace prunq::cpu
