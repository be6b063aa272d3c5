// Embedding lookups in quantized tables: the rows asked for, dequantized.
#pragma once

#include <cstdint>

#include "../common/dtypes.h"

namespace prunq::cpu {

// out[i, :] = w[ids[i], :] * scale[ids[i]]: rows of an int8 table with one scale per row, out in
// out_dtype. Throws std::out_of_range naming the first id outside [0, rows) before writing anything.
void gather_dequantize_rows(const int64_t* ids, int64_t count, const int8_t* w, const float* scale, int64_t rows,
                            int64_t dim, void* out, DType out_dtype, int num_threads);

// The same from a 4-bit table: row r holds (dim + 1) / 2 bytes, value j in the low (even j) or high
// (odd j) nibble of byte j / 2, stored + 8; scale [rows, ceil(dim / group)] float16, one per group
// of `group` columns.
void gather_dequantize_rows_int4(const int64_t* ids, int64_t count, const uint8_t* w, const f16* scale,
                                 int64_t rows, int64_t dim, int64_t group, void* out, DType out_dtype,
                                 int num_threads);

}  // namespace prunq::cpu
