"""PodSpec defaults and validation, shared by Pods and every pod template.

Defaults follow k8s.io/kubernetes pkg/apis/core/v1/defaults.go
(SetDefaults_PodSpec, SetDefaults_Container, SetDefaults_Volume, probes,
ports); validation covers the rules clients actually hit
(pkg/apis/core/validation: containers present, named, unique, with images;
valid policies and ports).  Pod-only defaults (enableServiceLinks, the
priority admission values) live in ``pod.py``.
"""

from __future__ import annotations

from typing import Any

from skiff.api import field_errors as fe
from skiff.api import name_rules
from skiff.api.status import Cause
from skiff.registry.resource import Obj

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PROTOCOLS = ("SCTP", "TCP", "UDP")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
#: Volume sources whose files get mode 0644 unless told otherwise.
DEFAULT_MODE_SOURCES = ("configMap", "secret", "projected", "downwardAPI")
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI", "fc",
    "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
    "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
)  # fmt: skip


def image_pull_policy(image: str) -> str:
    """Always for ``:latest`` or an untagged image, else IfNotPresent (SetDefaults_Container)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def default_container(container: Obj) -> None:
    """SetDefaults_Container plus its nested ports, probes, env and resources."""
    image = container.get("image")
    if isinstance(image, str) and image and not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = image_pull_policy(image)
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    resources = container.setdefault("resources", {})
    # SetDefaults_Pod: requests default to limits for every limited resource.
    if isinstance(resources, dict) and isinstance(resources.get("limits"), dict) and resources["limits"]:
        requests = resources.setdefault("requests", {})
        for name, quantity in resources["limits"].items():
            requests.setdefault(name, quantity)
    for port in _dicts(container.get("ports")):
        port.setdefault("protocol", "TCP")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(container.get(key), dict):
            default_probe(container[key])
    for env in _dicts(container.get("env")):
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")
    for hook in ("postStart", "preStop"):
        handler = (container.get("lifecycle") or {}).get(hook)
        if isinstance(handler, dict) and isinstance(handler.get("httpGet"), dict):
            handler["httpGet"].setdefault("path", "/")
            handler["httpGet"].setdefault("scheme", "HTTP")


def default_probe(probe: Obj) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("path", "/")
        probe["httpGet"].setdefault("scheme", "HTTP")
    if isinstance(probe.get("grpc"), dict):
        probe["grpc"].setdefault("service", "")


def default_volume(volume: Obj) -> None:
    """SetDefaults_Volume (emptyDir when no source) and the 0644 default file modes."""
    if not any(source in volume for source in VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for source in DEFAULT_MODE_SOURCES:
        if isinstance(volume.get(source), dict):
            volume[source].setdefault("defaultMode", 0o644)
    if isinstance(volume.get("hostPath"), dict):
        volume["hostPath"].setdefault("type", "")


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and everything nested in it (also for templates)."""
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in _dicts(spec.get(key)):
            default_container(container)
    if spec.get("hostNetwork") is True:
        # SetDefaults_PodSpec: with host networking, hostPort defaults to containerPort.
        for key in ("initContainers", "containers"):
            for container in _dicts(spec.get(key)):
                for port in _dicts(container.get("ports")):
                    if not port.get("hostPort") and port.get("containerPort"):
                        port["hostPort"] = port["containerPort"]
    for volume in _dicts(spec.get("volumes")):
        default_volume(volume)


def default_pod_template(template: Any) -> None:
    if isinstance(template, dict):
        spec = template.setdefault("spec", {})
        if isinstance(spec, dict):
            default_pod_spec(spec)


def validate_pod_spec(spec: Any, path: str) -> list[Cause]:
    """The PodSpec rules of ValidatePodSpec that matter to clients."""
    if not isinstance(spec, dict):
        return [fe.required(path)]
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append(fe.required(f"{path}.containers"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            causes += validate_container(container, f"{path}.{key}[{i}]", seen)
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        causes.append(fe.not_supported(f"{path}.restartPolicy", policy, RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if dns is not None and dns not in DNS_POLICIES:
        causes.append(fe.not_supported(f"{path}.dnsPolicy", dns, DNS_POLICIES))
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and not isinstance(grace, bool) and grace < 0:
        causes.append(fe.invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0"))
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not isinstance(deadline, bool) and deadline <= 0:
        causes.append(
            fe.invalid(f"{path}.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive")
        )
    volume_names: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        name = volume.get("name") if isinstance(volume, dict) else None
        vpath = f"{path}.volumes[{i}].name"
        if not name:
            causes.append(fe.required(vpath))
            continue
        causes += [fe.invalid(vpath, name, msg) for msg in name_rules.is_dns1123_label(name)]
        if name in volume_names:
            causes.append(fe.duplicate(vpath, name))
        volume_names.add(name)
    return causes


def validate_container(container: Any, path: str, seen: set[str]) -> list[Cause]:
    """Name (a unique DNS-1123 label), image, pull policy and ports of one container."""
    if not isinstance(container, dict):
        return [fe.required(path)]
    causes: list[Cause] = []
    name = container.get("name")
    if not name:
        causes.append(fe.required(f"{path}.name"))
    else:
        causes += [fe.invalid(f"{path}.name", name, msg) for msg in name_rules.is_dns1123_label(str(name))]
        if name in seen:
            causes.append(fe.duplicate(f"{path}.name", name))
        seen.add(str(name))
    image = container.get("image")
    if not isinstance(image, str) or not image.strip():
        causes.append(fe.required(f"{path}.image"))
    pull = container.get("imagePullPolicy")
    if pull is not None and pull not in PULL_POLICIES:
        causes.append(fe.not_supported(f"{path}.imagePullPolicy", pull, PULL_POLICIES))
    for j, port in enumerate(container.get("ports") or []):
        causes += validate_container_port(port, f"{path}.ports[{j}]")
    return causes


def validate_container_port(port: Any, path: str) -> list[Cause]:
    if not isinstance(port, dict):
        return [fe.required(path)]
    causes: list[Cause] = []
    number = port.get("containerPort")
    if number is None or number == 0:
        causes.append(fe.required(f"{path}.containerPort"))
    elif not valid_port_number(number):
        causes.append(fe.invalid(f"{path}.containerPort", number, "must be between 1 and 65535, inclusive"))
    host = port.get("hostPort")
    if host not in (None, 0) and not valid_port_number(host):
        causes.append(fe.invalid(f"{path}.hostPort", host, "must be between 1 and 65535, inclusive"))
    protocol = port.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        causes.append(fe.not_supported(f"{path}.protocol", protocol, PROTOCOLS))
    return causes


def validate_pod_template(template: Any, path: str) -> list[Cause]:
    """A workload's pod template: labels valid, spec valid."""
    if not isinstance(template, dict):
        return [fe.required(path)]
    return validate_pod_spec(template.get("spec"), f"{path}.spec")


def valid_port_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _dicts(items: Any) -> list[Obj]:
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
