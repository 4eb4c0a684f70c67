"""py-spy over the process doing the store's work, during one write cell, summarised by frame.

``py-spy record --format raw`` writes collapsed stacks (``thread;frame;frame N``,
outermost first).  The summary counts, per frame ``function (file)`` (line
numbers dropped so a function's samples add up):

* self — samples where the frame is the innermost (where the CPU is spent);
* total — samples where the frame is anywhere on the stack (what it costs with
  its callees).

Samples are of threads that are running (py-spy leaves idle ones out), so a
writer thread waiting on fsync and an event loop waiting on epoll show up
little; a hot Python loop shows up much.  Only Python frames are seen
(``--nonblocking``, so the target is never paused; ``--native`` would need to
pause it): "self" time of an outer frame such as ``Runner.run`` is time spent
in native code under it (uvloop, gRPC's C core, protobuf), not in Python.
py-spy needs ptrace rights (root here); when it is missing or refused, the
profile is reported as failed with py-spy's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LINE_NO = re.compile(r":\d+\)$")
_SITE = re.compile(r"/(?:site|dist)-packages/")


@dataclass
class Profile:
    samples: int
    top_self: list[tuple[str, float]]
    top_total: list[tuple[str, float]]
    threads: list[tuple[str, float]]
    raw_file: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "top_self_pct": self.top_self,
            "top_total_pct": self.top_total,
            "threads_pct": self.threads,
            "raw_file": self.raw_file,
        }


def py_spy_path() -> str | None:
    return shutil.which("py-spy")


class PySpyRecording:
    """``start()`` a bounded py-spy record of ``pid``; ``finish()`` waits for it and summarises."""

    def __init__(self, pid: int, seconds: float, output: Path) -> None:
        self._pid = pid
        self._seconds = max(1, int(seconds))
        self._output = output
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = py_spy_path()
        if binary is None:
            raise RuntimeError("py-spy not found (pip install py-spy)")
        self._output.parent.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "record",
            "--pid",
            str(self._pid),
            "--duration",
            str(self._seconds),
            "--rate",
            "100",
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "--output",
            str(self._output),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )

    async def finish(self, top: int = 12) -> Profile:
        if self._process is None:
            raise RuntimeError("py-spy was not started")
        try:
            _, err = await asyncio.wait_for(self._process.communicate(), self._seconds + 30)
        finally:
            if self._process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._process.pid, signal.SIGKILL)
                await self._process.wait()
        if self._process.returncode != 0 or not self._output.exists():
            raise RuntimeError(f"py-spy failed ({self._process.returncode}): {err.decode(errors='replace')[-500:]}")
        text = await asyncio.to_thread(self._output.read_text)
        return summarise_collapsed(text, top, str(self._output))


def summarise_collapsed(text: str, top: int, raw_file: str = "") -> Profile:
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    thread_counts: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, *rest = stack.split(";")  # "thread (TID): NAME" first (py-spy --threads)
        frames = [_frame_name(f) for f in rest]
        if not frames:
            continue
        samples += count
        thread_counts[thread.partition(": ")[2] or thread] += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            total_counts[frame] += count

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / samples, 1)) for name, n in counter.most_common(top)] if samples else []

    return Profile(samples, pct(self_counts), pct(total_counts), pct(thread_counts), raw_file)


def _frame_name(frame: str) -> str:
    """``put (skiff/store/sqlite.py:214)`` → ``put (skiff/store/sqlite.py)``, paths shortened past site-packages."""
    frame = _LINE_NO.sub(")", frame.strip())
    name, sep, path = frame.partition(" (")
    if not sep:
        return frame
    parts = _SITE.split(path)
    short = parts[-1]
    if "/src/skiff/" in short:
        short = "skiff/" + short.split("/src/skiff/", 1)[1]
    elif "/lib/python" in short:
        short = short.split("/lib/python", 1)[1].split("/", 1)[-1]
    return f"{name} ({short}"
