"""CPU used during a measurement, by this process and by the server process.

Tells whether a figure is bound by the server or by the benchmark's own client
(one Python process driving every client task): percentages are of one core,
so ~100% for the benchmark process means the client side was the bottleneck.
Server CPU comes from /proc/PID/stat (utime + stime); a process that is not
there (or not Linux) reports nothing rather than a wrong number.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int, stat_path: str = "") -> float | None:
    """utime + stime of ``pid`` in seconds (children excluded), or None if unreadable."""
    try:
        with open(stat_path or f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the ")" of comm: field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def thread_cpu_seconds(pid: int, tid: int) -> float | None:
    """utime + stime of one thread (``/proc/PID/task/TID/stat``), or None if unreadable."""
    return process_cpu_seconds(pid, f"/proc/{pid}/task/{tid}/stat")


@dataclass(frozen=True)
class CpuUse:
    """% of one core: whole processes, and their event-loop (main) threads.

    A Python process spreads over threads (gRPC's poller, SQLite's writer), so
    the process can be under 100% while its event loop, the part that runs
    every Python callback, is saturated: the loop figures tell.
    """

    bench_pct: float
    bench_loop_pct: float
    server_pct: float | None
    server_main_pct: float | None


class CpuMeter:
    """``start()`` then ``stop()``, both from the event loop's thread: CPU % of one core between them."""

    def __init__(self, server_pid: int | None) -> None:
        self._server_pid = server_pid
        self._wall = 0.0
        self._own = 0.0
        self._loop = 0.0
        self._server: tuple[float | None, float | None] = (None, None)

    def _server_now(self) -> tuple[float | None, float | None]:
        if not self._server_pid:
            return None, None
        return process_cpu_seconds(self._server_pid), thread_cpu_seconds(self._server_pid, self._server_pid)

    def start(self) -> None:
        self._wall = time.monotonic()
        self._own = time.process_time()
        self._loop = time.thread_time()
        self._server = self._server_now()

    def stop(self) -> CpuUse:
        wall = max(time.monotonic() - self._wall, 1e-9)
        server = [
            None if before is None or after is None else (after - before) / wall * 100
            for before, after in zip(self._server, self._server_now(), strict=True)
        ]
        return CpuUse(
            bench_pct=(time.process_time() - self._own) / wall * 100,
            bench_loop_pct=(time.thread_time() - self._loop) / wall * 100,
            server_pct=server[0],
            server_main_pct=server[1],
        )
