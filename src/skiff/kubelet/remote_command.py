"""exec and attach sessions: a process's stdio relayed over the client's channels.

The channels (:class:`Channels`) are a channel-protocol WebSocket
(:class:`Session`) or the streams of a plain SPDY session
(:mod:`skiff.kubelet.spdy_remote_command`).

``run_exec`` starts ``argv_prefix + command`` with the container's env and
working dir (a pty when ``tty``), relays stdin/stdout/stderr, applies resize
messages to the pty, honours close-of-stdin (v5 / SPDY FIN), and when the
process exits sends the error-channel Status (Success or NonZeroExitCode with
the code).  If the client goes away first, the process group gets SIGKILL: an
exec never outlives its session (upstream's runtimes do the same when the
stream breaks); it is reaped before ``run_exec`` returns.

``run_attach`` writes stdin to the container's stdin FIFO and follows the
container's current log as its output, until the container stops running or
the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import signal
import struct
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import WSMsgType, web

from skiff.kubelet import streams
from skiff.kubelet.log_stream import LogOptions, stream_log
from skiff.kubelet.view import ContainerLogs, ExecTarget

READ_SIZE = 32 * 1024
DRAIN_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Which streams the client asked for (query ``stdin``/``stdout``/``stderr``/``tty``)."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


class Channels(Protocol):
    """The client's streams as numbered channels (:mod:`skiff.kubelet.streams` numbering).

    Implemented over a channel-protocol WebSocket (:class:`Session`) and over a
    SPDY session (:mod:`skiff.kubelet.spdy_remote_command`).
    """

    async def send(self, channel: int, data: bytes) -> None: ...

    async def send_status(self, status: bytes, plain_text: str) -> None:
        """The final error-channel message: the v4 Status, or the plain text older protocols use."""
        ...

    def inbound(self) -> AsyncIterator[tuple[int, bytes]]:
        """(channel, payload) from the client; ``(CLOSE, [STDIN])`` when it half-closes stdin.

        Ends when the client is gone: the session is over then.
        """
        ...


class Session:
    """Frames channel data onto one WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, protocol: streams.Protocol) -> None:
        self.ws = ws
        self.protocol = protocol

    async def send(self, channel: int, data: bytes) -> None:
        if self.ws.closed:
            return
        message = streams.encode(channel, data, self.protocol.base64)
        with contextlib.suppress(ConnectionError):
            if isinstance(message, str):
                await self.ws.send_str(message)
            else:
                await self.ws.send_bytes(message)

    async def send_status(self, status: bytes, plain_text: str) -> None:
        await self.send(streams.ERROR, status if self.protocol.has_status else plain_text.encode())

    async def inbound(self) -> AsyncIterator[tuple[int, bytes]]:
        async for msg in self.ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            data = msg.data
            if msg.type == WSMsgType.TEXT and not self.protocol.base64:
                # Binary protocols in a text frame (the Python client sends stdin so): raw, not base64.
                data = data.encode()
            try:
                channel, payload = streams.decode(data)
            except ValueError:
                continue
            if channel != streams.CLOSE or self.protocol.has_close:
                yield channel, payload


async def _pump(read: Callable[[], Awaitable[bytes]], session: Channels, ch: int) -> None:
    while True:
        try:
            data = await read()
        except OSError:  # EIO on a pty once the child side is closed
            return
        if not data:
            return
        await session.send(ch, data)


