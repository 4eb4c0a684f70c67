"""ObjectMeta rules every resource shares (k8s.io/apimachinery/pkg/api/validation/objectmeta.go).

Strategies call ``validate_object_meta`` from ``validate`` and
``validate_object_meta_update`` from ``validate_update``, passing the name
rule of their kind (most kinds: ``name_is_dns_subdomain``; namespaces:
``name_is_dns_label``; services: ``name_is_dns1035_label``).  Each returns
``list[Cause]`` with upstream's reasons, messages and field paths, ready for
``status.invalid``.  Pure functions: nothing here mutates its input.

The string rules themselves (DNS labels, qualified names, label values) live
in ``skiff.api.name_rules`` and are re-exported here for strategies.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.name_rules import (
    NameRule,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    is_valid_path_segment_name,
    name_is_dns1035_label,
    name_is_dns_label,
    name_is_dns_subdomain,
    name_is_path_segment,
    validate_namespace_name,
)
from skiff.api.status import Cause

__all__ = [
    "TOTAL_ANNOTATION_SIZE_LIMIT",
    "NameRule",
    "generate_name",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_qualified_name",
    "is_valid_label_value",
    "is_valid_path_segment_name",
    "name_is_dns1035_label",
    "name_is_dns_label",
    "name_is_dns_subdomain",
    "name_is_path_segment",
    "validate_annotations",
    "validate_finalizers",
    "validate_label_selector",
    "validate_labels",
    "validate_managed_fields",
    "validate_namespace_name",
    "validate_object_meta",
    "validate_object_meta_update",
    "validate_owner_references",
]

#: Annotations may hold at most 256 KiB of keys plus values.
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
FIELD_IMMUTABLE = "field is immutable"
IS_NEGATIVE = "must be greater than or equal to 0"
FINALIZER_ORPHAN = "orphan"
FINALIZER_FOREGROUND = "foregroundDeletion"
FIELD_MANAGER_MAX_LENGTH = 128
MAX_SUBRESOURCE_NAME_LENGTH = 256

#: names.SimpleNameGenerator: five random characters from this alphabet after a base of at most 58.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_RANDOM_LENGTH = 5
_MAX_GENERATED_BASE = 63 - _RANDOM_LENGTH


def generate_name(base: str, rng: random.Random) -> str:
    """The name the apiserver makes from ``generateName`` (truncated base + 5 random characters)."""
    suffix = "".join(rng.choice(_NAME_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return base[:_MAX_GENERATED_BASE] + suffix


def _join(path: str, child: str) -> str:
    return f"{path}.{child}" if path else child


def validate_labels(labels: Mapping[str, Any] | None, path: str) -> list[Cause]:
    """metav1 ValidateLabels: keys are qualified names, values label values; errors name the map."""
    causes: list[Cause] = []
    for key, value in (labels or {}).items():
        causes += [fe.invalid(path, key, msg) for msg in is_qualified_name(key)]
        text = value if isinstance(value, str) else ""
        causes += [fe.invalid(path, text, msg) for msg in is_valid_label_value(text)]
    return causes


def validate_annotations(annotations: Mapping[str, Any] | None, path: str) -> list[Cause]:
    """Keys are qualified names compared in lower case; keys plus values stay within 256 KiB."""
    causes: list[Cause] = []
    total = 0
    for key, value in (annotations or {}).items():
        causes += [fe.invalid(path, key, msg) for msg in is_qualified_name(key.lower())]
        total += len(key.encode()) + len((value if isinstance(value, str) else "").encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(fe.too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def _owner_reference_json(ref: Mapping[str, Any]) -> dict[str, Any]:
    """The reference in metav1.OwnerReference's field order, as Go would marshal it."""
    out: dict[str, Any] = {
        "apiVersion": ref.get("apiVersion", ""),
        "kind": ref.get("kind", ""),
        "name": ref.get("name", ""),
        "uid": ref.get("uid", ""),
    }
    for optional in ("controller", "blockOwnerDeletion"):
        if ref.get(optional) is not None:
            out[optional] = ref[optional]
    return out


def _split_api_version(api_version: str) -> tuple[str, str] | None:
    """schema.ParseGroupVersion: (group, version), or None when it does not parse."""
    if not api_version:
        return "", ""
    parts = api_version.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    return None


