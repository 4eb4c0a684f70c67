"""Channels to the members of one etcd cluster, with failover between them.

The client talks to one member at a time (the first endpoint to begin with)
and moves to the next, in order and round the list, when that member cannot
serve.  Only the caller that saw the failure moves the cursor, and only if it
still points at the failed member, so concurrent failures move it once.

Which failures allow a retry is decided by :mod:`skiff.store.etcd_errors`
(reads: any UNAVAILABLE; writes: only if never sent).  A call gives up after
two passes over the endpoints and raises the last error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from skiff.etcd_protos import load
from skiff.store.etcd_errors import may_retry_read, never_sent

_CHANNEL_OPTIONS = [
    # etcd answers with up to its own limit (watch catch-up batches can be large).
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # Notice a dead member under a long-lived watch.  etcd refuses pings more often than every 5 s.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    # A member back from a restart is usable again quickly.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]

_STUBS = {
    "KV": "KVStub",
    "Watch": "WatchStub",
    "Lease": "LeaseStub",
    "Maintenance": "MaintenanceStub",
    "Cluster": "ClusterStub",
}


class EtcdEndpoints:
    def __init__(
        self, endpoints: Sequence[str], credentials: grpc.ChannelCredentials | None, *, call_timeout: float
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = tuple(endpoints)
        #: The deadline of each unary call, in seconds.
        self.call_timeout = call_timeout
        self._credentials = credentials
        self._cursor = 0
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[tuple[str, str], Any] = {}
        self._grpc = load().rpc_pb2_grpc

    @property
    def current(self) -> str:
        return self.endpoints[self._cursor]

    def failover(self, failed: str) -> None:
        """Move to the next endpoint, unless someone already moved away from ``failed``."""
        if self.current == failed:
            self._cursor = (self._cursor + 1) % len(self.endpoints)

    def stub(self, service: str, endpoint: str | None = None) -> tuple[str, Any]:
        """The stub of ``service`` on ``endpoint`` (default: the current one), with that endpoint."""
        endpoint = endpoint or self.current
        key = (endpoint, service)
        if key not in self._stubs:
            self._stubs[key] = getattr(self._grpc, _STUBS[service])(self._channel(endpoint))
        return endpoint, self._stubs[key]

    def _channel(self, endpoint: str) -> grpc.aio.Channel:
        if endpoint not in self._channels:
            if self._credentials is None:
                channel = grpc.aio.insecure_channel(endpoint, options=_CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.secure_channel(endpoint, self._credentials, options=_CHANNEL_OPTIONS)
            self._channels[endpoint] = channel
        return self._channels[endpoint]

    async def unary(self, service: str, method: str, request: Any, *, read: bool) -> Any:
        """Call ``service.method`` on the current member, failing over as the retry rules allow."""
        last: grpc.aio.AioRpcError | None = None
        for _ in range(2 * len(self.endpoints)):
            endpoint, stub = self.stub(service)
            try:
                return await getattr(stub, method)(request, timeout=self.call_timeout)
            except grpc.aio.AioRpcError as err:
                if not (may_retry_read(err) if read else never_sent(err)):
                    raise
                last = err
                self.failover(endpoint)
        assert last is not None
        raise last

    async def close(self) -> None:
        channels, self._channels, self._stubs = list(self._channels.values()), {}, {}
        for channel in channels:
            await channel.close()
