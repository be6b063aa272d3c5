// The exact (erf) GELU of a GEMM epilogue on a Vec. Included like int8_gemm_kernel.h: after an
// instruction set's vec header (which must provide fma, clamp and /), with PRUNQ_ISA naming its
// namespace.
#include <cmath>
#include <initializer_list>

#include "int8_gemm.h"

namespace prunq::cpu::PRUNQ_ISA {
namespace {

// erf(x) as x * P(x^2) / Q(x^2) on x clamped to [-4, 4] (beyond it erf is +-1 in fp32): the
// rational approximation XLA and Eigen use for fp32, a few ulp from std::erf.
inline Vec erf(Vec x) {
  x = clamp(x, -4.f, 4.f);
  const Vec x2 = x * x;
  Vec p = fma(x2, Vec::splat(-2.72614225801306e-10f), Vec::splat(2.77068142495902e-08f));
  for (float c : {-2.10102402082508e-06f, -5.69250639462346e-05f, -7.34990630326855e-04f, -2.95459980854025e-03f,
                  -1.60960333262415e-02f})
    p = fma(x2, p, Vec::splat(c));
  Vec q = fma(x2, Vec::splat(-1.45660718464996e-05f), Vec::splat(-2.13374055278905e-04f));
  for (float c : {-1.68282697438203e-03f, -7.37332916720468e-03f, -1.42647390514189e-02f}) q = fma(x2, q, Vec::splat(c));
  return x * p / q;
}

inline Vec activate(Vec y, Activation activation) {
  if (activation != Activation::gelu) return y;
  const Vec half_y = y * Vec::splat(0.5f);
  return fma(half_y, erf(y * Vec::splat(float(M_SQRT1_2))), half_y);
}

}  // namespace
}  // namespace prunq::cpu::PRUNQ_ISA
