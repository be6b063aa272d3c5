"""Benchmark shapes: decode and prefill sizes of real models. `--quick` runs the first ones."""

# Norm family: tokens x hidden.
NORM_TOKENS = [1, 128, 4096]
NORM_HIDDEN = [384, 768, 4096]
NORM_QUICK = [(1, 384), (128, 768), (4096, 384)]

# GEMM (M, K, N), and a head-pruned MiniLM projection at batch 32 x 128 (5 of 12 heads kept: its
# 3 panels of 64 output channels split unevenly among 2 threads).
GEMM = [(1, 4096, 4096), (16, 4096, 4096), (128, 768, 3072), (512, 1024, 4096), (2048, 4096, 11008),
        (4096, 384, 160)]
GEMM_QUICK = [(1, 1024, 1024), (16, 1024, 1024), (128, 384, 1536)]

# Sparse GEMM (M, K, N): decode, prefill, and MiniLM's widest layer at batch 32 x 128.
SPARSE = [(1, 4096, 4096), (16, 4096, 4096), (128, 768, 3072), (4096, 384, 1536), (2048, 4096, 11008)]
SPARSE_QUICK = [(1, 1024, 1024), (16, 1024, 1024), (128, 384, 1536)]

# Binary GEMM (M, K, N): decode to large prefill at 4096, and MiniLM's FFN at batch 32 x 128.
BINARY = [(1, 4096, 4096), (16, 4096, 4096), (128, 4096, 4096), (1024, 4096, 4096), (4096, 384, 1536)]
BINARY_QUICK = [(1, 1024, 1024), (16, 1024, 1024), (128, 384, 1536)]
