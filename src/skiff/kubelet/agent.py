"""The kubelet process: register the Node, run the HTTPS server, run the pods bound here.

Start-up order: API client → runtime (loads state files) → HTTPS server (its
port goes into the Node; every request authenticated and authorized through
the API server, ``skiff.kubelet.server_auth``; with ``rotate_server_certificates``
a serving certificate from the cluster CA is asked for in the background and
swapped in once issued, ``skiff.kubelet.server_certificate``) → Node registration → pod CIDR (flag, else
``node.spec.podCIDR`` from the controller-manager's IPAM, else a fallback
derived from the node IP after a wait) → informers (own pods by
``spec.nodeName``, Services for the environment) → orphan clean-up → lease
and status heartbeats.  On stop, pods keep running unless
``stop_pods_on_exit``: a restarted kubelet adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from skiff.client import ApiClient, ClientConfig
from skiff.client.events import EventRecorder
from skiff.client.informer import InformerFactory
from skiff.client.resources import PODS, SERVICES
from skiff.kubelet.cgroups import Cgroups
from skiff.kubelet.context import NodeServices, log
from skiff.kubelet.env import NodeResources, decode_secret, service_env
from skiff.kubelet.image_store import images_dir_for_root
from skiff.kubelet.images import ImageStore
from skiff.kubelet.node import NodeAgent, NodeConfig, capacity
from skiff.kubelet.runtime import PodRuntime
from skiff.kubelet.server_auth import AuthConfig, KubeletAuth
from skiff.kubelet.server_certificate import ServerCertificate
from skiff.kubelet.static_pods import StaticPods

POD_CIDR_WAIT_S = 10.0


@dataclass(frozen=True)
class KubeletConfig:
    node_name: str
    node_ip: str
    root_dir: Path
    kubeconfig: Path | None
    port: int = 10250
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    pod_cidr: str | None = None
    pod_manifest_path: Path | None = None
    cluster_dns: str = "127.253.0.10"
    cluster_domain: str = "cluster.local"
    stop_pods_on_exit: bool = False
    #: Who may use the HTTPS API (skiff.kubelet.server_auth): kubeadm's settings by default.
    auth: AuthConfig = field(default_factory=AuthConfig)
    #: --tls-cert-file/--tls-private-key-file; None serves a self-signed certificate.
    tls_files: tuple[Path, Path] | None = None
    #: --rotate-server-certificates: serve a certificate from the cluster CA (a kubelet-serving CSR).
    rotate_server_certificates: bool = False


def fallback_pod_cidr(node_ip: str) -> str:
    """127.0.1.N → 127.16.N.0/24: inside the default cluster CIDR, distinct per node address."""
    last = int(ipaddress.ip_address(node_ip)) & 0xFF
    return f"127.16.{last}.0/24"


class Kubelet:
    def __init__(self, config: KubeletConfig) -> None:
        self.config = config
        self.client = ApiClient(ClientConfig.from_kubeconfig(config.kubeconfig), user_agent="skiff-kubelet")
        self.factory = InformerFactory(self.client)
        self.services = self.factory.informer(SERVICES)
        self.pods = self.factory.informer(PODS, field_selector=f"spec.nodeName={config.node_name}")
        cgroups = Cgroups()
        isolate = os.geteuid() == 0
        if not isolate:
            log.warning("not running as root: no mount namespaces, volumes are not mounted at their mountPath")
        if not cgroups.enabled:
            log.warning("cgroups not writable: memory and CPU limits are not enforced")
        node_cap = capacity(NodeConfig(config.node_name, config.node_ip, config.port))
        from skiff.api.quantity import parse_quantity

        resources = NodeResources(
            parse_quantity(node_cap["cpu"]).milli_value(), parse_quantity(node_cap["memory"]).value()
        )
        self.services_node = NodeServices(
            config.node_name,
            config.node_ip,
            config.root_dir,
            ImageStore(images_dir_for_root(config.root_dir)),
            cgroups,
            resources,
            self._lookup,
            self._services_env,
            isolate,
            EventRecorder(self.client, "kubelet", host=config.node_name).event,
            config.cluster_dns,
            config.cluster_domain,
        )
        self.runtime = PodRuntime(self.client, self.services_node)
        self.client_ca_pem = self._client_ca_pem()
        # Built here so that a configuration that could authenticate nobody fails before anything starts.
        self.auth = KubeletAuth(config.auth, config.node_name, self.client, client_ca=self.client_ca_pem is not None)
        self.server: Any = None
        self._tasks: list[asyncio.Task[Any]] = []

    def _client_ca_pem(self) -> str | None:
        """--client-ca-file, else the CA trusted for the API server: kubeadm points both at the cluster CA."""
        path = self.config.auth.client_ca_file
        if path is None and self.client.config.ca_file:
            path = Path(self.client.config.ca_file)
        if path is not None:
            return path.read_text()
        data = self.client.config.ca_data
        return data.decode() if data else None

    async def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        obj = await self.runtime.fetch("configmaps" if kind == "configmap" else "secrets", namespace, name)
        if obj is None:
            return None
        return decode_secret(obj.get("data")) if kind == "secret" else dict(obj.get("data") or {})

    def _services_env(self, pod: dict[str, Any]) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        links = pod["spec"].get("enableServiceLinks", True)
        chosen = [s for s in self.services.list() if links and s["metadata"].get("namespace") == namespace]
        master = self.services.get("default/kubernetes")
        if master is not None and not (namespace == "default" and links):
            chosen.append(master)
        return service_env(chosen)

    async def _start_server(self) -> int:
        try:
            from skiff.kubelet.server import KubeletServer  # written separately; optional until it lands
        except ImportError:
            log.warning("skiff.kubelet.server is not available: no kubelet HTTPS API (logs/exec/port-forward)")
            return self.config.port
        cert_dir = self.config.root_dir / "pki"
        tls_files, rotation, due = self.config.tls_files, None, False
        if self.config.rotate_server_certificates:
            rotation = ServerCertificate.for_node(self.config.root_dir, self.config.node_name, self.config.node_ip)
            tls_files, due = await rotation.initial(tls_files)
        self.server = KubeletServer(
            self.runtime,
            self.config.node_ip,
            self.config.port,
            cert_dir,
            self.client_ca_pem,
            auth=self.auth,
            tls_files=tls_files,
        )
        await self.server.start()
        if rotation is not None and due:
            self._tasks.append(asyncio.create_task(self._rotate_server_certificate(rotation)))
        return int(self.server.port)

    async def _rotate_server_certificate(self, rotation: ServerCertificate) -> None:
        """Ask as this node for a serving certificate; serve it once issued (the server is up meanwhile)."""
        files = await rotation.obtain(self.client)
        if files is not None:
            self.server.use_certificate(*files)

    async def _pod_cidr(self, agent: NodeAgent) -> str:
        if self.config.pod_cidr:
            return self.config.pod_cidr
        deadline = asyncio.get_running_loop().time() + POD_CIDR_WAIT_S
        while True:
            cidr = (agent.node.get("spec") or {}).get("podCIDR")
            if cidr:
                return str(cidr)
            if asyncio.get_running_loop().time() > deadline:
                fallback = fallback_pod_cidr(self.config.node_ip)
                log.warning("node has no spec.podCIDR after %.0fs; using %s", POD_CIDR_WAIT_S, fallback)
                return fallback
            await asyncio.sleep(1.0)
            with contextlib.suppress(Exception):
                await agent.refresh()

    async def run(self, stop: asyncio.Event) -> None:
        self.config.root_dir.mkdir(parents=True, exist_ok=True)
        port = await self._start_server()
        static = self._static_pods()
        static_uids: set[str] = set()
        if static is not None:
            # Static pods run before (and without) the API server: self-hosting starts the apiserver this way.
            self.runtime.set_pod_cidr(self.config.pod_cidr or fallback_pod_cidr(self.config.node_ip))
            static_uids = await static.scan()
        node_config = NodeConfig(
            self.config.node_name,
            self.config.node_ip,
            port,
            self.config.labels,
            self.config.taints,
            self.config.pod_cidr,
        )
        agent = NodeAgent(self.client, node_config)
        await self._register(agent)
        self._tasks.append(asyncio.create_task(agent.heartbeat_forever()))
        cidr = await self._pod_cidr(agent)
        self.runtime.set_pod_cidr(cidr)
        if not self.config.pod_cidr:
            self._tasks.append(asyncio.create_task(self._follow_pod_cidr(agent, cidr)))
        log.info("kubelet %s: node IP %s, pod CIDR %s, port %d", self.config.node_name, self.config.node_ip, cidr, port)
        self.pods.add_handler(
            on_add=self.runtime.on_pod, on_update=self.runtime.on_pod_update, on_delete=self.runtime.on_pod_delete
        )
        await self.factory.start()
        await self.factory.wait_synced()
        await self.runtime.remove_orphans({p["metadata"]["uid"] for p in self.pods.list()} | static_uids)
        if static is not None:
            static.node = agent.node
            self._tasks.append(asyncio.create_task(static.run()))
        await stop.wait()

    async def _follow_pod_cidr(self, agent: NodeAgent, current: str) -> None:
        """The node IPAM may assign node.spec.podCIDR after the fallback was taken: new pods then use it."""
        while True:
            await asyncio.sleep(POD_CIDR_WAIT_S)
            assigned = (agent.node.get("spec") or {}).get("podCIDR")
            if assigned and assigned != current:
                log.info("node pod CIDR is now %s (was %s); new pods get addresses from it", assigned, current)
                self.runtime.set_pod_cidr(str(assigned))
                current = str(assigned)

    def _static_pods(self) -> StaticPods | None:
        if self.config.pod_manifest_path is None:
            return None
        return StaticPods(self.client, self.config.pod_manifest_path, self.runtime, self.config.node_name)

    async def _register(self, agent: NodeAgent) -> None:
        """Retry until the API server answers: the kubelet may start first (static pods, ``skiff up``)."""
        delay = 0.5
        while True:
            try:
                await agent.register()
                return
            except (OSError, aiohttp.ClientError) as err:
                log.warning("cannot register node yet (%s); retrying in %.1fs", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.runtime.shutdown(self.config.stop_pods_on_exit)
        await self.factory.stop()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.stop()
        await self.client.close()
