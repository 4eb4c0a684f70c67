"""The Pod Security Standards' checks: pure functions of a pod's metadata and spec.

Upstream: k8s.io/pod-security-admission policy/check_*.go, as of Kubernetes
1.32 (this server's version).  A check returns None when the pod passes it,
else a ``Violation`` with upstream's reason and detail words;
``pod_security_policy`` says which checks (and which revision of each) a
level and version run.  Containers are visited as upstream visits them:
init containers, containers, then ephemeral containers.  A check named
``_1_<N>`` is the revision that applies from policy version v1.N.

Kubernetes 1.32 evaluates with the user-namespace relaxations of
runAsNonRoot, runAsUser and procMount off (their feature gate is alpha and
off there), and knows neither the host-probe check (1.34) nor image volumes
under restricted (1.33); neither does this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from skiff.api.field_errors import go_quote

Meta = Mapping[str, Any]
Spec = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Violation:
    """A failed check's CheckResult: the succinct reason and, for one pod, the detail."""

    reason: str
    detail: str = ""


CheckFn = Callable[[Meta, Spec], Violation | None]


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _join_quote(items: list[str]) -> str:
    """joinQuote: ``"a", "b"`` (no escaping, as upstream)."""
    return '"' + '", "'.join(items) + '"' if items else ""


