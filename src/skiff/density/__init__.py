"""``skiff bench density``: a ClusterLoader2-style density test of a whole control plane on simulated nodes.

The harness starts a cluster (store, API server, controller-manager,
scheduler) and hollow nodes as separate processes, drives Deployments through
it and measures what Kubernetes' scalability SLOs measure.  It is a client
like any other: everything goes through ``skiff.client``.
"""
