"""etcd v3 gRPC API definitions, compiled at runtime.

The ``.proto`` files under this directory are Skiff's trimmed copies of etcd's
``etcdserverpb``, ``mvccpb`` and ``authpb`` definitions. They are the single
source of truth for the wire contract: Skiff uses them both as a client of real
etcd (3.4/3.5) and as a server that unmodified ``etcdctl`` talks to.

No generated ``*_pb2.py`` code is committed. Instead :func:`load` compiles the
protos on first use via ``grpc.protos_and_services`` (backed by grpcio-tools'
bundled protoc), so there is nothing to regenerate or keep in sync.

How resolution works: grpc's runtime loader turns ``etcd/etcdserverpb/rpc.proto``
into the module name ``etcd.etcdserverpb.rpc_pb2`` and looks the file up in each
``sys.path`` entry (every ``sys.path`` entry is also passed to protoc as an
include dir). We therefore put this directory at the front of ``sys.path`` for
the duration of the load. The generated modules end up in ``sys.modules`` as
``etcd.etcdserverpb.rpc_pb2``, ``etcd.etcdserverpb.rpc_pb2_grpc``,
``etcd.mvccpb.kv_pb2`` and ``etcd.authpb.auth_pb2``.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import grpc

__all__ = ["PROTO_ROOT", "EtcdProtos", "load"]

#: Directory that acts as the proto include root (contains ``etcd/...``).
PROTO_ROOT: Path = Path(__file__).resolve().parent

_RPC_PROTO = "etcd/etcdserverpb/rpc.proto"
_KV_MODULE = "etcd.mvccpb.kv_pb2"
_AUTH_MODULE = "etcd.authpb.auth_pb2"

# Guards the temporary sys.path mutation against concurrent first calls.
_load_lock = threading.Lock()


@dataclass(frozen=True)
class EtcdProtos:
    """The generated etcd API modules."""

    rpc_pb2: ModuleType  # etcdserverpb messages (RangeRequest, ...)
    rpc_pb2_grpc: ModuleType  # KVStub / KVServicer / add_KVServicer_to_server, ...
    kv_pb2: ModuleType  # mvccpb.KeyValue, mvccpb.Event
    auth_pb2: ModuleType  # authpb.User, Permission, Role, UserAddOptions


@functools.cache
def load() -> EtcdProtos:
    """Compile (once per process) and return the etcd API modules.

    Requires ``grpcio-tools`` to be installed.
    """
    root = str(PROTO_ROOT)
    with _load_lock:
        added = root not in sys.path
        if added:
            sys.path.insert(0, root)
        try:
            rpc_pb2, rpc_pb2_grpc = grpc.protos_and_services(_RPC_PROTO)
            # Dependencies were generated and imported as a side effect.
            kv_pb2 = importlib.import_module(_KV_MODULE)
            auth_pb2 = importlib.import_module(_AUTH_MODULE)
        finally:
            if added:
                try:
                    sys.path.remove(root)
                except ValueError:
                    pass
    return EtcdProtos(
        rpc_pb2=rpc_pb2,
        rpc_pb2_grpc=rpc_pb2_grpc,
        kv_pb2=kv_pb2,
        auth_pb2=auth_pb2,
    )
