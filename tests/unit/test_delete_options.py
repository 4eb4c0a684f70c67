"""DeleteOptions bodies: the JSON types Go would refuse to decode are 400, the rules 422."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.api.status import ApiError
from skiff.registry.deletion import parse_delete_options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            {"preconditions": "x"},
            "json: cannot unmarshal string into Go struct field DeleteOptions.preconditions of type v1.Preconditions",
            id="preconditions-string",
        ),
        pytest.param(
            {"preconditions": {"uid": 5}},
            "json: cannot unmarshal number into Go struct field DeleteOptions.preconditions.uid of type string",
            id="precondition-uid-number",
        ),
        pytest.param(
            {"propagationPolicy": ["Background"]},
            "json: cannot unmarshal array into Go struct field DeleteOptions.propagationPolicy of type "
            "v1.DeletionPropagation",
            id="policy-array",
        ),
        pytest.param(
            {"orphanDependents": "yes"},
            "json: cannot unmarshal string into Go struct field DeleteOptions.orphanDependents of type bool",
            id="orphan-string",
        ),
        pytest.param(
            {"dryRun": "All"},
            "json: cannot unmarshal string into Go struct field DeleteOptions.dryRun of type []string",
            id="dry-run-string",
        ),
    ],
)
def test_undecodable_delete_options_are_400(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_delete_options(options)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (400, "BadRequest", message)


@pytest.mark.parametrize(
    ("options", "uid", "policy"),
    [
        pytest.param(None, None, None, id="none"),
        pytest.param({"preconditions": {"uid": "u1"}}, "u1", None, id="uid"),
        pytest.param({"preconditions": None, "propagationPolicy": "Foreground"}, None, "Foreground", id="null-pre"),
    ],
)
def test_decodable_delete_options(options: dict[str, Any] | None, uid: str | None, policy: str | None) -> None:
    parsed = parse_delete_options(options)
    assert (parsed.precondition_uid, parsed.propagation_policy) == (uid, policy)
