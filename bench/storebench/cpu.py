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


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (children excluded), or None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the ")" of comm: field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass(frozen=True)
class CpuUse:
    bench_pct: float
    server_pct: float | None


class CpuMeter:
    """``start()`` then ``stop()``: CPU % of one core over the wall time between them."""

    def __init__(self, server_pid: int | None) -> None:
        self._server_pid = server_pid
        self._wall = 0.0
        self._own = 0.0
        self._server: float | None = None

    def start(self) -> None:
        self._wall = time.monotonic()
        self._own = time.process_time()
        self._server = process_cpu_seconds(self._server_pid) if self._server_pid else None

    def stop(self) -> CpuUse:
        wall = max(time.monotonic() - self._wall, 1e-9)
        own = (time.process_time() - self._own) / wall * 100
        server: float | None = None
        if self._server_pid and self._server is not None:
            now = process_cpu_seconds(self._server_pid)
            if now is not None:
                server = (now - self._server) / wall * 100
        return CpuUse(bench_pct=own, server_pct=server)
