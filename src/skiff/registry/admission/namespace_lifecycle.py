"""NamespaceLifecycle (plugin/pkg/admission/namespace/lifecycle).

* Nothing is created in a namespace that does not exist (404 ``namespaces
  "x" not found``) or that is being terminated (403, cause
  ``NamespaceTerminating``); updates in a missing namespace are 404 too.
* The immortal namespaces (default, kube-system, kube-public) cannot be
  deleted: 403 ``this namespace may not be deleted``.
* Deletes of other objects and every operation on namespaces themselves
  pass; so do the self access reviews (answering about the namespace would
  leak it).

Upstream reads namespaces from an informer and falls back to a live read;
so does this plugin, through the watch cache (``fresh=False``): a namespace
created a moment ago is found in the store, and one being terminated is
seen as soon as the cache has the change (upstream's window too).
The checks run in the mutating phase, as upstream's ``Admit`` does.
"""

from __future__ import annotations

from skiff.api.status import Cause, not_found
from skiff.registry.admission.chain import Attributes, ObjectReader, Operation, PluginBase, admission_forbidden

#: Namespaces the API server keeps alive (upstream's immortalNamespaces).
IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
#: v1.NamespaceTerminatingCause.
NAMESPACE_TERMINATING_CAUSE = "NamespaceTerminating"
ACCESS_REVIEWS = frozenset({("authorization.k8s.io", "localsubjectaccessreviews")})


class NamespaceLifecycle(PluginBase):
    def __init__(self, reader: ObjectReader, immortal: frozenset[str] = IMMORTAL_NAMESPACES) -> None:
        self.reader = reader
        self.immortal = immortal

    async def admit(self, attrs: Attributes) -> None:
        # Upstream's plugin is a mutating one: it runs first, before validation, so a
        # missing namespace is reported ahead of anything wrong with the object.
        if attrs.is_kind("", "Namespace"):
            if attrs.operation is Operation.DELETE and attrs.name in self.immortal:
                raise admission_forbidden(attrs, "this namespace may not be deleted")
            return
        if not attrs.info.namespaced or not attrs.namespace:
            return
        if attrs.operation is Operation.DELETE:
            return
        if (attrs.info.group, attrs.info.plural) in ACCESS_REVIEWS:
            return
        namespace = await self.reader.get("", "namespaces", "", attrs.namespace, fresh=False)
        if namespace is None:
            raise not_found("namespaces", "", attrs.namespace)
        if attrs.operation is not Operation.CREATE:
            return
        if ((namespace.get("status") or {}).get("phase")) != "Terminating":
            return
        raise admission_forbidden(
            attrs,
            f"unable to create new content in namespace {attrs.namespace} because it is being terminated",
            (
                Cause(
                    NAMESPACE_TERMINATING_CAUSE,
                    f"namespace {attrs.namespace} is being terminated",
                    "metadata.namespace",
                ),
            ),
        )
