"""Tables of the API server results, the PASS/MISS lines against issue B's targets, and the output files.

Results layout (also the JSON written to OUT/apiserver.json)::

    {"meta": {...}, "targets": {store: {"requests": {cell: Cell.as_dict()},
                                        "watch": {watchers: Cell.as_dict()},
                                        "rss": {...}, "profile": {...}, "errors": {...}}}}

Targets (benchmark figures, not tests; issue B §5):

* single-object mutating p99 ≤ 50 ms at 200 req/s (the open-loop ``rate``
  cell: creates and PUT updates);
* watch delay p99 ≤ 50 ms at 1,000 watchers;
* API server RSS ≤ 1 GiB at 100,000 stored pods (judged at whatever count
  was stored: below 100,000 the line says so).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from storebench.report import Table, profile_lines

MUTATING_P99_MS = 50.0
WATCH_P99_MS = 50.0
WATCH_TARGET_WATCHERS = 1000
RSS_LIMIT_BYTES = 1 << 30
RSS_TARGET_PODS = 100_000


def _ms(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _mib(value: Any) -> str:
    return "-" if value is None else f"{value / (1 << 20):,.0f} MiB"


def request_table(results: dict[str, Any]) -> Table:
    rows = []
    for store, data in results["targets"].items():
        for cell, c in data.get("requests", {}).items():
            lat = c["latency"]
            rows.append(
                (
                    store,
                    cell,
                    f"{c['ops_per_s']:,.0f}",
                    _ms(lat["p50_ms"]),
                    _ms(lat["p99_ms"]),
                    _ms(lat["max_ms"]),
                    str(c["error_count"]),
                    _pct(c["server_cpu_pct"]),
                    _pct(c["bench_cpu_pct"]),
                )
            )
    headers = ("store", "cell", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "apiserver CPU", "bench CPU")
    note = (
        "closed loop with the cell's client count except `rate`: open loop, latency from each request's due time; "
        "CPU in % of one core"
    )
    return Table("requests", headers, rows, note)


def watch_table(results: dict[str, Any]) -> Table:
    rows = []
    for store, data in results["targets"].items():
        for watchers, c in data.get("watch", {}).items():
            rows.append(
                (
                    store,
                    watchers,
                    f"{c['rate_per_s']:g}/s x {c['events_written']}",
                    _ms(c["latency"]["p50_ms"]),
                    _ms(c["latency"]["p99_ms"]),
                    _ms(c["delay_from_send"]["p99_ms"]),
                    _ms(c["spread"]["p99_ms"]),
                    f"{c['deliveries_missing']}/{c['deliveries_expected']}",
                    _pct(c["server_cpu_pct"]),
                    _pct(c["bench_cpu_pct"]),
                )
            )
    headers = (
        "store",
        "watchers",
        "creates",
        "delay p50 ms",
        "delay p99 ms",
        "from send p99",
        "spread p99",
        "missing",
        "apiserver CPU",
        "bench CPU",
    )
    note = "delay from the create's response to each watcher reading the event; spread = last - first watcher"
    return Table("watch fan-out", headers, rows, note)


def rss_table(results: dict[str, Any]) -> Table:
    rows = []
    for store, data in results["targets"].items():
        rss = data.get("rss")
        if not rss:
            continue
        for point in rss["points"]:
            rows.append(
                (
                    store,
                    f"{point['pods']:,}",
                    _mib(point["rss"]),
                    _mib(point["peak"]),
                    _mib(point.get("etcd_rss")),
                    "-" if point.get("load_pods_per_s") is None else f"{point['load_pods_per_s']:,.0f}",
                )
            )
    headers = ("store", "pods stored", "apiserver RSS", "apiserver peak", "etcd RSS", "load pods/s")
    return Table("memory", headers, rows, "VmRSS / VmHWM from /proc/PID/status; load = 32 concurrent creates")


def target_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for store, data in results["targets"].items():
        rate = data.get("requests", {}).get("rate")
        if rate:
            p99 = rate["latency"]["p99_ms"]
            ok = p99 <= MUTATING_P99_MS and rate["error_count"] == 0 and rate["unanswered"] == 0
            lines.append(
                f"{'PASS' if ok else 'MISS'} {store}: mutating p99 {p99:.1f} ms at {rate['rate_per_s']:g} req/s "
                f"(target <= {MUTATING_P99_MS:g} ms; {rate['error_count']} errors, {rate['unanswered']} unanswered)"
            )
        watch = data.get("watch", {}).get(str(WATCH_TARGET_WATCHERS))
        if watch:
            p99 = watch["latency"]["p99_ms"]
            ok = p99 <= WATCH_P99_MS and watch["deliveries_missing"] == 0
            lines.append(
                f"{'PASS' if ok else 'MISS'} {store}: watch delay p99 {p99:.1f} ms at {WATCH_TARGET_WATCHERS} "
                f"watchers (target <= {WATCH_P99_MS:g} ms; {watch['deliveries_missing']} deliveries missing)"
            )
        rss = data.get("rss")
        if rss and rss["points"]:
            last = rss["points"][-1]
            verdict = "PASS" if last["rss"] is not None and last["rss"] <= RSS_LIMIT_BYTES else "MISS"
            scope = "" if last["pods"] >= RSS_TARGET_PODS else f" (only {last['pods']:,} pods stored, not 100,000)"
            lines.append(f"{verdict} {store}: apiserver RSS {_mib(last['rss'])} at {last['pods']:,} pods{scope}")
    return lines


def write_outputs(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "apiserver.json", out_dir / "apiserver.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    meta = results["meta"]
    load = "/".join(f"{x:.1f}" for x in meta["load_avg_start"]), "/".join(f"{x:.1f}" for x in meta["load_avg_end"])
    md = [
        f"Run {meta['started']} on {meta['machine']} — `{meta['command']}` — transport {meta['transport']} — "
        f"load average {load[0]} at start, {load[1]} at end (a shared machine: other work ran alongside).",
        "",
        *(t.markdown() + "\n" for t in tables(results)),
        "Targets:",
        "",
        *(f"- {line}" for line in target_lines(results)),
        "",
        *profile_lines(results, markdown=True),
    ]
    md_path.write_text("\n".join(md).rstrip() + "\n")
    return json_path, md_path


def tables(results: dict[str, Any]) -> list[Table]:
    return [t for t in (request_table(results), watch_table(results), rss_table(results)) if t.rows]
