"""The `prunq` command."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prunq", description="Kernels for compressed Transformer inference.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="version, native modules, CPU features, CUDA devices, Triton")
    demo = commands.add_parser("demo", help="run and time the fused residual add + LayerNorm")
    demo.add_argument("--tokens", type=int, default=4096)
    demo.add_argument("--hidden", type=int, default=768)
    args = parser.parse_args(argv)

    if args.command == "info":
        from .info import print_report

        print_report()
    elif args.command == "demo":
        from .demo import run

        run(args.tokens, args.hidden)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
