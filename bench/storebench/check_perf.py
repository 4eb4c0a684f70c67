"""``etcdctl check perf`` (etcdctl 3.5.1) against a target, and its verdict parsed.

etcdctl 3.5's check perf writes to ``/etcdctl-check-perf/`` for 60 s at a
load's target rate (``s``: 150 writes/s from 50 clients, ``m``: 1000/200,
``l``: 8000/500, ``xl``: 15000/1000), deletes its keys, then prints (its
ctlv3/command/check.go)::

    PASS: Throughput is 151 writes/s            | FAIL: Throughput too low: 6491 writes/s
    PASS: Slowest request took 0.006264s        | Slowest request took too long: 0.786915s
    PASS: Stddev is 0.000155s                   | Stddev too high: 0.304261s
    PASS                                        | FAIL   (exit status 1)

and ``FAIL: too many errors`` / ``FAIL: ERROR(...) -> N`` lines when requests
failed.  Throughput passes above 90% of the load's rate, slowest below 0.5 s,
stddev below 0.1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: A load runs 60 s; this bounds setup, cleanup and a hung etcdctl.
CHECK_PERF_TIMEOUT = 180.0

_THROUGHPUT = re.compile(r"(PASS|FAIL): Throughput (?:is|too low:) (\d+) writes/s")
_SLOWEST = re.compile(r"(PASS: )?Slowest request took (?:too long: )?([\d.]+)s")
_STDDEV = re.compile(r"(PASS: )?Stddev (?:is|too high:) ([\d.]+)s")
_ERRORS = re.compile(r"FAIL: ERROR\((.*)\) -> (\d+)")
_VERDICT = re.compile(r"^(PASS|FAIL)$", re.MULTILINE)


@dataclass
class CheckPerf:
    load: str
    exit_code: int
    throughput: int | None = None
    throughput_pass: bool | None = None
    slowest_s: float | None = None
    slowest_pass: bool | None = None
    stddev_s: float | None = None
    stddev_pass: bool | None = None
    verdict: str | None = None
    errors: dict[str, int] = field(default_factory=dict)
    output_tail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_check_perf(output: str, load: str, exit_code: int) -> CheckPerf:
    """Parse etcdctl's output; the progress bar's carriage returns are read as line ends."""
    text = output.replace("\r", "\n")
    result = CheckPerf(load=load, exit_code=exit_code, output_tail=text.strip()[-600:])
    if m := _THROUGHPUT.search(text):
        result.throughput, result.throughput_pass = int(m.group(2)), m.group(1) == "PASS"
    if m := _SLOWEST.search(text):
        result.slowest_s, result.slowest_pass = float(m.group(2)), bool(m.group(1))
    if m := _STDDEV.search(text):
        result.stddev_s, result.stddev_pass = float(m.group(2)), bool(m.group(1))
    result.errors = {m.group(1): int(m.group(2)) for m in _ERRORS.finditer(text)}
    verdicts = _VERDICT.findall(text)
    result.verdict = verdicts[-1] if verdicts else None
    return result


async def run_check_perf(etcdctl: Path, endpoint: str, load: str) -> CheckPerf:
    """Run ``etcdctl --endpoints=ENDPOINT check perf --load=LOAD``; stopped by PID on timeout."""
    process = await asyncio.create_subprocess_exec(
        str(etcdctl),
        f"--endpoints={endpoint}",
        "check",
        "perf",
        f"--load={load}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")},
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), CHECK_PERF_TIMEOUT)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            await process.wait()
    return parse_check_perf(out.decode(errors="replace"), load, process.returncode or 0)
