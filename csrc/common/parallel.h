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

// Runs fn(row_begin, row_end, col_begin, col_end) over a grid of `rows` x `cols` cells in at most
// `num_threads` blocks of at least `min_cells` cells each, row bounds multiples of `row_step`
// (but the last). Of the ways to cut the grid into that many blocks, the one whose largest block
// is smallest is taken, cuts across cols on a tie: a GEMM whose N splits unevenly among the
// threads (3 panels of output channels on 2 threads) splits its rows instead.
void parallel_for_2d(int64_t rows, int64_t row_step, int64_t cols, int num_threads, int64_t min_cells,
                     const std::function<void(int64_t, int64_t, int64_t, int64_t)>& fn);

}  // namespace prunq
