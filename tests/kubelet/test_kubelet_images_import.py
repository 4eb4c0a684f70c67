"""Imported images: layer rules, `skiff image import/load/list`, and pods running chrooted into the rootfs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from apiserver_harness import RunningApiServer
from kubelet_harness import KubeletProcess, client_for, container_status, pod_spec, wait_pod

from skiff.client.resources import PODS
from skiff.kubelet.cgroups import Cgroups
from skiff.kubelet.container import ContainerRunner
from skiff.kubelet.context import NodeServices, PodContext
from skiff.kubelet.env import NodeResources
from skiff.kubelet.image_store import (
    ImageImportError,
    apply_layer,
    image_user,
    images_dir_for_root,
    import_image,
    lookup,
    normalize_ref,
)
from skiff.kubelet.images import ImageStore

HELLO = "hello from the imported image\n"


# ---- building images ------------------------------------------------------------------------------------
def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = None, **attrs: Any) -> Any:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = attrs.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, (data if data is not None else (b"" if kind == tarfile.REGTYPE else None))


def _host_rootfs() -> dict[str, Path]:
    """Path in the image → host file: /bin/sh, cat and sleep, the libraries ldd lists and the loader."""
    files = {"bin/sh": Path("/bin/sh")}
    for tool in ("cat", "sleep"):
        found = shutil.which(tool)
        assert found, f"the host has no {tool}"
        files[f"bin/{tool}"] = Path(found)
    for binary in list(files.values()):
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
        for match in re.finditer(r"(?:=>\s*)?(/\S+)\s+\(0x", out):
            files[match.group(1).lstrip("/")] = Path(match.group(1))
    return files


def _rootfs_layer() -> bytes:
    entries = []
    dirs: set[str] = set()
    for inside, host in sorted(_host_rootfs().items()):
        parts = inside.split("/")
        for i in range(1, len(parts)):
            directory = "/".join(parts[:i])
            if directory not in dirs:
                dirs.add(directory)
                entries.append(_entry(directory, tarfile.DIRTYPE))
        entries.append(_entry(inside, data=host.resolve().read_bytes(), mode=0o755))
    entries.append(_entry("hello.txt", data=HELLO.encode()))
    return _tar(entries, gz=True)


def build_oci_archive(path: Path, ref_name: str | None = None) -> None:
    """An OCI image archive (oci-layout, index.json, blobs/sha256/...) with one gzip layer."""
    blobs: dict[str, bytes] = {}

    def add(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    layer = _rootfs_layer()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["cat /hello.txt; sleep 3600"],
            "Env": ["PATH=/usr/bin:/bin", "GREETING=from-image-config", "OVERRIDDEN=image"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **add(json.dumps(config).encode())},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **add(layer)}],
    }
    descriptor: dict[str, Any] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **add(json.dumps(manifest).encode()),
        "platform": {"os": "linux", "architecture": "amd64"},
    }
    if ref_name:
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    index = {"schemaVersion": 2, "manifests": [descriptor]}
    entries = [
        _entry("oci-layout", data=b'{"imageLayoutVersion": "1.0.0"}'),
        _entry("index.json", data=json.dumps(index).encode()),
        _entry("blobs", tarfile.DIRTYPE),
        _entry("blobs/sha256", tarfile.DIRTYPE),
    ]
    entries += [_entry(f"blobs/sha256/{d.split(':')[1]}", data=data) for d, data in blobs.items()]
    path.write_bytes(_tar(entries))


def skiff_image(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skiff.cli.main", "image", *args], capture_output=True, text=True, timeout=120
    )


# ---- layer rules ----------------------------------------------------------------------------------------
def test_whiteouts_and_opaque_directories(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    lower = [_entry("a", tarfile.DIRTYPE), _entry("a/x", data=b"x"), _entry("a/y", data=b"y")]
    lower += [_entry("b", tarfile.DIRTYPE), _entry("b/old", data=b"old"), _entry("b/sub", tarfile.DIRTYPE)]
    lower += [_entry("b/sub/deep", data=b"deep"), _entry("gone", tarfile.DIRTYPE), _entry("gone/f", data=b"f")]
    apply_layer(io.BytesIO(_tar(lower, gz=True)), rootfs)
    upper = [_entry("a/.wh.x"), _entry("b/new", data=b"new"), _entry("b/.wh..wh..opq"), _entry(".wh.gone")]
    upper += [_entry("a/y", data=b"y2")]
    apply_layer(io.BytesIO(_tar(upper)), rootfs)
    assert sorted(p.name for p in (rootfs / "a").iterdir()) == ["y"]
    assert (rootfs / "a" / "y").read_bytes() == b"y2"
    assert sorted(p.name for p in (rootfs / "b").iterdir()) == ["new"]  # same-layer entries survive the opaque
    assert not (rootfs / "gone").exists()


@pytest.mark.parametrize(
    "entries",
    [
        [_entry("../escape", data=b"x")],
        [_entry("/abs", data=b"x")],
        [_entry("ok/../../escape", data=b"x")],
        [_entry("link", tarfile.SYMTYPE, linkname="/tmp"), _entry("link/planted", data=b"x")],
        [_entry("hard", tarfile.LNKTYPE, linkname="../../etc/passwd")],
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "through-symlink", "hardlink-escape"],
)
def test_layer_entries_that_escape_are_refused(tmp_path: Path, entries: list[Any]) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    with pytest.raises(ImageImportError):
        apply_layer(io.BytesIO(_tar(entries)), rootfs)
    assert not (tmp_path / "escape").exists()
    assert not Path("/tmp/planted").exists()


def test_device_nodes_are_not_created(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    entries = [_entry("dev", tarfile.DIRTYPE), _entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3)]
    entries += [_entry("dev/fifo", tarfile.FIFOTYPE), _entry("link", tarfile.SYMTYPE, linkname="/bin/sh")]
    apply_layer(io.BytesIO(_tar(entries)), rootfs)
    assert list((rootfs / "dev").iterdir()) == []
    assert os.readlink(rootfs / "link") == "/bin/sh"


def test_kubelet_store_is_in_the_data_dir_owning_its_root(tmp_path: Path) -> None:
    assert images_dir_for_root(tmp_path / "kubelet") == tmp_path / "images"  # skiff up
    assert images_dir_for_root(tmp_path / "kubelet" / "node-a") == tmp_path / "images"  # standalone default
    assert images_dir_for_root(tmp_path / "elsewhere") == tmp_path / "elsewhere" / "images"


def test_reference_normalization() -> None:
    assert normalize_ref("hello") == "hello:latest"
    assert normalize_ref("docker.io/library/hello:latest") == "hello:latest"
    assert normalize_ref("example.com:5000/team/app") == "example.com:5000/team/app:latest"
    assert normalize_ref("example.com/hello:1") == "example.com/hello:1"


# ---- the CLI and the store ------------------------------------------------------------------------------
async def test_import_load_list_and_resolution(tmp_path: Path) -> None:
    archive = tmp_path / "hello.tar"
    build_oci_archive(archive, ref_name="example.com/annotated:2")
    data = tmp_path / "data"
    done = skiff_image("import", str(archive), "--name", "example.com/hello:1", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert "example.com/hello:1" in done.stdout
    done = skiff_image("load", "-i", str(archive), "--data-dir", str(data))  # the annotation names it
    assert done.returncode == 0, done.stderr
    layout = tmp_path / "layout"
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    done = skiff_image("import", str(layout), "--name", "from-dir", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    listing = skiff_image("list", "--data-dir", str(data)).stdout
    for ref in ("example.com/hello:1", "example.com/annotated:2", "from-dir:latest"):
        assert ref in listing
    image = lookup(data / "images", "example.com/hello:1")
    assert image is not None
    assert (image.rootfs / "hello.txt").read_text() == HELLO
    assert image.entrypoint == ("/bin/sh", "-c")
    assert image.cmd == ("cat /hello.txt; sleep 3600",)
    assert (image.rootfs / "bin" / "sh").is_file()
    bad = skiff_image("import", str(tmp_path / "missing.tar"), "--data-dir", str(data))
    assert bad.returncode == 1
    assert "cannot import" in bad.stderr

    store = ImageStore(data / "images")
    resolved = await store.resolve("example.com/hello:1")
    assert resolved.rootfs == str(image.rootfs)
    assert resolved.argv([], []) == ["/bin/sh", "-c", "cat /hello.txt; sleep 3600"]
    assert resolved.argv([], ["echo hi"]) == ["/bin/sh", "-c", "echo hi"]
    assert resolved.argv(["/bin/cat"], []) == ["/bin/cat"]  # command drops the image's Cmd too
    assert resolved.argv(["/bin/cat"], ["/hello.txt"]) == ["/bin/cat", "/hello.txt"]
    assert resolved.path() == "/usr/bin:/bin"
    builtin = await store.resolve("busybox")  # not imported: the built-in rules, unchanged
    assert builtin.rootfs is None
    assert builtin.entrypoint == ("sh",)


def test_nested_index_picks_this_platform(tmp_path: Path) -> None:
    """index.json → image index (arm64 listed first) → the amd64 manifest."""
    plain = tmp_path / "plain.tar"
    build_oci_archive(plain)
    layout = tmp_path / "layout"
    with tarfile.open(plain) as tar:
        tar.extractall(layout, filter="data")
    top = json.loads((layout / "index.json").read_text())
    good = top["manifests"][0]
    decoy = {**good, "digest": "sha256:" + "0" * 64, "platform": {"os": "linux", "architecture": "arm64"}}
    nested = json.dumps({"schemaVersion": 2, "manifests": [decoy, good]}).encode()
    digest = hashlib.sha256(nested).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(nested)
    index_descriptor = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": f"sha256:{digest}"}
    index_descriptor["annotations"] = {"org.opencontainers.image.ref.name": "example.com/multi:1"}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [index_descriptor]}))
    _, refs = import_image(layout, tmp_path / "images")
    assert refs == ["example.com/multi:1"]
    image = lookup(tmp_path / "images", "example.com/multi:1")
    assert image is not None
    assert (image.rootfs / "hello.txt").read_text() == HELLO


def test_malformed_sources_are_import_errors(tmp_path: Path) -> None:
    not_tar = tmp_path / "junk.tar"
    not_tar.write_bytes(b"not an archive at all" * 100)
    with pytest.raises(ImageImportError):
        import_image(not_tar, tmp_path / "images")
    empty = tmp_path / "empty.tar"
    empty.write_bytes(_tar([_entry("oci-layout", data=b"{}")]))
    with pytest.raises(ImageImportError, match="neither an OCI layout"):
        import_image(empty, tmp_path / "images")
    assert lookup(tmp_path / "images", "anything") is None


def test_docker_save_archive(tmp_path: Path) -> None:
    config = {"config": {"Entrypoint": ["/bin/app"], "Env": ["A=1"], "WorkingDir": "/srv", "User": "7"}}
    layer = _tar([_entry("bin", tarfile.DIRTYPE), _entry("bin/app", data=b"#!/bin/sh\n", mode=0o755)])
    manifest = [{"Config": "cfg.json", "RepoTags": ["docker.io/library/dsave:3"], "Layers": ["l1/layer.tar"]}]
    entries = [
        _entry("manifest.json", data=json.dumps(manifest).encode()),
        _entry("cfg.json", data=json.dumps(config).encode()),
    ]
    entries += [_entry("l1", tarfile.DIRTYPE), _entry("l1/layer.tar", data=layer)]
    archive = tmp_path / "docker.tar"
    archive.write_bytes(_tar(entries))
    image_id, refs = import_image(archive, tmp_path / "images")
    assert refs == ["dsave:3"]
    image = lookup(tmp_path / "images", "dsave:3")
    assert image is not None
    assert image.image_id == image_id
    assert image.entrypoint == ("/bin/app",)
    assert (image.working_dir, image.user, image.env) == ("/srv", "7", ("A=1",))
    assert (image.rootfs / "bin" / "app").read_bytes() == b"#!/bin/sh\n"


def test_image_user_resolves_in_the_image(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    assert image_user(tmp_path, "") is None
    assert image_user(tmp_path, "app") == (1000, 1001)
    assert image_user(tmp_path, "app:staff") == (1000, 50)
    assert image_user(tmp_path, "123:456") == (123, 456)
    assert image_user(tmp_path, "nobody") == "unable to find user nobody: no matching entries in passwd file"


def _runner(tmp_path: Path, isolate: bool, container: dict[str, Any]) -> ContainerRunner:
    archive = tmp_path / "hello.tar"
    build_oci_archive(archive)
    import_image(archive, tmp_path / "images", "example.com/hello:1")
    events: list[tuple[str, str, str]] = []
    node = NodeServices(
        "node-a",
        "127.0.1.1",
        tmp_path / "root",
        ImageStore(tmp_path / "images"),
        Cgroups(tmp_path / "no-cgroups"),
        NodeResources(1000, 1 << 30),
        _no_lookup,
        lambda _pod: {},
        isolate,
        lambda _pod, *event: events.append(event),
    )
    pod = pod_spec("p", "node-a", [container])
    pod["metadata"]["uid"] = "uid-1"
    ctx = PodContext(node, pod, tmp_path / "root" / "pods" / "uid-1", "127.16.0.2", lambda: None)
    return ContainerRunner(ctx, container)


async def _no_lookup(_kind: str, _namespace: str, _name: str) -> dict[str, str] | None:
    return None


async def test_imported_image_without_root_is_refused(tmp_path: Path) -> None:
    runner = _runner(tmp_path, False, {"name": "main", "image": "example.com/hello:1"})
    assert not await runner.start()
    waiting = runner.record.state["waiting"]
    assert waiting["reason"] == "CreateContainerError"
    assert "not running as root" in waiting["message"]
    assert runner.process is None


async def test_missing_command_in_the_rootfs_is_run_container_error(tmp_path: Path) -> None:
    runner = _runner(tmp_path, True, {"name": "main", "image": "example.com/hello:1", "command": ["python3"]})
    assert not await runner.start()  # the host has python3; the image does not
    waiting = runner.record.state["waiting"]
    assert waiting["reason"] == "RunContainerError"
    assert 'exec: "python3": executable file not found in $PATH' in waiting["message"]


# ---- pods ---------------------------------------------------------------------------------------------
def _log(kubelet: KubeletProcess, pod: dict[str, Any], container: str = "main", restart: int = 0) -> str:
    path = kubelet.root / "pods" / pod["metadata"]["uid"] / "logs" / container / f"{restart}.log"
    return path.read_text() if path.exists() else ""


async def test_pods_run_inside_the_imported_rootfs(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    archive = kubelet.base.parent / "hello.tar"
    build_oci_archive(archive)
    # The kubelet's root is DATA/kubelet/root here, so its image store is DATA/images (images_dir_for_root).
    done = skiff_image("import", str(archive), "--name", "example.com/hello:1", "--data-dir", str(kubelet.base.parent))
    assert done.returncode == 0, done.stderr
    image = "example.com/hello:1"
    overriding = {
        "name": "main",
        "image": image,
        "command": ["/bin/sh", "-c", 'echo "greeting=$GREETING overridden=$OVERRIDDEN"; cd /; echo root: *'],
        "env": [{"name": "OVERRIDDEN", "value": "pod"}],
    }
    async with client_for(apiserver) as client:
        # An exec probe runs inside the rootfs too (the host has no /hello.txt).
        probe = {"exec": {"command": ["cat", "/hello.txt"]}, "periodSeconds": 1}
        hello = {"name": "main", "image": image, "readinessProbe": probe}
        await client.create(PODS, pod_spec("hello", kubelet.name, [hello]))
        await client.create(PODS, pod_spec("listing", kubelet.name, [overriding], restartPolicy="Never"))
        pod = await wait_pod(client, "hello", lambda p: p["status"].get("phase") == "Running")
        await wait_pod(client, "hello", lambda p: HELLO in _log(kubelet, p))
        await wait_pod(client, "hello", lambda p: container_status(p).get("ready") is True)
        imported = lookup(kubelet.base.parent / "images", image)
        assert imported is not None
        assert container_status(pod)["imageID"] == imported.image_id
        done_pod = await wait_pod(client, "listing", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"))
        assert done_pod["status"]["phase"] == "Succeeded", done_pod["status"]
        output = _log(kubelet, done_pod)
        assert "greeting=from-image-config overridden=pod" in output
        root_line = next(line for line in output.splitlines() if line.startswith("root: "))
        entries = set(root_line.split()[1:])
        assert {"bin", "hello.txt"} <= entries
        assert not entries & {"home", "var", "usr", "work", "tmp"}, root_line  # not the host's /
        await client.delete(PODS, "hello", "default")
        await client.delete(PODS, "listing", "default")


async def test_writes_stay_in_the_container(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    """Each run gets a fresh writable layer over the image; the imported rootfs itself is never written."""
    archive = kubelet.base.parent / "hello.tar"
    build_oci_archive(archive)
    done = skiff_image("import", str(archive), "--name", "example.com/hello:1", "--data-dir", str(kubelet.base.parent))
    assert done.returncode == 0, done.stderr
    script = "if [ -e /marker ]; then echo stale; else echo fresh; fi; echo x > /marker; exit 1"
    container = {"name": "main", "image": "example.com/hello:1", "args": [script]}
    async with client_for(apiserver) as client:
        await client.create(PODS, pod_spec("writer", kubelet.name, [container]))
        pod = await wait_pod(client, "writer", lambda p: container_status(p).get("restartCount", 0) >= 1)
        await wait_pod(client, "writer", lambda p: "fresh" in _log(kubelet, p, restart=1), deadline_s=60)
        assert _log(kubelet, pod) == "fresh\n"
        assert "stale" not in _log(kubelet, pod, restart=1)
        image = lookup(kubelet.base.parent / "images", "example.com/hello:1")
        assert image is not None
        assert not (image.rootfs / "marker").exists()
        assert not (image.rootfs / "etc").exists()  # mount points for resolv.conf/hosts live in the upper layer
        await client.delete(PODS, "writer", "default")
