"""ServiceAccount admission (plugin/pkg/admission/serviceaccount), the defaulting part.

A pod created without ``spec.serviceAccountName`` runs as ``default``
(mirror pods, which a kubelet creates for static pods, are left alone).

Not done yet, and why: upstream also refuses pods whose service account does
not exist and mounts the ``kube-api-access-*`` projected token volume.  Both
need the service-account and token controllers (issue C), which create the
``default`` account in every namespace and mint tokens; until they exist,
refusing would make every pod unschedulable.
"""

from __future__ import annotations

from skiff.registry.admission.chain import Attributes, Operation, PluginBase

DEFAULT_SERVICE_ACCOUNT = "default"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"


class ServiceAccountAdmission(PluginBase):
    async def admit(self, attrs: Attributes) -> None:
        if not attrs.is_kind("", "Pod") or attrs.subresource or attrs.operation is not Operation.CREATE:
            return
        pod = attrs.obj
        if pod is None or MIRROR_POD_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {}):
            return
        spec = pod.get("spec")
        if not isinstance(spec, dict):
            return
        if not spec.get("serviceAccountName"):
            # v1's deprecated ``serviceAccount`` names the account when the new field is empty.
            spec["serviceAccountName"] = spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT
        # Conversion to v1 always mirrors the name into the deprecated field.
        spec["serviceAccount"] = spec["serviceAccountName"]