class _PtyReader:
    """Non-blocking reads of a pty master through the loop's reader callbacks."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self._ready)

    def _ready(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.fd)
        self.queue.put_nowait(data)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)


def set_window_size(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


async def _start(target: ExecTarget, command: list[str], opts: StreamOptions) -> tuple[asyncio.subprocess.Process, int]:
    """The process, and the pty master fd (-1 without a tty)."""
    argv = [*target.argv_prefix, *command]
    if opts.tty:
        master, slave = os.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=slave, stdout=slave, stderr=slave, env=target.env, cwd=target.cwd or None,
                start_new_session=True,
            )  # fmt: skip
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return proc, master
    pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=pipe if opts.stdin else devnull,
        stdout=pipe if opts.stdout else devnull,
        stderr=pipe if opts.stderr else devnull,
        env=target.env,
        cwd=target.cwd or None,
        start_new_session=True,
    )
    return proc, -1


async def run_exec(session: Channels, target: ExecTarget, command: list[str], opts: StreamOptions) -> None:
    try:
        proc, master = await _start(target, command, opts)
    except OSError as err:
        message = f"failed to exec in container: starting {command[0] if command else ''!r}: {err.strerror or err}"
        await session.send_status(streams.failure_status(message), message)
        return
    pumps: list[asyncio.Task[None]] = []
    pty: _PtyReader | None = None
    if master >= 0:
        pty = _PtyReader(master)
        pumps.append(asyncio.create_task(_pump(pty.queue.get, session, streams.STDOUT)))
    else:
        for stream, ch in ((proc.stdout, streams.STDOUT), (proc.stderr, streams.STDERR)):
            if stream is not None:
                pumps.append(asyncio.create_task(_pump(functools.partial(stream.read, READ_SIZE), session, ch)))
    inbound = asyncio.create_task(_receive(session, proc, master))
    try:
        code = await _wait_or_leave(proc, inbound)
        if code is None:
            return  # the client left; the process was killed
        # Output still buffered in the pipes goes out first; a background child that keeps
        # them open does not hold the session forever.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*pumps), DRAIN_TIMEOUT_S)
        await session.send_status(
            streams.exit_status(code),
            "" if code == 0 else f"command terminated with non-zero exit code: exit status {code}",
        )
    finally:
        inbound.cancel()
        for task in pumps:
            task.cancel()
        if pty is not None:
            pty.close()
        if master >= 0:
            os.close(master)
        _kill_group(proc)
        # Reaped before the session ends, even when the session is being cancelled (server shutdown).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), DRAIN_TIMEOUT_S)


async def _wait_or_leave(proc: asyncio.subprocess.Process, inbound: asyncio.Task[None]) -> int | None:
    """The exit code, or None when the client went away before the process ended."""
    waiter = asyncio.create_task(proc.wait())
    done, _ = await asyncio.wait({waiter, inbound}, return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        return waiter.result()
    _kill_group(proc)
    # Reap it (SIGKILL: promptly) so its transport is closed before the session is torn down.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(waiter, DRAIN_TIMEOUT_S)
    return None


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


async def _receive(session: Channels, proc: asyncio.subprocess.Process, master: int) -> None:
    """Client → process until the client leaves (then return: the session is over)."""
    async for channel, payload in session.inbound():
        if channel == streams.STDIN:
            await _write_stdin(proc, master, payload)
        elif channel == streams.RESIZE and master >= 0:
            size = streams.parse_resize(payload)
            if size is not None:
                set_window_size(master, *size)
        elif channel == streams.CLOSE and payload[:1] == bytes((streams.STDIN,)):
            _close_stdin(proc, master)


async def _write_stdin(proc: asyncio.subprocess.Process, master: int, payload: bytes) -> None:
    if master >= 0:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.write, master, payload)
    elif proc.stdin is not None and not proc.stdin.is_closing():
        with contextlib.suppress(ConnectionError):
            proc.stdin.write(payload)
            await proc.stdin.drain()


def _close_stdin(proc: asyncio.subprocess.Process, master: int) -> None:
    if master >= 0:
        with contextlib.suppress(OSError):
            os.write(master, b"\x04")  # end-of-file on the terminal line discipline
    elif proc.stdin is not None:
        proc.stdin.close()


async def run_attach(
    session: Channels,
    target: ExecTarget,
    logs: ContainerLogs,
    running: Callable[[], bool],
    opts: StreamOptions,
) -> None:
    """Attach: stdin into the container's FIFO, its log (from now on) as stdout."""
    fifo = -1
    if opts.stdin and target.attach_stdin is not None:
        with contextlib.suppress(OSError):
            fifo = await asyncio.to_thread(os.open, target.attach_stdin, os.O_WRONLY | os.O_NONBLOCK)

    # Output "from now on" is what follows the log's size *before* any stdin is passed on: the whole
    # log is streamed and that much skipped (a tail offset taken concurrently could miss an echo).
    try:
        skip = (await asyncio.to_thread(logs.current.stat)).st_size
    except OSError:
        skip = 0

    async def forward(data: bytes) -> None:
        nonlocal skip
        dropped = min(skip, len(data))
        skip -= dropped
        if data[dropped:]:
            await session.send(streams.STDOUT, data[dropped:])

    follow = asyncio.create_task(stream_log(logs.current, LogOptions(follow=True), running, forward))
    inbound = asyncio.create_task(_attach_input(session, fifo))
    try:
        done, _ = await asyncio.wait({follow, inbound}, return_when=asyncio.FIRST_COMPLETED)
        if follow in done:
            await session.send_status(streams.exit_status(0), "")
    finally:
        follow.cancel()
        inbound.cancel()
        if fifo >= 0:
            os.close(fifo)


async def _attach_input(session: Channels, fifo: int) -> None:
    async for channel, payload in session.inbound():
        if channel == streams.STDIN and fifo >= 0:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.write, fifo, payload)
