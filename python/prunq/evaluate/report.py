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
    width = max(18, *(len(row["name"]) for row in report["rows"]))
    header = f"{'model':<{width}} {'size MB':>8} {'batch ms':>9} {'vs fp32':>8} {'vs qdyn':>8} {'query ms':>9} " \
             f"{'vs fp32':>8} {'vs qdyn':>8} {'cos mean':>9} {'cos min':>8} {'NN agree':>9}"
    print(header)
    print("-" * len(header))
    for row in report["rows"]:
        print(f"{row['name']:<{width}} {row['size_bytes'] / 1e6:>8.1f} {row['latency_s'] * 1e3:>9.1f} "
              f"{_ratio(row['speedup_vs_fp32']):>8} {_ratio(row['speedup_vs_quantize_dynamic']):>8} "
              f"{row['query_latency_s'] * 1e3:>9.2f} {_ratio(row['query_speedup_vs_fp32']):>8} "
              f"{_ratio(row['query_speedup_vs_quantize_dynamic']):>8} {row['cosine_mean']:>9.4f} "
              f"{row['cosine_min']:>8.4f} {row['neighbour_agreement'] * 100:>8.1f}%")
    print(f"query: \"{query['text']}\"\n")


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n")


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (speed-up, fidelity) that no other point beats on both, or equals on
    one and beats on the other, in order of speed-up: the recipes worth choosing from."""
    front = []
    for i, (speed, fidelity) in enumerate(points):
        dominated = any(s >= speed and f >= fidelity and (s, f) != (speed, fidelity) for s, f in points)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def write_chart(report: dict, path: Path) -> bool:
    """Speed-up against fidelity, one point per model (its area the size on disk) with the Pareto
    front marked; then size, latency and fidelity side by side. False (and no file) without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = report["rows"]
    names = [row["name"] for row in rows]
    batch, tokens = report["batch"]
    panels = (("size on disk (MB)", [row["size_bytes"] / 1e6 for row in rows]),
              (f"latency, batch {batch} x {tokens} (ms)", [row["latency_s"] * 1e3 for row in rows]),
              (f"latency, one query of {report['query']['tokens']} tokens (ms)",
               [row["query_latency_s"] * 1e3 for row in rows]),
              ("nearest-neighbour agreement (%)", [row["neighbour_agreement"] * 100 for row in rows]))
    figure, axes = plt.subplots(1, len(panels) + 1, figsize=(5 * (len(panels) + 1), max(4.5, 0.45 * len(names) + 1.8)),
                                gridspec_kw={"width_ratios": [2] + [1] * len(panels)})
    _trade_off(axes[0], rows, batch, tokens)
    labels = [_wrapped(name) for name in names]
    for axis, (title, values) in zip(axes[1:], panels):
        axis.barh(labels, values, color="#4c72b0")
        axis.set_title(title)
        axis.invert_yaxis()
        for y, value in enumerate(values):
            axis.text(value, y, f" {value:.3g}", va="center", fontsize=8)
        axis.margins(x=0.2)
    for axis in axes[2:]:
        axis.set_yticklabels([])
    figure.suptitle(f"{report['model']}: {report['device']}, {report['threads']} threads")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _wrapped(name: str, width: int = 24) -> str:
    """A recipe name broken after '+' into lines of about `width` characters."""
    lines = [""]
    for step in name.split("+"):
        piece = step if not lines[-1] else "+" + step
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append(piece)
        else:
            lines[-1] += piece
    return "\n".join(lines)


def _trade_off(axis, rows: list[dict], batch: int, tokens: int) -> None:
    points = [(row["speedup_vs_fp32"], row["cosine_mean"]) for row in rows]
    front = pareto_front(points)
    sizes = [row["size_bytes"] / 1e6 for row in rows]
    axis.scatter([p[0] for p in points], [p[1] for p in points], s=[4 * size for size in sizes],
                 c=["#dd8452" if i in front else "#4c72b0" for i in range(len(rows))], alpha=0.6)
    axis.plot([points[i][0] for i in front], [points[i][1] for i in front], color="#dd8452", linewidth=1,
              label="Pareto front")
    rightmost = max(p[0] for p in points)
    for (speed, fidelity), row, size in zip(points, rows, sizes):
        left = speed > 0.6 * rightmost  # labels of the fastest points run leftwards, inside the axes
        axis.annotate(f"{_wrapped(row['name'])} ({size:.0f} MB)", (speed, fidelity), fontsize=7,
                      xytext=(-4 if left else 4, 3), textcoords="offset points", ha="right" if left else "left")
    axis.set_xlabel(f"speed-up over fp32, batch {batch} x {tokens}")
    axis.set_ylabel("cosine to fp32 embeddings (mean)")
    axis.set_title("the trade-off (point area: size on disk)")
    axis.legend(loc="lower left", fontsize=8)
    axis.grid(alpha=0.3)
