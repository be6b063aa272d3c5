"""Named shape lists for the tests (the benchmarks' shapes are in bench/shapes.py)."""

# Hidden sizes of real models, and awkward ones: below a vector width, odd, primes, one past a
# power of two.
HIDDEN_REAL = [384, 768, 1024, 4096]
HIDDEN_UNALIGNED = [1, 3, 15, 17, 31, 33, 127, 496, 769, 1023]

# Rows for norms: empty, single (decode), odd, and a sweep across thread-split boundaries.
ROWS = [0, 1, 2, 7, 130]

# GEMM shapes (M, K, N). Unaligned K and N (not multiples of 4, 16, 64) and M from 0 up.
GEMM_UNALIGNED = [(0, 64, 16), (1, 5, 3), (1, 496, 769), (2, 63, 65), (7, 100, 17), (33, 257, 130), (130, 1000, 64)]
GEMM_M_SWEEP = list(range(0, 131))
# Bit counts of the binary matmul: word boundaries and long rows.
BINARY_K = [1, 31, 32, 33, 63, 64, 65, 1000, 4099]
# Many rows and a K long enough that the sparse panel kernels walk K in blocks.
SPARSE_LONG_K = [(70, 1500, 9), (20, 3000, 5)]
