"""Registers, spills and shared memory of every GPU kernel for sm_80 and sm_90a, from ptxas, without
a GPU: the Triton kernels at each config (prunq.triton_kernels.aot --report) and the CUDA C++
kernels (nvcc -Xptxas -v).

    python -m bench.ptxas_report     Markdown tables (copy them into bench/RESULTS.md)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CUDA_SOURCES = ("csrc/cuda/layernorm.cu", "csrc/cuda/int8_gemm.cu")
TARGETS = ("sm_80", "sm_90a")


def triton_table() -> str:
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    result = subprocess.run([sys.executable, "-m", "prunq.triton_kernels.aot", "--report"], env=env,
                            capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    return result.stdout


def _demangled(name: str) -> str:
    """A kernel's name and template arguments, short: `layernorm_rows<float, 4>` rather than the
    mangled symbol."""
    demangler = shutil.which("cu++filt") or shutil.which("c++filt")
    if demangler:
        name = subprocess.run([demangler, name], capture_output=True, text=True).stdout.strip() or name
    name = re.sub(r"\(anonymous namespace\)::|prunq::cuda::|void |__nv_bfloat16|__half", lambda m: {
        "__nv_bfloat16": "bf16", "__half": "f16"}.get(m.group(0), ""), name)
    return re.sub(r"\(.*\)$", "", name)


def cuda_table() -> str:
    nvcc = shutil.which("nvcc")
    if not nvcc:
        return "nvcc not found: no CUDA C++ table\n"
    lines = ["| kernel | target | registers | spill stores B | spill loads B | static shared B |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as scratch:
        for source in CUDA_SOURCES:
            for target in TARGETS:
                result = subprocess.run([nvcc, "-std=c++17", "-O3", f"-arch={target}", "-Xptxas", "-v", "-c",
                                         str(ROOT / source), "-o", str(Path(scratch) / "kernel.o")],
                                        capture_output=True, text=True, check=True)
                for block in result.stderr.split("Compiling entry function")[1:]:
                    name = re.search(r"'([^']+)'", block).group(1)
                    numbers = {key: int(value) for value, key in re.findall(
                        r"(\d+) (bytes spill stores|bytes spill loads|registers|bytes smem)", block)}
                    lines.append(f"| {_demangled(name)} | {target} | {numbers.get('registers', 0)} | "
                                 f"{numbers.get('bytes spill stores', 0)} | {numbers.get('bytes spill loads', 0)} | "
                                 f"{numbers.get('bytes smem', 0)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print("Triton kernels (prunq.triton_kernels.aot --report):\n")
    print(triton_table())
    print("CUDA C++ kernels (nvcc -O3 -Xptxas -v):\n")
    print(cuda_table())
