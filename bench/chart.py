"""The PNG chart of a run."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

SERVICE, BASELINE, CEILING = "#1f77b4", "#ff7f0e", "#7f7f7f"
RUNS = ("service-default", "baseline-default", "service-cheap", "baseline-cheap")


def _label_bars(axes: Axes, values: list[float], fmt: str) -> None:
    for index, value in enumerate(values):
        axes.annotate(fmt.format(value), (index, value), ha="center", va="bottom", fontsize=8)


def _throughput(axes: Axes, results: dict[str, Any], params: str) -> None:
    cycle = results["cycle"]
    names = ["service", "baseline"]
    values = [cycle[f"{name}-{params}"]["cycles_per_second"] for name in names]
    colors = [SERVICE, BASELINE]
    if params == "default":
        names.append("ceiling\n(hash+verify)")
        values.append(results["ceiling"]["pairs_per_second"])
        colors.append(CEILING)
    axes.bar(names, values, color=colors)
    _label_bars(axes, values, "{:.1f}" if params == "default" else "{:.0f}")
    title = "default argon2" if params == "default" else "cheapest argon2 (overhead, information)"
    axes.set_title(f"Cycles/s, {title}")
    axes.set_ylabel("create + reveal cycles per second")


def _healthz(axes: Axes, results: dict[str, Any]) -> None:
    p50 = [results["cycle"][label]["healthz_ms"]["p50"] for label in RUNS]
    p99 = [results["cycle"][label]["healthz_ms"]["p99"] for label in RUNS]
    positions = range(len(RUNS))
    axes.bar([p - 0.2 for p in positions], p50, width=0.4, label="p50", color="#9ecae1")
    axes.bar([p + 0.2 for p in positions], p99, width=0.4, label="p99", color="#08519c")
    axes.axhline(20, color="red", linestyle="--", linewidth=1, label="target p99 ≤ 20 ms")
    axes.set_yscale("log")
    axes.set_xticks(list(positions), [label.replace("-", "\n") for label in RUNS])
    axes.set_title("/healthz latency under load (ms, log)")
    axes.legend(fontsize=8)


def _cycle_latency(axes: Axes, results: dict[str, Any]) -> None:
    positions = range(len(RUNS))
    for offset, (call, color) in zip(
        (-0.2, 0.2), (("create", "#74c476"), ("reveal", "#006d2c")), strict=True
    ):
        p50 = [results["cycle"][label]["latency_ms"][call]["p50"] for label in RUNS]
        p99 = [results["cycle"][label]["latency_ms"][call]["p99"] for label in RUNS]
        xs = [p + offset for p in positions]
        axes.bar(xs, p99, width=0.4, color=color, alpha=0.35)
        axes.bar(xs, p50, width=0.4, color=color, label=f"{call} p50 (pale: p99)")
    axes.set_yscale("log")
    axes.set_xticks(list(positions), [label.replace("-", "\n") for label in RUNS])
    axes.set_title("Call latency under load (ms, log)")
    axes.legend(fontsize=8)


def _scale(axes: Axes, results: dict[str, Any]) -> None:
    scale = results["scale"]
    labels = [f"{size['size']:,} rows" for size in scale["sizes"]] + ["during purge"]
    runs = [*scale["sizes"], scale["purge"]]
    positions = range(len(runs))
    p50 = [run["latency_ms"]["p50"] for run in runs]
    p99 = [run["latency_ms"]["p99"] for run in runs]
    axes.bar([p - 0.2 for p in positions], p50, width=0.4, label="p50", color="#bcbddc")
    axes.bar([p + 0.2 for p in positions], p99, width=0.4, label="p99", color="#54278f")
    axes.axhline(100, color="red", linestyle="--", linewidth=1, label="target p99 ≤ 100 ms (purge)")
    axes.set_yscale("log")
    axes.set_xticks(list(positions), labels)
    axes.set_title(f"Reveal latency (ms, log); purge took {scale['purge']['seconds']:.0f} s")
    axes.legend(fontsize=8)


def _memory(axes: Axes, results: dict[str, Any]) -> None:
    peaks = [max(results["cycle"][label]["peak_rss_mb"]) for label in RUNS]
    axes.bar(
        [label.replace("-", "\n") for label in RUNS],
        peaks,
        color=[SERVICE, BASELINE, SERVICE, BASELINE],
    )
    _label_bars(axes, peaks, "{:.0f}")
    axes.axhline(200, color="red", linestyle="--", linewidth=1, label="target ≤ 200 MB")
    axes.set_title("Peak RSS of the largest worker (MB)")
    axes.legend(fontsize=8)


def draw_chart(results: dict[str, Any], path: Path) -> None:
    """Draw throughput, latency, scale and memory panels into the PNG at `path`."""
    figure, grid = plt.subplots(2, 3, figsize=(16, 9))
    _throughput(grid[0][0], results, "default")
    _throughput(grid[0][1], results, "cheap")
    _healthz(grid[0][2], results)
    _cycle_latency(grid[1][0], results)
    _scale(grid[1][1], results)
    _memory(grid[1][2], results)
    machine = results["machine"]
    figure.suptitle(
        f"One-time secrets: service vs naive baseline, {machine['cores']} cores, "
        f"PostgreSQL {machine['postgresql']}, 2 uvicorn workers each ({results['started_at']})"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
