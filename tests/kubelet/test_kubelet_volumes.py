"""Volume materialisation with a fake object source: every volume type, items, modes, optional sources."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from skiff.kubelet.env import NodeResources
from skiff.kubelet.volumes import VolumeError, setup_volumes

NODE = NodeResources(cpu_milli=1000, memory_bytes=1024**3)


def _objects(tmp_path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        ("configmaps", "cm"): {
            "data": {"a.conf": "A", "b.conf": "B"},
            "binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()},
        },
        ("secrets", "sec"): {"data": {"token": base64.b64encode(b"t0k").decode()}},
        ("persistentvolumeclaims", "claim"): {"spec": {"volumeName": "pv1"}},
        ("persistentvolumeclaims", "unbound"): {"spec": {}},
        ("persistentvolumes", "pv1"): {"spec": {"hostPath": {"path": str(tmp_path / "pv-data")}}},
    }


def _pod(volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}], "volumes": volumes},
        "status": {"podIP": "127.16.0.9"},
    }


async def _setup(tmp_path: Path, volumes: list[dict[str, Any]]) -> dict[str, Path]:
    objects = _objects(tmp_path)

    async def fetch(plural: str, _namespace: str | None, name: str) -> dict[str, Any] | None:
        return objects.get((plural, name))

    return await setup_volumes(_pod(volumes), tmp_path / "pod", fetch, NODE, is_root=False)


async def test_configmap_items_modes_and_binary(tmp_path: Path) -> None:
    paths = await _setup(
        tmp_path,
        [
            {"name": "all", "configMap": {"name": "cm", "defaultMode": 0o600}},
            {
                "name": "some",
                "configMap": {"name": "cm", "items": [{"key": "a.conf", "path": "sub/renamed", "mode": 0o400}]},
            },
        ],
    )
    assert (paths["all"] / "a.conf").read_text() == "A" and (paths["all"] / "bin").read_bytes() == b"\x00\x01"
    assert (paths["all"] / "a.conf").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in paths["some"].iterdir() if not p.name.startswith("..")) == ["sub"]
    assert (paths["some"] / "sub" / "renamed").read_text() == "A"
    assert (paths["some"] / "sub" / "renamed").stat().st_mode & 0o777 == 0o400


async def test_secret_projected_downward_and_claims(tmp_path: Path) -> None:
    paths = await _setup(
        tmp_path,
        [
            {"name": "sec", "secret": {"secretName": "sec"}},
            {
                "name": "dw",
                "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {
                            "path": "mem",
                            "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"},
                        },
                    ]
                },
            },
            {
                "name": "proj",
                "projected": {
                    "sources": [
                        {"configMap": {"name": "cm", "items": [{"key": "b.conf", "path": "b"}]}},
                        {"secret": {"name": "sec"}},
                        {"downwardAPI": {"items": [{"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]}},
                        {"serviceAccountToken": {"path": "sa-token"}},
                    ]
                },
            },
            {"name": "data", "persistentVolumeClaim": {"claimName": "claim"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": str(tmp_path / "made"), "type": "DirectoryOrCreate"}},
            {"name": "gone", "configMap": {"name": "missing", "optional": True}},
        ],
    )
    assert (paths["sec"] / "token").read_text() == "t0k"
    assert (paths["dw"] / "labels").read_text() == 'app="web"' and (paths["dw"] / "mem").read_text() == "64"
    assert {p.name for p in paths["proj"].iterdir() if not p.name.startswith("..")} == {"b", "token", "ip", "sa-token"}
    assert (paths["proj"] / "ip").read_text() == "127.16.0.9"
    assert paths["data"] == tmp_path / "pv-data" and paths["data"].is_dir()
    assert paths["scratch"].is_dir() and paths["host"].is_dir()


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        pytest.param({"name": "v", "configMap": {"name": "missing"}}, 'configmap "missing" not found', id="configmap"),
        pytest.param({"name": "v", "secret": {"secretName": "missing"}}, 'secret "missing" not found', id="secret"),
        pytest.param({"name": "v", "persistentVolumeClaim": {"claimName": "unbound"}}, "is not bound", id="unbound"),
        pytest.param(
            {"name": "v", "hostPath": {"path": "/nonexistent/x", "type": "Directory"}},
            "does not exist",
            id="hostpath-type",
        ),
    ],
)
async def test_volume_errors(tmp_path: Path, volume: dict[str, Any], message: str) -> None:
    with pytest.raises(VolumeError, match=message):
        await _setup(tmp_path, [volume])
