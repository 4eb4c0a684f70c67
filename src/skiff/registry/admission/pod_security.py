"""PodSecurity admission (plugin/pkg/admission/security/podsecurity, k8s.io/pod-security-admission/admission).

Validating only, on creates and updates.  A namespace's labels
``pod-security.kubernetes.io/{enforce,audit,warn}`` (a level: privileged,
baseline, restricted) and ``…/{enforce,audit,warn}-version`` (``latest`` or
``v1.N``) choose, per mode, the Pod Security Standard its pods are held to
(``pod_security_policy``; unlabelled modes take ``defaults``, privileged
latest unless configured).  No namespace is exempt by default — not even
kube-system — as upstream.

* Pods (and pods/ephemeralcontainers; not exec, attach, binding, eviction,
  log, portforward, proxy or status): ``enforce`` refuses a violating pod,
  403 ``pods "x" is forbidden: violates PodSecurity "restricted:latest":
  <reason> (<detail>), ...``; ``audit`` records the
  ``pod-security.kubernetes.io/audit-violations`` audit annotation; ``warn``
  adds a ``Warning`` (``would violate PodSecurity ...``) to an admitted
  request.  An update that changes no image (nor a container's seccomp
  annotation) and adds or removes no container is not re-evaluated
  (isSignificantPodUpdate).
* Workloads with a pod template (Deployments, ReplicaSets, StatefulSets,
  DaemonSets, Jobs, CronJobs, ReplicationControllers, PodTemplates): the
  template is audited and warned about, never refused.
* Namespaces: labels that do not parse are refused (422 Invalid) on create,
  and on update when they changed; an update that makes ``enforce``
  stricter answers with warnings naming the existing pods that would now be
  refused (the first ``MAX_PODS_TO_CHECK`` pods, one controller's pods
  last, for at most ``POD_CHECK_TIMEOUT_S``).
* Exemptions (AdmissionConfiguration's usernames, runtimeClasses,
  namespaces) are constructor arguments; an exempt request is annotated
  ``pod-security.kubernetes.io/exempt``.  Enforced requests carry
  ``pod-security.kubernetes.io/enforce-policy``.

Warnings and audit annotations go through ``registry.request_notes``.

What the checks mean for Skiff, whose kubelet (``skiff.kubelet``) runs
containers as local processes.  Running as root, the kubelet honours
``runAsUser``/``runAsGroup``/``supplementalGroups`` (setgid/setuid just
before exec) and bind-mounts ``hostPath`` volumes (any host path,
read-write) into the container's mount namespace, so hostPathVolumes,
restrictedVolumes and runAsUser guard real things.  But a container that
names no user runs as root with every capability: the kubelet does not
refuse ``runAsNonRoot`` containers that would run as root (upstream's
does), so runAsNonRoot without a runAsUser protects nothing.  Not running
as root, the kubelet starts every container as its own user, seeing the
host's whole filesystem.  The other checks (privileged, capabilities,
allowPrivilegeEscalation, seccomp, AppArmor, SELinux, procMount, sysctls,
hostProcess) police fields the kubelet ignores: processes get no seccomp
or AppArmor profile, no no_new_privs, no capability drop; pods always
share the host's network, PID and IPC namespaces whatever hostNetwork,
hostPID and hostIPC say, and host ports are not mapped (only the scheduler
reads them).  Enforcing a level still keeps such specs out of a namespace,
which is what a workload bound for a real cluster needs to know.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skiff.api.field_errors import aggregate_text, error_text, go_quote
from skiff.api.status import internal_error, invalid
from skiff.registry.admission.chain import Attributes, ObjectReader, Operation, PluginBase, admission_forbidden
from skiff.registry.admission.pod_security_checks import Violation
from skiff.registry.admission.pod_security_policy import (
    LABEL_PREFIX,
    MODES,
    PRIVILEGED,
    LevelVersion,
    Policy,
    compare_levels,
    evaluate,
    forbidden_detail,
    forbidden_reason,
    policy_to_evaluate,
)
from skiff.registry.request_notes import add_audit_annotation, add_warning

#: Upstream's namespaceMaxPodsToCheck and namespacePodCheckTimeout.
MAX_PODS_TO_CHECK = 3000
POD_CHECK_TIMEOUT_S = 1.0
#: Pod subresources that cannot change what the policy looks at (ignoredPodSubresources).
IGNORED_POD_SUBRESOURCES = frozenset({"exec", "attach", "binding", "eviction", "log", "portforward", "proxy", "status"})
#: DefaultPodSpecExtractor's resources: where each keeps its pod template.
TEMPLATE_PATHS: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("", "podtemplates"): ("template",),
    ("", "replicationcontrollers"): ("spec", "template"),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}


@dataclass(frozen=True, slots=True)
class Exemptions:
    """PodSecurityConfiguration.exemptions."""

    usernames: frozenset[str] = frozenset()
    runtime_classes: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()


def _meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = (obj or {}).get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def pod_template(path: Sequence[str], obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The template at ``path``; None when the workload has none (a ReplicationController may not)."""
    value: Any = obj
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, Mapping) else None


SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def is_significant_pod_update(pod: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """isSignificantPodUpdate: a container came or went, or changed its image or its seccomp annotation."""
    annotations, old_annotations = _meta(pod).get("annotations") or {}, _meta(old).get("annotations") or {}

    def changed(container: Mapping[str, Any], before: Mapping[str, Any]) -> bool:
        key = SECCOMP_CONTAINER_ANNOTATION_PREFIX + str(container.get("name", ""))
        return container.get("image") != before.get("image") or annotations.get(key) != old_annotations.get(key)

    for key in ("containers", "initContainers"):
        new_list, old_list = _spec(pod).get(key) or [], _spec(old).get(key) or []
        if len(new_list) != len(old_list) or any(changed(c, o) for c, o in zip(new_list, old_list, strict=True)):
            return True
    old_ephemeral = {c.get("name"): c for c in _spec(old).get("ephemeralContainers") or []}
    for container in _spec(pod).get("ephemeralContainers") or []:
        before = old_ephemeral.get(container.get("name"))
        if before is None or changed(container, before):
            return True
    return False


def namespace_pods_warnings(
    namespace: str,
    enforce: LevelVersion,
    pods: Sequence[Mapping[str, Any]],
    exempt_runtime_classes: frozenset[str] = frozenset(),
    *,
    deadline: float = float("inf"),
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """EvaluatePodsInNamespace: what a namespace update to a stricter ``enforce`` warns about.

    Pods of exempt runtime classes are skipped; the rest are checked in
    ``prioritize`` order, at most ``MAX_PODS_TO_CHECK`` and until
    ``deadline`` (on ``clock``) passes.  Pods failing the same checks share
    one warning, named after the lexically first of them.
    """
    candidates = prioritize([p for p in pods if _spec(p).get("runtimeClassName") not in exempt_runtime_classes])
    first_pod: dict[str, str] = {}
    counts: dict[str, int] = {}
    checked = 0
    for pod in candidates[:MAX_PODS_TO_CHECK]:
        checked += 1
        violations = evaluate(enforce, _meta(pod), _spec(pod))
        if violations:
            reason, name = forbidden_reason(violations), str(_meta(pod).get("name", ""))
            if reason not in first_pod or name < first_pod[reason]:
                first_pod[reason] = name
            counts[reason] = counts.get(reason, 0) + 1
        if clock() > deadline:
            break
    warnings = []
    if checked < len(candidates):
        warnings.append(
            f"new PodSecurity enforce level only checked against the first {checked} of {len(candidates)} existing pods"
        )
    if counts:
        warnings.append(
            f"existing pods in namespace {go_quote(namespace)} violate the new PodSecurity enforce level "
            f"{go_quote(str(enforce))}"
        )
    decorated = []
    for reason, count in counts.items():
        others = "" if count == 1 else f" (and {count - 1} other pod{'' if count == 2 else 's'})"
        decorated.append(f"{first_pod[reason]}{others}: {reason}")
    return warnings + sorted(decorated)


def prioritize(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """prioritizePods: one pod per controller first, the rest of each controller's pods last."""
    first, rest, seen = [], [], set()
    for pod in pods:
        owner = next((o for o in _meta(pod).get("ownerReferences") or [] if o.get("controller") is True), None)
        if owner is None or owner.get("uid") not in seen:
            first.append(pod)
            if owner is not None:
                seen.add(owner.get("uid"))
        else:
            rest.append(pod)
    return first + rest


#: No AdmissionConfiguration: every mode privileged, latest; nothing exempt.
DEFAULT_POLICY = Policy()
NO_EXEMPTIONS = Exemptions()


class PodSecurity(PluginBase):
    def __init__(
        self, reader: ObjectReader, *, defaults: Policy = DEFAULT_POLICY, exemptions: Exemptions = NO_EXEMPTIONS
    ) -> None:
        self.reader = reader
        self.defaults = defaults
        self.exemptions = exemptions

    async def validate(self, attrs: Attributes) -> None:
        if attrs.operation not in (Operation.CREATE, Operation.UPDATE) or attrs.obj is None:
            return
        resource = (attrs.info.group, attrs.info.plural)
        if resource == ("", "namespaces"):
            await self._namespace(attrs)
        elif resource == ("", "pods"):
            await self._pod(attrs)
        elif resource in TEMPLATE_PATHS and not attrs.subresource:
            await self._workload(attrs, TEMPLATE_PATHS[resource])

    # -- namespaces ------------------------------------------------------------------------------

    async def _namespace(self, attrs: Attributes) -> None:
        """ValidateNamespace: labels must parse; a stricter enforce level warns about existing pods."""
        if attrs.subresource:
            return
        assert attrs.obj is not None
        name = attrs.name or str(_meta(attrs.obj).get("name", ""))
        policy, errors = policy_to_evaluate(_meta(attrs.obj).get("labels"), self.defaults)
        if attrs.operation is Operation.CREATE:
            if errors:
                raise invalid("Namespace", "", name, errors)
            self._warn_exempt_namespace(name, policy, _meta(attrs.obj).get("labels") or {})
            return
        old_policy, old_errors = policy_to_evaluate(_meta(attrs.old).get("labels"), self.defaults)
        if errors and (not old_errors or errors != old_errors):
            raise invalid("Namespace", "", name, errors)
        new, old = policy.enforce, old_policy.enforce
        if new == old or new.level == PRIVILEGED:
            return
        if new.version == old.version and compare_levels(new.level, old.level) < 1:
            return
        if name in self.exemptions.namespaces:
            self._warn_exempt_namespace(name, policy, _meta(attrs.obj).get("labels") or {})
            return
        pods = await self.reader.list("", "pods", name, fresh=False)
        deadline = time.monotonic() + POD_CHECK_TIMEOUT_S
        for warning in namespace_pods_warnings(name, new, pods, self.exemptions.runtime_classes, deadline=deadline):
            add_warning(warning)

    def _warn_exempt_namespace(self, name: str, policy: Policy, labels: Mapping[str, str]) -> None:
        """exemptNamespaceWarning: an exempt namespace labelled with a policy that will be ignored."""
        if name not in self.exemptions.namespaces or policy.fully_privileged() or policy.equivalent(self.defaults):
            return
        modes = {"enforce": policy.enforce, "audit": policy.audit, "warn": policy.warn}
        shown = [
            f"{mode}={modes[mode]}"
            for mode in MODES
            if modes[mode].level != PRIVILEGED
            and (LABEL_PREFIX + mode in labels or f"{LABEL_PREFIX}{mode}-version" in labels)
        ]
        policy_text = ", ".join(shown)
        add_warning(
            f"namespace {go_quote(name)} is exempt from Pod Security, and the policy ({policy_text}) will be ignored"
        )

    # -- pods and workloads ------------------------------------------------------------------------

    def _exempt(self, attrs: Attributes) -> bool:
        """An exempt namespace or user: recorded in the audit annotations, never evaluated."""
        if attrs.namespace in self.exemptions.namespaces:
            reason = "namespace"
        elif attrs.user is not None and attrs.user.name in self.exemptions.usernames:
            reason = "user"
        else:
            return False
        add_audit_annotation(LABEL_PREFIX + "exempt", reason)
        return True

    async def _policy(self, namespace: str) -> tuple[Policy, str] | None:
        """The namespace's policy and its label errors (aggregated, "" for none); None without the namespace."""
        found = await self.reader.get("", "namespaces", "", namespace, fresh=False)
        if found is None:
            return None
        policy, errors = policy_to_evaluate(_meta(found).get("labels"), self.defaults)
        return policy, aggregate_text(error_text(e) for e in errors) if errors else ""

    async def _pod(self, attrs: Attributes) -> None:
        """ValidatePod."""
        if attrs.subresource in IGNORED_POD_SUBRESOURCES or self._exempt(attrs):
            return
        found = await self._policy(attrs.namespace)
        if found is None:
            raise internal_error(f"failed to lookup namespace {go_quote(attrs.namespace)}")
        policy, error = found
        if not error and policy.fully_privileged():
            return
        assert attrs.obj is not None
        if attrs.operation is Operation.UPDATE and attrs.old is not None:
            if not is_significant_pod_update(attrs.obj, attrs.old):
                return
        self._evaluate(attrs, policy, error, _meta(attrs.obj), _spec(attrs.obj), enforce=True)

    async def _workload(self, attrs: Attributes, path: Sequence[str]) -> None:
        """ValidatePodController: the template is audited and warned about, never enforced."""
        if self._exempt(attrs):
            return
        found = await self._policy(attrs.namespace)
        if found is None:
            name = go_quote(attrs.namespace)
            add_audit_annotation(
                LABEL_PREFIX + "error", f"failed to lookup namespace {name}: namespaces {name} not found"
            )
            return
        policy, error = found
        if not error and policy.warn.level == PRIVILEGED and policy.audit.level == PRIVILEGED:
            return
        assert attrs.obj is not None
        template = pod_template(path, attrs.obj)
        if template is None:
            return
        self._evaluate(attrs, policy, error, _meta(template), _spec(template), enforce=False)

    def _evaluate(
        self,
        attrs: Attributes,
        policy: Policy,
        error: str,
        meta: Mapping[str, Any],
        spec: Mapping[str, Any],
        *,
        enforce: bool,
    ) -> None:
        """EvaluatePod: refuse (enforce), annotate (audit), warn (warn); each level evaluated once."""
        if spec.get("runtimeClassName") and spec.get("runtimeClassName") in self.exemptions.runtime_classes:
            add_audit_annotation(LABEL_PREFIX + "exempt", "runtimeClass")
            return
        if error:
            add_audit_annotation(LABEL_PREFIX + "error", f"Failed to parse policy: {error}")
        results: dict[LevelVersion, list[Violation]] = {}

        def violations(level_version: LevelVersion) -> list[Violation]:
            if level_version not in results:
                results[level_version] = evaluate(level_version, meta, spec)
            return results[level_version]

        refusal = None
        if enforce:
            add_audit_annotation(LABEL_PREFIX + "enforce-policy", str(policy.enforce))
            found = violations(policy.enforce)
            if found:
                why = f"violates PodSecurity {go_quote(str(policy.enforce))}: {forbidden_detail(found)}"
                refusal = admission_forbidden(attrs, why)
        audited = violations(policy.audit)
        if audited:
            add_audit_annotation(
                LABEL_PREFIX + "audit-violations",
                f"would violate PodSecurity {go_quote(str(policy.audit))}: {forbidden_detail(audited)}",
            )
        if refusal is not None:
            raise refusal  # a refused request gets no warnings
        warned = violations(policy.warn)
        if warned:
            add_warning(f"would violate PodSecurity {go_quote(str(policy.warn))}: {forbidden_detail(warned)}")
