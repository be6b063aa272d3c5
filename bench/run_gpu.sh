#!/usr/bin/env bash
# On a machine with a CUDA GPU: build prunq in place, run the whole test suite (the CUDA tests
# included), then the GPU benchmarks. Tables and logs go to the directory given as the first
# argument (default: bench/gpu-results); copy the tables into bench/RESULTS.md.
#
#   bench/run_gpu.sh [results-dir] [steps]     steps: any of build,test,bench (default: all three)
#
# Every step runs even if an earlier one failed (a failing test must not cost the benchmark
# figures); the exit status is non-zero if any step failed. Steps can be run in separate calls
# where a call's time is limited: build once, then test, then bench.
set -uo pipefail
cd "$(dirname "$0")/.."
results=${1:-bench/gpu-results}
steps=${2:-build,test,bench}
mkdir -p "$results"
export PYTHONUNBUFFERED=1
status=0

run() {  # run LOG COMMAND...: the command's output shown and kept in $results/LOG
  local log=$1
  shift
  echo "== $*"
  "$@" 2>&1 | tee "$results/$log" || { status=1; echo "== failed: $*"; }
}

if [[ $steps == *build* ]]; then
  if ! command -v nvcc >/dev/null; then
    echo "== nvcc not found: prunq._cuda will not be built; its tests skip and its benchmark columns are missing"
  fi
  run build.log python3 -m pip install --no-build-isolation --no-deps -e .
  run info.txt python3 -m prunq info
  grep -q "prunq._cuda   loaded" "$results/info.txt" || echo "== prunq._cuda is not loaded (see $results/info.txt)"
fi
if [[ $steps == *test* ]]; then
  # The suite in parallel where pytest-xdist is installed, each worker on 2 CPU threads (the CPU
  # tests otherwise oversubscribe a many-core machine); -v keeps each result if a time limit cuts the run.
  parallel=()
  python3 -c "import xdist" 2>/dev/null && parallel=(-n 8)
  OMP_NUM_THREADS=2 run tests.log python3 -m pytest -v -rfEs "${parallel[@]}" -p no:cacheprovider tests
fi
if [[ $steps == *bench* ]]; then
  run layernorm.md python3 -m bench.bench_layernorm --device cuda
  run int8_gemm.md python3 -m bench.bench_int8_gemm --device cuda
  run sparse24.md python3 -m bench.bench_sparse24 --device cuda
  run csr.md python3 -m bench.bench_csr --device cuda
  run binary.md python3 -m bench.bench_binary --device cuda
  run suite.log python3 -m prunq bench --quick --out "$results/suite"
fi
exit $status
