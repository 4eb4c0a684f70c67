"""Imported images: OCI layouts / archives (and ``docker save`` archives) unpacked into a local store.

Layout of the store, ``DATA_DIR/images`` (which store a kubelet reads: ``images_dir_for_root``)::

    index.json                  {"refs": {"example.com/hello:1": "sha256:<id>"}}  (id: digest of the stored config)
    <id hex>/config.json    the image config blob (Entrypoint, Cmd, Env, WorkingDir, User)
    <id hex>/rootfs/        the layers applied in order

Layers are applied by hand rather than with ``tarfile.extractall`` so that every rule is ours: absolute
names, ``..`` components and writes through symlinks are refused (a layer must not reach outside the
rootfs), whiteouts (``.wh.NAME``) delete lower-layer entries, opaque markers (``.wh..wh..opq``) empty a
directory of lower-layer content, and device nodes / FIFOs are skipped (never created).  Everything here
blocks; callers run it in a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

INDEX_FILE = "index.json"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_REGISTRY_PREFIXES = ("docker.io/library/", "docker.io/", "index.docker.io/library/", "library/")


class ImageImportError(Exception):
    """The source is not a usable image (bad layout, unsafe layer, unsupported media type)."""


@dataclass(frozen=True)
class ImportedImage:
    """An unpacked image: its id (config digest), rootfs and the runtime part of its config."""

    image_id: str
    rootfs: Path
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    working_dir: str
    user: str


def images_dir_for_root(root_dir: Path) -> Path:
    """The store a kubelet with this ``--root-dir`` reads: DATA_DIR/images, DATA_DIR owning the root.

    DATA_DIR is the parent of the nearest directory named ``kubelet`` among the root and its ancestors:
    ``skiff up`` runs its kubelet with root DATA_DIR/kubelet, a standalone kubelet defaults to
    DATA_DIR/kubelet/NODE.  A root outside that pattern keeps its own store, ROOT/images.
    """
    absolute = Path(os.path.abspath(root_dir))
    for directory in (absolute, *absolute.parents):
        if directory.name == "kubelet":
            return directory.parent / "images"
    return absolute / "images"


def normalize_ref(ref: str) -> str:
    """``hello`` and ``docker.io/library/hello:latest`` name the same image."""
    name = ref
    for prefix in _REGISTRY_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


# ---- reading the source ---------------------------------------------------------------------------------
class _Source:
    """Files of a layout directory or of an archive, by relative path."""

    def __init__(self, path: Path) -> None:
        self.dir = path if path.is_dir() else None
        self.tar = None if self.dir else tarfile.open(path, "r:*")  # closed by close()
        self.members = {} if self.tar is None else {_clean(m.name): m for m in self.tar.getmembers() if m.isfile()}

    def exists(self, name: str) -> bool:
        return (self.dir / name).is_file() if self.dir else _clean(name) in self.members

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        if self.dir is not None:
            with (self.dir / name).open("rb") as f:
                yield f
            return
        assert self.tar is not None
        member = self.members.get(_clean(name))
        handle = self.tar.extractfile(member) if member else None
        if handle is None:
            raise ImageImportError(f"archive has no file {name}")
        with handle:
            yield handle

    def json(self, name: str) -> Any:
        with self.open(name) as f:
            return json.load(f)

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


def _clean(name: str) -> str:
    return str(PurePosixPath(name.lstrip("/"))).removeprefix("./")


def _blob(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"blobs/{algorithm}/{hexpart}"


def _pick(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """linux/<this machine's arch> (amd64 on x86-64), else the only manifest."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    for descriptor in manifests:
        plat = descriptor.get("platform") or {}
        if plat.get("os") == "linux" and plat.get("architecture") == arch:
            return descriptor
    if len(manifests) == 1:
        return manifests[0]
    raise ImageImportError(f"no linux/{arch} manifest among {len(manifests)} in the index")


