"""The processes under test: ``skiff apiserver`` (a child process) over SQLite or a real etcd 3.5.1.

* ``sqlite`` — ``skiff apiserver --store sqlite://DIR/skiff.db``: the store
  lives in the API server's own process (its writer thread).
* ``etcd`` — a fresh single-member etcd 3.5.1 started with
  :mod:`skiff.store.etcd_process`, and ``skiff apiserver --store etcd://…``.

The API server listens on port 0 for HTTPS and on a loopback plain-HTTP port
(``--insecure-port 0``); both bound addresses are read from its stdout, then
``/readyz`` is polled to a deadline.  Every process is stopped by its PID
(SIGTERM, then SIGKILL after a grace period) when the context exits, and the
temporary directory is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from skiff.etcd_binaries import find_binaries
from skiff.store.etcd_process import EtcdMember
from storebench.targets import stop_process

SQLITE = "sqlite"
ETCD = "etcd"
STORES = (SQLITE, ETCD)
ETCD_VERSION = "3.5.1"

START_TIMEOUT = 60.0
STOP_GRACE = 15.0
_HTTPS = re.compile(r"on (https://127\.0\.0\.1:\d+)")
_HTTP = re.compile(r"on (http://127\.0\.0\.1:\d+)")


@dataclass(frozen=True)
class RunningServer:
    store: str
    https_url: str
    http_url: str
    data_dir: Path
    pid: int
    etcd_pid: int | None
    log_err: Path


def rss_bytes(pid: int) -> int | None:
    """VmRSS of ``pid`` (bytes) from /proc/PID/status, or None when unreadable."""
    return _status_kib(pid, "VmRSS")


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM (peak resident set) of ``pid`` in bytes."""
    return _status_kib(pid, "VmHWM")


def _status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@contextlib.asynccontextmanager
async def running(store: str) -> AsyncIterator[RunningServer]:
    """A ready API server over ``store`` on a fresh temporary directory; everything stopped on exit."""
    workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=f"skiff-apibench-{store}-"))
    try:
        if store == SQLITE:
            async with _apiserver(store, workdir, f"sqlite://{workdir / 'skiff.db'}", None) as server:
                yield server
        elif store == ETCD:
            binary = (await asyncio.to_thread(find_binaries)).get(ETCD_VERSION)
            if binary is None:
                raise RuntimeError(f"etcd {ETCD_VERSION} is not installed (see `make install-test`)")
            member = await EtcdMember.start(binary, workdir / "etcd")
            try:
                async with _apiserver(store, workdir, f"etcd://{member.endpoint}", member.pid) as server:
                    yield server
            finally:
                await member.stop()
        else:
            raise ValueError(f"unknown store {store!r}; expected one of {', '.join(STORES)}")
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)


@contextlib.asynccontextmanager
async def _apiserver(store: str, workdir: Path, store_url: str, etcd_pid: int | None) -> AsyncIterator[RunningServer]:
    out_path, err_path = workdir / "apiserver.out", workdir / "apiserver.err"
    out = await asyncio.to_thread(open, out_path, "wb")
    err = await asyncio.to_thread(open, err_path, "wb")
    with out, err:  # the child holds its own copies
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "skiff.cli.main",
            "--log-level",
            "WARNING",
            "apiserver",
            "--data-dir",
            str(workdir / "data"),
            "--secure-port",
            "0",
            "--insecure-port",
            "0",
            "--store",
            store_url,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    try:
        https_url, http_url = await _wait_for_urls(process, out_path, err_path)
        server = RunningServer(store, https_url, http_url, workdir / "data", process.pid, etcd_pid, err_path)
        await _wait_ready(server, process, err_path)
        yield server
    finally:
        await stop_process(process, STOP_GRACE)


async def _wait_for_urls(process: asyncio.subprocess.Process, out: Path, err: Path) -> tuple[str, str]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.returncode is None:
        text = await asyncio.to_thread(out.read_text)
        https, http = _HTTPS.search(text), _HTTP.search(text)
        if https and http:
            return https.group(1), http.group(1)
        await asyncio.sleep(0.05)
    raise RuntimeError(f"skiff apiserver did not print its addresses (exit {process.returncode}):\n{await _tail(err)}")


async def _wait_ready(server: RunningServer, process: asyncio.subprocess.Process, err: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and process.returncode is None:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{server.http_url}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"skiff apiserver not ready (exit {process.returncode}):\n{await _tail(err)}")


async def _tail(path: Path) -> str:
    data = await asyncio.to_thread(path.read_bytes)
    return data[-3000:].decode(errors="replace")
