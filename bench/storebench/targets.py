"""The four stores under test, each opened fresh in its own temporary directory.

* ``sqlite`` — :class:`SqliteStore` in this very process (no network, no
  serialisation; it shares the core with the benchmark's client tasks).
* ``facade`` — ``skiff store serve`` in a child process (its own interpreter,
  so its own core), reached like etcd: :class:`EtcdStore` over gRPC.
* ``etcd-3.5.1`` and ``etcd-3.4.23`` — real single-member etcd started by
  :mod:`skiff.store.etcd_process`, reached with the same :class:`EtcdStore`.

The last three share the client code path, so their figures compare the
servers.  Every process started here is stopped by its PID when the target is
closed (SIGTERM, then SIGKILL after a grace period); addresses are loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from skiff.etcd_binaries import EtcdBinary, find_binaries
from skiff.store.etcd import EtcdStore
from skiff.store.etcd_process import EtcdMember
from skiff.store.protocol import Store
from skiff.store.sqlite import SqliteStore

SQLITE = "sqlite"
FACADE = "facade"
ETCD_35 = "etcd-3.5.1"
ETCD_34 = "etcd-3.4.23"
#: Every target, in the order they run and are printed.
TARGETS = (SQLITE, FACADE, ETCD_35, ETCD_34)
#: The target every ratio is taken against.
REFERENCE = ETCD_35

#: How long the facade may take to print its address.
FACADE_START_TIMEOUT = 30.0
#: SIGTERM grace before SIGKILL.
STOP_GRACE = 10.0
_ADDRESS = re.compile(rb"(127\.0\.0\.1:\d+)")


@dataclass(frozen=True)
class RunningTarget:
    """A store ready for load; ``server_pid`` is None when it runs in this process."""

    name: str
    store: Store
    endpoint: str | None
    server_pid: int | None

    @property
    def profile_pid(self) -> int:
        """The process doing the store's work (for py-spy)."""
        return self.server_pid if self.server_pid is not None else os.getpid()


@contextlib.asynccontextmanager
async def open_target(name: str) -> AsyncIterator[RunningTarget]:
    """Start ``name`` on a fresh data directory; everything is stopped and removed on exit."""
    workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=f"skiff-bench-{name}-"))
    try:
        if name == SQLITE:
            opened = _sqlite(workdir)
        elif name == FACADE:
            opened = _facade(workdir)
        elif name in (ETCD_35, ETCD_34):
            opened = _etcd(name, workdir)
        else:
            raise ValueError(f"unknown target {name!r}; expected one of {', '.join(TARGETS)}")
        async with opened as target:
            yield target
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)


@contextlib.asynccontextmanager
async def _sqlite(workdir: Path) -> AsyncIterator[RunningTarget]:
    store = await SqliteStore.open(workdir / "store.db")
    try:
        yield RunningTarget(SQLITE, store, endpoint=None, server_pid=None)
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _facade(workdir: Path) -> AsyncIterator[RunningTarget]:
    stdout_path, stderr_path = workdir / "serve.out", workdir / "serve.err"
    stdout = await asyncio.to_thread(open, stdout_path, "wb")
    stderr = await asyncio.to_thread(open, stderr_path, "wb")
    with stdout, stderr:  # the child holds its own copies
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "skiff.cli.main",
            "--log-level",
            "WARNING",
            "store",
            "serve",
            "--data-dir",
            str(workdir / "data"),
            "--listen",
            "http://127.0.0.1:0",  # plaintext, like the etcd members it is compared with
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        endpoint = await _wait_for_address(process, stdout_path, stderr_path)
        store = await EtcdStore.connect([endpoint])
        try:
            yield RunningTarget(FACADE, store, endpoint=endpoint, server_pid=process.pid)
        finally:
            await store.close()
    finally:
        await stop_process(process)


async def _wait_for_address(process: asyncio.subprocess.Process, stdout: Path, stderr: Path) -> str:
    """Poll the child's stdout for the address line ``skiff store serve`` prints once listening."""
    deadline = time.monotonic() + FACADE_START_TIMEOUT
    while time.monotonic() < deadline:
        match = _ADDRESS.search(await asyncio.to_thread(stdout.read_bytes))
        if match:
            return match.group(1).decode()
        if process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    tail = (await asyncio.to_thread(stderr.read_bytes))[-3000:].decode(errors="replace")
    raise RuntimeError(f"skiff store serve did not print its address (exit {process.returncode}):\n{tail}")


async def stop_process(process: asyncio.subprocess.Process, grace: float = STOP_GRACE) -> None:
    """SIGTERM by PID, then SIGKILL after ``grace`` seconds."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
            return
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    await process.wait()


@contextlib.asynccontextmanager
async def _etcd(name: str, workdir: Path) -> AsyncIterator[RunningTarget]:
    binary = (await find_etcd_binaries()).get(name.removeprefix("etcd-"))
    if binary is None:
        raise RuntimeError(f"{name} is not installed (see `make install-test`)")
    member = await EtcdMember.start(binary, workdir / "data")
    try:
        store = await EtcdStore.connect([member.endpoint])
        try:
            yield RunningTarget(name, store, endpoint=member.endpoint, server_pid=member.pid)
        finally:
            await store.close()
    finally:
        await member.stop()


async def find_etcd_binaries() -> dict[str, EtcdBinary]:
    """etcd_process.find_binaries (it runs ``etcd --version``), off the event loop."""
    return await asyncio.to_thread(find_binaries)
