"""The local image store: image references resolve to programs on this host.

No container engine runs here, so an image is a promise about which programs
a container's command finds.  Resolution rules:

- ``skiff:<version>`` (the installed version, or ``latest``) → the installed Skiff
  (its virtualenv's ``bin`` first on PATH, default entrypoint ``python -m skiff.cli.main``);
- python images (``python``, ``python:3*``, ``docker.io/library/python``…) → the host Python;
- shell images (busybox, alpine, ubuntu, debian, …) → the host shell and its commands;
- etcd images (``quay.io/coreos/etcd:v3.4.*``, ``gcr.io/etcd-development/etcd:v3.5.*``,
  ``registry.k8s.io/etcd:3.5.*``) → the etcd 3.4 / 3.5 binaries installed on the host;
- ``registry.k8s.io/pause`` → ``sleep infinity``.

Images imported with ``skiff image import`` (see ``image_store``) win over these rules, but only when the
reference is in the store: such a container runs chrooted into the image's rootfs (``ResolvedImage.rootfs``).
Anything else raises ``ImageError`` and the pod shows ErrImagePull / ImagePullBackOff.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from skiff import __version__
from skiff.etcd_binaries import find_binaries
from skiff.kubelet.image_store import ImportedImage, image_user, lookup

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SHELL_IMAGES = frozenset({"busybox", "alpine", "ubuntu", "debian", "centos", "fedora", "rockylinux", "bash"})
_REGISTRY_PREFIXES = ("docker.io/library/", "docker.io/", "index.docker.io/library/", "library/")


class ImageError(Exception):
    """The reference names no image this node can provide."""


@dataclass(frozen=True)
class ResolvedImage:
    """What a container of this image runs: default entrypoint, PATH prefix and command aliases."""

    ref: str
    image_id: str
    entrypoint: tuple[str, ...]
    path_prefix: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    #: Imported images only: the root filesystem to chroot into, the config's Cmd, Env and WorkingDir.
    rootfs: str | None = None
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    #: The config's User as (uid, gid), or why it cannot be resolved; None: root / the pod's securityContext.
    user: tuple[int, int | None] | str | None = None

    def argv(self, command: list[str], args: list[str]) -> list[str]:
        """Upstream rule: ``command`` replaces the entrypoint, ``args`` replace the image's cmd."""
        if self.rootfs is not None:
            # Paths are inside the rootfs; the image's Cmd applies only when neither command nor args is given.
            return [*command, *args] if command else [*self.entrypoint, *(args or self.cmd)]
        argv = list(command) if command else [*self.entrypoint]
        argv += args
        if argv and argv[0] in self.aliases:
            argv[0] = self.aliases[argv[0]]
        elif argv and argv[0].startswith("/") and not os.path.exists(argv[0]):
            argv[0] = self.aliases.get(os.path.basename(argv[0]), os.path.basename(argv[0]))
        return argv

    def path(self) -> str:
        if self.rootfs is not None:
            return dict(self.env).get("PATH", HOST_PATH)
        return ":".join([*self.path_prefix, HOST_PATH])


def _from_imported(ref: str, image: ImportedImage) -> ResolvedImage:
    env = tuple((k, v) for k, _, v in (item.partition("=") for item in image.env))
    return ResolvedImage(
        ref,
        image.image_id,
        image.entrypoint,
        rootfs=str(image.rootfs),
        cmd=image.cmd,
        env=env,
        working_dir=image.working_dir,
        user=image_user(image.rootfs, image.user),
    )


def unrunnable_in_rootfs(argv: list[str], path: str, rootfs: str, requested: str) -> str | None:
    """Why a command cannot run in an imported image (the runtime's words), or None.

    ``lexists``: a link in the image may point to an absolute path that only resolves after the chroot.
    """
    first = argv[0] if argv else ""
    if first.startswith("/"):
        found = os.path.lexists(rootfs + first)
    else:
        found = bool(first) and any(os.path.lexists(f"{rootfs}/{d}/{first}") for d in path.split(":") if d)
    if found:
        return None
    if requested.startswith("/"):
        return f'exec: "{requested}": stat {requested}: no such file or directory'
    return f'exec: "{requested}": executable file not found in $PATH'


def split_reference(ref: str) -> tuple[str, str]:
    """(repository without docker.io/library, tag) — a digest counts as the tag."""
    name = ref
    for prefix in _REGISTRY_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if "@" in name:
        name, digest = name.split("@", 1)
        return name, digest
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
        return name, tag
    return name, "latest"


class ImageStore:
    """Resolves references; etcd versions are probed once (``etcd --version``) and cached.

    ``images_dir`` is the imported-image store (``DATA_DIR/images``); None: built-in rules only.
    """

    def __init__(self, images_dir: Path | None = None) -> None:
        self.images_dir = images_dir
        self._etcd: dict[str, Path] | None = None
        self._lock = asyncio.Lock()

    async def resolve(self, ref: str) -> ResolvedImage:
        if self.images_dir is not None and ref:
            imported = await asyncio.to_thread(lookup, self.images_dir, ref)
            if imported is not None:
                return await asyncio.to_thread(_from_imported, ref, imported)
        return await self._resolve_builtin(ref)

    async def _resolve_builtin(self, ref: str) -> ResolvedImage:
        repo, tag = split_reference(ref)
        base = repo.rsplit("/", 1)[-1]
        image_id = f"{repo}@sha256:{hashlib.sha256(ref.encode()).hexdigest()}"
        if repo == "skiff":
            if tag.removeprefix("v") not in (__version__, "latest"):
                installed = f"this node has Skiff {__version__} (image skiff:{__version__})"
                raise ImageError(f'failed to resolve reference "{ref}": {installed}')
            bindir = str(Path(sys.executable).parent)
            return ResolvedImage(ref, image_id, (sys.executable, "-m", "skiff.cli.main"), (bindir,))
        if base in ("python", "pypy") and "/" not in repo.removeprefix("library/"):
            # The interpreter running Skiff: always present, whatever the host's PATH holds.
            python = sys.executable
            return ResolvedImage(ref, image_id, ("python3",), (), {"python": python, "python3": python})
        if base in _SHELL_IMAGES and "/" not in repo:
            return ResolvedImage(ref, image_id, ("sh",))
        if base == "pause":
            return ResolvedImage(ref, image_id, ("sleep", "infinity"))
        if base == "etcd":
            return await self._resolve_etcd(ref, image_id, tag)
        raise ImageError(f'failed to resolve reference "{ref}": no local image provides it (skiff image store)')

    async def _resolve_etcd(self, ref: str, image_id: str, tag: str) -> ResolvedImage:
        match = re.match(r"v?(\d+)\.(\d+)", tag)
        if not match:
            raise ImageError(f'failed to resolve reference "{ref}": etcd tag {tag!r} has no version')
        wanted = f"{match.group(1)}.{match.group(2)}."
        binaries = await self._etcd_binaries()
        for version, directory in sorted(binaries.items()):
            if version.startswith(wanted):
                aliases = {name: str(directory / name) for name in ("etcd", "etcdctl", "etcdutl")}
                return ResolvedImage(ref, image_id, (str(directory / "etcd"),), (str(directory),), aliases)
        raise ImageError(f'failed to resolve reference "{ref}": no etcd {wanted}x binary on this node')

    async def _etcd_binaries(self) -> dict[str, Path]:
        async with self._lock:
            if self._etcd is None:
                found = await asyncio.to_thread(find_binaries)
                self._etcd = {version: binary.etcd.parent for version, binary in found.items()}
            return self._etcd
