"""PodSecurity: every Pod Security Standards check (one pod that passes, one violation each), versions, labels,
and the admission plugin's refusals, warnings and audit annotations — upstream's words throughout."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from test_admission import FakeReader, attrs, row

from skiff.api.status import ApiError
from skiff.registry import request_notes
from skiff.registry.admission import Operation, PodSecurity
from skiff.registry.admission.pod_security import Exemptions, namespace_pods_warnings
from skiff.registry.admission.pod_security_checks import Violation
from skiff.registry.admission.pod_security_policy import (
    LevelVersion,
    Policy,
    Version,
    evaluate,
    forbidden_detail,
    parse_version,
    policy_to_evaluate,
)
from skiff.registry.resource import Obj

PODS = row("", "pods")
NAMESPACES = row("", "namespaces")
DEPLOYMENTS = row("apps", "deployments")
CRONJOBS = row("batch", "cronjobs")
BASELINE = LevelVersion("baseline")
RESTRICTED = LevelVersion("restricted")


def compliant() -> Obj:
    """The smallest pod the restricted standard admits."""
    return {
        "metadata": {"name": "p", "namespace": "a"},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


def container_sc(pod: Obj) -> dict[str, Any]:
    return pod["spec"]["containers"][0]["securityContext"]  # type: ignore[no-any-return]


def pod_sc(pod: Obj) -> dict[str, Any]:
    return pod["spec"]["securityContext"]  # type: ignore[no-any-return]


def violations(level: LevelVersion, change: Callable[[Obj], object]) -> list[Violation]:
    pod = compliant()
    change(pod)
    return evaluate(level, pod["metadata"], pod["spec"])


def test_the_compliant_pod_passes_every_level() -> None:
    pod = compliant()
    for level in ("privileged", "baseline", "restricted"):
        assert evaluate(LevelVersion(level), pod["metadata"], pod["spec"]) == []


APPARMOR = "container.apparmor.security.beta.kubernetes.io/c"


@pytest.mark.parametrize(
    ("change", "reason", "detail"),
    [
        pytest.param(
            lambda p: pod_sc(p).update(windowsOptions={"hostProcess": True}),
            "hostProcess", "pod must not set securityContext.windowsOptions.hostProcess=true", id="hostProcess-pod",
        ),
        pytest.param(
            lambda p: container_sc(p).update(windowsOptions={"hostProcess": True}),
            "hostProcess", 'container "c" must not set securityContext.windowsOptions.hostProcess=true',
            id="hostProcess-container",
        ),
        pytest.param(
            lambda p: p["spec"].update(hostNetwork=True, hostPID=True, hostIPC=True),
            "host namespaces", "hostIPC, hostNetwork, hostPID", id="host-namespaces",
        ),
        pytest.param(
            lambda p: container_sc(p).update(privileged=True),
            "privileged", 'container "c" must not set securityContext.privileged=true', id="privileged",
        ),
        pytest.param(
            lambda p: container_sc(p)["capabilities"].update(add=["SYS_ADMIN", "NET_RAW", "CHOWN"]),
            "non-default capabilities",
            'container "c" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add',
            id="capabilities",
        ),
        pytest.param(
            lambda p: p["spec"].update(volumes=[{"name": "h", "hostPath": {"path": "/"}},
                                                {"name": "e", "emptyDir": {}}]),
            "hostPath volumes", 'volume "h"', id="hostPath-volumes",
        ),
        pytest.param(
            lambda p: p["spec"]["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 8080},
                                                               {"containerPort": 81, "hostPort": 443}]),
            "hostPort", 'container "c" uses hostPorts 443, 8080', id="hostPorts",
        ),
        pytest.param(
            lambda p: container_sc(p).update(appArmorProfile={"type": "Unconfined"}),
            "forbidden AppArmor profile", 'container "c" must not set AppArmor profile type to "Unconfined"',
            id="apparmor-field",
        ),
        pytest.param(
            lambda p: p["metadata"].update(annotations={APPARMOR: "unconfined"}),
            "forbidden AppArmor profile",
            f'annotation must not set AppArmor profile type to "{APPARMOR}="unconfined""', id="apparmor-annotation",
        ),
        pytest.param(
            lambda p: pod_sc(p).update(seLinuxOptions={"type": "spc_t", "user": "root"}),
            "seLinuxOptions", 'pod set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set',
            id="selinux",
        ),
        pytest.param(
            lambda p: container_sc(p).update(procMount="Unmasked"),
            "procMount", 'container "c" must not set securityContext.procMount to "Unmasked"', id="procMount",
        ),
        pytest.param(
            lambda p: pod_sc(p).update(seccompProfile={"type": "Unconfined"}),
            "seccompProfile", 'pod must not set securityContext.seccompProfile.type to "Unconfined"', id="seccomp",
        ),
        pytest.param(
            lambda p: pod_sc(p).update(sysctls=[{"name": "kernel.msgmax", "value": "1"},
                                                {"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"},
                                                {"name": "kernel.sem", "value": "1"}]),
            "forbidden sysctls", "kernel.msgmax, kernel.sem", id="sysctls",
        ),
    ],
)  # fmt: skip
def test_baseline_checks(change: Callable[[Obj], object], reason: str, detail: str) -> None:
    assert violations(BASELINE, change) == [Violation(reason, detail)]


@pytest.mark.parametrize(
    ("change", "reason", "detail"),
    [
        pytest.param(
            lambda p: p["spec"].update(volumes=[{"name": "n", "nfs": {"server": "s", "path": "/"}},
                                                {"name": "s", "secret": {"secretName": "x"}},
                                                {"name": "g", "gitRepo": {"repository": "r"}}]),
            "restricted volume types", 'volumes "n", "g" use restricted volume types "gitRepo", "nfs"',
            id="volume-types",
        ),
        pytest.param(
            lambda p: container_sc(p).update(allowPrivilegeEscalation=True),
            "allowPrivilegeEscalation != false",
            'container "c" must set securityContext.allowPrivilegeEscalation=false', id="privilege-escalation",
        ),
        pytest.param(
            lambda p: pod_sc(p).pop("runAsNonRoot"),
            "runAsNonRoot != true", 'pod or container "c" must set securityContext.runAsNonRoot=true',
            id="runAsNonRoot-unset",
        ),
        pytest.param(
            lambda p: container_sc(p).update(runAsNonRoot=False),
            "runAsNonRoot != true", 'container "c" must not set securityContext.runAsNonRoot=false',
            id="runAsNonRoot-false",
        ),
        pytest.param(
            lambda p: pod_sc(p).update(runAsUser=0),
            "runAsUser=0", "pod must not set runAsUser=0", id="runAsUser-0",
        ),
        pytest.param(
            lambda p: pod_sc(p).pop("seccompProfile"),
            "seccompProfile",
            'pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
            id="seccomp-unset",
        ),
        pytest.param(
            lambda p: container_sc(p).pop("capabilities"),
            "unrestricted capabilities", 'container "c" must set securityContext.capabilities.drop=["ALL"]',
            id="capabilities-drop",
        ),
        pytest.param(
            lambda p: container_sc(p)["capabilities"].update(add=["NET_BIND_SERVICE", "SYS_TIME"]),
            "unrestricted capabilities",
            'container "c" must not include "SYS_TIME" in securityContext.capabilities.add',
            id="capabilities-restricted-supersedes-baseline",
        ),
        pytest.param(
            lambda p: p["spec"].update(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
            "restricted volume types", 'volume "h" uses restricted volume type "hostPath"',
            id="volume-types-supersede-hostPath",
        ),
    ],
)  # fmt: skip
def test_restricted_checks(change: Callable[[Obj], object], reason: str, detail: str) -> None:
    assert violations(RESTRICTED, change) == [Violation(reason, detail)]
    if reason != "unrestricted capabilities" and "hostPath" not in detail:
        assert violations(BASELINE, change) == []  # restricted-only


def test_a_bare_pod_under_restricted_lists_checks_in_upstreams_order() -> None:
    pod = {"containers": [{"name": "c", "image": "i", "securityContext": {"privileged": True}}]}
    assert forbidden_detail(evaluate(RESTRICTED, {}, pod)) == (
        'privileged (container "c" must not set securityContext.privileged=true), '
        'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" '
        'or "Localhost")'
    )


def test_containers_are_visited_init_regular_ephemeral() -> None:
    spec = {
        "containers": [{"name": "b", "securityContext": {"privileged": True}}],
        "initContainers": [{"name": "a", "securityContext": {"privileged": True}}],
        "ephemeralContainers": [{"name": "d", "securityContext": {"privileged": True}}],
    }
    assert evaluate(BASELINE, {}, spec) == [
        Violation("privileged", 'containers "a", "b", "d" must not set securityContext.privileged=true')
    ]


def at(minor: int | None, level: str = "restricted") -> LevelVersion:
    return LevelVersion(level, Version(minor))


@pytest.mark.parametrize(
    ("level", "change", "expected"),
    [
        pytest.param(at(31, "baseline"), lambda p: pod_sc(p).update(sysctls=[{"name": "net.ipv4.tcp_rmem"}]),
                     ["forbidden sysctls"], id="tcp_rmem-safe-only-from-1.32"),
        pytest.param(at(None, "baseline"), lambda p: pod_sc(p).update(sysctls=[{"name": "net.ipv4.tcp_rmem"}]),
                     [], id="latest-is-1.32"),
        pytest.param(at(99, "baseline"), lambda p: pod_sc(p).update(sysctls=[{"name": "net.ipv4.tcp_rmem"}]),
                     [], id="future-versions-clamp"),
        pytest.param(at(30, "baseline"), lambda p: pod_sc(p).update(seLinuxOptions={"type": "container_engine_t"}),
                     ["seLinuxOptions"], id="container_engine_t-from-1.31"),
        pytest.param(at(31, "baseline"), lambda p: pod_sc(p).update(seLinuxOptions={"type": "container_engine_t"}),
                     [], id="container_engine_t-1.31"),
        pytest.param(at(24), lambda p: (p["spec"].update(os={"name": "windows"}), pod_sc(p).pop("seccompProfile"),
                                        container_sc(p).clear()),
                     ["allowPrivilegeEscalation != false", "unrestricted capabilities", "seccompProfile"],
                     id="windows-pods-checked-before-1.25"),
        pytest.param(at(25), lambda p: (p["spec"].update(os={"name": "windows"}), pod_sc(p).pop("seccompProfile"),
                                        container_sc(p).clear()),
                     [], id="windows-pods-exempt-from-1.25"),
        pytest.param(at(7), lambda p: container_sc(p).clear(), [], id="no-privilege-escalation-check-before-1.8"),
        pytest.param(at(22), lambda p: pod_sc(p).update(runAsUser=0), [], id="no-runAsUser-check-before-1.23"),
        pytest.param(at(21), lambda p: container_sc(p).update(capabilities={"add": ["SYS_ADMIN"]}),
                     ["non-default capabilities"], id="baseline-capabilities-before-1.22"),
        pytest.param(at(18), lambda p: (pod_sc(p).pop("seccompProfile"),
                                        p["metadata"].update(annotations={
                                            "seccomp.security.alpha.kubernetes.io/pod": "unconfined"})),
                     ["seccompProfile"], id="seccomp-annotations-before-1.19"),
    ],
)  # fmt: skip
def test_versions(level: LevelVersion, change: Callable[[Obj], object], expected: list[str]) -> None:
    assert [v.reason for v in violations(level, change)] == expected


def test_seccomp_annotation_detail_before_1_19() -> None:
    meta = {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}
    assert evaluate(at(18, "baseline"), meta, {"containers": [{"name": "c"}]}) == [
        Violation("seccompProfile", 'forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined"')
    ]


def test_versions_parse_and_print() -> None:
    assert str(parse_version("latest")) == "latest" and str(parse_version("v1.30")) == "v1.30"
    assert parse_version("v1.030") is None and parse_version("1.30") is None and parse_version("v2.0") is None
    assert str(at(None)) == "restricted:latest" and str(at(29, "baseline")) == "baseline:v1.29"


LABEL = "pod-security.kubernetes.io/"


def test_labels_to_policy() -> None:
    policy, errors = policy_to_evaluate(
        {LABEL + "enforce": "baseline", LABEL + "enforce-version": "v1.29", LABEL + "warn": "restricted"}, Policy()
    )
    assert (str(policy.enforce), str(policy.audit), str(policy.warn)) == (
        "baseline:v1.29",
        "privileged:latest",
        "restricted:latest",
    )
    assert errors == []
    bad, errors = policy_to_evaluate(
        {LABEL + "enforce": "strict", LABEL + "audit": "nope", LABEL + "warn-version": "v1"}, Policy()
    )
    assert (str(bad.enforce), str(bad.audit), str(bad.warn)) == (
        "restricted:latest",  # fail closed
        "privileged:latest",  # fail open
        "privileged:latest",
    )
    assert [f"{e.field}: {e.message}" for e in errors] == [
        'metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": '
        "must be one of privileged, baseline, restricted",
        'metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "nope": '
        "must be one of privileged, baseline, restricted",
        'metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "v1": must be "latest" or "v1.x"',
    ]


# -- the admission plugin -------------------------------------------------------------------------------


def namespace(name: str = "a", **labels: str) -> Obj:
    return {"metadata": {"name": name, "labels": {LABEL + k.replace("_", "-"): v for k, v in labels.items()}}}


def privileged_pod(name: str = "p") -> Obj:
    return {"metadata": {"name": name, "namespace": "a"},
            "spec": {"containers": [{"name": "c", "image": "i", "securityContext": {"privileged": True}}]}}  # fmt: skip


async def admit(plugin: PodSecurity, a: Any) -> request_notes.RequestNotes:
    notes = request_notes.begin()
    await plugin.validate(a)
    return notes


async def test_enforce_refuses_with_upstreams_message_and_annotates() -> None:
    plugin = PodSecurity(FakeReader({("", "namespaces"): [namespace(enforce="baseline", audit="restricted")]}))
    notes = request_notes.begin()
    with pytest.raises(ApiError) as err:
        await plugin.validate(attrs(PODS, Operation.CREATE, privileged_pod()))
    assert err.value.code == 403
    assert err.value.message == (
        'pods "p" is forbidden: violates PodSecurity "baseline:latest": '
        'privileged (container "c" must not set securityContext.privileged=true)'
    )
    assert notes.warnings == []
    assert notes.audit_annotations[LABEL + "enforce-policy"] == "baseline:latest"
    assert notes.audit_annotations[LABEL + "audit-violations"].startswith(
        'would violate PodSecurity "restricted:latest": privileged (container "c" must not set'
    )


async def test_warn_admits_with_a_warning() -> None:
    plugin = PodSecurity(FakeReader({("", "namespaces"): [namespace(warn="baseline", warn_version="v1.30")]}))
    notes = await admit(plugin, attrs(PODS, Operation.CREATE, privileged_pod()))
    assert notes.warnings == [
        'would violate PodSecurity "baseline:v1.30": '
        'privileged (container "c" must not set securityContext.privileged=true)'
    ]
    assert LABEL + "enforce-policy" in notes.audit_annotations  # evaluated, nothing enforced


async def test_privileged_namespaces_and_ignored_subresources_are_not_evaluated() -> None:
    plugin = PodSecurity(FakeReader({("", "namespaces"): [namespace(enforce="restricted"), namespace("b")]}))
    notes = await admit(plugin, attrs(PODS, Operation.CREATE, privileged_pod(), namespace="b"))
    assert notes.audit_annotations == {}
    notes = await admit(plugin, attrs(PODS, Operation.UPDATE, privileged_pod(), subresource="status"))
    assert notes.audit_annotations == {}


async def test_pod_updates_are_evaluated_only_when_an_image_or_container_changes() -> None:
    plugin = PodSecurity(FakeReader({("", "namespaces"): [namespace(enforce="baseline")]}))
    old = privileged_pod()
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"x": "y"}
    await plugin.validate(attrs(PODS, Operation.UPDATE, relabelled, old=old))
    new_image = copy.deepcopy(old)
    new_image["spec"]["containers"][0]["image"] = "j"
    with pytest.raises(ApiError):
        await plugin.validate(attrs(PODS, Operation.UPDATE, new_image, old=old))
    debug = copy.deepcopy(old)
    debug["spec"]["ephemeralContainers"] = [{"name": "dbg", "image": "busybox"}]
    with pytest.raises(ApiError):
        await plugin.validate(attrs(PODS, Operation.UPDATE, debug, old=old, subresource="ephemeralcontainers"))


async def test_workload_templates_are_warned_about_never_refused() -> None:
    plugin = PodSecurity(FakeReader({("", "namespaces"): [namespace(enforce="restricted", warn="baseline")]}))
    template = {"metadata": {}, "spec": privileged_pod()["spec"]}
    deployment = {"metadata": {"name": "d", "namespace": "a"}, "spec": {"template": template}}
    notes = await admit(plugin, attrs(DEPLOYMENTS, Operation.CREATE, deployment))
    assert notes.warnings == [
        'would violate PodSecurity "baseline:latest": '
        'privileged (container "c" must not set securityContext.privileged=true)'
    ]
    assert LABEL + "enforce-policy" not in notes.audit_annotations
    cronjob = {"metadata": {"name": "j", "namespace": "a"},
               "spec": {"jobTemplate": {"spec": {"template": template}}}}  # fmt: skip
    assert (await admit(plugin, attrs(CRONJOBS, Operation.CREATE, cronjob))).warnings == notes.warnings
    only_enforced = PodSecurity(FakeReader({("", "namespaces"): [namespace(enforce="restricted")]}))
    assert (await admit(only_enforced, attrs(DEPLOYMENTS, Operation.CREATE, deployment))).warnings == []


async def test_namespace_labels_must_parse() -> None:
    plugin = PodSecurity(FakeReader())
    with pytest.raises(ApiError) as err:
        await plugin.validate(attrs(NAMESPACES, Operation.CREATE, namespace("n", enforce="strict"), name="n"))
    assert err.value.code == 422
    assert err.value.message == (
        'Namespace "n" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": '
        "must be one of privileged, baseline, restricted"
    )
    # An update that leaves the same bad labels alone passes.
    same = namespace("n", enforce="strict")
    await plugin.validate(attrs(NAMESPACES, Operation.UPDATE, same, name="n", old=copy.deepcopy(same)))


async def test_stricter_enforce_warns_about_existing_pods() -> None:
    pods = [privileged_pod("web-2"), privileged_pod("web-1"), compliant(), privileged_pod("db")]
    pods[3]["spec"]["hostNetwork"] = True
    plugin = PodSecurity(FakeReader({("", "pods"): pods}))
    old, new = namespace("a", enforce="privileged"), namespace("a", enforce="baseline")
    notes = await admit(plugin, attrs(NAMESPACES, Operation.UPDATE, new, name="a", old=old))
    assert notes.warnings == [
        'existing pods in namespace "a" violate the new PodSecurity enforce level "baseline:latest"',
        "db: host namespaces, privileged",
        "web-1 (and 1 other pod): privileged",
    ]
    relaxed = await admit(plugin, attrs(NAMESPACES, Operation.UPDATE, old, name="a", old=new))
    assert relaxed.warnings == []


def test_namespace_pod_warnings_cap_and_deadline() -> None:
    pods = [privileged_pod(f"p{i}") for i in range(4)]
    ticks = iter(range(100))  # the clock reads 0, 1, 2 after each pod: past the deadline after the third
    warnings = namespace_pods_warnings("a", BASELINE, pods, deadline=1, clock=lambda: next(ticks))
    assert warnings == [
        "new PodSecurity enforce level only checked against the first 3 of 4 existing pods",
        'existing pods in namespace "a" violate the new PodSecurity enforce level "baseline:latest"',
        "p0 (and 2 other pods): privileged",
    ]


async def test_exemptions() -> None:
    reader = FakeReader({("", "namespaces"): [namespace(enforce="restricted")]})
    plugin = PodSecurity(reader, exemptions=Exemptions(runtime_classes=frozenset({"kata"})))
    exempt = privileged_pod()
    exempt["spec"]["runtimeClassName"] = "kata"
    notes = await admit(plugin, attrs(PODS, Operation.CREATE, exempt))
    assert notes.audit_annotations == {LABEL + "exempt": "runtimeClass"}
    by_namespace = PodSecurity(reader, exemptions=Exemptions(namespaces=frozenset({"a"})))
    notes = await admit(by_namespace, attrs(PODS, Operation.CREATE, privileged_pod()))
    assert notes.audit_annotations == {LABEL + "exempt": "namespace"}
    notes = await admit(by_namespace, attrs(NAMESPACES, Operation.CREATE, namespace("a", warn="baseline"), name="a"))
    assert notes.warnings == [
        'namespace "a" is exempt from Pod Security, and the policy (warn=baseline:latest) will be ignored'
    ]
