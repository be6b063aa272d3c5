"""Every Triton kernel of prunq compiled ahead of time for the GPUs prunq targets, without a GPU.

    python -m prunq.triton_kernels.aot [--arch 80 90] [--report]

Triton's interpreter (what the tests run on CPU tensors) accepts code that real compilation
rejects, so each kernel is also compiled here by Triton's own compiler, for sm_80 and sm_90a, for
every autotune config and for the dtypes and constexpr values the ops launch it with. Exits
non-zero on any compile error, on an instruction a kernel's contract rules out in its PTX, and on
a spill beyond SPILL_BOUND bytes per thread (ptxas -v). --report prints ptxas's registers and
spill bytes and Triton's shared memory per kernel and config. A new Triton kernel joins by adding its variants to `variants()`.
Run with TRITON_INTERPRET unset: under the interpreter, @triton.jit functions do not compile.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import binary, csr, int8_gemm, layernorm, sparse24

ARCHS = (80, 90)
# Spill bytes per thread (stores) a shipped variant may have: the tiles and row lengths are chosen
# to stay under it (most variants spill nothing).
SPILL_BOUND = 512
DTYPES = {"fp32": 4, "bf16": 2, "fp16": 2}  # Triton's names, bytes per element


@dataclass
class Variant:
    """One compilation of one kernel: its argument types, constexprs and launch options."""

    name: str
    fn: object
    signature: dict
    constexprs: dict
    options: dict = field(default_factory=dict)
    # PTX instructions the kernel's contract rules out (e.g. a fused multiply-add on a rounding path).
    forbidden_ptx: tuple = ()

    def label(self) -> str:
        pointers = sorted({t[1:] for t in self.signature.values() if t.startswith("*")} - {"i8", "fp32"})
        values = ",".join(f"{k}={v}" for k, v in {**self.constexprs, **self.options}.items() if k not in ("PTX", "UPCAST"))
        return f"{self.name} {'/'.join(pointers) or 'fp32'} [{values}]"


def _signature(fn, types: dict) -> dict:
    """types for the named arguments, "constexpr" for the rest (all of fn's arguments, in order)."""
    return {name: types.get(name, "constexpr") for name in fn.arg_names}


def _jit(kernel):
    """The @triton.jit function, under its @triton.autotune if it has one."""
    return kernel.fn if isinstance(kernel, triton.runtime.Autotuner) else kernel


def variants():
    """Every launch shape of prunq's Triton kernels that the ops can produce."""
    norm = _jit(layernorm._add_norm_kernel)
    for dtype, size in DTYPES.items():
        for block in (16, 1024, 4096, layernorm.MAX_HIDDEN):
            for has_w, has_b, rms in ((True, True, False), (True, False, True), (False, False, False)):
                if (has_w, has_b, rms) != (True, True, False) and block != 1024:
                    continue
                yield Variant("add_norm", norm, _signature(norm, {
                    "X": f"*{dtype}", "R": f"*{dtype}", "W": f"*{dtype}", "B": f"*{dtype}", "OUT": f"*{dtype}",
                    "SUM": f"*{dtype}", "hidden": "i32", "eps": "fp32"}),
                    {"HAS_W": has_w, "HAS_B": has_b, "RMS": rms, "BLOCK": block},
                    {"num_warps": layernorm.num_warps_for(block, size)})

    quantize = _jit(int8_gemm._quantize_kernel)
    for dtype, size in DTYPES.items():
        for block in (16, 1024, int8_gemm.MAX_QUANTIZE_BLOCK):
            for has_mul in (False, True):
                yield Variant("quantize_per_token", quantize, _signature(quantize, {
                    "X": f"*{dtype}", "MUL": "*fp32", "Q": "*i8", "SCALE": "*fp32", "cols": "i32"}),
                    {"HAS_MUL": has_mul, "BLOCK": block, "PTX": True}, {"num_warps": layernorm.num_warps_for(block, size)},
                    forbidden_ptx=("fma.rn.f32",))

    gemm = _jit(int8_gemm._int8_gemm_kernel)
    for i, config in enumerate(int8_gemm.gpu_configs(int8_gemm.INT8_TILES)):
        for out, has_bias, gelu in (("fp32", True, True),) + ((("bf16", False, False), ("fp16", True, False)) if i == 0 else ()):
            yield Variant("int8_linear", gemm, _signature(gemm, {
                "X": "*i8", "X_SCALE": "*fp32", "W": "*i8", "W_SCALE": "*fp32", "BIAS": "*fp32", "OUT": f"*{out}",
                "M": "i32", "N": "i32", "K": "i32", "M_BUCKET": "i32"}),
                {"HAS_BIAS": has_bias, "GELU": gelu, **config.kwargs},
                {"num_warps": config.num_warps, "num_stages": config.num_stages})

    weight_only = _jit(int8_gemm._weight_only_kernel)
    for dtype in DTYPES:
        tiles = int8_gemm.WEIGHT_ONLY_TILES["fp32" if dtype == "fp32" else "16-bit"]
        for config in int8_gemm.gpu_configs(tiles):
            yield Variant("int8_weight_only_linear", weight_only, _signature(weight_only, {
                "X": f"*{dtype}", "W": "*i8", "W_SCALE": "*fp32", "BIAS": "*fp32", "OUT": f"*{dtype}",
                "M": "i32", "N": "i32", "K": "i32", "M_BUCKET": "i32"}),
                {"HAS_BIAS": True, "UPCAST": False, **config.kwargs},
                {"num_warps": config.num_warps, "num_stages": config.num_stages})

    yield from _sparse24_variants()
    yield from _csr_variants()
    yield from _binary_variants()


def _sparse24_variants():
    kernel = sparse24._sparse24_kernel
    for x_type in DTYPES:
        for values_type, has_scale in (*((value, False) for value in DTYPES), ("i8", True)):
            for block_m, block_n, block_j, warps in sparse24.TILES:
                yield Variant("sparse24_linear", kernel, _signature(kernel, {
                    "X": f"*{x_type}", "VALUES": f"*{values_type}", "META": "*u8", "W_SCALE": "*fp32",
                    "BIAS": "*fp32", "OUT": f"*{x_type}", "M": "i32", "N": "i32", "K": "i32", "KP": "i32"}),
                    {"HAS_SCALE": has_scale, "HAS_BIAS": True, "BLOCK_M": block_m, "BLOCK_N": block_n,
                     "BLOCK_J": block_j}, {"num_warps": warps})


def _csr_variants():
    kernel = csr._csr_kernel
    for x_type in DTYPES:
        for values_type, has_scale in (*((value, False) for value in DTYPES), ("i8", True)):
            for block_m, block_j, warps in csr.TILES:
                yield Variant("csr_linear", kernel, _signature(kernel, {
                    "X": f"*{x_type}", "CROW": "*i32", "COL": "*i32", "VALUES": f"*{values_type}", "ORDER": "*i32",
                    "W_SCALE": "*fp32", "BIAS": "*fp32", "OUT": f"*{x_type}", "M": "i32", "N": "i32", "K": "i32"}),
                    {"HAS_SCALE": has_scale, "HAS_BIAS": True, "BLOCK_M": block_m, "BLOCK_J": block_j},
                    {"num_warps": warps})


def _binary_variants():
    xnor = binary._xnor_kernel
    for out_type, float_out in (("i32", False), *((dtype, True) for dtype in DTYPES)):
        for block_m, block_n, block_w, warps in binary.XNOR_TILES:
            yield Variant("binary_xnor", xnor, _signature(xnor, {
                "A": "*i32", "B": "*i32", "ALPHA": "*fp32", "W_SCALE": "*fp32", "BIAS": "*fp32", "OUT": f"*{out_type}",
                "M": "i32", "N": "i32", "K": "i32", "WORDS": "i32"}),
                {"FLOAT_OUT": float_out, "HAS_ALPHA": float_out, "HAS_BIAS": float_out, "PTX": True,
                 "BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_W": block_w}, {"num_warps": warps})
    connect = binary._connect_kernel
    for x_type in DTYPES:
        for block_m, block_n, block_w, warps in binary.CONNECT_TILES:
            yield Variant("binary_connect", connect, _signature(connect, {
                "X": f"*{x_type}", "B": "*i32", "W_SCALE": "*fp32", "BIAS": "*fp32", "OUT": f"*{x_type}",
                "M": "i32", "N": "i32", "K": "i32", "WORDS": "i32"}),
                {"HAS_BIAS": True, "BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_W": block_w}, {"num_warps": warps})


def compile_variant(variant: Variant, arch: int):
    """The compiled kernel (its .asm holds "ptx" and "cubin"), for sm_<arch> (sm_90a for 90)."""
    source = ASTSource(fn=variant.fn, signature=variant.signature, constexprs=variant.constexprs)
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=variant.options)


