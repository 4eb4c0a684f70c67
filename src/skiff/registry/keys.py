"""Where a resource's objects live in the Store.

Kubernetes' layout (k8s.io/apiserver's NamespaceKeyFunc under the
``/registry`` prefix): ``/registry/<group>/<plural>/<namespace>/<name>`` for
namespaced resources and ``/registry/<group>/<plural>/<name>`` for
cluster-scoped ones, with ``core`` standing for the empty group.  Keys sort
by namespace then name, which is the order of every list.
"""

from __future__ import annotations

from skiff.registry.resource import ResourceInfo

ROOT = "/registry"


def resource_prefix(info: ResourceInfo) -> str:
    """``/registry/<group>/<plural>/`` — every object of the resource, all namespaces."""
    return f"{ROOT}/{info.group or 'core'}/{info.plural}/"


def list_prefix(info: ResourceInfo, namespace: str | None) -> str:
    """The prefix a list covers: one namespace of a namespaced resource, else the whole resource."""
    if info.namespaced and namespace:
        return f"{resource_prefix(info)}{namespace}/"
    return resource_prefix(info)


def object_key(info: ResourceInfo, namespace: str | None, name: str) -> str:
    if info.namespaced:
        return f"{resource_prefix(info)}{namespace or ''}/{name}"
    return f"{resource_prefix(info)}{name}"


def split_key(info: ResourceInfo, key: str) -> tuple[str, str]:
    """``(namespace, name)`` of a key of ``info`` (namespace ``""`` for cluster-scoped)."""
    rest = key[len(resource_prefix(info)) :]
    if info.namespaced:
        namespace, _, name = rest.partition("/")
        return namespace, name
    return "", rest
