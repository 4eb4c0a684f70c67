"""The operator's CustomResourceDefinitions and how the operator installs them.

Group ``etcd.database.coreos.com``, version ``v1beta2``, the kinds and field
names of coreos/etcd-operator (pkg/apis/etcd/v1beta2), so the original
project's manifests apply unchanged.  Unlike the original (which registered
schemaless CRDs and validated nothing) the schemas are structural: the API
server rejects what one field can get wrong — ``size`` outside 1..7 (the
range the original only documented), a ``version`` that is not semver
(``3.5.1`` or ``v3.5.1``), an unknown ``storageType`` — with 422 Invalid.
Rules that need more than one field or the object's name (name ≤ 52 chars,
reserved labels, TLS pairing, upgrade paths) are the operator's
(``versions.spec_problems`` / ``upgrade_refusal``).

Kubernetes types embedded in PodPolicy (affinity, resources, tolerations,
etcdEnv items, persistentVolumeClaimSpec, securityContext) are kept as
``x-kubernetes-preserve-unknown-fields`` objects: their schemas are the core
API's, and the pod or PVC built from them is validated when it is created.
Status objects also preserve unknown fields, so a newer operator's status
survives an older CRD.

``ensure_crds`` is idempotent and safe to run from several operator
replicas: create, or update (compare-and-swap on resourceVersion) only when
the stored spec differs, then wait for the Established condition.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

from skiff.client.errors import ApiError, is_already_exists, is_conflict, is_not_found
from skiff.client.resources import Resource
from skiff.client.rest import ApiClient
from skiff.etcdoperator.resources import ETCDBACKUPS, ETCDCLUSTERS, ETCDRESTORES, GROUP, VERSION
from skiff.etcdoperator.versions import MAX_SIZE, MIN_SIZE, VERSION_PATTERN

Schema = dict[str, Any]

CUSTOMRESOURCEDEFINITIONS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False
)
STORAGE_TYPES = ["S3", "ABS", "GCS", "OSS", "Local"]
POLL_INTERVAL_S = 0.1

_STRING: Schema = {"type": "string"}
_BOOLEAN: Schema = {"type": "boolean"}
_INTEGER: Schema = {"type": "integer"}
_FREE_OBJECT: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
_AGE_COLUMN: Schema = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _object(properties: dict[str, Schema], **extra: Any) -> Schema:
    return {"type": "object", "properties": properties, **extra}


def _free_list() -> Schema:
    return {"type": "array", "items": copy.deepcopy(_FREE_OBJECT)}


def _conditions() -> Schema:
    condition = _object(
        {
            "type": _STRING,
            "status": _STRING,
            "reason": _STRING,
            "message": _STRING,
            "lastUpdateTime": _STRING,
            "lastTransitionTime": _STRING,
        },
        required=["type", "status"],
    )
    return {"type": "array", "items": condition}


def _pod_policy() -> Schema:
    return _object(
        {
            "labels": _STRING_MAP,
            "nodeSelector": _STRING_MAP,
            "affinity": _FREE_OBJECT,
            "antiAffinity": _BOOLEAN,
            "resources": _FREE_OBJECT,
            "tolerations": _free_list(),
            "etcdEnv": _free_list(),
            "persistentVolumeClaimSpec": _FREE_OBJECT,
            "annotations": _STRING_MAP,
            "busyboxImage": _STRING,
            "securityContext": _FREE_OBJECT,
            "DNSTimeoutInSecond": {"type": "integer", "minimum": 0},
            "ClusterDomain": _STRING,
        }
    )


def _tls_policy() -> Schema:
    member = _object({"peerSecret": _STRING, "serverSecret": _STRING})
    return _object({"static": _object({"member": member, "operatorSecret": _STRING})})


def _cluster_schema() -> Schema:
    spec = _object(
        {
            "size": {"type": "integer", "minimum": MIN_SIZE, "maximum": MAX_SIZE},
            "repository": _STRING,
            "version": {"type": "string", "pattern": VERSION_PATTERN},
            "paused": _BOOLEAN,
            "pod": _pod_policy(),
            "TLS": _tls_policy(),
        }
    )
    members = _object({"ready": {"type": "array", "items": _STRING}, "unready": {"type": "array", "items": _STRING}})
    status = _object(
        {
            "phase": _STRING,
            "reason": _STRING,
            "controlPaused": _BOOLEAN,
            "conditions": _conditions(),
            "size": _INTEGER,
            "ready": _STRING,
            "serviceName": _STRING,
            "clientPort": _INTEGER,
            "members": members,
            "currentVersion": _STRING,
            "targetVersion": _STRING,
            "observedGeneration": _INTEGER,
            "revision": _INTEGER,
            "recovery": _FREE_OBJECT,
        },
        **{"x-kubernetes-preserve-unknown-fields": True},
    )
    return _object({"spec": spec, "status": status})


def _storage_sources() -> dict[str, Schema]:
    """The backup locations, shaped as the original's S3/ABS/GCS/OSS sources plus Skiff's Local."""
    return {
        "s3": _object({"path": _STRING, "awsSecret": _STRING, "endpoint": _STRING, "forcePathStyle": _BOOLEAN}),
        "abs": _object({"path": _STRING, "absSecret": _STRING}, **{"x-kubernetes-preserve-unknown-fields": True}),
        "gcs": _object({"path": _STRING, "gcpSecret": _STRING}, **{"x-kubernetes-preserve-unknown-fields": True}),
        "oss": _object(
            {"path": _STRING, "ossSecret": _STRING, "endpoint": _STRING},
            **{"x-kubernetes-preserve-unknown-fields": True},
        ),
        "local": _object({"path": _STRING}),
    }


def _backup_schema() -> Schema:
    policy = _object(
        {
            "timeoutInSecond": {"type": "integer", "minimum": 0},
            "backupIntervalInSecond": {"type": "integer", "minimum": 0},
            "maxBackups": {"type": "integer", "minimum": 0},
        }
    )
    spec = _object(
        {
            "etcdEndpoints": {"type": "array", "items": _STRING},
            "storageType": {"type": "string", "enum": STORAGE_TYPES},
            **_storage_sources(),
            "clientTLSSecret": _STRING,
            "backupPolicy": policy,
            "etcdCluster": _object({"name": _STRING}),
        }
    )
    record = _object(
        {
            "path": _STRING,
            "revision": _INTEGER,
            "etcdVersion": _STRING,
            "size": _INTEGER,
            "time": _STRING,
            "hash": _STRING,
        }
    )
    status = _object(
        {
            "succeeded": _BOOLEAN,
            "reason": _STRING,
            "etcdVersion": _STRING,
            "etcdRevision": _INTEGER,
            "lastSuccessDate": _STRING,
            "observedGeneration": _INTEGER,
            "conditions": _conditions(),
            "backups": {"type": "array", "items": record},
        },
        **{"x-kubernetes-preserve-unknown-fields": True},
    )
    return _object({"spec": spec, "status": status})


def _restore_schema() -> Schema:
    spec = _object(
        {
            "etcdCluster": _object({"name": _STRING}, required=["name"]),
            "backupStorageType": {"type": "string", "enum": STORAGE_TYPES},
            **_storage_sources(),
            "backupName": _STRING,
        },
        required=["etcdCluster"],
    )
    status = _object(
        {
            "succeeded": _BOOLEAN,
            "reason": _STRING,
            "phase": _STRING,
            "conditions": _conditions(),
            "restoredRevision": _INTEGER,
            "observedGeneration": _INTEGER,
        },
        **{"x-kubernetes-preserve-unknown-fields": True},
    )
    return _object({"spec": spec, "status": status})


def _crd(res: Resource, schema: Schema, columns: list[Schema], short_names: list[str] | None = None) -> dict[str, Any]:
    names: dict[str, Any] = {
        "plural": res.plural,
        "singular": res.kind.lower(),
        "kind": res.kind,
        "listKind": f"{res.kind}List",
    }
    if short_names:
        names["shortNames"] = short_names
    version = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}},
        "additionalPrinterColumns": [*columns, _AGE_COLUMN],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{res.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": names,
            "scope": "Namespaced",
            "versions": [version],
            "conversion": {"strategy": "None"},  # the server's default, spelled out so specs compare equal
        },
    }


def crd_manifests() -> list[dict[str, Any]]:
    """The three CRDs, EtcdCluster first; fresh dicts each call."""
    cluster_columns: list[Schema] = [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "description": "Desired member count"},
        {"name": "Version", "type": "string", "jsonPath": ".status.currentVersion", "description": "Running etcd"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.ready", "description": "Ready/desired members"},
    ]
    backup_columns: list[Schema] = [
        {"name": "Succeeded", "type": "boolean", "jsonPath": ".status.succeeded"},
        {"name": "Revision", "type": "integer", "jsonPath": ".status.etcdRevision"},
        {"name": "Last-Success", "type": "date", "jsonPath": ".status.lastSuccessDate"},
    ]
    restore_columns: list[Schema] = [{"name": "Succeeded", "type": "boolean", "jsonPath": ".status.succeeded"}]
    manifests = [
        _crd(ETCDCLUSTERS, _cluster_schema(), cluster_columns, ["etcd"]),
        _crd(ETCDBACKUPS, _backup_schema(), backup_columns),
        _crd(ETCDRESTORES, _restore_schema(), restore_columns),
    ]
    return copy.deepcopy(manifests)  # the schema fragments above are shared module constants


def is_established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


async def _apply_one(client: ApiClient, desired: dict[str, Any]) -> None:
    """Create, or replace the spec when it differs; retried on the races another replica can cause."""
    name = desired["metadata"]["name"]
    while True:
        try:
            current = await client.get(CUSTOMRESOURCEDEFINITIONS, name)
        except ApiError as err:
            if not is_not_found(err):
                raise
            try:
                await client.create(CUSTOMRESOURCEDEFINITIONS, copy.deepcopy(desired))
                return
            except ApiError as create_err:
                if is_already_exists(create_err):
                    continue  # another replica created it first: compare with theirs
                raise
        if current.get("spec") == desired["spec"]:
            return
        updated = copy.deepcopy(current)
        updated["spec"] = copy.deepcopy(desired["spec"])
        try:
            await client.update(CUSTOMRESOURCEDEFINITIONS, updated)  # keeps metadata.resourceVersion: a CAS
            return
        except ApiError as err:
            if is_conflict(err) or is_not_found(err):
                continue  # changed or deleted under us: read again
            raise


async def ensure_crds(client: ApiClient, timeout: float = 30) -> None:  # noqa: ASYNC109 - the agreed signature
    """Install or update the three CRDs and wait until each is Established; TimeoutError past ``timeout``."""
    deadline = time.monotonic() + timeout
    manifests = crd_manifests()
    for desired in manifests:
        await _apply_one(client, desired)
    for desired in manifests:
        name = desired["metadata"]["name"]
        while not is_established(await client.get(CUSTOMRESOURCEDEFINITIONS, name)):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"CustomResourceDefinition {name} not Established within {timeout}s")
            await asyncio.sleep(POLL_INTERVAL_S)
