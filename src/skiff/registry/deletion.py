"""Deletion rules: DeleteOptions, preconditions, graceful deletion and finalizers.

Pure functions mirroring k8s.io/apiserver's ``rest.BeforeDelete`` and the
generic ``Store.Delete`` helpers (``deletionFinalizersForGarbageCollection``,
``markAsDeleting``); ``GenericRegistry.delete`` sequences them with the
Store writes.

* Preconditions (``uid``, ``resourceVersion``) that do not hold → 409, with
  the Kind in place of the resource as upstream does.
* ``propagationPolicy: Orphan`` adds the ``orphan`` finalizer, ``Foreground``
  adds ``foregroundDeletion``; ``Background`` (and no policy) removes both.
* An object with finalizers is not deleted: it gets ``deletionTimestamp``
  (and ``deletionGracePeriodSeconds: 0``) and whoever owns a finalizer
  removes it; the update that removes the last one deletes the object.
* Graceful deletion (pods): a strategy that implements
  ``GracefulDeleteStrategy`` returns the grace period; a positive period
  sets ``deletionTimestamp = now + period`` and leaves the object for its
  node agent, zero deletes at once.  Once a grace period is pending, only a
  shorter one changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from skiff.api.status import ApiError, Cause, bad_request, conflict, invalid
from skiff.registry.metadata import format_time, metadata_of
from skiff.registry.resource import Obj, ResourceInfo

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
POLICIES = ("Foreground", "Background", "Orphan")


@dataclass(frozen=True, slots=True)
class DeleteOptions:
    """The fields of metav1.DeleteOptions the registry acts on."""

    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    orphan_dependents: bool | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None


@runtime_checkable
class GracefulDeleteStrategy(Protocol):
    """Implemented by strategies of resources with graceful deletion (pods)."""

    def graceful_delete_period(self, obj: Obj, requested: int | None) -> int:
        """The grace period to delete ``obj`` with, given the one requested (None: not given)."""
        ...


def pod_grace_period(pod: Obj, requested: int | None) -> int:
    """The pod strategy's CheckGracefulDelete: unbound or finished pods go at once."""
    spec = pod.get("spec") or {}
    period = requested if requested is not None else int(spec.get("terminationGracePeriodSeconds") or 0)
    if not spec.get("nodeName"):
        period = 0
    if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
        period = 0
    return period


#: DeleteOptions fields whose JSON type is checked as Go decodes them: (field, JSON type, Go type).
_OPTION_TYPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("preconditions", dict, "v1.Preconditions"),
    ("propagationPolicy", str, "v1.DeletionPropagation"),
    ("orphanDependents", bool, "bool"),
    ("dryRun", list, "[]string"),
)

_GO_JSON_KIND = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}


def _undecodable(field: str, value: Any, go_type: str) -> ApiError:
    """encoding/json's complaint about a field of the wrong JSON type, as a 400."""
    kind = _GO_JSON_KIND.get(type(value), "null")
    return bad_request(f"json: cannot unmarshal {kind} into Go struct field DeleteOptions.{field} of type {go_type}")


def check_option_types(options: Obj) -> None:
    """A body Go could not decode into DeleteOptions is a 400, before any rule is checked.

    kube-apiserver hands the decoder's error to its error writer, which makes
    a reason-less 500 of it; we answer 400 BadRequest with the same words, as
    the request (not the server) is at fault.
    """
    for name, kind, go_type in _OPTION_TYPES:
        value = options.get(name)
        if value is not None and not isinstance(value, kind):
            raise _undecodable(name, value, go_type)
    pre = options.get("preconditions") or {}
    for name in ("uid", "resourceVersion"):
        value = pre.get(name)
        if value is not None and not isinstance(value, str):
            raise _undecodable(f"preconditions.{name}", value, "string")


def parse_delete_options(options: Obj | None) -> DeleteOptions:
    """Read and validate a DeleteOptions body (ValidateDeleteOptions); 422 when invalid."""
    options = options or {}
    check_option_types(options)
    causes: list[Cause] = []
    policy = options.get("propagationPolicy")
    orphan = options.get("orphanDependents")
    if policy is not None and orphan is not None:
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{policy}": orphanDependents and deletionPropagation cannot be both set',
                "propagationPolicy",
            )
        )
    if policy is not None and policy not in POLICIES:
        supported = ", ".join(f'"{p}"' for p in POLICIES)
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{policy}": supported values: {supported}',
                "propagationPolicy",
            )
        )
    grace = options.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        causes.append(Cause("FieldValueInvalid", f"Invalid value: {grace!r}: must be an integer", "gracePeriodSeconds"))
    if causes:
        raise invalid("DeleteOptions", "meta.k8s.io", "", causes)
    pre: Any = options.get("preconditions") or {}
    if grace is not None and grace < 0:
        grace = 1  # upstream: negative values mean 1s on the delete path
    return DeleteOptions(
        grace_period_seconds=grace,
        propagation_policy=policy,
        orphan_dependents=orphan,
        precondition_uid=pre.get("uid"),
        precondition_resource_version=pre.get("resourceVersion"),
    )


