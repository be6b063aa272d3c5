// Threads come from OpenMP. _C links libgomp.so.1, and torch (imported first by prunq) ships and
// loads a libgomp with that same soname, so the dynamic loader hands _C torch's copy: prunq's
// kernels run on torch's own worker threads. A second thread pool beside torch's would fight it
// for the cores: each pool's threads spin after a job and slow the other's next one.
#include "parallel.h"

#include <algorithm>

namespace prunq {

void parallel_for(int64_t n, int num_threads, int64_t min_chunk,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t by_size = std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk));
  const int chunks = int(std::min<int64_t>(std::max(1, num_threads), by_size));
  if (chunks == 1) return fn(0, n);
  const int64_t step = (n + chunks - 1) / chunks;
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int i = 0; i < chunks; ++i) {
    const int64_t begin = i * step, end = std::min(n, begin + step);
    if (begin < end) fn(begin, end);
  }
}

void parallel_for_2d(int64_t rows, int64_t row_step, int64_t cols, int num_threads, int64_t min_cells,
                     const std::function<void(int64_t, int64_t, int64_t, int64_t)>& fn) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t row_units = (rows + row_step - 1) / row_step;
  const int64_t by_size = std::max<int64_t>(1, row_units * cols / std::max<int64_t>(1, min_cells));
  const int64_t blocks = std::min<int64_t>(std::max(1, num_threads), by_size);
  int64_t col_parts = 1, row_parts = 1, best = -1;
  for (int64_t c = std::min(blocks, cols); c >= 1; --c) {  // more cuts across cols first: they win ties
    const int64_t r = std::min(blocks / c, row_units);
    const int64_t largest = (cols + c - 1) / c * ((row_units + r - 1) / r);
    if (best < 0 || largest < best) best = largest, col_parts = c, row_parts = r;
  }
  const int64_t col_step = (cols + col_parts - 1) / col_parts, unit_step = (row_units + row_parts - 1) / row_parts;
  if (row_parts * col_parts == 1) return fn(0, rows, 0, cols);
#pragma omp parallel for num_threads(int(row_parts * col_parts)) schedule(static, 1)
  for (int64_t i = 0; i < row_parts * col_parts; ++i) {
    const int64_t r0 = i / col_parts * unit_step * row_step, c0 = i % col_parts * col_step;
    const int64_t r1 = std::min(rows, r0 + unit_step * row_step), c1 = std::min(cols, c0 + col_step);
    if (r0 < r1 && c0 < c1) fn(r0, r1, c0, c1);
  }
}

}  // namespace prunq