def _ptxas_candidates() -> list[str]:
    """The ptxas binaries Triton ships (an older one and a newer one that reads newer PTX)."""
    bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    return [str(bundled / name) for name in ("ptxas", "ptxas-blackwell") if (bundled / name).exists()]


def ptxas_usage(ptx: str, arch: int) -> dict:
    """Registers and spill bytes per thread as ptxas -v reports them for this PTX (through the
    first of Triton's ptxas binaries that reads its PTX version)."""
    gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "kernel.ptx"
        path.write_text(ptx)
        for ptxas in _ptxas_candidates():
            result = subprocess.run([ptxas, "-v", f"--gpu-name={gpu}", str(path), "-o", str(path.with_suffix(".o"))],
                                    capture_output=True, text=True)
            if result.returncode == 0:
                break
        else:
            raise RuntimeError(f"no ptxas here reads this PTX: {result.stderr.strip()}")
    text = result.stderr + result.stdout
    registers = re.search(r"Used (\d+) registers", text)
    stores = re.search(r"(\d+) bytes spill stores", text)
    loads = re.search(r"(\d+) bytes spill loads", text)
    return {"registers": int(registers.group(1)) if registers else 0,
            "spill_stores": int(stores.group(1)) if stores else 0,
            "spill_loads": int(loads.group(1)) if loads else 0}


