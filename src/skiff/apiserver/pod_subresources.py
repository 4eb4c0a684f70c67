"""Routing of the pod subresources that are not plain object reads and writes.

``pods/binding``, ``pods/eviction`` (and the legacy ``namespaces/{ns}/bindings``)
live in :mod:`pod_binding`; ``pods/log``, ``exec``, ``attach`` and
``portforward`` are proxied to the kubelet by :mod:`pod_proxy`.  Methods follow
upstream's routes: binding and eviction are POST only, log GET only, and the
streaming ones GET (WebSocket) or POST (SPDY upgrades, relayed raw to the kubelet).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from skiff.api.status import method_not_allowed, path_not_found
from skiff.apiserver import pod_binding, pod_proxy
from skiff.apiserver.request_info import RequestInfo
from skiff.apiserver.served import ServedResources

WRITE_SUBRESOURCES = ("binding", "eviction")
STREAM_SUBRESOURCES = ("exec", "attach", "portforward")
SERVED_SUBRESOURCES = (*WRITE_SUBRESOURCES, "log", *STREAM_SUBRESOURCES)


def is_routed_here(ri: RequestInfo) -> bool:
    if ri.group or ri.version != "v1" or not ri.namespace or ri.extra:
        return False
    if ri.resource == "bindings":
        return not ri.name
    return ri.resource == "pods" and bool(ri.name) and ri.subresource in SERVED_SUBRESOURCES


@dataclass
class PodSubresources:
    served: ServedResources
    dialer: pod_proxy.KubeletDialer = field(default_factory=pod_proxy.KubeletDialer)

    async def handle(self, request: web.Request, ri: RequestInfo) -> web.StreamResponse:
        method = request.method.upper()
        sub = "binding" if ri.resource == "bindings" else ri.subresource
        if sub in WRITE_SUBRESOURCES:
            if method != "POST":
                raise method_not_allowed(ri.verb, f"pods/{sub}")
            if sub == "eviction":
                return await pod_binding.evict(self.served, request, ri.namespace, ri.name)
            return await pod_binding.bind(self.served, request, ri.namespace, ri.name)
        pods = self.served.find("", "v1", "pods")
        if pods is None:
            raise path_not_found()
        if sub == "log":
            if method not in ("GET", "HEAD"):
                raise method_not_allowed(ri.verb, "pods/log")
            pod = await pods.registry.get(ri.namespace, ri.name)
            return await pod_proxy.logs(self.served, self.dialer, request, pod)
        if method not in ("GET", "POST"):
            raise method_not_allowed(ri.verb, f"pods/{sub}")
        pod = await pods.registry.get(ri.namespace, ri.name)
        return await pod_proxy.stream(self.served, self.dialer, request, pod, sub)
