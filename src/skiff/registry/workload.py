"""Rules every workload kind (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, RC) shares.

A workload owns pods through a label selector over its pod template:
ValidateLabelSelector and "selector does not match template labels"
(pkg/apis/apps/validation) live here once, with the replicas rule and the
Containers/Images -o wide columns (printers.go layoutContainerCells).
"""

from __future__ import annotations

from typing import Any

from skiff.api import field_errors as fe
from skiff.api.selectors import label_selector_from_structured
from skiff.api.status import ApiError, Cause
from skiff.registry.resource import Column
from skiff.registry.validation import validate_label_selector

CONTAINERS_COLUMN = Column("Containers", priority=1, description="Names of each container in the template.")
IMAGES_COLUMN = Column("Images", priority=1, description="Images referenced by each container in the template.")


def validate_replicas(value: Any, path: str) -> list[Cause]:
    if value is None:
        return []
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return [fe.invalid(path, value, "must be greater than or equal to 0")]
    return []


def selector_matches(selector: Any, labels: dict[str, Any]) -> bool:
    """Does a metav1.LabelSelector select ``labels``? (Empty selects everything, nil nothing.)"""
    if not isinstance(selector, dict):
        return False
    try:
        return label_selector_from_structured(selector).matches(labels)
    except ApiError:
        return False


def is_empty_selector(selector: Any) -> bool:
    return not isinstance(selector, dict) or (not selector.get("matchLabels") and not selector.get("matchExpressions"))


def validate_selector_and_template(spec: dict[str, Any], path: str) -> list[Cause]:
    """The apps/v1 rule: a non-empty selector that selects the template's labels."""
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        return [fe.required(f"{path}.selector")]
    causes = validate_label_selector(selector, f"{path}.selector")
    if is_empty_selector(selector):
        causes.append(fe.invalid(f"{path}.selector", selector, "empty selector is invalid for deployment"))
    template = spec.get("template")
    labels = ((template or {}).get("metadata") or {}).get("labels") or {} if isinstance(template, dict) else {}
    if not causes and not selector_matches(selector, labels):
        causes.append(
            fe.invalid(f"{path}.template.metadata.labels", labels, "`selector` does not match template `labels`")
        )
    return causes
