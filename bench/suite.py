"""Every benchmark in one run (`prunq bench`): the tables, a JSON file and a PNG chart.

    python -m bench.suite [--quick] [--device cpu|cuda] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from . import bench_binary, bench_calls, bench_csr, bench_int8_gemm, bench_layernorm, bench_sparse24
from .harness import Table


def run(device: str, quick: bool, out: str) -> list[Table]:
    tables = []
    comparisons = [lambda: bench_layernorm.compare(device, quick),
                   lambda: bench_int8_gemm.compare_cuda(quick) if device == "cuda" else bench_int8_gemm.compare(quick)]
    if device == "cpu":
        comparisons += [lambda: bench_sparse24.compare(quick), lambda: bench_csr.compare(quick),
                        lambda: bench_csr.break_even(quick), lambda: bench_binary.compare(quick),
                        lambda: bench_calls.compare(quick)]
    for compare in comparisons:
        tables.append(compare())
        print(tables[-1].markdown(), end="\n\n", flush=True)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps([asdict(table) for table in tables], indent=2) + "\n")
    written = ["bench.json"] + (["bench.png"] if write_chart(tables, out_dir / "bench.png") else [])
    print(f"wrote {', '.join(str(out_dir / name) for name in written)}")
    return tables


def write_chart(tables: list[Table], path: Path) -> bool:
    """prunq's speed-up over each table's baseline, one panel per table; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    heights = [0.3 * len(table.speedups) + 1.2 for table in tables]
    figure, axes = plt.subplots(len(tables), 1, figsize=(9, sum(heights)), squeeze=False,
                                gridspec_kw={"height_ratios": heights})
    for axis, table in zip(axes[:, 0], tables):
        labels, values = list(table.speedups), list(table.speedups.values())
        axis.barh(labels, values, color=["#4c72b0" if v >= 1 else "#c44e52" for v in values])
        axis.axvline(1.0, color="black", linewidth=0.8)
        axis.invert_yaxis()
        axis.tick_params(axis="y", labelsize=7)
        axis.set_xlabel(f"speed-up over {table.baseline}")
        axis.set_title(table.title.split(":")[0], fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prunq bench", description="prunq's kernels against their baselines")
    add_arguments(parser)
    args = parser.parse_args(argv)
    run(args.device, args.quick, args.out)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small shapes and few repeats: a few seconds")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default="prunq-bench", help="directory for bench.json and bench.png")


if __name__ == "__main__":
    raise SystemExit(main())
