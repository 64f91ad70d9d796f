"""The "Latest figures" section of ``bench/README.md``, rendered from ``bench/results``.

Every benchmark calls :func:`update_readme` after saving, so the README shows exactly what the
result files hold; ``python -m bench.summary`` renders it again by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import load

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def _machine(result: dict[str, Any]) -> str:
    m = result["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
    return (
        f"run {result['run_utc']} (`{result['command']}`); {m['cpu_affinity']} cores ({m['cpu_model']}), "
        f"{m['memory_gib']} GiB, Python {m['python']}, {libs}; redis-server {m['redis_server']}; "
        f"1-minute load average {m.get('load_average_1m_at_start', '?')} at the start, {m.get('load_average_1m', '?')} at the end"
    )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _stages(result: dict[str, Any]) -> list[str]:
    names = list(next(iter(result["datasets"].values()))["stages"])
    lines = [
        f"### 1. Per-stage throughput, {result['day']} (rows/s; median of {result['repeats']} runs)",
        "",
        _machine(result),
        "",
        "| dataset | rows received / stored | " + " | ".join(names) + " | end to end | bare minimum | pipeline / bare |",
        "|---|---|" + "---:|" * (len(names) + 3),
    ]
    for code, f in result["datasets"].items():
        stages = " | ".join(_rate(f["stages"][n]["rows_per_s"]) for n in names)
        verdict = "met" if f["target_met"] else "**not met**"
        lines.append(
            f"| {code} | {f['rows_received']:,} / {f['rows_stored']:,} | {stages} | "
            f"{_rate(f['pipeline']['rows_per_s'])} ({f['pipeline']['seconds']:.2f} s) | "
            f"{_rate(f['bare_minimum']['rows_per_s'])} ({f['bare_minimum']['seconds']:.2f} s) | "
            f"**{f['ratio_pipeline_to_bare']:.2f}** ({verdict}, target >= {f['target_ratio']}) |"
        )
    return lines


def _vs_dlt(result: dict[str, Any]) -> list[str]:
    lines = [
        f"### 2. Against dlt {result.get('dlt_version', '')}, {result['day']} (rows/s; median of {result['repeats']} runs, one for a loader over a minute)",
        "",
        _machine(result),
        "",
        "| dataset | load | ours | dlt | dlt (Arrow) | ours / dlt | ours / dlt (Arrow) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for code, f in result["datasets"].items():
        for kind in ("first_load", "reload"):
            r = f["ratios"][kind]
            lines.append(
                f"| {code} | {kind.replace('_', ' ')} | {_rate(f['ours'][kind]['rows_per_s'])} | "
                f"{_rate(f['dlt'][kind]['rows_per_s'])} | {_rate(f['dlt_arrow'][kind]['rows_per_s'])} | "
                f"**{r['ours_to_dlt']:.1f}x** | {r['ours_to_dlt_arrow']:.1f}x |"
            )
        lines.append(
            f"| {code} | peak RSS | {f['ours']['peak_rss_mb']:,.0f} MB | {f['dlt']['peak_rss_mb']:,.0f} MB | "
            f"{f['dlt_arrow']['peak_rss_mb']:,.0f} MB | | |"
        )
    met = all(f["target_met"] for f in result["datasets"].values())
    lines += ["", f"Target ours >= 3x dlt on every dataset, first load and reload: {'met' if met else '**not met**'}."]
    return lines


def _scaling(result: dict[str, Any]) -> list[str]:
    lines = [
        (f"### 3. Scaling: {result['days']}-day backfill of {', '.join(result['datasets'])}, "
        f"{result['latency_ms']:.0f} ms latency, budget {result['budget_requests_per_s']:g} req/s "
        f"(burst {result['burst']})"),
        "",
        _machine(result),
        "",
        "| worker processes | pool per process | dataset-days | seconds | dataset-days/min | requests/s | share of budget | busiest second | CPU cores used (workers / simulator / redis) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in result["runs"]:
        cpu = run.get("cpu_cores_used", {})
        lines.append(
            f"| {run['workers']} | {(str(run['threads']) + ' threads') if run.get('threads') else '1 process'} | {run['chunks']} | {run['seconds']:.1f} | {run['dataset_days_per_minute']:.0f} | "
            f"{run['achieved_requests_per_s']:.1f} | {run['budget_share']:.0%} | {run['busiest_second_requests']} | "
            f"{cpu.get('workers', 0):.2f} / {cpu.get('simulator', 0):.2f} / {cpu.get('redis', 0):.2f} |"
        )
    verdict = "met" if result["target_met"] else "**not met**"
    lines += ["", f"At saturation {result['saturation_share']:.0%} of the budget (target >= 90%: {verdict})."]
    check = result.get("budget_bound_check")
    if check:
        lines.append(
            f"With a budget of {check['budget_requests_per_s']:g} req/s instead, {check['workers']} workers use "
            f"{check['achieved_requests_per_s']:.1f} req/s = **{check['budget_share']:.0%}** of it (busiest second "
            f"{check['busiest_second_requests']}; CPU cores used: workers {check['cpu_cores_used']['workers']:.2f}, "
            f"simulator {check['cpu_cores_used']['simulator']:.2f})."
        )
    return lines


def _memory(result: dict[str, Any]) -> list[str]:
    bod = result["bod_day"]
    return [
        "### 4. Memory of a worker-like process",
        "",
        _machine(result),
        "",
        (f"- BOD day ({bod['rows_stored']:,} rows stored): peak RSS **{bod['peak_rss_mb']:.0f} MB** loading it, "
        f"**{bod.get('reload_peak_rss_mb', 0):.0f} MB** loading it again over the stored day (baseline {result['baseline_rss_mb']:.0f} MB; target < {result['target_peak_mb']} MB: "
        f"{'met' if result['peak_target_met'] else '**not met**'})"),
        (f"- then {result['chunks']} consecutive chunks ({', '.join(result['datasets'])}, day after day): RSS after "
        f"a chunk between {result['rss_after_chunk_min_mb']:.0f} and {result['rss_after_chunk_max_mb']:.0f} MB, "
        f"trend {result['rss_trend_over_chunks_mb']:+.0f} MB over the {result['chunks']} chunks, peak "
        f"{result['peak_rss_all_chunks_mb']:.0f} MB ({result['peak_growth_after_bod_day_mb']:+.0f} MB after the BOD day twice): "
        f"{'not growing' if result['not_growing'] else '**growing**'} (tolerance {result['growth_tolerance_mb']} MB)"),
    ]


def _iris(result: dict[str, Any]) -> list[str]:
    backlog, peak = result["backlog"], result["peak"]
    return [
        "### 5. IRIS (bench/bench_iris.py, by the IRIS work)",
        "",
        _machine(result),
        "",
        (f"- backlog: {backlog['files']:,} messages ({backlog['distinct_rows']:,} distinct rows) queryable in "
        f"{backlog['seconds_to_queryable']} s = **{backlog['messages_per_s']} messages/s** "
        f"({backlog['vs_real_peak']}x the real feed's peak of 200 messages/minute), {result['workers']} workers"),
        (f"- at the real peak rate ({peak['rate_per_min']}/min for {peak['seconds']:.0f} s, {peak['messages']} messages): "
        f"the last message queryable {peak['last_message_queryable_after_s']} s after it was written"),
    ]


HISTORY_ROWS = (
    ("select_1", "`bmrs query \"select 1\"`"),
    ("fuelinst_latest_1_day", "one day of `fuelinst_latest`"),
    ("bod_latest_1_day", "one day of `bod_latest`"),
    ("disebsp_latest_30_days", "30-day aggregate of `disebsp_latest`"),
    ("gaps", "`bmrs gaps` over the whole range"),
    ("status", "`bmrs status --json`"),
    ("dashboard", "`bmrs dashboard --out x.xlsx`"),
)


def _history(result: dict[str, Any]) -> list[str]:
    sizes = sorted(result["sizes"], key=int)
    empty = result["empty"]["select_1"]
    head = "| command | " + " | ".join(f"{d} days" for d in sizes) + " |"
    lines = [
        "### 6. Years of history (bench/history.py)",
        "",
        _machine(result),
        "",
        "Best wall time and median peak RSS of each CLI command, a fresh process each run "
        f"({result['repeats']} runs taking turns); per-unit datasets at scale {result['scale']}. Empty "
        f"warehouse: `select 1` {empty['s']:.2f} s, {empty['peak_mb']:.0f} MB.",
        "",
        head,
        "|---|" + "---|" * len(sizes),
    ]
    for key, label in HISTORY_ROWS:
        cells = [f"{result['sizes'][d][key]['s']:.2f} s, {result['sizes'][d][key]['peak_mb']:.0f} MB"
                 for d in sizes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    built = [result["sizes"][d]["warehouse"] for d in sizes]
    lines.append("| warehouse | " + " | ".join(
        f"{b['rows'] / 1e6:,.1f}M rows, {b['bytes'] / 2**30:.1f} GiB" for b in built) + " |")
    lines += ["", *(f"- {line}" for line in result["checks"]["lines"])]
    return lines


def _targets(results: dict[str, dict[str, Any] | None]) -> list[str]:
    """One line per target of issue 7: what was asked, what the latest run measured."""
    rows = []
    stages, vs_dlt, scaling, memory = (results.get(n) for n in ("stages", "vs_dlt", "scaling", "memory"))
    if stages:
        worst = min(stages["datasets"].items(), key=lambda item: item[1]["ratio_pipeline_to_bare"])
        ratios = ", ".join(f"{c} {f['ratio_pipeline_to_bare']:.2f}" for c, f in stages["datasets"].items())
        rows.append(("end to end >= 0.5 x bare minimum rows/s", ratios, worst[1]["ratio_pipeline_to_bare"] >= 0.5))
    if vs_dlt:
        worst_dlt = min(
            min(f["ratios"][k]["ours_to_dlt"] for k in ("first_load", "reload")) for f in vs_dlt["datasets"].values()
        )
        rows.append(("ours >= 3x dlt rows/s", f"lowest of all days and loads {worst_dlt:.1f}x", worst_dlt >= 3))
    if memory:
        bod = memory["bod_day"]
        peak = max(bod["peak_rss_mb"], bod.get("reload_peak_rss_mb", 0))
        rows.append(("peak RSS on the BOD day < 600 MB", f"{peak:.0f} MB", peak < 600))
        rows.append((
            "RSS not growing over 100 chunks",
            f"trend {memory['rss_trend_over_chunks_mb']:+.0f} MB, peak {memory['peak_growth_after_bod_day_mb']:+.0f} MB",
            memory["not_growing"],
        ))
    history = results.get("history")
    if history:
        held = history["checks"]["held"]
        one_day = [v["ratio"] for k, v in held.items() if "_1_day_" in k]
        rows.append(("one-day query at 1,461 days <= 1.3x of 30 days (time, memory)",
                     f"worst {max(one_day):.2f}x", all(v["ok"] for k, v in held.items() if "_1_day_" in k)))
        select = [v["ratio"] for k, v in held.items() if k.startswith("select_1_")]
        rows.append(("`select 1` <= 1.2x of an empty warehouse", f"worst {max(select):.2f}x",
                     all(v["ok"] for k, v in held.items() if k.startswith("select_1_"))))
        dash = [v for k, v in held.items() if k.startswith("dashboard_")]
        rows.append(("dashboard < 3 s and < 400 MB at every size",
                     f"worst {max(d['s'] for d in dash):.2f} s, {max(d['peak_mb'] for d in dash):.0f} MB",
                     all(d["ok"] for d in dash)))
    if scaling:
        rows.append((
            ">= 90% of the request budget used at saturation",
            f"{scaling['saturation_share']:.0%}",
            scaling["target_met"],
        ))
    lines = ["| target | latest | |", "|---|---|---|"]
    lines += [f"| {target} | {measured} | {'met' if ok else '**not met**'} |" for target, measured, ok in rows]
    return lines


def render() -> str:
    sections: list[list[str]] = []
    results = {name: load(name) for name in ("stages", "vs_dlt", "scaling", "memory", "iris", "history")}
    for name, render_one in (
        ("stages", _stages), ("vs_dlt", _vs_dlt), ("scaling", _scaling), ("memory", _memory), ("iris", _iris),
        ("history", _history),
    ):
        result = results[name]
        if result is not None:
            sections.append(render_one(result))
    charts = sorted(p.name for p in (README.parent / "results").glob("*.png"))
    body = ["## Latest figures", "", "Generated from `bench/results/*.json` by `python -m bench.summary`.", ""]
    body += [*_targets(results), ""]
    for lines in sections:
        body += [*lines, ""]
    body += ["Charts: " + ", ".join(f"[{name}](results/{name})" for name in charts), ""]
    return "\n".join(body)


def update_readme() -> None:
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{README} lacks the {START} ... {END} markers")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    README.write_text(f"{before}{START}\n{render()}{END}{after}")
    print(f"figures: {README}")


if __name__ == "__main__":
    update_readme()
