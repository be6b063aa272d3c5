// Splits a loop over the threads the caller asks for (the Python layer passes
// torch.get_num_threads(), so prunq never runs more threads than torch would).
#pragma once
#include <cstdint>
#include <functional>

namespace prunq {

// Runs fn(begin, end) over [0, n) in at most `num_threads` contiguous chunks of at least
// `min_chunk` items each, on OpenMP threads (see parallel.cpp).
void parallel_for(int64_t n, int num_threads, int64_t min_chunk,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace prunq
