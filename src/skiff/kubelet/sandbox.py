"""A pod's sandbox on disk: its directory, /etc/resolv.conf and /etc/hosts, and the state file.

The state file (``{root}/pods/{uid}/state.json``) records the pod's address and,
per container, the PID, its /proc start time and restart count, so a restarted
kubelet re-attaches to running processes instead of starting duplicates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any


def pod_dir(root: Path, uid: str) -> Path:
    return root / "pods" / uid


def resolv_conf(pod: dict[str, Any], cluster_dns: str, domain: str) -> str:
    """ClusterFirst (the default): cluster DNS with the namespace search path; Default: the host's file."""
    spec = pod["spec"]
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "Default" or (policy == "ClusterFirst" and spec.get("hostNetwork")):
        try:
            return Path("/etc/resolv.conf").read_text()
        except OSError:
            return ""
    ns = pod["metadata"]["namespace"]
    servers, searches, options = [cluster_dns], [f"{ns}.svc.{domain}", f"svc.{domain}", domain], ["ndots:5"]
    config = spec.get("dnsConfig") or {}
    if policy == "None":
        servers, searches, options = [], [], []
    servers += config.get("nameservers") or []
    searches += config.get("searches") or []
    for option in config.get("options") or []:
        options.append(f"{option['name']}:{option['value']}" if option.get("value") else option["name"])
    lines = [f"nameserver {s}" for s in servers]
    if searches:
        lines.append("search " + " ".join(searches))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def hosts_file(pod: dict[str, Any], pod_ip: str, domain: str) -> str:
    spec, meta = pod["spec"], pod["metadata"]
    hostname = spec.get("hostname") or meta["name"]
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if spec.get("subdomain"):
        lines.append(f"{pod_ip}\t{hostname}.{spec['subdomain']}.{meta['namespace']}.svc.{domain}\t{hostname}")
    else:
        lines.append(f"{pod_ip}\t{hostname}")
    for alias in spec.get("hostAliases") or []:
        lines.append(f"{alias['ip']}\t" + "\t".join(alias.get("hostnames") or []))
    return "\n".join(lines) + "\n"


def write_sandbox(directory: Path, pod: dict[str, Any], pod_ip: str, cluster_dns: str, domain: str) -> None:
    etc = directory / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(resolv_conf(pod, cluster_dns, domain))
    (etc / "hosts").write_text(hosts_file(pod, pod_ip, domain))


def remove_pod_dir(path: Path) -> None:
    """Blocking: unmount tmpfs emptyDirs, then remove the pod's directory (logs included)."""
    for volume in (path / "volumes").glob("*"):
        if volume.is_mount():
            subprocess.run(["umount", "-l", str(volume)], check=False)
    shutil.rmtree(path, ignore_errors=True)


def save_state(directory: Path, state: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "state.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # container env may hold Secret values
    with os.fdopen(fd, "w") as out:
        json.dump(state, out)
    os.replace(tmp, directory / "state.json")


def load_states(root: Path) -> dict[str, dict[str, Any]]:
    """{pod uid: state} for every pod directory with a state file."""
    states: dict[str, dict[str, Any]] = {}
    for path in (root / "pods").glob("*/state.json"):
        try:
            states[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return states
