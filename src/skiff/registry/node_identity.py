"""Which node a request comes from (upstream pkg/auth/nodeidentifier's default identifier).

A user is a node when it is in the ``system:nodes`` group and its name starts
with ``system:node:``; the rest of the name is the node's.  A member of the
group with no name after the prefix is a node that cannot be identified, which
the Node authorizer and NodeRestriction refuse.
"""

from __future__ import annotations

from skiff.registry.request_user import RequestUser

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
#: Where kubelets keep their heartbeat Leases, one per node, named after it.
NODE_LEASE_NAMESPACE = "kube-node-lease"


def node_identity(user: RequestUser | None) -> tuple[str, bool]:
    """(node name, is a node); the name is "" for a node that cannot be identified."""
    if user is None or NODES_GROUP not in user.groups or not user.name.startswith(NODE_USER_PREFIX):
        return "", False
    return user.name.removeprefix(NODE_USER_PREFIX), True


def node_user(node_name: str) -> str:
    """The user name a node's credentials carry."""
    return f"{NODE_USER_PREFIX}{node_name}"
