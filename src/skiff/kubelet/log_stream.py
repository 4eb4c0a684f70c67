"""Streaming a container's log file the way the kubelet's /containerLogs does.

Options follow core/v1 PodLogOptions: ``tailLines`` (last N lines),
``limitBytes`` (stop after N bytes), ``sinceSeconds`` / ``sinceTime``,
``timestamps`` (each line prefixed with an RFC 3339 time and a space) and
``follow`` (keep streaming while the container runs; end once it stopped and
the file no longer grows).

Log files are plain text as the process wrote them, without per-line times.
So times are approximate: lines already in the file when the request comes get
the file's modification time (an upper bound), and lines that arrive while
following get the time they were read.  ``since*`` filters the existing
content by that same modification time.  A per-line index written by the
runtime would make both exact; nothing here depends on its absence.

File reads run in a thread (``asyncio.to_thread``); the loop never blocks.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

CHUNK = 64 * 1024
FOLLOW_POLL_S = 0.1


class LogOptionError(ValueError):
    """A malformed query parameter (answered 400)."""


@dataclass(frozen=True, slots=True)
class LogOptions:
    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since: float | None = None  # epoch seconds
    timestamps: bool = False


def _bool(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "t", "yes", "")


def _int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise LogOptionError(f"invalid {name}: {raw!r} is not an integer") from None
    if value < 0:
        raise LogOptionError(f"invalid {name}: must be non-negative")
    return value


def parse_log_options(query: Mapping[str, str], now: float | None = None) -> LogOptions:
    """PodLogOptions from a query string; raises LogOptionError for bad values."""
    since: float | None = None
    seconds = _int(query, "sinceSeconds")
    if seconds is not None:
        since = (time.time() if now is None else now) - seconds
    raw_time = query.get("sinceTime")
    if raw_time:
        try:
            since = datetime.fromisoformat(raw_time.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise LogOptionError(f"invalid sinceTime: {raw_time!r}") from None
    return LogOptions(
        follow=_bool(query.get("follow")) if "follow" in query else False,
        previous=_bool(query.get("previous")) if "previous" in query else False,
        tail_lines=_int(query, "tailLines"),
        limit_bytes=_int(query, "limitBytes"),
        since=since,
        timestamps=_bool(query.get("timestamps")) if "timestamps" in query else False,
    )


def rfc3339_nano(t: float) -> str:
    """The timestamp format kubelet log lines carry (RFC 3339 with nanoseconds, UTC)."""
    whole = datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{int((t % 1) * 1e9):09d}Z"


def _tail_offset(path: Path, lines: int) -> int:
    """Byte offset where the last ``lines`` lines of the file start (blocking)."""
    if lines == 0:
        return path.stat().st_size
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        pos, seen = end, 0
        # A final line without its newline still counts as a line.
        f.seek(max(end - 1, 0))
        trailing_newline = end > 0 and f.read(1) == b"\n"
        needed = lines + (1 if trailing_newline else 0)
        while pos > 0:
            start = max(pos - CHUNK, 0)
            f.seek(start)
            block = f.read(pos - start)
            for i in range(len(block) - 1, -1, -1):
                if block[i] == 0x0A:
                    seen += 1
                    if seen == needed:
                        return start + i + 1
            pos = start
        return 0


def _read_chunk(path: Path, offset: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(CHUNK)


class _Writer:
    """Applies timestamps and limitBytes to what goes out."""

    def __init__(self, opts: LogOptions, write: Callable[[bytes], Awaitable[None]]) -> None:
        self.opts = opts
        self.write = write
        self.sent = 0
        self.at_line_start = True

    @property
    def done(self) -> bool:
        return self.opts.limit_bytes is not None and self.sent >= self.opts.limit_bytes

    async def emit(self, data: bytes, stamp: float) -> None:
        if self.opts.timestamps:
            data = self._stamp(data, stamp)
        if self.opts.limit_bytes is not None:
            data = data[: max(self.opts.limit_bytes - self.sent, 0)]
        if data:
            self.sent += len(data)
            await self.write(data)

    def _stamp(self, data: bytes, stamp: float) -> bytes:
        prefix = rfc3339_nano(stamp).encode() + b" "
        out = bytearray()
        for line in data.splitlines(keepends=True):
            if self.at_line_start:
                out += prefix
            out += line
            self.at_line_start = line.endswith(b"\n")
        return bytes(out)


async def stream_log(
    path: Path,
    opts: LogOptions,
    still_running: Callable[[], bool],
    write: Callable[[bytes], Awaitable[None]],
) -> None:
    """Write the selected part of ``path``; with ``follow``, keep going while the container runs."""
    try:
        stat = await asyncio.to_thread(path.stat)
    except FileNotFoundError:
        size, mtime = 0, time.time()
    else:
        size, mtime = stat.st_size, stat.st_mtime
    offset = 0
    if opts.since is not None and mtime < opts.since:
        offset = size  # nothing already written is recent enough
    elif opts.tail_lines is not None and size:
        offset = await asyncio.to_thread(_tail_offset, path, opts.tail_lines)
    out = _Writer(opts, write)
    offset = await _copy(path, offset, size, mtime, out)
    if not opts.follow:
        return
    while not out.done:
        chunk = await _read_or_empty(path, offset)
        if chunk:
            offset += len(chunk)
            await out.emit(chunk, time.time())
            continue
        if not still_running():
            # One last look: the process may have written just before it exited.
            chunk = await _read_or_empty(path, offset)
            if chunk:
                offset += len(chunk)
                await out.emit(chunk, time.time())
                continue
            return
        await asyncio.sleep(FOLLOW_POLL_S)


async def _copy(path: Path, offset: int, end: int, stamp: float, out: _Writer) -> int:
    """Copy [offset, end) of the file; returns the new offset."""
    while offset < end and not out.done:
        chunk = (await _read_or_empty(path, offset))[: end - offset]
        if not chunk:
            break
        offset += len(chunk)
        await out.emit(chunk, stamp)
    return offset


async def _read_or_empty(path: Path, offset: int) -> bytes:
    try:
        return await asyncio.to_thread(_read_chunk, path, offset)
    except FileNotFoundError:
        return b""
