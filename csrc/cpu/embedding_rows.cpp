#include "embedding_rows.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "../common/parallel.h"

namespace prunq::cpu {
namespace {

void check_ids(const int64_t* ids, int64_t count, int64_t rows) {
  for (int64_t i = 0; i < count; ++i)
    if (ids[i] < 0 || ids[i] >= rows)
      throw std::out_of_range("ids: " + std::to_string(ids[i]) + " is outside the table of " + std::to_string(rows) +
                              " rows");
}

// Calls f(out typed as out_dtype).
template <class F>
void with_output(void* out, DType out_dtype, F&& f) {
  switch (out_dtype) {
    case DType::f32: return f(static_cast<float*>(out));
    case DType::bf16: return f(static_cast<bf16*>(out));
    case DType::f16: return f(static_cast<f16*>(out));
  }
}

int64_t rows_per_task(int64_t dim) { return 1 + (int64_t(1) << 15) / std::max<int64_t>(dim, 1); }

}  // namespace

void gather_dequantize_rows(const int64_t* ids, int64_t count, const int8_t* w, const float* scale, int64_t rows,
                            int64_t dim, void* out, DType out_dtype, int num_threads) {
  check_ids(ids, count, rows);
  with_output(out, out_dtype, [&](auto* o) {
    parallel_for(count, num_threads, rows_per_task(dim), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int8_t* row = w + ids[i] * dim;
        const float s = scale[ids[i]];
        for (int64_t j = 0; j < dim; ++j) o[i * dim + j] = from_float<std::remove_pointer_t<decltype(o)>>(float(row[j]) * s);
      }
    });
  });
}

void gather_dequantize_rows_int4(const int64_t* ids, int64_t count, const uint8_t* w, const f16* scale,
                                 int64_t rows, int64_t dim, int64_t group, void* out, DType out_dtype,
                                 int num_threads) {
  check_ids(ids, count, rows);
  const int64_t bytes = (dim + 1) / 2, groups = (dim + group - 1) / group;
  with_output(out, out_dtype, [&](auto* o) {
    using O = std::remove_pointer_t<decltype(o)>;
    parallel_for(count, num_threads, rows_per_task(dim), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const uint8_t* row = w + ids[i] * bytes;
        const f16* s = scale + ids[i] * groups;
        for (int64_t g = 0; g < groups; ++g) {
          const float sg = to_float(s[g]);
          for (int64_t j = g * group; j < std::min(dim, (g + 1) * group); ++j) {
            const int nibble = (row[j / 2] >> ((j & 1) * 4)) & 15;
            o[i * dim + j] = from_float<O>(float(nibble - 8) * sg);
          }
        }
      }
    });
  });
}

}  // namespace prunq::cpu
