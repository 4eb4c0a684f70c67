"""``skiff token create``: a bootstrap token another node's kubelet joins with (as ``kubeadm token create``).

The token is a kube-system Secret ``bootstrap-token-<id>`` of type
``bootstrap.kubernetes.io/token`` (usages authentication and signing, group
``system:bootstrappers:kubeadm:default-node-token``), created through the API
with --kubeconfig; the API server's bootstrap token authenticator
(``skiff.apiserver.bootstrap_tokens``) accepts it until it expires.  The
token is printed alone on stdout.  ``skiff up`` keeps one in
``DATA_DIR/join-token`` (``ensure_join_token``) and prints a join line; like
``kubeadm init`` it also binds the node-token group to the roles that let a
joining kubelet post its CSR and have it auto-approved
(``ensure_bootstrap_rbac``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from skiff.apiserver.bootstrap_tokens import (
    GROUP_PATTERN,
    NAMESPACE,
    NODE_TOKEN_GROUP,
    SECRET_PREFIX,
    generate_token,
    has_expired,
    parse_token,
    token_secret,
    user_for_secret,
)
from skiff.client import ApiClient, ApiError, ClientConfig, ConfigError, is_already_exists, is_not_found
from skiff.client.resources import CLUSTERROLEBINDINGS, SECRETS
from skiff.client.timefmt import rfc3339

#: kubeadm's default token lifetime.
DEFAULT_TTL_S = 24 * 3600.0
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """Seconds of a Go-style duration (``24h``, ``1h30m``, ``90s``; ``0`` = never expires)."""
    text = text.strip()
    if text == "0":
        return 0.0
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"invalid duration {text!r} (want e.g. 24h, 30m, 1h30m, or 0 for never)")
    return sum(float(number) * _UNIT_S[unit] for number, unit in _DURATION_PART.findall(text))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "token", help="manage bootstrap tokens other nodes join with", description="Manage bootstrap tokens."
    )
    actions = parser.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create a bootstrap token and print it", description="Create a bootstrap token and print it."
    )
    create.add_argument("token", nargs="?", default=None, help="the token to create (default: a random one)")
    create.add_argument("--ttl", default="24h", help="lifetime, e.g. 24h or 30m; 0 never expires (default 24h)")
    create.add_argument("--description", default="", help="a human-readable note stored with the token")
    create.add_argument(
        "--groups", default=NODE_TOKEN_GROUP, help=f"extra groups, comma-separated (default {NODE_TOKEN_GROUP})"
    )
    create.add_argument("--kubeconfig", default=None, help="kubeconfig (default $KUBECONFIG or ~/.kube/config)")
    create.set_defaults(func=run)


async def create_token(
    client: ApiClient,
    *,
    token: str | None = None,
    ttl_s: float = DEFAULT_TTL_S,
    description: str = "",
    groups: tuple[str, ...] = (NODE_TOKEN_GROUP,),
) -> str:
    """Create the token's Secret (a random token unless given); the token."""
    token = token or generate_token()
    expiration = rfc3339(time.time() + ttl_s) if ttl_s > 0 else None
    body = token_secret(token, expiration=expiration, description=description, extra_groups=groups)
    await client.create(SECRETS, body, NAMESPACE)
    return token


async def ensure_join_token(client: ApiClient, path: Path) -> str:
    """The token in ``path`` while its Secret still vouches for it, else a new one written there (mode 0600)."""
    stored = await asyncio.to_thread(_read, path)
    parsed = parse_token(stored) if stored else None
    if parsed is not None:
        try:
            secret = await client.get(SECRETS, SECRET_PREFIX + parsed[0], NAMESPACE)
        except ApiError as err:
            if not is_not_found(err):
                raise
        else:
            if user_for_secret(secret, *parsed, time.time()) is not None and not _expires_soon(secret):
                return stored
            await client.delete(SECRETS, SECRET_PREFIX + parsed[0], NAMESPACE)
    token = await create_token(client, description="skiff up: join token for extra nodes")
    await asyncio.to_thread(_write_private, path, token + "\n")
    return token


#: kubeadm init's bootstrap-token phase (ClusterRoleBinding, ClusterRole, group): tokens of the default node
#: group may post CSRs and have them approved (csrapproving's nodeclient), and nodes their renewals (selfnodeclient).
BOOTSTRAP_BINDINGS = (
    ("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", NODE_TOKEN_GROUP),
    (
        "kubeadm:node-autoapprove-bootstrap",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        NODE_TOKEN_GROUP,
    ),
    (
        "kubeadm:node-autoapprove-certificate-rotation",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        "system:nodes",
    ),
)


async def ensure_bootstrap_rbac(client: ApiClient) -> None:
    """Create kubeadm's bindings that let a joining kubelet get its client certificate (existing ones are kept)."""
    for name, role, group in BOOTSTRAP_BINDINGS:
        body = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        }
        try:
            await client.create(CLUSTERROLEBINDINGS, body)
        except ApiError as err:
            if not is_already_exists(err):
                raise


def _expires_soon(secret: dict[str, Any]) -> bool:
    """A token that expires within the hour is replaced rather than handed out."""
    return has_expired(secret, time.time() + 3600.0)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


async def run(args: argparse.Namespace) -> int:
    try:
        ttl_s = parse_duration(args.ttl)
        if args.token is not None and parse_token(args.token) is None:
            raise ValueError("a token must look like [a-z0-9]{6}.[a-z0-9]{16}")
        groups = tuple(g.strip() for g in args.groups.split(",") if g.strip())
        for group in groups:
            if not GROUP_PATTERN.match(group):
                raise ValueError(f"group {group!r} must start with system:bootstrappers:")
        config = await asyncio.to_thread(ClientConfig.from_kubeconfig, args.kubeconfig)
    except (ValueError, ConfigError) as err:
        print(f"skiff token create: {err}", file=sys.stderr)
        return 1
    async with ApiClient(config, user_agent="skiff-token") as client:
        try:
            token = await create_token(
                client, token=args.token, ttl_s=ttl_s, description=args.description, groups=groups
            )
        except ApiError as err:
            what = "that token already exists" if is_already_exists(err) else err.message
            print(f"skiff token create: {what}", file=sys.stderr)
            return 1
        except OSError as err:
            print(f"skiff token create: cannot reach the API server: {err}", file=sys.stderr)
            return 1
    print(token, flush=True)
    return 0
