"""What a Pod or a PersistentVolume refers to: the secrets, configmaps and claims a kubelet must read.

Upstream's visitors, as the Node authorizer's graph and the NodeRestriction
admission plugin use them (pkg/api/v1/pod VisitPodSecretNames and
VisitPodConfigmapNames, pkg/api/v1/persistentvolume VisitPVSecretNames,
component-helpers' ephemeral.VolumeClaimName):

* secrets: ``imagePullSecrets``; in every init, regular and ephemeral
  container ``envFrom[].secretRef`` and ``env[].valueFrom.secretKeyRef``; the
  ``secret`` volume, projected ``secret`` sources and the ``secretRef`` of
  azureFile (``secretName``), cephfs, cinder, flexVolume, rbd, scaleIO, iscsi,
  storageos and csi (``nodePublishSecretRef``) volumes;
* configmaps: the same container fields (``configMapRef``,
  ``configMapKeyRef``), the ``configMap`` volume and projected ``configMap``
  sources;
* claims: ``persistentVolumeClaim.claimName`` and, for an ``ephemeral``
  volume, the claim the ephemeral controller makes, ``<pod>-<volume>``;
* a PersistentVolume's secrets the kubelet sees (not the CSI controller-side
  publish and expand secrets), with the namespace each lives in: the
  reference's own, else the bound claim's (``spec.claimRef.namespace``).

Empty names are skipped.  Pure functions over decoded objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
#: Volume sources whose ``secretRef`` names a secret in the pod's namespace.
SECRET_REF_VOLUMES = ("cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos")
#: PV sources whose ``secretRef`` namespace defaults to the claim's.
PV_SECRET_REF_SOURCES = ("cephfs", "flexVolume", "rbd", "scaleIO", "iscsi")
#: CSI secrets the kubelet reads (the controller-side ones it does not).
CSI_NODE_SECRETS = ("nodePublishSecretRef", "nodeStageSecretRef", "nodeExpandSecretRef")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _name(ref: Any, key: str = "name") -> str:
    value = _dict(ref).get(key)
    return value if isinstance(value, str) else ""


def _nonempty(names: Iterator[str]) -> list[str]:
    return [n for n in names if n]


def containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Init, regular and ephemeral containers, in upstream's order."""
    for key in CONTAINER_FIELDS:
        for container in _list(spec.get(key)):
            if isinstance(container, Mapping):
                yield container


def _container_refs(spec: Mapping[str, Any], env_from_key: str, key_ref: str) -> Iterator[str]:
    for container in containers(spec):
        for source in _list(container.get("envFrom")):
            if env_from_key in _dict(source):
                yield _name(_dict(source)[env_from_key])
        for env in _list(container.get("env")):
            value_from = _dict(_dict(env).get("valueFrom"))
            if key_ref in value_from:
                yield _name(value_from[key_ref])


def _volumes(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for volume in _list(spec.get("volumes")):
        if isinstance(volume, Mapping):
            yield volume


def _projected(volume: Mapping[str, Any], kind: str) -> Iterator[str]:
    for source in _list(_dict(volume.get("projected")).get("sources")):
        if kind in _dict(source):
            yield _name(_dict(source)[kind])


def secret_names(pod: Mapping[str, Any]) -> list[str]:
    """VisitPodSecretNames: every secret the pod's spec names (duplicates kept, empties dropped)."""
    spec = _dict(pod.get("spec"))
    return _nonempty(_secret_names(spec))


def _secret_names(spec: Mapping[str, Any]) -> Iterator[str]:
    for reference in _list(spec.get("imagePullSecrets")):
        yield _name(reference)
    yield from _container_refs(spec, "secretRef", "secretKeyRef")
    for volume in _volumes(spec):
        if "azureFile" in volume:
            yield _name(volume["azureFile"], "secretName")
        elif "secret" in volume:
            yield _name(volume["secret"], "secretName")
        elif "projected" in volume:
            yield from _projected(volume, "secret")
        elif "csi" in volume:
            yield _name(_dict(volume["csi"]).get("nodePublishSecretRef"))
        else:
            for source in SECRET_REF_VOLUMES:
                if source in volume:
                    yield _name(_dict(volume[source]).get("secretRef"))


def configmap_names(pod: Mapping[str, Any]) -> list[str]:
    """VisitPodConfigmapNames: every configmap the pod's spec names."""
    spec = _dict(pod.get("spec"))
    return _nonempty(_configmap_names(spec))


def _configmap_names(spec: Mapping[str, Any]) -> Iterator[str]:
    yield from _container_refs(spec, "configMapRef", "configMapKeyRef")
    for volume in _volumes(spec):
        if "projected" in volume:
            yield from _projected(volume, "configMap")
        elif "configMap" in volume:
            yield _name(volume["configMap"])


def claim_names(pod: Mapping[str, Any]) -> list[str]:
    """The PersistentVolumeClaims the pod mounts, ephemeral volumes' generated claims included."""
    meta, spec = _dict(pod.get("metadata")), _dict(pod.get("spec"))
    pod_name = _name(meta)
    names: list[str] = []
    for volume in _volumes(spec):
        if "persistentVolumeClaim" in volume:
            names.append(_name(volume["persistentVolumeClaim"], "claimName"))
        elif "ephemeral" in volume:
            names.append(f"{pod_name}-{_name(volume)}")
    return [n for n in names if n]


def has_cluster_trust_bundle(pod: Mapping[str, Any]) -> bool:
    """Whether a projected volume has a clusterTrustBundle source."""
    spec = _dict(pod.get("spec"))
    return any(
        "clusterTrustBundle" in _dict(source)
        for volume in _volumes(spec)
        for source in _list(_dict(volume.get("projected")).get("sources"))
    )


def pv_secret_refs(pv: Mapping[str, Any]) -> list[tuple[str, str]]:
    """VisitPVSecretNames with kubeletVisible: (namespace, name) of each secret the kubelet reads for ``pv``."""
    spec = _dict(pv.get("spec"))
    claim_namespace = _name(spec.get("claimRef"), "namespace")
    refs: list[tuple[str, str]] = []
    if "azureFile" in spec:
        source = _dict(spec["azureFile"])
        refs.append((_name(source, "secretNamespace") or claim_namespace, _name(source, "secretName")))
    elif "csi" in spec:
        source = _dict(spec["csi"])
        refs += [(_name(source.get(k), "namespace"), _name(source.get(k))) for k in CSI_NODE_SECRETS if k in source]
    elif "cinder" in spec or "storageos" in spec:
        ref = _dict(_dict(spec.get("cinder") or spec.get("storageos")).get("secretRef"))
        if ref:
            refs.append((_name(ref, "namespace"), _name(ref)))
    else:
        for kind in PV_SECRET_REF_SOURCES:
            ref = _dict(_dict(spec.get(kind)).get("secretRef"))
            if ref:
                refs.append((_name(ref, "namespace") or claim_namespace, _name(ref)))
    return [(namespace, name) for namespace, name in refs if name]
