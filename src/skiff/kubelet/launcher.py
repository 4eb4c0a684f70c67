"""Container launcher: joins cgroups, enters a private mount namespace, mounts, then execs.

Run as ``python -m skiff.kubelet.launcher SPEC.json`` by the pod runtime when
the kubelet is root.  The spec names the cgroup directories to join, bind
mounts ({source, target, readOnly}) to make inside a fresh mount namespace
(volumes at their mountPath, the pod's /etc/resolv.conf and /etc/hosts), the
hostname (its own UTS namespace), the user and groups to switch to, and the
argv/env/cwd to exec.  A missing mount point is created on the host (an
empty directory or file), since there is no container root filesystem.

With ``rootfs`` (an imported image) the container gets one: an overlay of the
image's rootfs (read-only lower) and a per-container writable layer under
``rootfsScratch`` (the plain rootfs when the kernel refuses the overlay), with
a fresh /proc, a small /dev and the bind mounts placed inside it (symlinks in
the image resolve within it), then chroot.  Mount points then live in the
writable layer, not on the host.
Imports stay minimal: this runs once per container start.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _bind(libc: ctypes.CDLL, source: str, target: str, read_only: bool) -> None:
    target_path = Path(target)
    if not target_path.exists() and not target_path.is_symlink():
        if Path(source).is_dir():
            target_path.mkdir(parents=True, exist_ok=True)
        else:
            target_path.parent.mkdir(parents=True, exist_ok=True)
            target_path.touch()
    _check(libc.mount(source.encode(), target.encode(), None, MS_BIND | MS_REC, None), f"bind {source} {target}")
    if read_only:
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC
        _check(libc.mount(None, target.encode(), None, flags, None), f"remount ro {target}")


def _inside(rootfs: str, path: str) -> str:
    """Host path of ``path`` as seen from inside rootfs: symlinks are followed relative to rootfs, not the host."""
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(rootfs, *resolved, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError(40, f"too many levels of symbolic links: {path}")
            link = os.readlink(candidate)
            if link.startswith("/"):
                resolved = []
            pending = [p for p in link.split("/") if p not in ("", ".")] + pending
            continue
        resolved.append(part)
    return os.path.join(rootfs, *resolved)


def _root_dir(libc: ctypes.CDLL, rootfs: str, scratch: str | None) -> str:
    """The directory to chroot into: an overlay with a writable layer if possible, else rootfs itself."""
    if scratch:
        upper, work, merged = (os.path.join(scratch, d) for d in ("upper", "work", "merged"))
        for directory in (upper, work, merged):
            os.makedirs(directory, exist_ok=True)
        options = f"lowerdir={rootfs},upperdir={upper},workdir={work}".encode()
        if libc.mount(b"overlay", merged.encode(), b"overlay", 0, options) == 0:
            return merged
        print(f"skiff launcher: overlay refused ({os.strerror(ctypes.get_errno())}); using the rootfs", file=sys.stderr)
    _check(libc.mount(rootfs.encode(), rootfs.encode(), None, MS_BIND | MS_REC, None), f"bind {rootfs}")
    return rootfs


def _enter_rootfs(libc: ctypes.CDLL, spec: dict[str, Any]) -> None:
    root = _root_dir(libc, spec["rootfs"], spec.get("rootfsScratch"))
    proc = _inside(root, "/proc")
    os.makedirs(proc, exist_ok=True)
    _check(libc.mount(b"proc", proc.encode(), b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount /proc")
    dev = _inside(root, "/dev")
    os.makedirs(dev, exist_ok=True)
    _check(libc.mount(b"tmpfs", dev.encode(), b"tmpfs", MS_NOSUID | MS_NOEXEC, b"mode=755"), "mount /dev")
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        if os.path.exists(f"/dev/{node}"):
            _bind(libc, f"/dev/{node}", os.path.join(dev, node), False)
    os.makedirs(os.path.join(dev, "shm"), exist_ok=True)
    for mount in spec["mounts"]:
        _bind(libc, mount["source"], _inside(root, mount["target"]), bool(mount.get("readOnly")))
    os.chroot(root)


def _switch_user(spec: dict[str, object]) -> None:
    """securityContext runAsUser / runAsGroup / supplementalGroups, applied just before exec."""
    groups = spec.get("supplementalGroups")
    gid = spec.get("runAsGroup")
    uid = spec.get("runAsUser")
    if isinstance(groups, list):
        os.setgroups([int(g) for g in groups])
    if isinstance(gid, int):
        os.setgid(gid)
    if isinstance(uid, int):
        if not isinstance(groups, list):
            os.setgroups([gid] if isinstance(gid, int) else [])
        os.setuid(uid)


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    for cgroup in spec.get("cgroups", []):
        (Path(cgroup) / "cgroup.procs").write_text(str(os.getpid()))
    if spec.get("mounts") or spec.get("rootfs"):
        libc = _libc()
        _check(libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare(CLONE_NEWNS|CLONE_NEWUTS)")
        hostname = spec.get("hostname", "").encode()
        if hostname:
            _check(libc.sethostname(hostname, len(hostname)), "sethostname")
        _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
        if spec.get("rootfs"):
            _enter_rootfs(libc, spec)
        else:
            for mount in spec["mounts"]:
                _bind(libc, mount["source"], mount["target"], bool(mount.get("readOnly")))
    os.chdir(spec.get("cwd") or "/")
    _switch_user(spec)
    args = spec["argv"]
    try:
        os.execvpe(args[0], args, spec["env"])
    except OSError as err:
        print(f"skiff launcher: exec {args[0]!r}: {err.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
