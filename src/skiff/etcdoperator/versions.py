"""etcd versions and the operator-side checks of an EtcdCluster spec.

Why here and not (only) in the CRD schema: the schema rejects what a user can
get wrong in one field (size out of 1..7, a version that is not semver); the
rules that need the object's name or relate fields to each other, and the
upgrade-path rule that needs the running version, live in these pure
functions, which the cluster controller reports as the cluster's ``reason``.

Upgrade paths follow etcd's own rule (docs "Upgrading etcd clusters"): a
cluster upgrades one minor version at a time (3.3 → 3.4 → 3.5), patch
releases are always fine, and downgrades are not supported.  coreos/etcd-operator
did not check this (it would happily roll 3.3 members to 3.5, which etcd
refuses to run); Skiff refuses before touching a member.

Versions are written as the original operator accepts them: ``3.5.1`` or
``v3.5.1``; the operator stores and compares them without the ``v``
(``SetDefaults`` in pkg/apis/etcd/v1beta2/cluster.go) and images are tagged
``<repository>:v<version>``.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_REPOSITORY = "quay.io/coreos/etcd"
DEFAULT_VERSION = "3.5.1"
#: The CRD's pattern for spec.version, and the one parse_version accepts.
VERSION_PATTERN = r"^v?[0-9]+\.[0-9]+\.[0-9]+$"
MIN_SIZE, MAX_SIZE = 1, 7
#: 63 (a label value / DNS label) - 10 (random member suffix) - 1 (dash): coreos/etcd-operator's limit.
MAX_NAME_LENGTH = 52
RESERVED_LABEL = "app"
RESERVED_LABEL_PREFIX = "etcd_"
RESERVED_ANNOTATION = "etcd.version"

_VERSION = re.compile(VERSION_PATTERN)


def parse_version(text: str) -> tuple[int, int, int]:
    """``"v3.4.23"`` or ``"3.4.23"`` → ``(3, 4, 23)``; anything else raises ValueError."""
    if not isinstance(text, str) or not _VERSION.match(text):
        raise ValueError(f"invalid etcd version {text!r}: want MAJOR.MINOR.PATCH, e.g. {DEFAULT_VERSION}")
    major, minor, patch = text.removeprefix("v").split(".")
    return int(major), int(minor), int(patch)


def normalize(text: str) -> str:
    """The version without a leading ``v`` (how the operator stores and compares it)."""
    return text.strip().removeprefix("v")


def image_for(repository: str, version: str) -> str:
    """The etcd image of a member: ``quay.io/coreos/etcd:v3.5.1``."""
    return f"{repository}:v{normalize(version)}"


def desired_version(spec: dict[str, Any]) -> str:
    """spec.version, normalized, or DEFAULT_VERSION when unset (the original's SetDefaults)."""
    version = spec.get("version")
    return normalize(version) if isinstance(version, str) and version.strip() else DEFAULT_VERSION


def desired_repository(spec: dict[str, Any]) -> str:
    """spec.repository or DEFAULT_REPOSITORY when unset."""
    repository = spec.get("repository")
    return repository if isinstance(repository, str) and repository else DEFAULT_REPOSITORY


def upgrade_refusal(current: str, target: str) -> str | None:
    """None when ``current`` may move to ``target``; otherwise why not (for status.reason / an event).

    Allowed: the same version, a patch upgrade, a minor upgrade by exactly one within the same major.
    Refused: unparsable versions, downgrades (of any component), a major change, a skipped minor.
    """
    try:
        cur, tgt = parse_version(current), parse_version(target)
    except ValueError as err:
        return str(err)
    shown_cur, shown_tgt = normalize(current), normalize(target)
    if tgt == cur:
        return None
    if tgt < cur:
        return f"downgrade from {shown_cur} to {shown_tgt} is not supported"
    if tgt[0] != cur[0]:
        return f"{shown_cur} -> {shown_tgt} changes the major version; only minor and patch upgrades are supported"
    if tgt[1] - cur[1] > 1:
        skipped = ", ".join(f"{cur[0]}.{m}" for m in range(cur[1] + 1, tgt[1]))
        return f"{shown_cur} -> {shown_tgt} skips {skipped}; upgrade one minor version at a time"
    return None


def spec_problems(name: str, spec: dict[str, Any]) -> list[str]:
    """What the operator refuses in an EtcdCluster, as Kubernetes field-error strings; [] when fine.

    Checks: the name fits a member name (≤ 52 chars); size is an integer in 1..7; version (when set)
    is semver with an optional ``v``; pod labels avoid ``app`` and ``etcd_*`` and pod annotations
    avoid ``etcd.version`` (reserved for the operator's own use); TLS keeps the original's rule that
    ``operatorSecret`` is set if and only if ``member.serverSecret`` is (the operator needs a client
    certificate exactly when members require one; see :mod:`skiff.etcdoperator.tls`).
    """
    problems: list[str] = []
    if len(name) > MAX_NAME_LENGTH:
        problems.append(
            f'metadata.name: Invalid value: "{name}": must be no more than {MAX_NAME_LENGTH} characters '
            "(member names add a dash and 10 characters)"
        )
    problems += _size_problems(spec.get("size"))
    version = spec.get("version")
    if version is not None and version != "":
        try:
            parse_version(version)
        except ValueError:
            problems.append(
                f"spec.version: Invalid value: {_quote(version)}: must be a version such as {DEFAULT_VERSION}"
            )
    pod = spec.get("pod")
    if isinstance(pod, dict):
        problems += _pod_problems(pod)
    elif pod is not None:
        problems.append(f"spec.pod: Invalid value: {_quote(pod)}: must be an object")
    tls = spec.get("TLS")
    if tls is not None:
        problems += _tls_problems(tls)
    return problems


def _quote(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _size_problems(size: Any) -> list[str]:
    if size is None:
        return ["spec.size: Required value"]
    if isinstance(size, bool) or not isinstance(size, int):
        return [f"spec.size: Invalid value: {_quote(size)}: must be an integer"]
    if not MIN_SIZE <= size <= MAX_SIZE:
        return [f"spec.size: Invalid value: {size}: must be between {MIN_SIZE} and {MAX_SIZE}, inclusive"]
    return []


def _pod_problems(pod: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for key in sorted(pod.get("labels") or {}):
        if key == RESERVED_LABEL or key.startswith(RESERVED_LABEL_PREFIX):
            problems.append(
                f'spec.pod.labels: Invalid value: "{key}": "app" and "etcd_*" labels are reserved for the etcd operator'
            )
    if RESERVED_ANNOTATION in (pod.get("annotations") or {}):
        problems.append(
            f'spec.pod.annotations: Invalid value: "{RESERVED_ANNOTATION}": '
            "annotation is reserved for the etcd operator"
        )
    return problems


def _tls_problems(tls: Any) -> list[str]:
    static = tls.get("static") if isinstance(tls, dict) else None
    if not isinstance(static, dict):
        return []
    raw_member = static.get("member")
    member: dict[str, Any] = raw_member if isinstance(raw_member, dict) else {}
    problems: list[str] = []
    if bool(static.get("operatorSecret")) != bool(member.get("serverSecret")):
        problems.append(
            "spec.TLS.static.operatorSecret: Invalid value: operatorSecret must be set if and only if "
            "member.serverSecret is set"
        )
    return problems
