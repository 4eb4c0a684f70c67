"""An etcd v3 gRPC server over any Store, so etcd's own tools work on Skiff's embedded store.

``FacadeServer(store)`` serves KV, Watch, Lease, Maintenance and Cluster with
grpc.aio, impersonating a fresh single-member etcd 3.5 cluster: the same
cluster and member ids, raft term and headers as a real etcd started with the
same ``--name``, ``--initial-advertise-peer-urls`` and
``--initial-cluster-token`` (see ``facade_member``).  Real ``etcdctl`` 3.4 and
3.5 print the same output against it as against such an etcd, except for what
cannot match (lease ids, database sizes, timings).

The services live in ``facade_kv``, ``facade_watch``, ``facade_lease`` and
``facade_maintenance``; ``facade_wire`` turns them into gRPC handlers, maps
Store errors to etcd's status codes and messages, and answers undecodable
payloads with an error without touching the store.  Auth is not served (the
embedded store has no users): its rpcs answer UNIMPLEMENTED.

TLS: ``start("https://HOST:PORT")`` (or a bare ``HOST:PORT``) serves TLS with
the ``tls`` files given to the constructor and requires client certificates
signed by their CA, as etcd with ``--client-cert-auth``; only an explicit
``http://HOST:PORT`` serves plaintext (see :mod:`skiff.store.tls`).  The
member's client URL (MemberList) carries the scheme served.

The server does not own the store: ``stop()`` stops serving, the caller
closes the store.
"""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio

from skiff.store.facade_kv import KVService, current_revision
from skiff.store.facade_lease import LeaseService
from skiff.store.facade_maintenance import ClusterService, MaintenanceService
from skiff.store.facade_member import DEFAULT_CLUSTER_TOKEN, Member
from skiff.store.facade_watch import WatchService
from skiff.store.facade_wire import service_handler
from skiff.store.protocol import Store
from skiff.store.tls import TlsFiles, parse_listen_url, server_credentials
from skiff.store.types import MAX_REQUEST_BYTES

#: etcd's grpcOverheadBytes: the gRPC receive limit is --max-request-bytes plus this.
GRPC_OVERHEAD_BYTES = 512 * 1024

_SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES),
    ("grpc.max_send_message_length", 2**31 - 1),
    # etcdctl pings every 10 s (its 2 s --keepalive-time, raised to grpc-go's floor)
    # even on idle connections; grpc's defaults would answer that with GOAWAY
    # "too_many_pings" during a long watch or check perf.  etcd allows 5 s.
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.so_reuseport", 0),
]


class FacadeServer:
    """Serve ``store`` over etcd's v3 gRPC API."""

    def __init__(
        self,
        store: Store,
        name: str = "default",
        peer_url: str = "http://localhost:2380",
        *,
        cluster_token: str = DEFAULT_CLUSTER_TOKEN,
        tls: TlsFiles | None = None,
    ) -> None:
        self.store = store
        self.tls = tls
        self.member = Member(name, (peer_url,), cluster_token)
        self._server: grpc.aio.Server | None = None
        self.address = ""

    async def start(self, listen: str = "127.0.0.1:0") -> int:
        """Bind ``listen`` (a listen URL, port 0 picks a free one), serve, and return the bound port.

        ValueError: a TLS URL without ``tls`` files, or ``http://`` with them (say which one is meant).
        """
        if self._server is not None:
            raise RuntimeError("facade already started")
        url = parse_listen_url(listen)
        if url.tls and self.tls is None:
            raise ValueError(f"{listen}: serving TLS needs a certificate, key and client CA (or ask for http://)")
        if not url.tls and self.tls is not None:
            raise ValueError(f"{listen}: plaintext listen URL given with TLS files")
        address = url.address
        self.member.start_at(await current_revision(self.store))
        server = grpc.aio.server(options=_SERVER_OPTIONS)
        server.add_generic_rpc_handlers(
            (
                service_handler("KV", KVService(self.store, self.member)),
                service_handler("Watch", WatchService(self.store, self.member)),
                service_handler("Lease", LeaseService(self.store, self.member)),
                service_handler("Maintenance", MaintenanceService(self.store, self.member)),
                service_handler("Cluster", ClusterService(self.member)),
            )
        )
        if self.tls is None:
            port = int(server.add_insecure_port(address))
        else:
            port = int(server.add_secure_port(address, await asyncio.to_thread(server_credentials, self.tls)))
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        host = address.rsplit(":", 1)[0]
        self.address = f"{host}:{port}"
        self.member.client_urls = (self.url,)
        await server.start()
        self._server = server
        return port

    @property
    def url(self) -> str:
        """The client URL served, ``https://HOST:PORT`` (``http://`` when plaintext); empty before start."""
        return f"{'http' if self.tls is None else 'https'}://{self.address}" if self.address else ""

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving; open streams (watches, keep-alives) are cancelled after ``grace`` seconds."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)

    async def wait(self) -> None:
        """Until the server stops."""
        if self._server is not None:
            await self._server.wait_for_termination()
