"""pytest-benchmark cases for the INT8 GEMM family (pytest bench/test_bench_int8_gemm.py)."""

import pytest
import torch

from bench.bench_int8_gemm import candidates
from bench.shapes import GEMM


@pytest.mark.parametrize("impl", ["prunq w8a8", "fbgemm dynamic", "fp32 Linear", "prunq weight-only fp32"])
@pytest.mark.parametrize("m,k,n", GEMM[:4])
def test_int8_gemm(benchmark, impl, m, k, n):
    fn = candidates(m, k, n)[impl]
    with torch.no_grad():
        benchmark(fn)
