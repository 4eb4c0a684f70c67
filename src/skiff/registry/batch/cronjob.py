"""CronJobs (batch/v1): defaults, schedule and template rules, the kubectl table.

SetDefaults_CronJob: concurrencyPolicy Allow, suspend false,
successfulJobsHistoryLimit 3, failedJobsHistoryLimit 1.  The job template's
pod template gets the PodSpec defaults (the Job defaults do not apply to a
template upstream).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.core.pod_spec import default_pod_template, validate_pod_template
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import SpecStatusStrategy
from skiff.registry.table_format import container_cells, format_label_selector, since
from skiff.registry.workload import CONTAINERS_COLUMN, IMAGES_COLUMN

CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
#: ValidateCronJobCreate: the generated job names append 11 characters, so 52 leaves room.
MAX_NAME_LENGTH = 52


class CronJobStrategy(SpecStatusStrategy):
    columns = (
        NAME_COLUMN,
        Column("Schedule", description="The schedule in Cron format."),
        Column("Timezone", description="The time zone name for the given schedule."),
        Column("Suspend", type="boolean", description="This flag tells the controller to suspend "
                                              "subsequent executions."),
        Column("Active", type="integer", description="A list of pointers to currently running jobs."),
        Column("Last Schedule", description="Information when was the last time the job was successfully scheduled."),
        AGE_COLUMN,
        CONTAINERS_COLUMN,
        IMAGES_COLUMN,
        Column("Selector", priority=1, description="A label query over pods that should match the pod count."),
    )  # fmt: skip

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_spec = (spec.get("jobTemplate") or {}).get("spec") if isinstance(spec.get("jobTemplate"), dict) else None
        if isinstance(job_spec, dict):
            default_pod_template(job_spec.get("template"))

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [fe.required("spec")]
        causes: list[Cause] = []
        name = (obj.get("metadata") or {}).get("name") or ""
        if len(name) > MAX_NAME_LENGTH:
            causes.append(fe.invalid("metadata.name", name, f"must be no more than {MAX_NAME_LENGTH} characters"))
        schedule = spec.get("schedule")
        if not schedule:
            causes.append(fe.required("spec.schedule"))
        elif not _looks_like_cron(str(schedule)):
            causes.append(fe.invalid("spec.schedule", schedule, "unparseable schedule"))
        policy = spec.get("concurrencyPolicy")
        if policy is not None and policy not in CONCURRENCY_POLICIES:
            causes.append(fe.not_supported("spec.concurrencyPolicy", policy, CONCURRENCY_POLICIES))
        job_spec = (spec.get("jobTemplate") or {}).get("spec")
        if not isinstance(job_spec, dict):
            return [*causes, fe.required("spec.jobTemplate.spec")]
        template = job_spec.get("template")
        causes += validate_pod_template(template, "spec.jobTemplate.spec.template")
        restart = ((template or {}).get("spec") or {}).get("restartPolicy") if isinstance(template, dict) else None
        if restart not in ("OnFailure", "Never"):
            causes.append(
                fe.not_supported("spec.jobTemplate.spec.template.spec.restartPolicy", restart, ("OnFailure", "Never"))
            )
        return causes

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        names, images = container_cells(((job_spec.get("template") or {}).get("spec") or {}).get("containers"))
        suspend = spec.get("suspend")
        return [
            spec.get("schedule") or "",
            spec.get("timeZone") or "<none>",
            "<unset>" if suspend is None else ("True" if suspend else "False"),
            len(status.get("active") or []),
            since(status["lastScheduleTime"], now) if status.get("lastScheduleTime") else "<none>",
            names,
            images,
            format_label_selector(job_spec.get("selector")),
        ]


def _looks_like_cron(schedule: str) -> bool:
    """Five fields, or a @-descriptor (robfig/cron's standard parser), optionally after TZ=/CRON_TZ=."""
    fields = schedule.split()
    if fields and (fields[0].startswith("TZ=") or fields[0].startswith("CRON_TZ=")):
        fields = fields[1:]
    if len(fields) == 2 and fields[0] == "@every":
        return True
    if len(fields) == 1 and fields[0].startswith("@"):
        return fields[0] in ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
    return len(fields) == 5
