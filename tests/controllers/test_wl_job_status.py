"""Job bookkeeping without an API server: counting through the finalizer, finishing, parallelism, indexes."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.controllers import job_status as js

NOW = 1_800_000_000.0


def job(**spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {"metadata": {"name": "j", "uid": "u"}, "spec": spec, "status": status}


def pod(
    uid: str, phase: str = "Running", *, finalizer: bool = True, deleting: bool = False, index: int | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"p-{uid}", "uid": uid, "finalizers": [js.TRACKING_FINALIZER] if finalizer else []}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if index is not None:
        meta["annotations"] = {js.COMPLETION_INDEX_ANNOTATION: str(index)}
    return {"metadata": meta, "status": {"phase": phase}}


def test_count_finished_records_each_pod_once() -> None:
    pods = [
        pod("a", "Succeeded"),
        pod("b", "Failed"),
        pod("c", "Running", deleting=True),
        pod("d", "Succeeded", finalizer=False),  # counted before
        pod("e", "Running"),
        pod("f", "Failed"),  # already in uncountedTerminatedPods
        pod("g", "Succeeded"),  # finalizer removal issued, cache behind
    ]
    counting = js.count_finished(job(status={"uncountedTerminatedPods": {"failed": ["f"]}}), pods, {"g"})
    assert counting.uncounted_succeeded == ["a"]
    assert counting.uncounted_failed == ["f", "b", "c"]


def test_count_finished_indexed_only_valid_new_indexes() -> None:
    the_job = job(completionMode="Indexed", completions=3, status={"completedIndexes": "0"})
    pods = [pod("a", "Succeeded", index=0), pod("b", "Succeeded", index=2), pod("c", "Succeeded", index=7)]
    counting = js.count_finished(the_job, pods, set())
    assert counting.uncounted_succeeded == ["a", "b"]
    assert counting.new_indexes == {2}


@pytest.mark.parametrize(
    ("spec", "succeeded", "failed", "completed", "active", "start", "expected"),
    [
        pytest.param({"completions": 2}, 1, 0, set(), 1, NOW, None, id="running"),
        pytest.param({"completions": 2}, 2, 0, set(), 0, NOW, "CompletionsReached", id="complete"),
        pytest.param({}, 1, 0, set(), 1, NOW, None, id="work-queue-waits-for-active"),
        pytest.param({}, 1, 0, set(), 0, NOW, "CompletionsReached", id="work-queue-done"),
        pytest.param({"backoffLimit": 1}, 0, 1, set(), 0, NOW, None, id="within-backoff"),
        pytest.param({"backoffLimit": 1}, 0, 2, set(), 0, NOW, "BackoffLimitExceeded", id="backoff-exceeded"),
        pytest.param({"activeDeadlineSeconds": 10}, 0, 0, set(), 1, NOW - 10, "DeadlineExceeded", id="deadline"),
        pytest.param({"activeDeadlineSeconds": 10}, 0, 0, set(), 1, NOW - 9, None, id="before-deadline"),
        pytest.param(
            {"completionMode": "Indexed", "completions": 2}, 2, 0, {0}, 0, NOW, None, id="indexed-missing-one"
        ),
        pytest.param(
            {"completionMode": "Indexed", "completions": 2},
            2,
            0,
            {0, 1},
            0,
            NOW,
            "CompletionsReached",
            id="indexed-done",
        ),
    ],
)
def test_decide_finish(
    spec: dict[str, Any],
    succeeded: int,
    failed: int,
    completed: set[int],
    active: int,
    start: float,
    expected: str | None,
) -> None:
    actives = [pod(str(i)) for i in range(active)]
    finish = js.decide_finish(job(**spec), succeeded, failed, completed, actives, NOW, start)
    assert (finish.reason if finish else None) == expected
    if finish is not None:
        assert finish.terminal == ("Complete" if expected == "CompletionsReached" else "Failed")


def test_restarts_count_against_backoff_with_on_failure() -> None:
    the_job = job(backoffLimit=2, template={"spec": {"restartPolicy": "OnFailure"}})
    restarted = pod("a")
    restarted["status"]["containerStatuses"] = [{"restartCount": 2}]
    finish = js.decide_finish(the_job, 0, 0, set(), [restarted], NOW, NOW)
    assert finish is not None and finish.reason == "BackoffLimitExceeded"


@pytest.mark.parametrize(
    ("spec", "succeeded", "active", "completed", "expected"),
    [
        pytest.param({"completions": 5, "parallelism": 2}, 0, 0, set(), 2, id="parallelism-bound"),
        pytest.param({"completions": 5, "parallelism": 2}, 4, 1, set(), 1, id="work-left-bound"),
        pytest.param({"parallelism": 3}, 0, 0, set(), 3, id="work-queue"),
        pytest.param({"parallelism": 3}, 1, 2, set(), 2, id="work-queue-after-success"),
        pytest.param({"completionMode": "Indexed", "completions": 3, "parallelism": 3}, 1, 0, {1}, 2, id="indexed"),
    ],
)
def test_wanted_active(spec: dict[str, Any], succeeded: int, active: int, completed: set[int], expected: int) -> None:
    assert js.wanted_active(job(**spec), succeeded, active, completed) == expected


def test_pending_indexes_skip_completed_and_running() -> None:
    the_job = job(completionMode="Indexed", completions=5)
    assert js.pending_indexes(the_job, {0, 2}, [pod("a", index=1)], 5) == [3, 4]


@pytest.mark.parametrize(
    ("indexes", "text"),
    [
        pytest.param(set(), "", id="empty"),
        pytest.param({1}, "1", id="one"),
        pytest.param({1, 3, 4, 5, 7}, "1,3-5,7", id="ranges"),
    ],
)
def test_index_format_round_trip(indexes: set[int], text: str) -> None:
    assert js.format_indexes(indexes) == text
    assert js.parse_indexes(text) == indexes


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        pytest.param(0, 0.0, id="none"),
        pytest.param(1, 10.0, id="first"),
        pytest.param(3, 40.0, id="third"),
        pytest.param(9, 360.0, id="cap"),
    ],
)
def test_backoff_delay(failures: int, expected: float) -> None:
    assert js.backoff_delay(failures) == expected


def test_suspended_condition_transitions() -> None:
    status: dict[str, Any] = {}
    assert js.set_suspended(status, False, "t0") is False
    assert "conditions" not in status
    assert js.set_suspended(status, True, "t1") is True
    assert js.set_suspended(status, True, "t2") is False
    (cond,) = status["conditions"]
    assert (cond["status"], cond["reason"], cond["lastTransitionTime"]) == ("True", "JobSuspended", "t1")
    assert js.set_suspended(status, False, "t3") is True
    (cond,) = status["conditions"]
    assert (cond["status"], cond["reason"], cond["lastTransitionTime"]) == ("False", "JobResumed", "t3")
