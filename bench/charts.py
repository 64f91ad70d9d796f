"""Charts of the saved results, PNG beside the JSON; each benchmark redraws them after saving.

``python -m bench.charts`` redraws every chart from whatever results exist. Charts only show
figures that were saved, with the run time of each in the title, so a chart never mixes in
numbers that were not measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from bench.report import RESULTS_DIR, load


def _stamp(result: dict[str, Any]) -> str:
    machine = result["machine"]
    return f"{result['run_utc']}, {machine['cpu_affinity']} cores, Python {machine['python']}"



def _save(figure: Any, name: str) -> Path:
    """Lay out, write results/<name>.png and free the figure (pyplot keeps every open one)."""
    figure.tight_layout()
    path = RESULTS_DIR / f"{name}.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

def draw_ratios(stages: dict[str, Any] | None, vs_dlt: dict[str, Any] | None, iris: dict[str, Any] | None) -> Path | None:
    panels = [p for p in (stages, vs_dlt, iris) if p is not None]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    column = iter(axes[0])
    if stages is not None:
        ax = next(column)
        codes = list(stages["datasets"])
        ratios = [stages["datasets"][c]["ratio_pipeline_to_bare"] for c in codes]
        ax.bar(codes, ratios, color="#4c72b0")
        ax.axhline(0.5, color="#c44e52", linestyle="--", label="target 0.5")
        for x, ratio in enumerate(ratios):
            ax.annotate(f"{ratio:.2f}", (x, ratio), ha="center", va="bottom")
        ax.set_title(f"pipeline / bare minimum (rows/s)\n{_stamp(stages)}", fontsize=9)
        ax.legend(loc="lower right")
    if vs_dlt is not None:
        ax = next(column)
        codes = list(vs_dlt["datasets"])
        width = 0.2
        for offset, (key, load, label) in enumerate(
            [
                ("ours_to_dlt", "first_load", "vs dlt, first load"),
                ("ours_to_dlt", "reload", "vs dlt, reload"),
                ("ours_to_dlt_arrow", "first_load", "vs dlt (Arrow), first load"),
                ("ours_to_dlt_arrow", "reload", "vs dlt (Arrow), reload"),
            ]
        ):
            values = [vs_dlt["datasets"][c]["ratios"][load][key] for c in codes]
            positions = [i + (offset - 1.5) * width for i in range(len(codes))]
            ax.bar(positions, values, width, label=label)
        ax.set_xticks(range(len(codes)), codes)
        ax.set_yscale("log")
        ax.axhline(3, color="#c44e52", linestyle="--", label="target 3x")
        ax.set_title(f"ours / dlt (rows/s, log scale)\n{_stamp(vs_dlt)}", fontsize=9)
        ax.legend(fontsize=7)
    if iris is not None:
        ax = next(column)
        backlog = iris["backlog"]
        real_peak = 200 / 60
        ax.bar(["IRIS backlog", "real feed peak"], [backlog["messages_per_s"], real_peak], color=["#55a868", "#8c8c8c"])
        ax.annotate(f"{backlog['vs_real_peak']}x", (0, backlog["messages_per_s"]), ha="center", va="bottom")
        ax.set_ylabel("messages/s")
        ax.set_title(f"IRIS: folder to queryable rows\n{_stamp(iris)}", fontsize=9)
    return _save(figure, "ratios")


def draw_stages(stages: dict[str, Any]) -> Path:
    codes = list(stages["datasets"])
    names = list(next(iter(stages["datasets"].values()))["stages"]) + ["end to end", "bare minimum"]
    figure, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.8 / len(codes)
    for index, code in enumerate(codes):
        figures = stages["datasets"][code]
        rates = [figures["stages"][n]["rows_per_s"] or 0 for n in names[:-2]]
        rates += [figures["pipeline"]["rows_per_s"], figures["bare_minimum"]["rows_per_s"]]
        ax.bar([i + (index - (len(codes) - 1) / 2) * width for i in range(len(names))], rates, width, label=code)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("rows/s (log)")
    ax.set_title(f"throughput by stage, one dataset-day\n{_stamp(stages)}", fontsize=9)
    ax.legend()
    return _save(figure, "stages")


def draw_scaling(scaling: dict[str, Any]) -> Path:
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    budget = scaling["budget_requests_per_s"]
    groups: dict[int, list[dict[str, Any]]] = {}
    for run in scaling["runs"]:
        groups.setdefault(run.get("threads", 0), []).append(run)
    for threads, runs in sorted(groups.items()):
        label = f"{threads} threads per process" if threads else "1 pool process each"
        workers = [run["workers"] for run in runs]
        left.plot(workers, [run["dataset_days_per_minute"] for run in runs], marker="o", label=label)
        right.plot(workers, [run["achieved_requests_per_s"] for run in runs], marker="o", label=label)
    ticks = sorted({run["workers"] for run in scaling["runs"]})
    left.set_xlabel("worker processes")
    left.set_ylabel("dataset-days per minute")
    left.set_xticks(ticks)
    left.legend(loc="lower right", fontsize=8)
    right.axhline(budget, color="#8c8c8c", label=f"budget {budget:g} req/s")
    right.axhline(budget * scaling["target_share"], color="#c44e52", linestyle="--", label="90% of budget")
    right.set_xlabel("worker processes")
    right.set_ylabel("requests/s seen by the API")
    right.set_xticks(ticks)
    right.set_ylim(0, budget * 1.15)
    right.legend(loc="lower right", fontsize=8)
    figure.suptitle(
        f"{scaling['days']}-day backfill of {', '.join(scaling['datasets'])}, "
        f"{scaling['latency_ms']:.0f} ms latency\n{_stamp(scaling)}",
        fontsize=9,
    )
    return _save(figure, "scaling")


def draw_memory(memory: dict[str, Any]) -> Path:
    figure, ax = plt.subplots(figsize=(9, 4))
    samples = memory["samples"]
    ax.plot([t for t, _ in samples], [rss for _, rss in samples], linewidth=0.8, label="RSS (sampled)")
    chunks = memory["per_chunk"]
    ax.scatter([c["t_s"] for c in chunks], [c["rss_mb"] for c in chunks], s=6, color="#55a868", label="after each chunk")
    ax.axhline(memory["target_peak_mb"], color="#c44e52", linestyle="--", label=f"target {memory['target_peak_mb']} MB")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MB")
    ax.set_ylim(0, memory["target_peak_mb"] * 1.1)
    ax.set_title(
        f"worker-like process: the BOD day, then {memory['chunks']} chunks "
        f"(peak {memory['bod_day']['peak_rss_mb']:.0f} MB)\n{_stamp(memory)}",
        fontsize=9,
    )
    ax.legend(loc="lower right", fontsize=8)
    return _save(figure, "memory")


HISTORY_COMMANDS = (
    ("select_1", "select 1"),
    ("fuelinst_latest_1_day", "fuelinst_latest, 1 day"),
    ("bod_latest_1_day", "bod_latest, 1 day"),
    ("disebsp_latest_30_days", "disebsp_latest, 30 days"),
    ("gaps", "bmrs gaps (whole range)"),
    ("status", "bmrs status"),
    ("dashboard", "bmrs dashboard"),
)


def draw_history(history: dict[str, Any]) -> Path:
    """Time and peak memory of each command against days of history (benchmark 6)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    days = sorted(int(d) for d in history["sizes"])
    for key, label in HISTORY_COMMANDS:
        times = [history["sizes"][str(d)][key]["s"] for d in days]
        peaks = [history["sizes"][str(d)][key]["peak_mb"] for d in days]
        left.plot(days, times, marker="o", label=label)
        right.plot(days, peaks, marker="o", label=label)
    empty = history["empty"]["select_1"]
    left.axhline(empty["s"], color="#999999", linestyle=":", label="select 1, empty warehouse")
    right.axhline(empty["peak_mb"], color="#999999", linestyle=":")
    left.axhline(3.0, color="#c44e52", linestyle="--", label="dashboard target")
    right.axhline(400, color="#c44e52", linestyle="--")
    for ax, unit in ((left, "seconds (best of runs)"), (right, "peak RSS, MB (median)")):
        ax.set_xscale("log")
        ax.set_xticks(days, [str(d) for d in days])
        ax.set_xlabel("days of history (16 datasets)")
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
    left.legend(fontsize=7, loc="upper left")
    figure.suptitle(f"cost of a command as history grows\n{_stamp(history)}", fontsize=9)
    return _save(figure, "history")


def draw_all() -> list[Path]:
    """Redraw every chart whose results exist; returns the files written."""
    stages, vs_dlt, iris = load("stages"), load("vs_dlt"), load("iris")
    scaling, memory = load("scaling"), load("memory")
    written = [draw_ratios(stages, vs_dlt, iris)]
    if stages:
        written.append(draw_stages(stages))
    if scaling:
        written.append(draw_scaling(scaling))
    if memory:
        written.append(draw_memory(memory))
    history = load("history")
    if history:
        written.append(draw_history(history))
    paths = [p for p in written if p is not None]
    for path in paths:
        print(f"chart: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return paths


if __name__ == "__main__":
    draw_all()