def check_preconditions(obj: Obj, opts: DeleteOptions, info: ResourceInfo) -> None:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    uid = str(meta.get("uid", ""))
    if opts.precondition_uid is not None and opts.precondition_uid != uid:
        raise conflict(
            info.kind,
            info.group,
            name,
            f"the UID in the precondition ({opts.precondition_uid}) does not match the UID in record ({uid}). "
            "The object might have been deleted and then recreated",
        )
    rv = str(meta.get("resourceVersion", ""))
    if opts.precondition_resource_version is not None and opts.precondition_resource_version != rv:
        raise conflict(
            info.kind,
            info.group,
            name,
            f"the ResourceVersion in the precondition ({opts.precondition_resource_version}) does not match the "
            f"ResourceVersion in record ({rv}). The object might have been modified",
        )


@dataclass(frozen=True, slots=True)
class GracefulOutcome:
    graceful: bool
    pending: bool
    period: int = 0


def before_delete(obj: Obj, opts: DeleteOptions, info: ResourceInfo, now: datetime) -> GracefulOutcome:
    """rest.BeforeDelete: may set deletionTimestamp/deletionGracePeriodSeconds (and bump generation) on ``obj``."""
    strategy = info.strategy
    if not isinstance(strategy, GracefulDeleteStrategy):
        return GracefulOutcome(False, False)
    meta = metadata_of(obj)
    current = meta.get("deletionGracePeriodSeconds")
    if meta.get("deletionTimestamp"):
        if not current:
            return GracefulOutcome(False, False)
        if opts.grace_period_seconds is None or opts.grace_period_seconds >= current:
            return GracefulOutcome(False, True)
        # Only a shorter grace period may replace a pending one.
        stamp = datetime.strptime(meta["deletionTimestamp"], "%Y-%m-%dT%H:%M:%S%z")
        shorter = stamp - timedelta(seconds=current) + timedelta(seconds=opts.grace_period_seconds)
        meta["deletionTimestamp"] = format_time(shorter)
        meta["deletionGracePeriodSeconds"] = opts.grace_period_seconds
        return GracefulOutcome(True, False, opts.grace_period_seconds)
    period = strategy.graceful_delete_period(obj, opts.grace_period_seconds)
    meta["deletionTimestamp"] = format_time(now + timedelta(seconds=period))
    meta["deletionGracePeriodSeconds"] = period
    if int(meta.get("generation") or 0) > 0:
        meta["generation"] = int(meta["generation"]) + 1
    return GracefulOutcome(True, False, period)


def _orphans(finalizers: list[str], opts: DeleteOptions) -> bool:
    if opts.orphan_dependents is not None:
        return opts.orphan_dependents
    if opts.propagation_policy is not None:
        return opts.propagation_policy == "Orphan"
    for f in finalizers:
        if f in (ORPHAN, FOREGROUND):
            return f == ORPHAN
    return False


def _foreground(finalizers: list[str], opts: DeleteOptions) -> bool:
    if opts.orphan_dependents is not None:
        return False
    if opts.propagation_policy is not None:
        return opts.propagation_policy == "Foreground"
    for f in finalizers:
        if f in (ORPHAN, FOREGROUND):
            return f == FOREGROUND
    return False


def gc_finalizers(obj: Obj, opts: DeleteOptions) -> tuple[bool, list[str]]:
    """deletionFinalizersForGarbageCollection: (changed, the finalizers the policy asks for)."""
    current = [str(f) for f in (obj.get("metadata") or {}).get("finalizers") or []]
    wanted = [f for f in current if f not in (ORPHAN, FOREGROUND)]
    if _orphans(current, opts):
        wanted.append(ORPHAN)
    if _foreground(current, opts):
        wanted.append(FOREGROUND)
    if set(wanted) == set(current):
        return False, current
    return True, wanted


def mark_as_deleting(obj: Obj, now: datetime) -> None:
    """markAsDeleting: deletionTimestamp now (unless earlier), grace period 0, generation bump."""
    meta = metadata_of(obj)
    if not meta.get("deletionTimestamp") and int(meta.get("generation") or 0) > 0:
        meta["generation"] = int(meta["generation"]) + 1
    stamp = format_time(now)
    if not meta.get("deletionTimestamp") or meta["deletionTimestamp"] > stamp:
        meta["deletionTimestamp"] = stamp
    meta["deletionGracePeriodSeconds"] = 0


def should_delete_during_update(new: Obj, old: Obj) -> bool:
    """ShouldDeleteDuringUpdate: the update empties the finalizers of an object being deleted without grace."""
    if (new.get("metadata") or {}).get("finalizers"):
        return False
    old_meta = old.get("metadata") or {}
    if not old_meta.get("finalizers"):
        return False  # only an update that removes the last finalizers deletes
    if not old_meta.get("deletionTimestamp"):
        return False
    return not old_meta.get("deletionGracePeriodSeconds")
