"""Which resources the API server serves, from /api and /apis discovery (client-go's discovery client).

``discover_resources`` returns every top-level resource (no subresources) of
each group's *preferred* version, with its verbs.  The garbage collector
watches those it can list, watch and delete; the namespace controller
empties those that are namespaced.  CRDs appear here once established, so
callers re-run discovery periodically to pick them up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from skiff.client import ApiClient, ApiError, Resource
from skiff.client.errors import from_response


@dataclass(frozen=True)
class DiscoveredResource:
    resource: Resource
    verbs: frozenset[str]

    def can(self, *verbs: str) -> bool:
        return all(v in self.verbs for v in verbs)


async def _get_json(client: ApiClient, path: str) -> dict[str, Any]:
    code, _, body = await client.request("GET", path)
    if code >= 300:
        raise from_response(code, body)
    doc: dict[str, Any] = orjson.loads(body)
    return doc


def _resources_of(group: str, version: str, doc: dict[str, Any]) -> list[DiscoveredResource]:
    out = []
    for entry in doc.get("resources") or []:
        name = str(entry.get("name", ""))
        if not name or "/" in name:
            continue
        res = Resource(group, version, name, str(entry.get("kind", "")), bool(entry.get("namespaced")))
        out.append(DiscoveredResource(res, frozenset(entry.get("verbs") or [])))
    return out


async def discover_resources(client: ApiClient) -> list[DiscoveredResource]:
    """Core v1 plus each group's preferred version; a group that fails to answer is skipped this round."""
    found = _resources_of("", "v1", await _get_json(client, "/api/v1"))
    groups = await _get_json(client, "/apis")
    for group in groups.get("groups") or []:
        preferred = (group.get("preferredVersion") or {}).get("groupVersion") or ""
        if "/" not in preferred:
            continue
        name, version = preferred.split("/", 1)
        try:
            doc = await _get_json(client, f"/apis/{preferred}")
        except ApiError as err:
            if err.code in (404, 503):  # a group vanishing between the two calls (CRD deleted): next round
                continue
            raise
        found += _resources_of(name, version, doc)
    return found
