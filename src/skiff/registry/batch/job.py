"""Jobs (batch/v1): defaults, the generated selector, template rules, the kubectl table.

SetDefaults_Job: completions and parallelism 1 when neither is set
(parallelism 1 when only it is missing), backoffLimit 6 (the int32 maximum
with backoffLimitPerIndex), completionMode NonIndexed, suspend false,
podReplacementPolicy TerminatingOrFailed (Failed with a podFailurePolicy).
jobStrategy: unless ``manualSelector`` is true the selector is generated
from the job's uid and the template gets the matching labels
(batch.kubernetes.io/controller-uid, batch.kubernetes.io/job-name and the
legacy controller-uid/job-name).  The template's restartPolicy must be
Never or OnFailure.  The template is immutable except while suspended
(scheduling fields), and the selector and completionMode never change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.core.pod_spec import default_pod_template, validate_pod_template
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import SpecStatusStrategy, immutable
from skiff.registry.table_format import between, container_cells, format_label_selector, human_duration, parse_time
from skiff.registry.validation import validate_label_selector
from skiff.registry.workload import CONTAINERS_COLUMN, IMAGES_COLUMN, selector_matches

MAX_INT32 = 2147483647
JOB_RESTART_POLICIES = ("OnFailure", "Never")
COMPLETION_MODES = ("NonIndexed", "Indexed")
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"


class JobStrategy(SpecStatusStrategy):
    columns = (
        NAME_COLUMN,
        Column("Status", description="Status of the job."),
        Column("Completions", description="The number of pods which reached phase Succeeded."),
        Column("Duration", description="Time required to complete the job."),
        AGE_COLUMN,
        CONTAINERS_COLUMN,
        IMAGES_COLUMN,
        Column("Selector", priority=1, description="A label query over pods that should match the pod count."),
    )
    field_selectors = ("status.successful",)

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        generate_selector(obj)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        default_job_spec(spec)
        default_pod_template(spec.get("template"))

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [fe.required("spec")]
        causes: list[Cause] = []
        for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
            value = spec.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                causes.append(fe.invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
        mode = spec.get("completionMode")
        if mode is not None and mode not in COMPLETION_MODES:
            causes.append(fe.not_supported("spec.completionMode", mode, COMPLETION_MODES))
        if mode == "Indexed" and spec.get("completions") is None:
            causes.append(fe.required("spec.completions", "when completion mode is Indexed"))
        causes += validate_job_template(spec, "spec")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        causes: list[Cause] = []
        for key in ("selector", "completionMode", "podFailurePolicy"):
            if new_spec.get(key) != old_spec.get(key):
                causes.append(immutable(f"spec.{key}", new_spec.get(key)))
        if new_spec.get("template") != old_spec.get("template") and not old_spec.get("suspend"):
            causes.append(immutable("spec.template", new_spec.get("template")))
        return causes

    def field_values(self, obj: Obj) -> dict[str, str]:
        return {"status.successful": str((obj.get("status") or {}).get("succeeded") or 0)}

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return job_row(obj, now)


def default_job_spec(spec: Obj) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"


def generate_selector(job: Obj) -> None:
    """jobStrategy's generateSelector: label the template with the job's uid and name, select on the uid."""
    spec = job.get("spec")
    meta = job.get("metadata") or {}
    if not isinstance(spec, dict) or spec.get("manualSelector") is True or not meta.get("uid"):
        return
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    uid, name = meta["uid"], meta.get("name", "")
    labels.setdefault(LEGACY_CONTROLLER_UID_LABEL, uid)
    labels.setdefault(LEGACY_JOB_NAME_LABEL, name)
    labels.setdefault(CONTROLLER_UID_LABEL, uid)
    labels.setdefault(JOB_NAME_LABEL, name)
    if spec.get("selector") is None:
        spec["selector"] = {"matchLabels": {CONTROLLER_UID_LABEL: uid}}


def validate_job_template(spec: Obj, path: str) -> list[Cause]:
    """Selector present and matching, restartPolicy Never or OnFailure, template valid."""
    causes: list[Cause] = []
    template = spec.get("template")
    selector = spec.get("selector")
    if selector is None:
        causes.append(fe.required(f"{path}.selector"))
    else:
        causes += validate_label_selector(selector, f"{path}.selector")
        labels = ((template or {}).get("metadata") or {}).get("labels") or {} if isinstance(template, dict) else {}
        if not causes and not selector_matches(selector, labels):
            causes.append(
                fe.invalid(f"{path}.template.metadata.labels", labels, "`selector` does not match template `labels`")
            )
    causes += validate_pod_template(template, f"{path}.template")
    if isinstance(template, dict):
        policy = (template.get("spec") or {}).get("restartPolicy")
        if policy not in JOB_RESTART_POLICIES:
            causes.append(fe.not_supported(f"{path}.template.spec.restartPolicy", policy, JOB_RESTART_POLICIES))
    return causes


def job_row(job: Obj, now: datetime) -> list[Any]:
    """printJob: Status, Completions, Duration, then the wide Containers, Images, Selector."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start = parse_time(status.get("startTime"))
    if start is None:
        duration = ""
    elif status.get("completionTime"):
        duration = between(status.get("startTime"), status.get("completionTime"))
    else:
        duration = human_duration((now - start).total_seconds())
    names, images = container_cells(((spec.get("template") or {}).get("spec") or {}).get("containers"))
    return [job_status(job), completions, duration, names, images, format_label_selector(spec.get("selector"))]


def job_status(job: Obj) -> str:
    conditions = (job.get("status") or {}).get("conditions") or []

    def has(kind: str) -> bool:
        for cond in conditions:
            if cond.get("type") == kind:
                return bool(cond.get("status") == "True")
        return False

    if has("Complete"):
        return "Complete"
    if has("Failed"):
        return "Failed"
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    if has("Suspended"):
        return "Suspended"
    if has("FailureTarget"):
        return "FailureTarget"
    return "Running"
