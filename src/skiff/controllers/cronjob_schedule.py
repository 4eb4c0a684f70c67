"""When a CronJob is due, as pure functions of its spec/status and the time.

Upstream: pkg/controller/cronjob/utils.go (``mostRecentScheduleTime``,
``nextScheduleTime``, ``getJobName``) and the decisions of
``syncCronJob`` (cronjob_controllerv2.go).  The schedule is evaluated in
``spec.timeZone`` (UTC when unset) with croniter; the earliest time that can
still be due is the last schedule time (or the creation time), moved up to
``now - startingDeadlineSeconds`` when a deadline is set.  A job's name is
``<cronjob>-<scheduled time in minutes since the epoch>``, so one schedule
time never yields two jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]

from skiff.client.timefmt import parse_rfc3339

#: Past this many missed start times the controller warns (TooManyMissedTimes) and starts only the last.
MAX_MISSED = 100
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"


class ScheduleError(ValueError):
    """An unparseable schedule or unknown time zone."""


@dataclass(frozen=True)
class Due:
    """The most recent unmet schedule time (None: nothing due), how many were missed, and the next one."""

    scheduled: float | None
    missed: int
    next_time: float


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ScheduleError(f"unknown time zone {name!r}") from err


def _iterator(schedule: str, tz: str | None, start: float) -> Any:
    try:
        return croniter(schedule, datetime.fromtimestamp(start, zone(tz)))
    except (ValueError, KeyError) as err:
        raise ScheduleError(f"unparseable schedule {schedule!r}: {err}") from err


def next_time(schedule: str, tz: str | None, after: float) -> float:
    """The first schedule time strictly after ``after``."""
    return float(_iterator(schedule, tz, after).get_next(float))


def most_recent_due(cronjob: Mapping[str, Any], now: float) -> Due:
    """mostRecentScheduleTime: the latest schedule time in (earliest, now], and how many fell there."""
    spec, status = cronjob.get("spec") or {}, cronjob.get("status") or {}
    schedule, tz = str(spec.get("schedule") or ""), spec.get("timeZone")
    last = status.get("lastScheduleTime") or (cronjob.get("metadata") or {}).get("creationTimestamp")
    earliest = parse_rfc3339(str(last)) if last else now
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - int(deadline))
    times = _iterator(schedule, tz, earliest)
    scheduled: float | None = None
    missed = 0
    upcoming = float(times.get_next(float))
    while upcoming <= now:
        missed += 1
        scheduled = upcoming
        if missed > MAX_MISSED:
            scheduled = float(_iterator(schedule, tz, now + 1).get_prev(float))
            if scheduled > now:
                scheduled = float(_iterator(schedule, tz, scheduled).get_prev(float))
            break
        upcoming = float(times.get_next(float))
    return Due(scheduled, missed, next_time(schedule, tz, now))


def job_name(cronjob_name: str, scheduled: float) -> str:
    """getJobName: the scheduled time in minutes since the epoch, after the CronJob's name."""
    return f"{cronjob_name}-{int(scheduled // 60)}"


def scheduled_timestamp(scheduled: float, tz: str | None) -> str:
    """The scheduled-timestamp annotation: RFC 3339 in the CronJob's time zone."""
    text = datetime.fromtimestamp(scheduled, zone(tz)).isoformat()
    return text.replace("+00:00", "Z")


def too_late(cronjob: Mapping[str, Any], scheduled: float, now: float) -> bool:
    """startingDeadlineSeconds passed since ``scheduled``: that start is missed for good."""
    deadline = (cronjob.get("spec") or {}).get("startingDeadlineSeconds")
    return deadline is not None and scheduled + int(deadline) < now
