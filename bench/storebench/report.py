"""Tables of the results (plain text for the terminal, Markdown for docs/), and the JSON dump.

Every table has one row per target and a ratio column against etcd 3.5.1
(``REFERENCE``): for throughput higher is better, for latency lower is better.
A remote target whose benchmark process (or its event loop) used ≥
CLIENT_BOUND_PCT of a core is marked "client-bound": one Python process holds
the GIL for one core's worth at most, so the figure then says more about the
Python client than about the server.  The facade, a Python process too, is
marked "server-bound" on the same test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storebench.targets import FACADE, REFERENCE, SQLITE

CLIENT_BOUND_PCT = 85.0
CPU_HEADERS = ("bench CPU (loop)", "server CPU (loop)")


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    note: str = ""

    def text(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) for i, h in enumerate(self.headers)]
        lines = [f"== {self.title} =="]
        lines.append("  ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True)))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in self.rows]
        if self.note:
            lines.append(f"   ({self.note})")
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.note:
            lines += ["", f"_{self.note}_"]
        return "\n".join(lines)


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _ratio(value: Any, reference: Any) -> str:
    if not isinstance(value, int | float) or not isinstance(reference, int | float) or not reference:
        return "-"
    if math.isnan(value) or math.isnan(reference):
        return "-"
    return f"{value / reference:.2f}x"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _bench_cpu(cell: dict[str, Any]) -> str:
    """This process's CPU, with its event-loop thread's share in brackets."""
    return f"{_pct(cell['bench_cpu_pct'])} ({_pct(cell['bench_loop_cpu_pct'])})"


def _server_cpu(target: str, cell: dict[str, Any]) -> str:
    """The server's CPU; for the facade (a Python process) its main, event-loop thread in brackets."""
    if target != FACADE:
        return _pct(cell["server_cpu_pct"])
    return f"{_pct(cell['server_cpu_pct'])} ({_pct(cell['server_main_thread_cpu_pct'])})"


def _notes(target: str, cell: dict[str, Any]) -> str:
    notes = []
    if cell.get("error_count"):
        notes.append(f"{cell['error_count']} errors")
    if target == SQLITE:
        notes.append("in-process")
    elif max(cell.get("bench_cpu_pct", 0), cell.get("bench_loop_cpu_pct", 0)) >= CLIENT_BOUND_PCT:
        notes.append("client-bound")
    if target == FACADE and (cell.get("server_cpu_pct") or 0) >= CLIENT_BOUND_PCT:
        notes.append("server-bound (one core: GIL)")
    if cell.get("deliveries_missing"):
        notes.append(f"{cell['deliveries_missing']} deliveries missing")
    return ", ".join(notes)


def _cell(results: dict[str, Any], target: str, *path: str) -> dict[str, Any] | None:
    node: Any = results["targets"].get(target, {})
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) and "error" not in node else None


def build_tables(results: dict[str, Any]) -> list[Table]:
    targets = list(results["targets"])
    tables: list[Table] = []
    ref = f"vs {REFERENCE}"

    def rows(
        path: tuple[str, ...], make: Callable[[str, dict[str, Any], dict[str, Any] | None], tuple[str, ...]]
    ) -> list[tuple[str, ...]]:
        reference = _cell(results, REFERENCE, *path)
        out: list[tuple[str, ...]] = []
        for target in targets:
            cell = _cell(results, target, *path)
            if cell is None:
                errors = results["targets"][target].get("errors", {})
                error = errors.get("/".join(path)) or errors.get("start")
                if error:
                    out.append((target, f"failed: {error[:80]}"))
                continue
            out.append(make(target, cell, reference))
        return out

    for clients in results["meta"]["clients"]:
        path = ("write", str(clients))

        def write_row(t: str, c: dict[str, Any], r: dict[str, Any] | None) -> tuple[str, ...]:
            lat, rlat = c["latency"], (r or {}).get("latency", {})
            return (
                t,
                _num(c["ops_per_s"]),
                _num(lat["p50_ms"]),
                _num(lat["p99_ms"]),
                _ratio(c["ops_per_s"], (r or {}).get("ops_per_s")),
                _ratio(lat["p99_ms"], rlat.get("p99_ms")),
                _bench_cpu(c),
                _server_cpu(t, c),
                _notes(t, c),
            )

        headers: tuple[str, ...] = (
            "target",
            "puts/s",
            "p50 ms",
            "p99 ms",
            f"puts/s {ref}",
            f"p99 {ref}",
            *CPU_HEADERS,
        )
        tables.append(_table(f"write: {clients} concurrent clients, 256-byte values", headers, rows(path, write_row)))

    for kind, title in (("get", "range: single-key get"), ("prefix", "range: 1000-key prefix, limit 500")):

        def range_row(t: str, c: dict[str, Any], r: dict[str, Any] | None) -> tuple[str, ...]:
            lat, rlat = c["latency"], (r or {}).get("latency", {})
            return (
                t,
                _num(c["ops_per_s"]),
                _num(lat["p50_ms"], 3),
                _num(lat["p99_ms"], 3),
                _ratio(lat["p50_ms"], rlat.get("p50_ms")),
                _ratio(lat["p99_ms"], rlat.get("p99_ms")),
                _bench_cpu(c),
                _server_cpu(t, c),
                _notes(t, c),
            )

        headers = ("target", "reads/s", "p50 ms", "p99 ms", f"p50 {ref}", f"p99 {ref}", *CPU_HEADERS)
        tables.append(_table(f"{title} (1 client, linearizable)", headers, rows(("range", kind), range_row)))

    for watchers in results["meta"]["watchers"]:

        def watch_row(t: str, c: dict[str, Any], r: dict[str, Any] | None) -> tuple[str, ...]:
            lat, rlat, ack = c["latency"], (r or {}).get("latency", {}), c["delay_from_ack"]
            return (
                t,
                f"{c['events_written']} @ {c['rate_per_s']:g}/s",
                _num(lat["p50_ms"]),
                _num(lat["p99_ms"]),
                _ratio(lat["p99_ms"], rlat.get("p99_ms")),
                _num(ack["p50_ms"]),
                _num(ack["p99_ms"]),
                _num(c["spread"]["p99_ms"]),
                _num(c["put_latency"]["p50_ms"]),
                _num(c["bench_cpu_us_per_delivery"], 1),
                _bench_cpu(c),
                _server_cpu(t, c),
                _notes(t, c),
            )

        headers = (
            "target",
            "events",
            "delay p50 ms",
            "delay p99 ms",
            f"p99 {ref}",
            "after-ack p50",
            "after-ack p99",
            "spread p99",
            "put p50",
            "client µs/delivery",
            *CPU_HEADERS,
        )
        tables.append(
            _table(
                f"watch fan-out: {watchers} watchers on one prefix",
                headers,
                rows(("watch", str(watchers)), watch_row),
                "delay = delivery to the watcher's task - writer's submission (monotonic_ns in the value); "
                "after-ack = delivery - put returned to the writer; spread = last - first delivery of one event; "
                "client µs/delivery = this process's CPU per delivery (x watchers ~ spread: the client set the width)",
            )
        )

    def perf_row(t: str, c: dict[str, Any], r: dict[str, Any] | None) -> tuple[str, ...]:
        return (
            t,
            c["load"],
            _num(c["throughput"]),
            _ratio(c["throughput"], (r or {}).get("throughput")),
            _num(c["slowest_s"], 4),
            _num(c["stddev_s"], 4),
            str(c["verdict"]),
        )

    headers = ("target", "load", "writes/s", f"writes/s {ref}", "slowest s", "stddev s", "verdict")
    perf = rows(("check_perf",), perf_row)
    if perf:
        tables.append(Table("etcdctl 3.5.1 check perf", headers, perf))
    return tables


