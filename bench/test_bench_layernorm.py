"""pytest-benchmark cases for the fused add + norm (pytest bench/test_bench_layernorm.py)."""

import pytest
import torch

from bench.bench_layernorm import candidates, make_sets

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("impl", ["prunq", "eager"])
@pytest.mark.parametrize("norm", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("tokens,hidden", [(1, 768), (128, 768), (4096, 768), (4096, 4096)])
def test_add_norm(benchmark, impl, norm, dtype, tokens, hidden):
    (sets, weight, bias) = make_sets(tokens, hidden, dtype, DEVICE, 1)
    ours, eager = candidates(norm, weight, bias, hidden)
    fn = ours if impl == "prunq" else eager
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    benchmark(lambda: (fn(*sets[0]), sync()))
