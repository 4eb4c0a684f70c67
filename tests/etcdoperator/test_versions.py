"""etcd version parsing, upgrade paths and the operator-side spec checks (pure, table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.etcdoperator.versions import (
    DEFAULT_REPOSITORY,
    DEFAULT_VERSION,
    desired_repository,
    desired_version,
    image_for,
    normalize,
    parse_version,
    spec_problems,
    upgrade_refusal,
)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param("3.4.23", (3, 4, 23), id="plain"),
        pytest.param("v3.4.23", (3, 4, 23), id="leading-v"),
        pytest.param("3.5.1", (3, 5, 1), id="3.5"),
        pytest.param("10.0.100", (10, 0, 100), id="multi-digit"),
    ],
)
def test_parse_version(text: str, parsed: tuple[int, int, int]) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize("text", ["latest", "3.5", "3.5.1-rc.0", "vv3.5.1", " 3.5.1", "", "3.5.x", "V3.5.1"])
def test_parse_version_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid etcd version"):
        parse_version(text)


@pytest.mark.parametrize(
    ("text", "normal"),
    [pytest.param("v3.5.1", "3.5.1", id="strip-v"), pytest.param("3.5.1", "3.5.1", id="kept")],
)
def test_normalize(text: str, normal: str) -> None:
    assert normalize(text) == normal


def test_image_for() -> None:
    assert image_for("quay.io/coreos/etcd", "3.5.1") == "quay.io/coreos/etcd:v3.5.1"
    assert image_for("quay.io/coreos/etcd", "v3.4.23") == "quay.io/coreos/etcd:v3.4.23"


def test_defaults() -> None:
    assert desired_version({}) == DEFAULT_VERSION == "3.5.1"
    assert desired_version({"version": "v3.4.23"}) == "3.4.23"
    assert desired_repository({}) == DEFAULT_REPOSITORY == "quay.io/coreos/etcd"
    assert desired_repository({"repository": "gcr.io/etcd-development/etcd"}) == "gcr.io/etcd-development/etcd"


@pytest.mark.parametrize(
    ("current", "target"),
    [
        pytest.param("3.5.1", "3.5.1", id="same"),
        pytest.param("3.5.1", "v3.5.1", id="same-with-v"),
        pytest.param("3.4.23", "3.5.1", id="next-minor"),
        pytest.param("3.4.1", "3.4.23", id="patch"),
        pytest.param("3.3.0", "3.4.23", id="3.3-to-3.4"),
    ],
)
def test_upgrade_allowed(current: str, target: str) -> None:
    assert upgrade_refusal(current, target) is None


@pytest.mark.parametrize(
    ("current", "target", "reason"),
    [
        pytest.param("3.5.1", "3.4.23", "downgrade from 3.5.1 to 3.4.23 is not supported", id="minor-downgrade"),
        pytest.param("3.5.1", "3.5.0", "downgrade from 3.5.1 to 3.5.0 is not supported", id="patch-downgrade"),
        pytest.param(
            "3.3.0", "3.5.1", "3.3.0 -> 3.5.1 skips 3.4; upgrade one minor version at a time", id="skips-minor"
        ),
        pytest.param("3.2.0", "3.5.1", "3.2.0 -> 3.5.1 skips 3.3, 3.4; upgrade", id="skips-two"),
        pytest.param("3.5.1", "4.0.0", "changes the major version", id="major"),
        pytest.param("3.5.1", "latest", "invalid etcd version 'latest'", id="unparsable"),
    ],
)
def test_upgrade_refused(current: str, target: str, reason: str) -> None:
    refusal = upgrade_refusal(current, target)
    assert refusal is not None
    assert reason in refusal


VALID: dict[str, Any] = {"size": 3, "version": "3.5.1"}


@pytest.mark.parametrize(
    ("name", "spec", "problems"),
    [
        pytest.param("example-etcd-cluster", VALID, [], id="valid"),
        pytest.param("c", {"size": 1}, [], id="version-defaults"),
        pytest.param("c", {"size": 7, "version": "v3.4.23"}, [], id="leading-v"),
        pytest.param("a" * 52, VALID, [], id="name-52"),
        pytest.param("a" * 53, VALID, ["metadata.name: Invalid value"], id="name-53"),
        pytest.param("c", {"version": "3.5.1"}, ["spec.size: Required value"], id="size-missing"),
        pytest.param("c", {"size": 0}, ["spec.size: Invalid value: 0: must be between 1 and 7"], id="size-0"),
        pytest.param("c", {"size": 8}, ["spec.size: Invalid value: 8: must be between 1 and 7"], id="size-8"),
        pytest.param("c", {"size": True}, ["spec.size: Invalid value: True: must be an integer"], id="size-bool"),
        pytest.param("c", {"size": 3, "version": "latest"}, ['spec.version: Invalid value: "latest"'], id="version"),
        pytest.param(
            "c", {"size": 3, "pod": {"labels": {"app": "x"}}}, ['spec.pod.labels: Invalid value: "app"'], id="app-label"
        ),
        pytest.param(
            "c",
            {"size": 3, "pod": {"labels": {"etcd_node": "x", "team": "a"}}},
            ['spec.pod.labels: Invalid value: "etcd_node"'],
            id="etcd-label",
        ),
        pytest.param(
            "c",
            {"size": 3, "pod": {"annotations": {"etcd.version": "3.5.1", "prometheus.io/scrape": "true"}}},
            ['spec.pod.annotations: Invalid value: "etcd.version"'],
            id="reserved-annotation",
        ),
        pytest.param(
            "c",
            {"size": 3, "TLS": {"static": {"member": {"serverSecret": "s", "peerSecret": "p"}, "operatorSecret": "o"}}},
            [],
            id="tls-static",
        ),
        pytest.param("c", {"size": 3, "TLS": {"static": {"member": {"peerSecret": "p"}}}}, [], id="tls-peer-only"),
        pytest.param(
            "c",
            {"size": 3, "TLS": {"static": {"member": {"serverSecret": "s"}}}},
            ["spec.TLS.static.operatorSecret: Invalid value"],
            id="tls-operator-secret-missing",
        ),
        pytest.param(
            "c",
            {"size": 3, "TLS": {"static": {"operatorSecret": "o"}}},
            ["spec.TLS.static.operatorSecret: Invalid value"],
            id="tls-operator-secret-without-server-secret",
        ),
        pytest.param(
            "a" * 60,
            {"size": 9, "version": "x"},
            ["metadata.name", "spec.size", "spec.version"],
            id="all-at-once",
        ),
    ],
)
def test_spec_problems(name: str, spec: dict[str, Any], problems: list[str]) -> None:
    found = spec_problems(name, spec)
    assert len(found) == len(problems), found
    for got, want in zip(found, problems, strict=True):
        assert got.startswith(want), (got, want)
