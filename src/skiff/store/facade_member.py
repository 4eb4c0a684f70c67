"""Who the facade says it is: a fresh single-member etcd cluster.

etcdctl prints the cluster id, member id and raft term in every header, in
``endpoint status`` and in ``member list``, so the facade derives them exactly
as etcd 3.5 derives them for a new cluster started with the same ``--name``,
``--initial-advertise-peer-urls`` and ``--initial-cluster-token``:

* member id: ``membership.NewMember`` — the first 8 bytes (big-endian) of the
  SHA-1 of the sorted peer URLs concatenated, followed by the cluster token
  (no timestamp for members of the initial cluster);
* cluster id: ``RaftCluster.genID`` — the first 8 bytes of the SHA-1 of the
  sorted member ids, each as 8 big-endian bytes;
* raft term: a fresh single member bootstraps at term 1 and wins its first
  election at term 2, which it then keeps forever (nobody else campaigns).

The raft index cannot be reproduced in general (etcd appends entries for
things the Store does not expose, such as lease expiries).  The facade reports
what a fresh etcd would after the same requests: 4 at start-up (etcd's
conf-change, leader no-op, member attributes and cluster version entries)
plus ``revision - 1`` for a store that already holds history, then one more
for every request that etcd sends through raft (put, delete, write txn,
compaction, lease grant and revoke, every Alarm request).  It is a counter of this
process's life, not persisted.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from skiff.store import pbconvert

#: etcd's default ``--initial-cluster-token``.
DEFAULT_CLUSTER_TOKEN = "etcd-cluster"
#: The term of a fresh single-member etcd after its first election.
RAFT_TERM = 2
#: Raft entries a fresh etcd 3.5 has applied before its first client request.
BOOTSTRAP_RAFT_ENTRIES = 4
#: The etcd server version the facade reports (its API is etcd 3.5's).
SERVER_VERSION = "3.5.1"
#: The cluster version etcd 3.5 reports (``etcdctl version`` prints it as "API version").
CLUSTER_VERSION = "3.5.0"


def member_id(peer_urls: Sequence[str], cluster_token: str = DEFAULT_CLUSTER_TOKEN) -> int:
    """etcd's ``membership.NewMember`` id for a member of the initial cluster."""
    digest = hashlib.sha1("".join(sorted(peer_urls)).encode() + cluster_token.encode()).digest()
    return int(struct.unpack(">Q", digest[:8])[0])


def cluster_id(member_ids: Sequence[int]) -> int:
    """etcd's ``RaftCluster.genID`` over the (sorted) member ids."""
    packed = b"".join(struct.pack(">Q", m) for m in sorted(member_ids))
    return int(struct.unpack(">Q", hashlib.sha1(packed).digest()[:8])[0])


@dataclass
class Member:
    """The single member the facade impersonates, and its raft bookkeeping."""

    name: str
    peer_urls: tuple[str, ...]
    cluster_token: str = DEFAULT_CLUSTER_TOKEN
    client_urls: tuple[str, ...] = ()
    raft_index: int = BOOTSTRAP_RAFT_ENTRIES
    id: int = field(init=False)
    cluster_id: int = field(init=False)

    def __post_init__(self) -> None:
        self.id = member_id(self.peer_urls, self.cluster_token)
        self.cluster_id = cluster_id([self.id])

    def start_at(self, revision: int) -> None:
        """Set the raft index for a store already at ``revision`` (1 for a fresh one)."""
        self.raft_index = BOOTSTRAP_RAFT_ENTRIES + max(revision - 1, 0)

    def applied(self) -> None:
        """Count one request that etcd would have appended to its raft log."""
        self.raft_index += 1

    def header(self, revision: int = 0) -> Any:
        """A top-level ResponseHeader as etcd's v3rpc fills it (revision 0 is left out of JSON)."""
        return pbconvert.header(revision, cluster_id=self.cluster_id, member_id=self.id, raft_term=RAFT_TERM)
