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

}  // namespace prunq