def validate_owner_references(refs: Sequence[Mapping[str, Any]] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    first_controller = ""
    for ref in refs or []:
        api_version = str(ref.get("apiVersion") or "")
        kind, name, uid = (str(ref.get(k) or "") for k in ("kind", "name", "uid"))
        group, version = _split_api_version(api_version) or ("", "")
        if not version:
            causes.append(fe.invalid(_join(path, "apiVersion"), api_version, "version must not be empty"))
        for child, value in (("kind", kind), ("name", name), ("uid", uid)):
            if not value:
                causes.append(fe.invalid(_join(path, child), value, "must not be empty"))
        if (group, version, kind) == ("", "v1", "Event"):
            detail = f"{group}/{version}, Kind={kind} is disallowed from being an owner"
            causes.append(fe.invalid(path, _owner_reference_json(ref), detail))
        if ref.get("controller") is True:
            current = f"{kind}/{name}"
            if first_controller:
                detail = (
                    'Only one reference can have Controller set to true. Found "true" in references for '
                    f"{first_controller} and {current}"
                )
                causes.append(fe.invalid(path, [_owner_reference_json(r) for r in refs or []], detail))
            else:
                first_controller = current
    return causes


def validate_finalizers(finalizers: Sequence[str] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    items = list(finalizers or [])
    for finalizer in items:
        causes += [fe.invalid(path, finalizer, msg) for msg in is_qualified_name(finalizer)]
    if FINALIZER_ORPHAN in items and FINALIZER_FOREGROUND in items:
        detail = f"finalizer {FINALIZER_ORPHAN} and {FINALIZER_FOREGROUND} cannot be both set"
        causes.append(fe.invalid(path, items, detail))
    return causes


def validate_field_manager(manager: str, path: str) -> list[Cause]:
    """ValidateFieldManager: at most 128 bytes of printable characters (also the ``fieldManager`` option's rule)."""
    causes: list[Cause] = []
    if len(manager.encode()) > FIELD_MANAGER_MAX_LENGTH:
        causes.append(fe.too_long(path, FIELD_MANAGER_MAX_LENGTH))
    position = 0
    for ch in manager:
        if not go_is_print(ch):
            detail = f"invalid character U+{ord(ch):04X} (at position {position})"
            causes.append(fe.invalid(path, manager, detail))
        position += len(ch.encode())
    return causes


def go_is_print(ch: str) -> bool:
    """unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def validate_managed_fields(entries: Sequence[Mapping[str, Any]] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, entry in enumerate(entries or []):
        here = f"{path}[{i}]"
        operation = entry.get("operation", "")
        if operation not in ("Apply", "Update"):
            causes.append(fe.invalid(f"{here}.operation", operation, "must be `Apply` or `Update`"))
        fields_type = entry.get("fieldsType", "")
        if fields_type and fields_type != "FieldsV1":
            causes.append(fe.invalid(f"{here}.fieldsType", fields_type, "must be `FieldsV1`"))
        causes += validate_field_manager(str(entry.get("manager") or ""), f"{here}.manager")
        if len(str(entry.get("subresource") or "")) > MAX_SUBRESOURCE_NAME_LENGTH:
            causes.append(fe.too_long(f"{here}.subresource", MAX_SUBRESOURCE_NAME_LENGTH))
    return causes


def _common(meta: Mapping[str, Any], namespaced: bool, path: str) -> list[Cause]:
    """The checks create and update share (validateObjectMetaAccessorWithOptsCommon)."""
    causes: list[Cause] = []
    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            causes.append(fe.required(_join(path, "namespace")))
        else:
            causes += [
                fe.invalid(_join(path, "namespace"), namespace, msg)
                for msg in validate_namespace_name(namespace, False)
            ]
    elif namespace:
        causes.append(fe.forbidden(_join(path, "namespace"), "not allowed on this type"))
    generation = meta.get("generation") or 0
    if isinstance(generation, int) and generation < 0:
        causes.append(fe.invalid(_join(path, "generation"), generation, IS_NEGATIVE))
    causes += validate_labels(meta.get("labels"), _join(path, "labels"))
    causes += validate_annotations(meta.get("annotations"), _join(path, "annotations"))
    causes += validate_owner_references(meta.get("ownerReferences"), _join(path, "ownerReferences"))
    causes += validate_finalizers(meta.get("finalizers"), _join(path, "finalizers"))
    causes += validate_managed_fields(meta.get("managedFields"), _join(path, "managedFields"))
    return causes


def validate_object_meta(
    meta: Mapping[str, Any] | None, namespaced: bool, name_rule: NameRule, path: str = "metadata"
) -> list[Cause]:
    """ValidateObjectMeta on create: name (or generateName), scope, labels, annotations, owners, finalizers.

    Run after the name was generated: a generateName without a name is then
    reported as a missing name, exactly as upstream.
    """
    meta = meta or {}
    causes: list[Cause] = []
    generate = meta.get("generateName") or ""
    if generate:
        causes += [fe.invalid(_join(path, "generateName"), generate, msg) for msg in name_rule(generate, True)]
    name = meta.get("name") or ""
    if not name:
        causes.append(fe.required(_join(path, "name"), "name or generateName is required"))
    else:
        causes += [fe.invalid(_join(path, "name"), name, msg) for msg in name_rule(name, False)]
    return causes + _common(meta, namespaced, path)


def _go_string_slice(items: Sequence[str]) -> str:
    """Go's ``%#v`` of a []string."""
    return "[]string{" + ", ".join(fe.go_quote(item) for item in items) + "}"


def validate_object_meta_update(
    new: Mapping[str, Any] | None, old: Mapping[str, Any] | None, path: str = "metadata"
) -> list[Cause]:
    """ValidateObjectMetaUpdate: identity fields are immutable; generateName is not checked."""
    new, old = new or {}, old or {}
    causes: list[Cause] = []
    if old.get("deletionTimestamp"):
        added = sorted(set(new.get("finalizers") or []) - set(old.get("finalizers") or []))
        if added:
            detail = (
                "no new finalizers can be added if the object is being deleted, "
                f"found new finalizers {_go_string_slice(added)}"
            )
            causes.append(fe.forbidden(_join(path, "finalizers"), detail))
    if not new.get("resourceVersion"):
        causes.append(fe.invalid(_join(path, "resourceVersion"), "", "must be specified for an update"))
    new_generation, old_generation = new.get("generation") or 0, old.get("generation") or 0
    if isinstance(new_generation, int) and isinstance(old_generation, int) and new_generation < old_generation:
        causes.append(fe.invalid(_join(path, "generation"), new_generation, "must not be decremented"))
    for child, empty in (
        ("name", ""),
        ("namespace", ""),
        ("uid", ""),
        ("creationTimestamp", None),
        ("deletionTimestamp", None),
        ("deletionGracePeriodSeconds", None),
    ):
        new_value, old_value = new.get(child) or empty, old.get(child) or empty
        if new_value != old_value:
            causes.append(fe.invalid(_join(path, child), new_value, FIELD_IMMUTABLE))
    causes += validate_labels(new.get("labels"), _join(path, "labels"))
    causes += validate_annotations(new.get("annotations"), _join(path, "annotations"))
    causes += validate_owner_references(new.get("ownerReferences"), _join(path, "ownerReferences"))
    causes += validate_managed_fields(new.get("managedFields"), _join(path, "managedFields"))
    return causes


def validate_label_selector(selector: Mapping[str, Any] | None, path: str) -> list[Cause]:
    """metav1 ValidateLabelSelector, for the ``selector`` of Deployments, ReplicaSets, Jobs, …"""
    if selector is None:
        return []
    causes = validate_labels(selector.get("matchLabels"), _join(path, "matchLabels"))
    for i, expression in enumerate(selector.get("matchExpressions") or []):
        here = f"{_join(path, 'matchExpressions')}[{i}]"
        operator = expression.get("operator", "")
        values = expression.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                causes.append(fe.required(f"{here}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                causes.append(fe.forbidden(f"{here}.values", detail))
        else:
            causes.append(fe.invalid(f"{here}.operator", operator, "not a valid selector operator"))
        key = expression.get("key", "")
        causes += [fe.invalid(f"{here}.key", key, msg) for msg in is_qualified_name(key)]
    return causes