def _resolve_oci(source: _Source) -> tuple[dict[str, Any], list[tuple[str, str]], list[str]]:
    """(config, [(layer path, media type)], reference names) from index.json, following nested indexes."""
    index = source.json("index.json")
    manifests = index.get("manifests") or []
    if not manifests:
        raise ImageImportError("index.json lists no manifests")
    refs: list[str] = []
    for descriptor in manifests:
        annotations = descriptor.get("annotations") or {}
        name = annotations.get("io.containerd.image.name") or annotations.get("org.opencontainers.image.ref.name")
        if name:
            refs.append(name)
    descriptor = _pick(manifests)
    for _ in range(8):
        if "index" not in descriptor.get("mediaType", "") and "manifest.list" not in descriptor.get("mediaType", ""):
            break
        descriptor = _pick(source.json(_blob(descriptor["digest"])).get("manifests") or [])
    manifest = source.json(_blob(descriptor["digest"]))
    config = source.json(_blob(manifest["config"]["digest"]))
    layers = [(_blob(layer["digest"]), layer.get("mediaType", "")) for layer in manifest.get("layers") or []]
    return config, layers, refs


def _resolve_docker(source: _Source) -> tuple[dict[str, Any], list[tuple[str, str]], list[str]]:
    """A ``docker save`` archive: manifest.json names the config, the layer files and RepoTags."""
    entries = source.json("manifest.json")
    if not entries:
        raise ImageImportError("manifest.json is empty")
    entry = entries[0]
    return source.json(entry["Config"]), [(name, "") for name in entry["Layers"]], list(entry.get("RepoTags") or [])


# ---- applying layers ------------------------------------------------------------------------------------
def _safe_parts(name: str) -> list[str]:
    if name.startswith("/"):
        raise ImageImportError(f"layer entry {name!r} has an absolute path")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise ImageImportError(f"layer entry {name!r} escapes the root filesystem")
    return parts


def _parent_dir(rootfs: Path, parts: list[str]) -> Path:
    """The entry's parent inside rootfs, created as needed; a symlink on the way is refused."""
    current = rootfs
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise ImageImportError(f"layer entry {'/'.join(parts)!r} would be written through a symlink")
        if not current.exists():
            current.mkdir(mode=0o755)
        elif not current.is_dir():
            raise ImageImportError(f"layer entry {'/'.join(parts)!r}: {current.name} is not a directory")
    return current


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _apply_member(tar: tarfile.TarFile, member: tarfile.TarInfo, rootfs: Path, added: set[Path]) -> None:
    parts = _safe_parts(member.name)
    if not parts:
        return
    parent = _parent_dir(rootfs, parts)
    base = parts[-1]
    if base == OPAQUE:
        for child in parent.iterdir():
            if child not in added:
                _remove(child)
        return
    if base.startswith(WHITEOUT):
        _remove(parent / base[len(WHITEOUT) :])
        return
    target = parent / base
    if not (member.isdir() and target.is_dir() and not target.is_symlink()):
        _remove(target)
    if member.isdir():
        target.mkdir(mode=0o700, exist_ok=True)
    elif member.isfile():
        handle = tar.extractfile(member)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            if handle is not None:
                shutil.copyfileobj(handle, out)
    elif member.issym():
        os.symlink(member.linkname, target)
    elif member.islnk():
        link_parts = _safe_parts(member.linkname)
        source = _parent_dir(rootfs, link_parts) / link_parts[-1]
        if source.is_symlink() or not source.is_file():
            raise ImageImportError(f"hard link {member.name!r} → {member.linkname!r} names no regular file")
        os.link(source, target)
    else:
        return  # device nodes and FIFOs are never created
    added.add(target)
    if os.geteuid() == 0:
        os.lchown(target, member.uid, member.gid)
    if not member.issym():
        os.chmod(target, member.mode & 0o7777)


def apply_layer(stream: IO[bytes], rootfs: Path) -> None:
    """Apply one layer (plain or gzip tar, read as a stream) on top of rootfs."""
    added: set[Path] = set()
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            _apply_member(tar, member, rootfs, added)


# ---- the store ------------------------------------------------------------------------------------------
def import_image(path: Path, images_dir: Path, name: str | None = None) -> tuple[str, list[str]]:
    """Unpack the image at path (layout dir or archive) into the store; returns (image id, references)."""
    try:
        image_id, refs = _unpack(path, images_dir)
    except (tarfile.TarError, EOFError, KeyError, TypeError, AttributeError, ValueError) as err:
        raise ImageImportError(f"{path}: malformed image: {err!r}") from err
    names = [name] if name else refs
    _record_refs(images_dir, {normalize_ref(n): image_id for n in names})
    return image_id, [normalize_ref(n) for n in names]