def check(index: int, arch: int, report: bool) -> tuple[str, str | None]:
    """(a report row or "", an error or None) for variant `index` on sm_<arch>; run in a worker."""
    variant = list(variants())[index]
    where = f"{variant.label()} sm_{arch}"
    try:
        compiled = compile_variant(variant, arch)
    except Exception as error:  # noqa: BLE001 - every compile error is reported, then the next runs
        return "", f"{where}: {type(error).__name__}: {str(error).strip().splitlines()[-1]}"
    found = [instruction for instruction in variant.forbidden_ptx if instruction in compiled.asm["ptx"]]
    if found:
        return "", f"{where}: its PTX holds {', '.join(found)}"
    usage = ptxas_usage(compiled.asm["ptx"], arch)
    if usage["spill_stores"] > SPILL_BOUND:
        return "", f"{where}: spills {usage['spill_stores']} bytes per thread (bound {SPILL_BOUND})"
    return (f"| {variant.label()} | sm_{arch}{'a' if arch >= 90 else ''} | {usage['registers']} | "
            f"{usage['spill_stores']} | {usage['spill_loads']} | {compiled.metadata.shared} |") if report else "", None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, nargs="+", default=list(ARCHS), help="compute capabilities (90 -> sm_90a)")
    parser.add_argument("--report", action="store_true", help="registers, spills and shared memory per variant")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compilations at once")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        parser.error("unset TRITON_INTERPRET: interpreted kernels do not compile")
    tasks = [(index, arch) for index in range(len(list(variants()))) for arch in args.arch]
    if args.report:
        print("| kernel | target | registers | spill stores B | spill loads B | shared B |")
        print("|---|---|---|---|---|---|")
    errors = 0
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        for row, error in pool.map(check, *zip(*tasks), itertools.repeat(args.report)):
            if error:
                errors += 1
                print(f"FAILED {error}", file=sys.stderr)
            elif row:
                print(row, flush=True)
    print(f"{len(tasks)} compilations, {errors} failed", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
