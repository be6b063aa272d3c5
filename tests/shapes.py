"""Named shape lists shared by tests and benchmarks."""

# Hidden sizes of real models, and awkward ones: below a vector width, odd, primes, one past a
# power of two.
HIDDEN_REAL = [384, 768, 1024, 4096]
HIDDEN_UNALIGNED = [1, 3, 15, 17, 31, 33, 127, 496, 769, 1023]

# Rows for norms: empty, single (decode), odd, and a sweep across thread-split boundaries.
ROWS = [0, 1, 2, 7, 130]

# Benchmark shapes for the norm family: tokens x hidden.
NORM_BENCH_TOKENS = [1, 128, 4096]
NORM_BENCH_HIDDEN = [384, 768, 4096]
