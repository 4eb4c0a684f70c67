"""RoleBindings and ClusterRoleBindings (rbac.authorization.k8s.io/v1): defaults, rules, the table.

SetDefaults_Subject / SetDefaults_RoleBinding: User and Group subjects and
the roleRef belong to rbac.authorization.k8s.io, ServiceAccounts to "".
roleRef never changes (ValidateRoleBindingUpdate: "cannot change roleRef").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api import name_rules
from skiff.api.status import Cause
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import NameRule, ObjectStrategy

RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


class RoleBindingStrategy(ObjectStrategy):
    name_rule: NameRule = staticmethod(name_rules.name_is_path_segment)
    allow_create_on_update = True
    columns = (
        NAME_COLUMN,
        Column("Role", description="RoleRef can reference a Role in the current namespace or a ClusterRole in "
               "the global namespace."),
        AGE_COLUMN,
        Column("Users", priority=1, description="Users in the roleBinding"),
        Column("Groups", priority=1, description="Groups in the roleBinding"),
        Column("ServiceAccounts", priority=1, description="ServiceAccounts in the roleBinding"),
    )  # fmt: skip

    def default(self, obj: Obj) -> None:
        ref = obj.get("roleRef")
        if isinstance(ref, dict) and not ref.get("apiGroup"):
            ref["apiGroup"] = RBAC_GROUP
        for subject in obj.get("subjects") or []:
            if isinstance(subject, dict) and "apiGroup" not in subject:
                subject["apiGroup"] = "" if subject.get("kind") == "ServiceAccount" else RBAC_GROUP

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        ref = obj.get("roleRef")
        kinds = ("Role", "ClusterRole") if self.namespaced else ("ClusterRole",)
        if not isinstance(ref, dict):
            causes.append(fe.required("roleRef"))
        else:
            if ref.get("apiGroup") != RBAC_GROUP:
                causes.append(fe.not_supported("roleRef.apiGroup", ref.get("apiGroup"), (RBAC_GROUP,)))
            if ref.get("kind") not in kinds:
                causes.append(fe.not_supported("roleRef.kind", ref.get("kind"), kinds))
            if not ref.get("name"):
                causes.append(fe.required("roleRef.name"))
        for i, subject in enumerate(obj.get("subjects") or []):
            causes += _validate_subject(subject, f"subjects[{i}]", self.namespaced)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        if new.get("roleRef") != old.get("roleRef"):
            return [fe.invalid("roleRef", new.get("roleRef"), "cannot change roleRef")]
        return []

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        ref = obj.get("roleRef") or {}
        users, groups, accounts = subject_strings(obj.get("subjects") or [])
        return [
            f"{ref.get('kind', '')}/{ref.get('name', '')}",
            ", ".join(users),
            ", ".join(groups),
            ", ".join(accounts),
        ]


def _validate_subject(subject: Any, path: str, namespaced: bool) -> list[Cause]:
    if not isinstance(subject, dict):
        return [fe.required(path)]
    causes: list[Cause] = []
    if not subject.get("name"):
        causes.append(fe.required(f"{path}.name"))
    kind = subject.get("kind")
    if kind not in SUBJECT_KINDS:
        causes.append(fe.not_supported(f"{path}.kind", kind, SUBJECT_KINDS))
    elif kind == "ServiceAccount":
        if subject.get("apiGroup"):
            causes.append(fe.not_supported(f"{path}.apiGroup", subject["apiGroup"], ("",)))
        if not namespaced and not subject.get("namespace"):
            causes.append(fe.required(f"{path}.namespace"))
    elif subject.get("apiGroup") != RBAC_GROUP:
        causes.append(fe.not_supported(f"{path}.apiGroup", subject.get("apiGroup"), (RBAC_GROUP,)))
    return causes


def subject_strings(subjects: list[Any]) -> tuple[list[str], list[str], list[str]]:
    """rbac.SubjectsStrings: user names, group names and "namespace/name" service accounts."""
    users: list[str] = []
    groups: list[str] = []
    accounts: list[str] = []
    for subject in subjects:
        kind, name = subject.get("kind"), str(subject.get("name") or "")
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            namespace = subject.get("namespace")
            accounts.append(f"{namespace}/{name}" if namespace else name)
    return users, groups, accounts
