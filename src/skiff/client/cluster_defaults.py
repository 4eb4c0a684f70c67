"""The address plan of a Skiff cluster, defined once.

Everything lives in 127.0.0.0/8 (Linux routes the whole block to ``lo``, so
binding any of these needs no interface set-up and no traffic leaves the
machine).  Each range is a flag of the component that uses it; these are the
defaults, and ``skiff up`` shifts them per cluster so two clusters coexist.
"""

from __future__ import annotations

#: Service ClusterIPs (the API server's allocator; also --service-cluster-ip-range).
SERVICE_CIDR = "127.254.0.0/16"
#: Node addresses: node N of a cluster is 127.0.1.N.
NODE_CIDR = "127.0.1.0/24"
#: Pod addresses: each node gets a /24 from here (node IPAM in the controller-manager).
CLUSTER_CIDR = "127.16.0.0/12"
NODE_CIDR_MASK = 24
#: Where the proxy's cluster DNS answers.
CLUSTER_DNS = "127.253.0.10"
CLUSTER_DOMAIN = "cluster.local"
#: type=LoadBalancer ingress addresses.
LOAD_BALANCER_CIDR = "127.252.0.0/16"
NODE_PORT_RANGE = "30000-32767"
#: Simulated (hollow) nodes: their addresses, and the fake pod addresses they report (never bound).
#: Kept clear of the per-data-dir plans of ``skiff up`` (127.101-199.x.x).
HOLLOW_NODE_CIDR = "127.64.0.0/12"
HOLLOW_POD_CIDR = "127.200.0.0/13"
