"""Pod Security policy: levels, versions, namespace labels, and which checks a level runs.

Upstream: k8s.io/pod-security-admission api (levels, versions, the
``pod-security.kubernetes.io/<mode>[-version]`` labels) and policy/registry.go
(the check registry), as of Kubernetes 1.32.  Each check has an ID, a level
(baseline or restricted) and revisions: the one that applies to policy
version v1.N is the newest whose minimum is at most N.  ``latest``, and
versions past the newest minimum any check registers (``MAX_MINOR``, 1.32),
evaluate as that one.

``evaluate(level_version, metadata, spec)`` runs, in upstream's order —
baseline checks sorted by ID, then restricted checks sorted by ID — every
check of the level (restricted includes baseline, minus the baseline checks
a restricted revision supersedes: hostPathVolumes by restrictedVolumes,
capabilities_baseline by capabilities_restricted, seccompProfile_baseline
by seccompProfile_restricted) and returns the violations;
``forbidden_detail`` joins them into the ``violates PodSecurity`` message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from skiff.api import field_errors
from skiff.api.status import Cause
from skiff.registry.admission.pod_security_checks import (
    SELINUX_TYPES_1_0,
    SELINUX_TYPES_1_31,
    SYSCTLS_1_0,
    SYSCTLS_1_27,
    SYSCTLS_1_29,
    SYSCTLS_1_32,
    CheckFn,
    Meta,
    Spec,
    Violation,
    allow_privilege_escalation_1_8,
    app_armor_profile,
    capabilities_baseline,
    capabilities_restricted_1_22,
    host_namespaces,
    host_path_volumes,
    host_ports,
    linux_only,
    privileged,
    proc_mount,
    restricted_volumes,
    run_as_non_root,
    run_as_user,
    se_linux_options,
    seccomp_profile_baseline_1_0,
    seccomp_profile_baseline_1_19,
    seccomp_profile_restricted_1_19,
    sysctls,
    windows_host_process,
)

LEVELS = ("privileged", "baseline", "restricted")
PRIVILEGED, BASELINE, RESTRICTED = LEVELS
_VERSION_RE = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")

# -- levels and versions (pod-security-admission/api) --------------------------------------------


@dataclass(frozen=True, slots=True)
class Version:
    """A policy version: ``minor`` of v1.minor, or None for ``latest``."""

    minor: int | None = None

    def __str__(self) -> str:
        return "latest" if self.minor is None else f"v1.{self.minor}"


LATEST = Version()


@dataclass(frozen=True, slots=True)
class LevelVersion:
    level: str
    version: Version = LATEST

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"


def parse_level(text: str) -> str | None:
    return text if text in LEVELS else None


def parse_version(text: str) -> Version | None:
    """ParseVersion: ``latest`` or ``v1.<minor>``."""
    if text == "latest":
        return LATEST
    match = _VERSION_RE.match(text)
    return Version(int(match.group(1))) if match else None


def compare_levels(a: str, b: str) -> int:
    """CompareLevels: -1, 0 or 1 as ``a`` is less strict than, as strict as, or stricter than ``b``."""
    return (LEVELS.index(a) > LEVELS.index(b)) - (LEVELS.index(a) < LEVELS.index(b))


LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")
LEVEL_ERROR = "must be one of " + ", ".join(LEVELS)
VERSION_ERROR = 'must be "latest" or "v1.x"'


@dataclass(frozen=True, slots=True)
class Policy:
    """api.Policy: the level and version each mode evaluates."""

    enforce: LevelVersion = LevelVersion(PRIVILEGED)
    audit: LevelVersion = LevelVersion(PRIVILEGED)
    warn: LevelVersion = LevelVersion(PRIVILEGED)

    def fully_privileged(self) -> bool:
        return self.enforce.level == self.audit.level == self.warn.level == PRIVILEGED

    def equivalent(self, other: Policy) -> bool:
        """Policy.Equivalent: same levels, and same versions where the level is not privileged."""
        pairs = ((self.enforce, other.enforce), (self.audit, other.audit), (self.warn, other.warn))
        return all(a.level == b.level and (a.level == PRIVILEGED or a.version == b.version) for a, b in pairs)


def policy_to_evaluate(labels: Mapping[str, str] | None, defaults: Policy) -> tuple[Policy, list[Cause]]:
    """PolicyToEvaluate: the namespace's labels over ``defaults``, and an error per bad label.

    A bad level enforces ``restricted`` (fail closed) but audits and warns
    ``privileged`` (fail open); a bad version is ``latest``.
    """
    modes = {"enforce": defaults.enforce, "audit": defaults.audit, "warn": defaults.warn}
    errors: list[Cause] = []
    for mode in MODES:
        level, version = modes[mode].level, modes[mode].version
        level_label, version_label = LABEL_PREFIX + mode, f"{LABEL_PREFIX}{mode}-version"
        if labels and level_label in labels:
            parsed = parse_level(labels[level_label])
            if parsed is None:
                errors.append(field_errors.invalid(f"metadata.labels[{level_label}]", labels[level_label], LEVEL_ERROR))
            level = parsed or (RESTRICTED if mode == "enforce" else PRIVILEGED)
        if labels and version_label in labels:
            parsed_version = parse_version(labels[version_label])
            if parsed_version is None:
                errors.append(
                    field_errors.invalid(f"metadata.labels[{version_label}]", labels[version_label], VERSION_ERROR)
                )
            version = parsed_version or LATEST
        modes[mode] = LevelVersion(level, version)
    return Policy(**modes), errors


def forbidden_reason(violations: list[Violation]) -> str:
    """AggregateCheckResult.ForbiddenReason: ``host ports, privileged, ...``."""
    return ", ".join(v.reason for v in violations)


def forbidden_detail(violations: list[Violation]) -> str:
    """AggregateCheckResult.ForbiddenDetail: each reason with its detail in parentheses."""
    return ", ".join(f"{v.reason} ({v.detail})" if v.detail else v.reason for v in violations)


# -- the registry (policy/registry.go) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionedCheck:
    minimum: int
    check: CheckFn
    #: Baseline check IDs this restricted revision supersedes.
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    level: str
    versions: tuple[VersionedCheck, ...]

    def at(self, minor: int) -> VersionedCheck | None:
        """The revision for policy version v1.minor (versions are sorted by minimum)."""
        found = None
        for versioned in self.versions:
            if versioned.minimum <= minor:
                found = versioned
        return found


def _v(minimum: int, check: CheckFn, *overrides: str) -> VersionedCheck:
    return VersionedCheck(minimum, check, overrides)


CHECKS = (
    Check("appArmorProfile", BASELINE, (_v(0, app_armor_profile),)),
    Check("capabilities_baseline", BASELINE, (_v(0, capabilities_baseline),)),
    Check("hostNamespaces", BASELINE, (_v(0, host_namespaces),)),
    Check("hostPathVolumes", BASELINE, (_v(0, host_path_volumes),)),
    Check("hostPorts", BASELINE, (_v(0, host_ports),)),
    Check("privileged", BASELINE, (_v(0, privileged),)),
    Check("procMount", BASELINE, (_v(0, proc_mount),)),
    Check("seLinuxOptions", BASELINE, (_v(0, se_linux_options(SELINUX_TYPES_1_0)),
                                        _v(31, se_linux_options(SELINUX_TYPES_1_31)))),
    Check("seccompProfile_baseline", BASELINE, (_v(0, seccomp_profile_baseline_1_0),
                                                 _v(19, seccomp_profile_baseline_1_19))),
    Check("sysctls", BASELINE, (_v(0, sysctls(SYSCTLS_1_0)), _v(27, sysctls(SYSCTLS_1_27)),
                                 _v(29, sysctls(SYSCTLS_1_29)), _v(32, sysctls(SYSCTLS_1_32)))),
    Check("windowsHostProcess", BASELINE, (_v(0, windows_host_process),)),
    Check("allowPrivilegeEscalation", RESTRICTED, (_v(8, allow_privilege_escalation_1_8),
                                                   _v(25, linux_only(allow_privilege_escalation_1_8)))),
    Check("capabilities_restricted", RESTRICTED, (
        _v(22, capabilities_restricted_1_22, "capabilities_baseline"),
        _v(25, linux_only(capabilities_restricted_1_22), "capabilities_baseline"),
    )),
    Check("restrictedVolumes", RESTRICTED, (_v(0, restricted_volumes, "hostPathVolumes"),)),
    Check("runAsNonRoot", RESTRICTED, (_v(0, run_as_non_root),)),
    Check("runAsUser", RESTRICTED, (_v(23, run_as_user),)),
    Check("seccompProfile_restricted", RESTRICTED, (
        _v(19, seccomp_profile_restricted_1_19, "seccompProfile_baseline"),
        _v(25, linux_only(seccomp_profile_restricted_1_19), "seccompProfile_baseline"),
    )),
)  # fmt: skip
#: The newest minimum any check registers: ``latest``, and anything newer, evaluate as this.
MAX_MINOR = max(v.minimum for check in CHECKS for v in check.versions)
_ORDER = sorted(CHECKS, key=lambda c: (c.level != BASELINE, c.id))


def evaluate(level_version: LevelVersion, meta: Meta, spec: Spec) -> list[Violation]:
    """checkRegistry.EvaluatePod: the violations of the level's checks at the version, in upstream's order."""
    if level_version.level == PRIVILEGED:
        return []
    minor = level_version.version.minor
    minor = MAX_MINOR if minor is None or minor > MAX_MINOR else minor
    active = [(check, versioned) for check in _ORDER if (versioned := check.at(minor)) is not None]
    if level_version.level == BASELINE:
        active = [(check, versioned) for check, versioned in active if check.level == BASELINE]
    else:
        overridden = {name for check, versioned in active if check.level == RESTRICTED for name in versioned.overrides}
        active = [(check, versioned) for check, versioned in active if check.id not in overridden]
    violations = []
    for _, versioned in active:
        violation = versioned.check(meta, spec)
        if violation is not None:
            violations.append(violation)
    return violations
