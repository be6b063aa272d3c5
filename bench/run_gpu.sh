#!/usr/bin/env bash
# On a machine with a CUDA GPU, in one go: build prunq in place, run the whole test suite (the
# CUDA tests included), then the GPU benchmarks. Tables and logs go to the directory given as
# the first argument (default: bench/gpu-results); copy the tables into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
results=${1:-bench/gpu-results}
mkdir -p "$results"
export PYTHONUNBUFFERED=1

python3 -m pip install --no-build-isolation --no-deps -e . 2>&1 | tail -3
python3 -m prunq info | tee "$results/info.txt"
python3 -m pytest -q -rs tests 2>&1 | tee "$results/tests.log"
python3 -m bench.bench_layernorm --device cuda | tee "$results/layernorm.md"
python3 -m bench.bench_int8_gemm --device cuda | tee "$results/int8_gemm.md"
python3 -m prunq bench --quick --out "$results/suite"
