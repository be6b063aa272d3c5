"""The table, JSON and chart of a prunq compress run."""

from __future__ import annotations

import json
from pathlib import Path


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def print_table(report: dict) -> None:
    batch, tokens = report["batch"]
    query = report["query"]
    print(f"\n{report['model']} on {report['device']} ({report['threads']} threads); latency at batch {batch} x "
          f"{tokens} tokens (median of {report['runs']}) and of one query of {query['tokens']} tokens (batch 1, "
          f"median of {query['runs']}); fidelity over {report['sentences']} sentences against fp32\n")
    header = f"{'model':<18} {'size MB':>8} {'batch ms':>9} {'vs fp32':>8} {'vs qdyn':>8} {'query ms':>9} " \
             f"{'vs fp32':>8} {'vs qdyn':>8} {'cos mean':>9} {'cos min':>8} {'NN agree':>9}"
    print(header)
    print("-" * len(header))
    for row in report["rows"]:
        print(f"{row['name']:<18} {row['size_bytes'] / 1e6:>8.1f} {row['latency_s'] * 1e3:>9.1f} "
              f"{_ratio(row['speedup_vs_fp32']):>8} {_ratio(row['speedup_vs_quantize_dynamic']):>8} "
              f"{row['query_latency_s'] * 1e3:>9.2f} {_ratio(row['query_speedup_vs_fp32']):>8} "
              f"{_ratio(row['query_speedup_vs_quantize_dynamic']):>8} {row['cosine_mean']:>9.4f} "
              f"{row['cosine_min']:>8.4f} {row['neighbour_agreement'] * 100:>8.1f}%")
    print(f"query: \"{query['text']}\"\n")


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n")


def write_chart(report: dict, path: Path) -> bool:
    """Size, latency and fidelity side by side; False (and no file) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [row["name"] for row in report["rows"]]
    batch, tokens = report["batch"]
    panels = (("size on disk (MB)", [row["size_bytes"] / 1e6 for row in report["rows"]]),
              (f"latency, batch {batch} x {tokens} (ms)", [row["latency_s"] * 1e3 for row in report["rows"]]),
              (f"latency, one query of {report['query']['tokens']} tokens (ms)",
               [row["query_latency_s"] * 1e3 for row in report["rows"]]),
              ("nearest-neighbour agreement (%)", [row["neighbour_agreement"] * 100 for row in report["rows"]]))
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 0.45 * len(names) + 1.8))
    for axis, (title, values) in zip(axes, panels):
        axis.barh(names, values, color="#4c72b0")
        axis.set_title(title)
        axis.invert_yaxis()
        for y, value in enumerate(values):
            axis.text(value, y, f" {value:.3g}", va="center", fontsize=8)
        axis.margins(x=0.2)
    for axis in axes[1:]:
        axis.set_yticklabels([])
    figure.suptitle(f"{report['model']}: {report['device']}, {report['threads']} threads")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
