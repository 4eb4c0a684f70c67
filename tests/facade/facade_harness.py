"""Real processes for the facade suite: ``skiff store serve``, real etcd, real etcdctl.

Everything started here is stopped by PID: the facade with SIGTERM (and its
exit code is checked: a clean shutdown is part of the contract), etcdctl
runs with a deadline and is killed by PID when it passes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from skiff.etcd_binaries import EtcdBinary

#: etcd_process starts members with this --initial-cluster-token; the facade must use the same.
ETCD_PROCESS_TOKEN = "skiff-etcd"
#: A single etcdctl command may take this long (check perf takes its own 60 s plus this).
COMMAND_DEADLINE = 30.0
#: Waiting for the facade's "serving" line.
START_DEADLINE = 30.0


@dataclass(frozen=True)
class Output:
    rc: int
    stdout: str
    stderr: str

    def text(self) -> str:
        """What a user sees, for comparison: both streams and the exit code."""
        return f"{self.stdout}{self.stderr}[exit {self.rc}]\n"


def etcdctl_env() -> dict[str, str]:
    """The caller's environment without ETCDCTL_* settings, speaking the v3 API (needed by 3.4)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


def _signal(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    """Signal our child by PID unless it has exited (it may exit before asyncio notices)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)


async def _stop_by_pid(process: asyncio.subprocess.Process, grace: float = 10.0) -> int:
    _signal(process, signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        _signal(process, signal.SIGKILL)
    return await process.wait()


async def etcdctl(
    binary: EtcdBinary,
    endpoint: str,
    *args: str,
    stdin: str | None = None,
    deadline: float = COMMAND_DEADLINE,
) -> Output:
    process = await asyncio.create_subprocess_exec(
        str(binary.etcdctl),
        f"--endpoints={endpoint}",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=etcdctl_env(),
    )
    try:
        out, err = await asyncio.wait_for(process.communicate((stdin or "").encode()), deadline)
    except TimeoutError:
        _signal(process, signal.SIGKILL)
        await process.wait()
        raise AssertionError(f"etcdctl {' '.join(args)} did not finish within {deadline}s") from None
    assert process.returncode is not None
    return Output(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


async def etcdctl_watch(
    binary: EtcdBinary, endpoint: str, *args: str, until_line: str, deadline: float = COMMAND_DEADLINE
) -> str:
    """Run ``etcdctl watch ARGS`` until it prints ``until_line`` (or exits), then stop it by PID."""
    process = await asyncio.create_subprocess_exec(
        str(binary.etcdctl),
        f"--endpoints={endpoint}",
        "watch",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=etcdctl_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    lines: list[str] = []

    async def read_until() -> None:
        assert process.stdout is not None
        while line := (await process.stdout.readline()).decode(errors="replace"):
            lines.append(line)
            if line.rstrip("\n") == until_line:
                return

    try:
        await asyncio.wait_for(read_until(), deadline)
    finally:
        _signal(process, signal.SIGKILL)
        await process.wait()
    stderr = (await process.stderr.read()).decode(errors="replace")
    return "".join(lines) + stderr


@dataclass
class FacadeProcess:
    """``skiff store serve`` running in a child process."""

    process: asyncio.subprocess.Process
    #: host:port (etcdctl and grpc dial it); ``url`` says the scheme served.
    endpoint: str
    url: str
    banner: str
    log_file: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(
        cls, data_dir: Path, *, name: str = "default", peer_url: str, token: str, listen: str = "http://127.0.0.1:0"
    ) -> FacadeProcess:
        """Start it on a free port; its logs go to ``<data_dir>.log`` (a file: a full pipe would stall it).

        Plaintext (``http://``, asked for explicitly) unless ``listen`` says otherwise: these suites are
        about the etcd API, and the real etcd they compare with serves plaintext too.
        """
        log_file = data_dir.with_name(data_dir.name + ".log")
        with log_file.open("wb") as log:
            process = await cls._spawn(data_dir, name, peer_url, token, listen, log.fileno())
        assert process.stdout is not None
        try:
            banner = (await asyncio.wait_for(process.stdout.readline(), START_DEADLINE)).decode()
        except TimeoutError:
            banner = ""
        if not banner.startswith("skiff store serving etcd v3 API on "):
            await _stop_by_pid(process)
            raise AssertionError(f"skiff store serve did not start: {banner!r}\n{log_file.read_text()}")
        url = banner.removeprefix("skiff store serving etcd v3 API on ").split()[0]
        return cls(process, url.split("://", 1)[1], url, banner, log_file)

    @staticmethod
    async def _spawn(
        data_dir: Path, name: str, peer_url: str, token: str, listen: str, log_fd: int
    ) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "skiff.cli.main",
            "store",
            "serve",
            f"--data-dir={data_dir}",
            f"--listen={listen}",
            f"--name={name}",
            f"--advertise-peer-url={peer_url}",
            f"--initial-cluster-token={token}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_fd,
        )

    async def stop(self) -> int:
        """SIGTERM by PID; returns the exit code (0 is a clean shutdown)."""
        return await _stop_by_pid(self.process)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")
