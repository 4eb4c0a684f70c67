"""``skiff proxy``: Service addresses (ClusterIP, NodePort, LoadBalancer) and cluster DNS.

Pure parts: ``endpoints`` (backends of a service port), ``listeners`` (which
address:port/protocol serve which service port), ``balancer`` (round-robin and
ClientIP affinity), ``lb_allocator`` (the LoadBalancer pool), ``dns_records``
and ``dns_answer`` (the record table and query answers).  I/O: ``tcp_relay``,
``udp_relay``, ``proxier`` (informers → listeners), ``loadbalancer`` (status
writer), ``dns_sync`` and ``dns_server``, and ``server`` wiring them together.
Imports only skiff.client and skiff.api, like every component.
"""