def _table(title: str, headers: tuple[str, ...], rows: list[tuple[str, ...]], note: str = "") -> Table:
    """Pad short (failed) rows and add the notes column."""
    full = (*headers, "notes")
    return Table(title, full, [row + ("",) * (len(full) - len(row)) for row in rows], note)


def ratio_lines(results: dict[str, Any]) -> list[str]:
    """The headline ratios, spelled "sqlite/etcd-3.5.1 = 1.23x"."""
    lines = []
    targets = [t for t in results["targets"] if t != REFERENCE]

    def line(label: str, pick: Callable[[str], Any]) -> None:
        ref = pick(REFERENCE)
        parts = [f"{t}/{REFERENCE} = {_ratio(pick(t), ref)}" for t in targets if pick(t) is not None]
        if parts and ref is not None:
            lines.append(f"{label}: " + ", ".join(parts))

    def get(*path: str, field: tuple[str, ...]) -> Callable[[str], Any]:
        def pick(target: str) -> Any:
            node: Any = _cell(results, target, *path)
            for part in field:
                node = node.get(part) if isinstance(node, dict) else None
            return node

        return pick

    for clients in results["meta"]["clients"]:
        line(f"write puts/s at {clients} clients", get("write", str(clients), field=("ops_per_s",)))
    for kind in ("get", "prefix"):
        line(f"range {kind} p50 latency", get("range", kind, field=("latency", "p50_ms")))
    for watchers in results["meta"]["watchers"]:
        line(f"watch delay p99 at {watchers} watchers", get("watch", str(watchers), field=("latency", "p99_ms")))
    line("check perf writes/s", get("check_perf", field=("throughput",)))
    return lines


def profile_lines(results: dict[str, Any], markdown: bool = False) -> list[str]:
    lines = []
    for target, data in results["targets"].items():
        for cell, prof in data.get("profile", {}).items():
            if "error" in prof:
                lines.append(f"py-spy {target} {cell}: {prof['error']}")
                continue
            lines.append(f"py-spy {target} during {cell} ({prof['samples']} samples of running threads):")
            threads = ", ".join(f"{n} {p}%" for n, p in prof["threads_pct"])
            lines.append(f"  threads: {threads}")
            lines.append("  self: " + "; ".join(f"{n} {p}%" for n, p in prof["top_self_pct"][:8]))
            lines.append("  total: " + "; ".join(f"{n} {p}%" for n, p in prof["top_total_pct"][:10]))
    if markdown:
        return ["```", *lines, "```"] if lines else []
    return lines


def _load(avg: Any) -> str:
    return "/".join(f"{x:.1f}" for x in avg) if avg else "?"


def write_outputs(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "store.json", out_dir / "store.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    meta = results["meta"]
    md = [
        f"Run {meta['started']} on {meta['machine']} — `{meta['command']}` — load average "
        f"{_load(meta.get('load_avg_start'))} at start, {_load(meta.get('load_avg_end'))} at end "
        "(a shared machine: other work ran alongside).",
        "",
        *(t.markdown() + "\n" for t in build_tables(results)),
        "Ratios against etcd 3.5.1:",
        "",
        *(f"- {line}" for line in ratio_lines(results)),
        "",
        *profile_lines(results, markdown=True),
    ]
    md_path.write_text("\n".join(md).rstrip() + "\n")
    return json_path, md_path