def _containers_text(names: list[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_join_quote(names)}"


# -- pod access -----------------------------------------------------------------------------------


def _containers(spec: Spec) -> Iterator[Mapping[str, Any]]:
    """visitContainers: init containers, containers, ephemeral containers."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, Mapping):
                yield container


def _name(container: Mapping[str, Any]) -> str:
    return str(container.get("name", ""))


def _security_context(owner: Mapping[str, Any]) -> Mapping[str, Any] | None:
    sc = owner.get("securityContext")
    return sc if isinstance(sc, Mapping) else None


def _field(owner: Mapping[str, Any], *path: str) -> Any:
    """``owner.securityContext.<path>``; None when any step is unset."""
    value: Any = _security_context(owner)
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _is_windows(spec: Spec) -> bool:
    return ((spec.get("os") or {}).get("name")) == "windows"


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    """``pod`` and/or ``container(s) "a", "b"``: who set a forbidden value."""
    setters = ["pod"] if pod_bad else []
    if containers:
        setters.append(_containers_text(containers))
    return setters


# -- baseline checks -------------------------------------------------------------------------------


APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def app_armor_profile(meta: Meta, spec: Spec) -> Violation | None:
    """appArmorProfile 1.0: profile type RuntimeDefault or Localhost; annotations runtime/default or localhost/*."""
    bad_values: set[str] = set()

    def bad(owner: Mapping[str, Any]) -> bool:
        if _field(owner, "appArmorProfile") is None:
            return False
        kind = _field(owner, "appArmorProfile", "type")
        if kind in ("RuntimeDefault", "Localhost"):
            return False
        bad_values.add(str(kind or ""))
        return True

    pod_bad = bad(spec)
    setters = _setters(pod_bad, [_name(c) for c in _containers(spec) if bad(c)])
    annotations = sorted(
        f"{key}={go_quote(str(value))}"
        for key, value in (meta.get("annotations") or {}).items()
        if key.startswith(APPARMOR_ANNOTATION_PREFIX)
        and value
        and value != "runtime/default"
        and not str(value).startswith("localhost/")
    )
    values = sorted(bad_values) + annotations
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return Violation(
        _plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(values)}",
    )


BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip


def capabilities_baseline(meta: Meta, spec: Spec) -> Violation | None:
    """capabilities_baseline 1.0: only the container runtime's default capabilities may be added."""
    containers: list[str] = []
    added: set[str] = set()
    for container in _containers(spec):
        extra = {str(c) for c in _field(container, "capabilities", "add") or []} - BASELINE_CAPABILITIES
        if extra:
            containers.append(_name(container))
            added |= extra
    if not containers:
        return None
    return Violation(
        "non-default capabilities",
        f"{_containers_text(containers)} must not include {_join_quote(sorted(added))} in "
        "securityContext.capabilities.add",
    )


def host_namespaces(meta: Meta, spec: Spec) -> Violation | None:
    """hostNamespaces 1.0: no hostNetwork, hostPID or hostIPC."""
    used = sorted(key for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key) is True)
    return Violation("host namespaces", ", ".join(used)) if used else None


def host_path_volumes(meta: Meta, spec: Spec) -> Violation | None:
    """hostPathVolumes 1.0: no hostPath volumes."""
    volumes = [v for v in spec.get("volumes") or [] if isinstance(v, Mapping)]
    names = [str(v.get("name", "")) for v in volumes if v.get("hostPath") is not None]
    if not names:
        return None
    return Violation("hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)}")


def host_ports(meta: Meta, spec: Spec) -> Violation | None:
    """hostPorts 1.0: no container port with a hostPort."""
    containers: list[str] = []
    ports: set[str] = set()
    for container in _containers(spec):
        ports_ = [p for p in container.get("ports") or [] if isinstance(p, Mapping)]
        used = {str(p["hostPort"]) for p in ports_ if p.get("hostPort")}
        if used:
            containers.append(_name(container))
            ports |= used
    if not containers:
        return None
    return Violation(
        "hostPort",
        f"{_containers_text(containers)} {_plural('uses', 'use', len(containers))} "
        f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}",
    )


def privileged(meta: Meta, spec: Spec) -> Violation | None:
    """privileged 1.0: no privileged containers."""
    containers = [_name(c) for c in _containers(spec) if _field(c, "privileged") is True]
    if not containers:
        return None
    return Violation("privileged", f"{_containers_text(containers)} must not set securityContext.privileged=true")


def proc_mount(meta: Meta, spec: Spec) -> Violation | None:
    """procMount 1.0: the Default /proc masks only."""
    containers: list[str] = []
    kinds: set[str] = set()
    for container in _containers(spec):
        kind = _field(container, "procMount")
        if kind is not None and kind != "Default":
            containers.append(_name(container))
            kinds.add(str(kind))
    if not containers:
        return None
    return Violation(
        "procMount",
        f"{_containers_text(containers)} must not set securityContext.procMount to {_join_quote(sorted(kinds))}",
    )


SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES_1_31 = SELINUX_TYPES_1_0 | {"container_engine_t"}


def se_linux_options(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Meta, spec: Spec) -> Violation | None:
        """seLinuxOptions: an allowed type; no user, no role."""
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(options: Any) -> bool:
            if not isinstance(options, Mapping):
                return True
            ok = True
            if str(options.get("type") or "") not in allowed:
                bad_types.add(str(options.get("type") or ""))
                ok = False
            for key in flags:
                if options.get(key):
                    flags[key], ok = True, False
            return ok

        pod_bad = not valid(_field(spec, "seLinuxOptions"))
        containers = [_name(c) for c in _containers(spec) if not valid(_field(c, "seLinuxOptions"))]
        setters = _setters(pod_bad, containers)
        if not setters:
            return None
        data: list[str] = []
        if bad_types:  # upstream names user and role only alongside a bad type
            data.append(f"{_plural('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
            data += [f"{key} may not be set" for key, set_ in flags.items() if set_]
        return Violation(
            "seLinuxOptions",
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}",
        )

    return check


SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
SECCOMP_TYPES = ("RuntimeDefault", "Localhost")


def seccomp_profile_baseline_1_0(meta: Meta, spec: Spec) -> Violation | None:
    """seccompProfile_baseline 1.0: the alpha annotations name runtime/default, docker/default or localhost/*."""
    annotations = meta.get("annotations") or {}
    keys = [SECCOMP_POD_ANNOTATION] + [SECCOMP_CONTAINER_ANNOTATION_PREFIX + _name(c) for c in _containers(spec)]
    forbidden = set()
    for key in keys:
        if key in annotations:
            value = str(annotations[key])
            if value not in ("runtime/default", "docker/default") and not value.startswith("localhost/"):
                forbidden.add(f"{key}={go_quote(value)}")
    if not forbidden:
        return None
    return Violation(
        "seccompProfile",
        f"forbidden {_plural('annotation', 'annotations', len(forbidden))} {', '.join(sorted(forbidden))}",
    )


def _seccomp_setters(spec: Spec) -> tuple[list[str], set[str], bool, list[str]]:
    """(bad setters, bad types, pod sets a valid profile, containers that set none)."""
    bad_types: set[str] = set()
    pod_profile = _field(spec, "seccompProfile")
    pod_bad = pod_profile is not None and _field(spec, "seccompProfile", "type") not in SECCOMP_TYPES
    if pod_bad:
        bad_types.add(str(_field(spec, "seccompProfile", "type") or ""))
    explicit: list[str] = []
    implicit: list[str] = []
    for container in _containers(spec):
        if _field(container, "seccompProfile") is None:
            implicit.append(_name(container))
        elif _field(container, "seccompProfile", "type") not in SECCOMP_TYPES:
            explicit.append(_name(container))
            bad_types.add(str(_field(container, "seccompProfile", "type") or ""))
    return _setters(pod_bad, explicit), bad_types, pod_profile is not None and not pod_bad, implicit


def _seccomp_bad_setters(setters: list[str], bad_types: set[str]) -> Violation:
    return Violation(
        "seccompProfile",
        f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to {_join_quote(sorted(bad_types))}",
    )


def seccomp_profile_baseline_1_19(meta: Meta, spec: Spec) -> Violation | None:
    """seccompProfile_baseline 1.19: securityContext.seccompProfile.type, where set, is RuntimeDefault or Localhost."""
    setters, bad_types, _, _ = _seccomp_setters(spec)
    return _seccomp_bad_setters(setters, bad_types) if setters else None


SYSCTLS_1_0 = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    }
)
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Meta, spec: Spec) -> Violation | None:
        """sysctls: only the namespaced, isolated "safe" set."""
        names = [str(s.get("name", "")) for s in _field(spec, "sysctls") or [] if isinstance(s, Mapping)]
        forbidden = [name for name in names if name not in allowed]
        return Violation("forbidden sysctls", ", ".join(forbidden)) if forbidden else None

    return check


def windows_host_process(meta: Meta, spec: Spec) -> Violation | None:
    """windowsHostProcess 1.0: no HostProcess pods or containers."""
    pod_bad = _field(spec, "windowsOptions", "hostProcess") is True
    containers = [_name(c) for c in _containers(spec) if _field(c, "windowsOptions", "hostProcess") is True]
    setters = _setters(pod_bad, containers)
    if not setters:
        return None
    return Violation(
        "hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true"
    )


# -- restricted checks -----------------------------------------------------------------------------


def allow_privilege_escalation_1_8(meta: Meta, spec: Spec) -> Violation | None:
    """allowPrivilegeEscalation 1.8: every container sets it to false."""
    containers = [_name(c) for c in _containers(spec) if _field(c, "allowPrivilegeEscalation") is not False]
    if not containers:
        return None
    return Violation(
        "allowPrivilegeEscalation != false",
        f"{_containers_text(containers)} must set securityContext.allowPrivilegeEscalation=false",
    )


def capabilities_restricted_1_22(meta: Meta, spec: Spec) -> Violation | None:
    """capabilities_restricted 1.22: drop ALL; add nothing but NET_BIND_SERVICE."""
    missing_drop: list[str] = []
    adding: list[str] = []
    added: set[str] = set()
    for container in _containers(spec):
        capabilities = _field(container, "capabilities")
        if not isinstance(capabilities, Mapping):
            missing_drop.append(_name(container))
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop.append(_name(container))
        extra = {str(c) for c in capabilities.get("add") or [] if c != "NET_BIND_SERVICE"}
        if extra:
            adding.append(_name(container))
            added |= extra
    details = []
    if missing_drop:
        details.append(f'{_containers_text(missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(
            f"{_containers_text(adding)} must not include {_join_quote(sorted(added))} in "
            "securityContext.capabilities.add"
        )
    return Violation("unrestricted capabilities", "; ".join(details)) if details else None


RESTRICTED_VOLUME_SOURCES = (
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
)  # fmt: skip
#: The switch order upstream names a volume's forbidden type in (anything else is "unknown").
FORBIDDEN_VOLUME_SOURCES = (
    "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs", "rbd",
    "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos",
)  # fmt: skip


def restricted_volumes(meta: Meta, spec: Spec) -> Violation | None:
    """restrictedVolumes 1.0: only configMap, csi, downwardAPI, emptyDir, ephemeral, PVC, projected, secret."""
    names: list[str] = []
    kinds: set[str] = set()
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, Mapping) or any(volume.get(k) is not None for k in RESTRICTED_VOLUME_SOURCES):
            continue
        names.append(str(volume.get("name", "")))
        kinds.add(next((k for k in FORBIDDEN_VOLUME_SOURCES if volume.get(k) is not None), "unknown"))
    if not names:
        return None
    return Violation(
        "restricted volume types",
        f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)} {_plural('uses', 'use', len(names))} "
        f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} {_join_quote(sorted(kinds))}",
    )


def run_as_non_root(meta: Meta, spec: Spec) -> Violation | None:
    """runAsNonRoot 1.0: true on the pod, or on every container; never false."""
    pod_value = _field(spec, "runAsNonRoot")
    explicit: list[str] = []
    implicit: list[str] = []
    for container in _containers(spec):
        value = _field(container, "runAsNonRoot")
        if value is False:
            explicit.append(_name(container))
        elif value is None and pod_value is not True:
            implicit.append(_name(container))
    setters = _setters(pod_value is False, explicit)
    if setters:
        return Violation(
            "runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false"
        )
    if implicit:
        return Violation(
            "runAsNonRoot != true", f"pod or {_containers_text(implicit)} must set securityContext.runAsNonRoot=true"
        )
    return None


def _is_root(uid: Any) -> bool:
    return type(uid) is int and uid == 0


def run_as_user(meta: Meta, spec: Spec) -> Violation | None:
    """runAsUser 1.23: never 0."""
    containers = [_name(c) for c in _containers(spec) if _is_root(_field(c, "runAsUser"))]
    setters = _setters(_is_root(_field(spec, "runAsUser")), containers)
    if not setters:
        return None
    return Violation("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")


def seccomp_profile_restricted_1_19(meta: Meta, spec: Spec) -> Violation | None:
    """seccompProfile_restricted 1.19: RuntimeDefault or Localhost, on the pod or on every container."""
    setters, bad_types, pod_set, implicit = _seccomp_setters(spec)
    if setters:
        return _seccomp_bad_setters(setters, bad_types)
    if implicit and not pod_set:
        return Violation(
            "seccompProfile",
            f'pod or {_containers_text(implicit)} must set securityContext.seccompProfile.type to "RuntimeDefault" '
            'or "Localhost"',
        )
    return None


def linux_only(check: CheckFn) -> CheckFn:
    """The 1.25 revisions of the restricted checks: Windows pods (``spec.os.name``) are exempt."""

    def on_linux(meta: Meta, spec: Spec) -> Violation | None:
        return None if _is_windows(spec) else check(meta, spec)

    return on_linux
