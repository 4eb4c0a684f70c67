"""Content negotiation: what a request body is, and what shape the client wants back.

Requests (``Content-Type``):

* missing, ``application/json`` → JSON (the Python sync client POSTs without a
  Content-Type); ``application/yaml`` → YAML; ``application/vnd.kubernetes.protobuf``
  → the ``k8s\\0`` envelope, decoded by :mod:`skiff.api.protobuf`;
* PATCH: ``application/json-patch+json``, ``application/merge-patch+json``,
  ``application/strategic-merge-patch+json``, ``application/apply-patch+yaml``.

Responses are always JSON.  ``Accept`` only picks a *shape*, as kube-apiserver
does: the object itself, a ``meta.k8s.io`` Table (kubectl get), a
PartialObjectMetadata (metadata informers), or for discovery an aggregated
``APIGroupDiscoveryList`` (v2 or v2beta1).  Alternatives are tried in the
client's order; an Accept we cannot honour falls back to plain JSON rather
than 406, which every observed client accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)


@dataclass(frozen=True, slots=True)
class MediaType:
    """``type/subtype;k=v;...`` with lower-cased type and parameter names."""

    mime: str
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> MediaType:
        pieces = [p.strip() for p in text.split(";")]
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            key, sep, value = piece.partition("=")
            if sep:
                params[key.strip().lower()] = value.strip().strip('"')
        return cls(pieces[0].lower(), params)


def parse_accept(header: str | None) -> list[MediaType]:
    """Media ranges of an Accept header, in the client's order (q=0 dropped)."""
    if not header:
        return []
    ranges = [MediaType.parse(part) for part in header.split(",") if part.strip()]
    return [r for r in ranges if r.params.get("q", "1") not in ("0", "0.0", "0.00", "0.000")]


def body_media_type(content_type: str | None) -> str:
    """The bare media type of a request body; a missing Content-Type means JSON."""
    if not content_type:
        return JSON
    return MediaType.parse(content_type).mime or JSON


class Shape(Enum):
    """What the client wants a resource response turned into."""

    OBJECT = "object"
    TABLE = "table"
    PARTIAL_METADATA = "partial"


_META_GROUP = "meta.k8s.io"
_META_VERSIONS = ("v1", "v1beta1")


@dataclass(frozen=True, slots=True)
class ResourceShape:
    shape: Shape
    #: ``v1`` or ``v1beta1`` of meta.k8s.io for Table / PartialObjectMetadata.
    meta_version: str = "v1"


def resource_shape(accept: str | None) -> ResourceShape:
    """The first Accept alternative we can serve: Table, PartialObjectMetadata[List] or the object.

    ``as=PartialObjectMetadataList`` is what list/watch asks for, ``as=PartialObjectMetadata``
    what get asks for; both mean "metadata only".  JSON (and ``*/*``, protobuf —
    we answer those with JSON, which clients also list) means the object.
    """
    for media in parse_accept(accept):
        kind = media.params.get("as")
        if kind is None:
            if media.mime in (JSON, "*/*", "application/*", PROTOBUF, YAML):
                return ResourceShape(Shape.OBJECT)
            continue
        if media.params.get("g") != _META_GROUP or media.params.get("v") not in _META_VERSIONS:
            continue
        if kind == "Table":
            return ResourceShape(Shape.TABLE, media.params["v"])
        if kind in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            return ResourceShape(Shape.PARTIAL_METADATA, media.params["v"])
    return ResourceShape(Shape.OBJECT)


#: Aggregated discovery versions we serve, newest first.
DISCOVERY_GROUP = "apidiscovery.k8s.io"
DISCOVERY_VERSIONS = ("v2", "v2beta1")


def aggregated_discovery_version(accept: str | None) -> str | None:
    """``v2`` / ``v2beta1`` when the client's first servable choice is aggregated discovery, else None."""
    for media in parse_accept(accept):
        if media.params.get("as") == "APIGroupDiscoveryList":
            if media.params.get("g") == DISCOVERY_GROUP and media.params.get("v") in DISCOVERY_VERSIONS:
                return media.params["v"]
            continue
        if media.mime in (JSON, "*/*", "application/*"):
            return None
    return None


def aggregated_discovery_content_type(version: str) -> str:
    """The response Content-Type that tells client-go to parse an APIGroupDiscoveryList."""
    return f"{JSON};g={DISCOVERY_GROUP};v={version};as=APIGroupDiscoveryList"