def _unpack(path: Path, images_dir: Path) -> tuple[str, list[str]]:
    source = _Source(path)
    try:
        resolve = _resolve_oci if source.exists("index.json") else _resolve_docker
        if resolve is _resolve_docker and not source.exists("manifest.json"):
            raise ImageImportError(f"{path}: neither an OCI layout (index.json) nor a docker save (manifest.json)")
        config, layers, refs = resolve(source)
        config_bytes = json.dumps(config, sort_keys=True).encode()
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        images_dir.mkdir(parents=True, exist_ok=True)
        final = images_dir / image_id.split(":", 1)[1]
        if not (final / "rootfs").is_dir():
            work = Path(tempfile.mkdtemp(prefix=".import-", dir=images_dir))
            try:
                (work / "rootfs").mkdir(mode=0o755)
                for layer, media_type in layers:
                    if "zstd" in media_type:
                        raise ImageImportError(f"layer media type {media_type} is not supported")
                    with source.open(layer) as f:
                        apply_layer(f, work / "rootfs")
                (work / "config.json").write_bytes(config_bytes)
                _remove(final)
                os.rename(work, final)
            finally:
                _remove(work)
    finally:
        source.close()
    return image_id, refs


def _record_refs(images_dir: Path, refs: dict[str, str]) -> None:
    index = _load_index(images_dir)
    index.update(refs)
    tmp = images_dir / (INDEX_FILE + ".tmp")
    tmp.write_text(json.dumps({"refs": index}, indent=2, sort_keys=True))
    os.replace(tmp, images_dir / INDEX_FILE)


def _load_index(images_dir: Path) -> dict[str, str]:
    try:
        return dict(json.loads((images_dir / INDEX_FILE).read_text()).get("refs") or {})
    except (OSError, ValueError):
        return {}


def list_images(images_dir: Path) -> list[tuple[str, str]]:
    """[(reference, image id)] sorted by reference."""
    return sorted(_load_index(images_dir).items())


def _id_from(rootfs: Path, table: str, name: str) -> int | None:
    """A user or group name (or number) as a number, looked up in the image's own /etc/passwd or /etc/group."""
    if name.isdigit():
        return int(name)
    try:
        lines = (rootfs / "etc" / table).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def image_user(rootfs: Path, user: str) -> tuple[int, int | None] | str | None:
    """The config's ``User`` ("name", "uid", "uid:gid", "name:group") as (uid, gid); a string says what failed.

    Without a group the user's primary group from the image's passwd applies, as container runtimes do.
    """
    if not user:
        return None
    name, _, group = user.partition(":")
    uid = _id_from(rootfs, "passwd", name)
    if uid is None:
        return f"unable to find user {name}: no matching entries in passwd file"
    if group:
        gid = _id_from(rootfs, "group", group)
        return (uid, gid) if gid is not None else f"unable to find group {group}: no matching entries in group file"
    primary = None
    try:
        for line in (rootfs / "etc" / "passwd").read_text(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) > 3 and fields[2] == str(uid) and fields[3].isdigit():
                primary = int(fields[3])
                break
    except OSError:
        pass
    return uid, primary


def lookup(images_dir: Path, ref: str) -> ImportedImage | None:
    """The imported image a reference names, or None (then the built-in rules apply)."""
    image_id = _load_index(images_dir).get(normalize_ref(ref))
    if image_id is None:
        return None
    directory = images_dir / image_id.split(":", 1)[1]
    try:
        config = json.loads((directory / "config.json").read_text()).get("config") or {}
    except (OSError, ValueError):
        return None
    return ImportedImage(
        image_id=image_id,
        rootfs=directory / "rootfs",
        entrypoint=tuple(config.get("Entrypoint") or ()),
        cmd=tuple(config.get("Cmd") or ()),
        env=tuple(config.get("Env") or ()),
        working_dir=config.get("WorkingDir") or "",
        user=config.get("User") or "",
    )
