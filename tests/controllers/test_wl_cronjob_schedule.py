"""CronJob schedule decisions at fixed instants (no clock is read: times are passed in)."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.client.timefmt import parse_rfc3339
from skiff.controllers import cronjob_schedule as cs
from skiff.controllers.cronjob import job_from_template

T0 = parse_rfc3339("2026-11-26T10:00:00Z")


def cronjob(
    schedule: str, *, created: str = "2026-11-26T09:59:30Z", last: str | None = None, **spec: Any
) -> dict[str, Any]:
    status = {"lastScheduleTime": last} if last else {}
    return {
        "metadata": {"name": "cj", "namespace": "ns", "uid": "u", "creationTimestamp": created},
        "spec": {"schedule": schedule, **spec},
        "status": status,
    }


@pytest.mark.parametrize(
    ("the_cronjob", "now", "scheduled", "missed", "next_time"),
    [
        pytest.param(cronjob("*/1 * * * *"), T0 - 10, None, 0, T0, id="not-yet"),
        pytest.param(cronjob("*/1 * * * *"), T0 + 5, T0, 1, T0 + 60, id="due"),
        pytest.param(cronjob("*/1 * * * *", last="2026-11-26T10:00:00Z"), T0 + 30, None, 0, T0 + 60, id="already-run"),
        pytest.param(cronjob("*/1 * * * *"), T0 + 185, T0 + 180, 4, T0 + 240, id="missed-several-start-last"),
        pytest.param(
            cronjob("*/1 * * * *", startingDeadlineSeconds=90), T0 + 185, T0 + 180, 2, T0 + 240, id="deadline-window"
        ),
        pytest.param(
            cronjob("0 * * * *"), T0 + 3600 * 200, T0 + 3600 * 200, 101, T0 + 3600 * 201, id="too-many-missed"
        ),
        pytest.param(cronjob("@hourly"), T0 + 1, T0, 1, T0 + 3600, id="descriptor"),
        pytest.param(
            cronjob("0 11 * * *", timeZone="Europe/Paris"), T0 + 1, T0, 1, T0 + 86400, id="time-zone"
        ),  # 11:00 in Paris is 10:00 UTC in November
    ],
)
def test_most_recent_due(
    the_cronjob: dict[str, Any], now: float, scheduled: float | None, missed: int, next_time: float
) -> None:
    due = cs.most_recent_due(the_cronjob, now)
    assert due.scheduled == scheduled
    assert min(due.missed, cs.MAX_MISSED + 1) == missed
    assert due.next_time == next_time


def test_too_late() -> None:
    assert not cs.too_late(cronjob("* * * * *"), T0, T0 + 1000)
    assert cs.too_late(cronjob("* * * * *", startingDeadlineSeconds=10), T0, T0 + 11)
    assert not cs.too_late(cronjob("* * * * *", startingDeadlineSeconds=10), T0, T0 + 10)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(cronjob("not a schedule"), id="schedule"),
        pytest.param(cronjob("* * * * *", timeZone="Mars/Base"), id="zone"),
    ],
)
def test_bad_schedule_raises(bad: dict[str, Any]) -> None:
    with pytest.raises(cs.ScheduleError):
        cs.most_recent_due(bad, T0)


def test_job_from_template_names_and_annotates() -> None:
    the_cronjob = cronjob("*/1 * * * *", jobTemplate={"metadata": {"labels": {"a": "b"}}, "spec": {"template": {}}})
    the_job = job_from_template(the_cronjob, T0)
    assert the_job["metadata"]["name"] == f"cj-{int(T0 // 60)}"
    assert the_job["metadata"]["labels"] == {"a": "b"}
    assert the_job["metadata"]["annotations"] == {cs.SCHEDULED_TIMESTAMP_ANNOTATION: "2026-11-26T10:00:00Z"}
    (ref,) = the_job["metadata"]["ownerReferences"]
    assert ref["kind"] == "CronJob" and ref["controller"] is True and ref["uid"] == "u"
    assert cs.scheduled_timestamp(T0, "Europe/Paris") == "2026-11-26T11:00:00+01:00"
